"""Records written by a Java serializer through a real member: no ``"@order"`` in their rows.

A Java serializer writes a Compact record's variable-size data in its own order (a
hand-written CompactSerializer in its call order, zero-config in declaration order),
not in the schema's name order. The sidecar keeps that order once per schema (column
``write_order`` of ``hz_sidecar_schemas``, claimed by the first record it decodes), so
the documents hold nothing but fields, and the member still gets its exact bytes back.

The samples (tests/java/framework-shapes, ``WriteOrders.java``) are put and verified
by the Java driver: ``map.get`` equals the original, and ``map.replace(key, expected,
...)`` matches the original but not its twin, a GenericRecord of the same values and
schema that Hazelcast writes in name order. With the default BINARY in-memory format
the member compares serialized forms (``BinaryValueComparator``: ``toData`` of both,
then ``Data.equals``, every byte past the partition hash), so this checks the bytes the
member holds after a reload from the sidecar, write order included.

The member has the sample classes on its classpath and the hand-written serializer
registered (as the client has): ``MapStore.store`` receives what the member
deserialized (``WriteThroughStore.add`` calls ``toObject``) and the shim serializes it
again, so only a member that knows the classes hands the Java order to the sidecar.
Without them the member hands over a GenericRecord, written in name order: see
``test_a_member_without_the_classes_hands_the_sidecar_name_order_bytes``.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Deployment, Member, map_store_block, wait_until
from tests.e2e.framework import FRAMEWORK_JAR, FrameworkDriver, require_framework_jar
from tests.pgserver import SQLITE_AND_POSTGRES
from tests.system.conftest import free_port

pytestmark = pytest.mark.e2e

SAMPLES = "io.github.hzsidecar.framework.samples"
#: kind -> (map, top-level type name, nested type name); see WriteOrders.java.
KINDS = {
    "hand": ("HandWritten_VIEW", "WriteOrderHandWritten", "WriteOrderHandWrittenPart"),
    "zero": ("ZeroConfig_VIEW", f"{SAMPLES}.ZeroConfigOrder", f"{SAMPLES}.ZeroConfigPart"),
}
#: The order in which the Java serializers write each type's variable-size fields.
JAVA_ORDERS = {
    "WriteOrderHandWritten": ["zeta", "alpha", "middle", "nested"],
    "WriteOrderHandWrittenPart": ["label", "code"],
    f"{SAMPLES}.ZeroConfigOrder": ["zeta", "alpha", "middle", "nested"],
    f"{SAMPLES}.ZeroConfigPart": ["label", "code"],
}
COUNT = 40
#: The driver's finding when the member's bytes are the name-order twin's, not the original's.
TWIN_MATCHED = "replace matched the name-order twin: the member holds name-order bytes"
#: The member's compact serializers: the hand-written ones, as on the client.
MEMBER_SERIALIZATION = {
    "compact-serialization": {
        "serializers": [
            {"serializer": f"{SAMPLES}.HandWrittenOrderSerializer"},
            {"serializer": f"{SAMPLES}.HandWrittenPartSerializer"},
        ]
    }
}


def order_maps(address: str) -> dict[str, Any]:
    """Write-through view maps (write-delay 0), LAZY: entries come back through ``load``."""
    block = map_store_block(address, write_delay=0, batch=1, coalescing=True, initial_mode="LAZY")
    return {map_name: {"map-store": block} for map_name, _, _ in KINDS.values()}


Factory = Callable[..., tuple[Deployment, FrameworkDriver]]


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def order_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """A sidecar and a member; ``make(classes=True)`` gives the member the sample classes
    and the hand-written serializers, ``classes=False`` neither (the client has them)."""
    require_framework_jar()
    dsn = request.getfixturevalue("fresh_database") if request.param == "postgres" else None
    made: list[Deployment] = []

    def make(*, classes: bool = True) -> tuple[Deployment, FrameworkDriver]:
        deployment = Deployment(
            tmp_path, order_maps, dsn, extra_classpath=[FRAMEWORK_JAR] if classes else []
        )
        made.append(deployment)
        deployment.sidecar.start()
        if classes:
            member = start_member_with_serializers(deployment)
        else:
            member = deployment.start_member()
        return deployment, FrameworkDriver.of(member)

    yield make
    for deployment in made:
        deployment.close()


def start_member_with_serializers(deployment: Deployment) -> Member:
    """``deployment.start_member()``, with the hand-written serializers in the member's
    configuration (the e2e Member writes none)."""
    member = Member(
        deployment.workdir,
        free_port(),
        deployment.cluster_name,
        deployment.maps(deployment.address),
        extra_classpath=deployment.extra_classpath,
    )
    config = yaml.safe_load(member.config_path.read_text())
    config["hazelcast"]["serialization"] = MEMBER_SERIALIZATION
    member.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
    deployment.member = member
    member.start()
    return member


def put_samples(driver: FrameworkDriver, *, first: int = 0) -> None:
    """Put ``COUNT`` samples of each kind; sample ``first`` alone before the others, so that
    it is the record whose order each schema claims."""
    for kind, (map_name, _, _) in KINDS.items():
        driver.put_ordered(map_name, kind, 1, start=first)
        if first > 0:
            driver.put_ordered(map_name, kind, first)
        driver.put_ordered(map_name, kind, COUNT - first - 1, start=first + 1)


def as_json(value: Any) -> Any:
    """A JSON column's value: text on SQLite, already parsed (JSONB) on PostgreSQL."""
    return json.loads(value) if isinstance(value, str) else value


def documents(deployment: Deployment) -> dict[str, dict[str, Any]]:
    """The stored documents of the samples' maps, by key."""
    rows = deployment.query(
        "SELECT view_key, view_data FROM domain_views WHERE view_name IN (?, ?)",
        *(map_name for map_name, _, _ in KINDS.values()),
    )
    return {key: as_json(data) for key, data in rows}


def write_orders(deployment: Deployment) -> dict[str, Any]:
    """The ``write_order`` of each sample schema, by type name (None: legacy)."""
    rows = deployment.query("SELECT type_name, write_order FROM hz_sidecar_schemas")
    return {name: as_json(order) for name, order in rows if name in JAVA_ORDERS}


def order_keys(value: Any, path: str = "") -> list[str]:
    """Where ``"@order"`` occurs in a document, at any depth."""
    found: list[str] = []
    if isinstance(value, dict):
        if "@order" in value:
            found.append(path or "/")
        for name, item in value.items():
            found += order_keys(item, f"{path}/{name}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found += order_keys(item, f"{path}[{index}]")
    return found


def evict_all(deployment: Deployment) -> None:
    """Evict every entry of the samples' maps (no MapStore call): the next read loads."""
    client = deployment.client([])
    for map_name, _, _ in KINDS.values():
        evicting = client.get_map(map_name).blocking()
        evicting.evict_all()
        assert evicting.size() == 0


def verify_samples(driver: FrameworkDriver, count: int = COUNT) -> None:
    for kind, (map_name, _, _) in KINDS.items():
        result = driver.verify_ordered(map_name, kind, count)
        assert result == {"checked": count, "mismatches": []}


def assert_clean_sidecar_log(deployment: Deployment) -> None:
    log = deployment.sidecar.log()
    for sign in ("Task exception was never retrieved", "Traceback", "never awaited"):
        assert sign not in log, f"sidecar log shows {sign!r}:\n{log[-4000:]}"


def test_java_written_records_are_stored_without_order_and_reload_exactly(
    order_deployment: Factory,
) -> None:
    deployment, driver = order_deployment()
    put_samples(driver)

    stored = documents(deployment)
    assert len(stored) == 2 * COUNT
    with_order = {key: order_keys(doc) for key, doc in stored.items() if order_keys(doc)}
    assert with_order == {}, f"documents with @order: {with_order}"
    # Readable documents: the fields and nothing else (a nested record names its type).
    hand = stored["hand-1"]
    assert sorted(hand) == ["alpha", "count", "middle", "nested", "zeta"]
    assert (hand["zeta"], hand["alpha"]) == ("z-1", "a-1")
    assert (hand["count"], hand["middle"]) == (1001, [10])
    assert {k: v for k, v in hand["nested"].items() if k != "@schemaId"} == {
        "@type": "WriteOrderHandWrittenPart",
        "code": "c-1",
        "label": "l-1",
        "weight": 1,
    }
    assert stored["zero-9"]["nested"] is None and stored["zero-3"]["alpha"] is None
    # The Java order is kept once, with each schema.
    assert write_orders(deployment) == JAVA_ORDERS

    evict_all(deployment)
    verify_samples(driver)
    assert_clean_sidecar_log(deployment)


def test_a_record_with_a_null_field_claims_nothing_and_the_next_complete_one_does(
    order_deployment: Factory,
) -> None:
    deployment, driver = order_deployment()
    put_samples(driver, first=3)  # sample 3: alpha is null, the other fields are set

    # Sample 3 shows only part of its class's order, so it claimed nothing and its
    # document names its own order; the first complete record claimed the Java order,
    # and no document written after it carries one.
    stored = documents(deployment)
    assert len(stored) == 2 * COUNT
    with_order = sorted(key for key, doc in stored.items() if order_keys(doc))
    assert with_order == sorted(f"{kind}-3" for kind in KINDS)
    assert write_orders(deployment) == JAVA_ORDERS

    # Either way, the member gets its exact bytes back (the check writes each sample
    # again: sample 3's document then loses its "@order").
    evict_all(deployment)
    verify_samples(driver)
    assert_clean_sidecar_log(deployment)
    assert not any(order_keys(doc) for doc in documents(deployment).values())


def legacy_document(document: dict[str, Any], type_name: str) -> dict[str, Any]:
    """``document`` as the sidecar wrote it before write orders were kept with schemas: an
    ``"@order"`` (the non-null variable-size fields in the order of their bytes) in each
    record, top-level and nested, whose bytes are not in name order."""
    old = dict(document)
    nested = old.get("nested")
    if nested is not None:
        old["nested"] = legacy_document(nested, nested["@type"])
    order = [name for name in JAVA_ORDERS[type_name] if old[name] is not None]
    if order != sorted(order):
        old["@order"] = order
    return old


def test_rows_with_order_under_legacy_schemas_keep_loading_exactly(
    order_deployment: Factory,
) -> None:
    deployment, driver = order_deployment()
    put_samples(driver)
    stored = documents(deployment)
    assert not any(order_keys(doc) for doc in stored.values())

    # Back to the old form: documents with "@order", schemas without a write order
    # (NULL: persisted before write orders were kept). One row per map keeps the new
    # form, which under a legacy schema reads in name order: the control.
    controls = {f"{kind}-{COUNT - 1}" for kind in KINDS}
    for kind, (map_name, type_name, _) in KINDS.items():
        for i in range(COUNT):
            key = f"{kind}-{i}"
            if key in controls:
                continue
            deployment.query(
                "UPDATE domain_views SET view_data = ? WHERE view_name = ? AND view_key = ?",
                json.dumps(legacy_document(stored[key], type_name)),
                map_name,
                key,
            )
    deployment.query(
        "UPDATE hz_sidecar_schemas SET write_order = NULL WHERE type_name IN (?, ?, ?, ?)",
        *JAVA_ORDERS,
    )
    assert write_orders(deployment) == dict.fromkeys(JAVA_ORDERS)
    legacy = documents(deployment)
    assert legacy["hand-0"]["@order"] == ["zeta", "alpha", "middle", "nested"]
    assert legacy["zero-0"]["nested"]["@order"] == ["label", "code"]
    assert "@order" not in legacy["hand-5"]["nested"]  # code is null: label alone is in order

    deployment.sidecar.stop(signal.SIGTERM)
    deployment.sidecar.start()
    evict_all(deployment)
    client = deployment.client([])
    wait_until(lambda: _loads(client), 30, "the member cannot load through the restarted sidecar")

    verify_samples(driver, COUNT - 1)
    # The control loads in name order: its bytes are the twin's, not the original's, so
    # the check above is decided by the rows' "@order".
    for kind, (map_name, _, _) in KINDS.items():
        result = driver.verify_ordered(map_name, kind, 1, start=COUNT - 1, check=False)
        assert [m["problem"] for m in result["mismatches"]] == [TWIN_MATCHED], result
    # The schemas stay legacy: what the verification stored again (replace puts the value
    # back) is written with "@order", as before.
    assert write_orders(deployment) == dict.fromkeys(JAVA_ORDERS)
    after = documents(deployment)
    for key, document in legacy.items():
        if key not in controls:
            assert order_keys(after[key]) == order_keys(document), key
    assert_clean_sidecar_log(deployment)


def _loads(client: Any) -> bool:
    """Whether a read that goes to the MapStore succeeds (a key no row has)."""
    try:
        client.get_map(KINDS["hand"][0]).blocking().get("no-such-key")
    except Exception:  # the shim's first call may race the restarted sidecar
        return False
    return True


def test_a_member_without_the_classes_hands_the_sidecar_name_order_bytes(
    order_deployment: Factory,
) -> None:
    """Registered on the client only, the samples reach ``MapStore.store`` as GenericRecords
    (the member deserializes before storing and has no class for the type names); the
    shim serializes them again, in name order. The sidecar stores and returns exactly
    those bytes, so after a reload the member holds the name-order form: equal values,
    not the client's original bytes."""
    deployment, driver = order_deployment(classes=False)
    put_samples(driver)
    stored = documents(deployment)
    assert len(stored) == 2 * COUNT
    assert not any(order_keys(doc) for doc in stored.values())
    assert write_orders(deployment) == {name: sorted(order) for name, order in JAVA_ORDERS.items()}

    evict_all(deployment)
    for kind, (map_name, _, _) in KINDS.items():
        result = driver.verify_ordered(map_name, kind, COUNT, check=False)
        problems = {m["problem"] for m in result["mismatches"]}
        assert len(result["mismatches"]) == COUNT, result
        assert problems == {TWIN_MATCHED}
    assert_clean_sidecar_log(deployment)
