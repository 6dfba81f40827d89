"""The reference framework's own data through a real member, put and read from Java.

The framework keys its event maps by ``PartitionedSequenceKey<String>`` (plain Java
serialization, PartitionAware) and stores Compact records built as GenericRecords;
before the sidecar, its in-JVM MapStores wrote rows of their own form. Everything here
is driven by a Java client (tests/java/framework-shapes) with the key class on the
member's classpath, on SQLite and on a real PostgreSQL server.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, map_store_block, wait_until
from tests.e2e.framework import (
    FIRST_SEQUENCE,
    FRAMEWORK_JAR,
    FrameworkDriver,
    event_key,
    require_framework_jar,
    view_key,
)
from tests.pgserver import SQLITE_AND_POSTGRES
from tests.system.conftest import sidecar_command

pytestmark = pytest.mark.e2e

EVENT_TYPES = ("CustomerCreatedEvent", "CustomerUpdatedEvent", "CustomerDeletedEvent")


def framework_maps(address: str) -> dict[str, Any]:
    """The reference's map settings: events write-behind without coalescing, LAZY; views EAGER."""
    return {
        "Customer_ES": {
            "map-store": map_store_block(
                address, write_delay=1, batch=100, coalescing=False, initial_mode="LAZY"
            )
        },
        "Customer_VIEW": {
            "map-store": map_store_block(
                address, write_delay=0, batch=1, coalescing=True, initial_mode="EAGER"
            )
        },
    }


Factory = Callable[[], tuple[Deployment, FrameworkDriver]]


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def framework_deployment(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    require_framework_jar()
    dsn = request.getfixturevalue("fresh_database") if request.param == "postgres" else None
    made: list[Deployment] = []

    def make() -> tuple[Deployment, FrameworkDriver]:
        deployment = Deployment(tmp_path, framework_maps, dsn, extra_classpath=[FRAMEWORK_JAR])
        made.append(deployment)
        deployment.sidecar.start()
        member = deployment.start_member()
        return deployment, FrameworkDriver.of(member)

    yield make
    for deployment in made:
        deployment.close()


def restart_member(deployment: Deployment) -> FrameworkDriver:
    """A cold restart: graceful shutdown (write-behind flushed), then a fresh member."""
    assert deployment.member is not None
    assert deployment.member.stop() in (0, 143)
    return FrameworkDriver.of(deployment.start_member())


def assert_clean_sidecar_log(deployment: Deployment) -> None:
    log = deployment.sidecar.log()
    for sign in ("Task exception was never retrieved", "athrow", "Traceback", "never awaited"):
        assert sign not in log, f"sidecar log shows {sign!r}:\n{log[-4000:]}"


def test_events_put_from_java_get_the_reference_columns_and_reload_exactly(
    framework_deployment: Factory,
) -> None:
    deployment, driver = framework_deployment()
    driver.put_events("Customer_ES", 140, timestamp_kind="int64")
    driver.put_events("Customer_ES", 60, start=140, timestamp_kind="tstz")

    def stored() -> int:
        rows = deployment.query(
            "SELECT count(*) FROM domain_events WHERE map_name = ?", "Customer_ES"
        )
        return int(rows[0][0])

    wait_until(lambda: stored() == 200, 120, f"only {stored()} of 200 events were stored")
    rows = deployment.query(
        "SELECT map_key, aggregate_id, sequence, event_type, timestamp_millis, correlation_id,"
        " key_format FROM domain_events WHERE map_name = ? ORDER BY sequence",
        "Customer_ES",
    )
    expected = []
    for i in range(200):
        key = event_key(i)
        expected.append(
            (
                f"seq:{key['sequence']}|key:{key['partitionKey']}",
                key["partitionKey"],
                FIRST_SEQUENCE + i,
                EVENT_TYPES[i % 3],
                1_700_000_000_000 + i,
                None if i % 7 == 0 else f"corr-{i // 5}",
                "",  # the framework's own key form: the same rows as the framework's
            )
        )
    assert [tuple(row) for row in rows] == expected

    driver = restart_member(deployment)
    assert driver.size("Customer_ES") == 0  # LAZY: nothing loaded until asked
    driver.verify_events("Customer_ES", 140, timestamp_kind="int64", sample=40)
    driver.verify_events("Customer_ES", 60, start=140, timestamp_kind="tstz", sample=20)
    assert_clean_sidecar_log(deployment)


# -- rows the framework wrote before the sidecar ---------------------------------------


def framework_event(i: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(map_key, row columns, document) of event ``i`` as the framework's MapStore wrote it."""
    key = event_key(i)
    event_type = EVENT_TYPES[i % 3]
    payload = {
        "_schemaType": "GenericRecord",  # the framework names nested records without eventType so
        "_fieldKinds": {
            "name": "STRING",
            "tier": "INT32",
            "balance": "FLOAT64",
            "vip": "BOOLEAN",
            "since": "DATE",  # a kind the framework does not carry: left out when rebuilt
        },
        "_fields": {
            "name": f"Customer {i}",
            "tier": i % 4,
            "balance": i * 1.25,
            "vip": i % 2 == 0,
            "since": None,
        },
    }
    document = {
        "_schemaType": event_type,
        "_fieldKinds": {
            "eventId": "STRING",
            "eventType": "STRING",
            "timestamp": "INT64",
            "key": "STRING",
            "correlationId": "STRING",
            "payload": "COMPACT",
            "score": "FLOAT32",
            "lines": "ARRAY_OF_COMPACT",
        },
        "_fields": {
            "eventId": f"evt-{i}",
            "eventType": event_type,
            "timestamp": 1_600_000_000_000 + i,
            "key": key["partitionKey"],
            "correlationId": None if i % 7 == 0 else f"corr-{i}",
            "payload": payload,
            "score": 0.1,  # a JSON number for FLOAT32: the nearest binary32, as Java's cast
            "lines": [
                {
                    "_schemaType": "GenericRecord",
                    "_fieldKinds": {"sku": "STRING", "qty": "NULLABLE_INT32"},
                    "_fields": {"sku": f"sku-{i}", "qty": None},
                },
                None,
            ],
        },
    }
    columns = {
        "aggregate_id": key["partitionKey"],
        "sequence": key["sequence"],
        "event_type": event_type,
        "timestamp_millis": 1_600_000_000_000 + i,
        "correlation_id": None if i % 7 == 0 else f"corr-{i}",
    }
    return f"seq:{key['sequence']}|key:{key['partitionKey']}", columns, document


def framework_view(i: int) -> dict[str, Any]:
    return {
        "_schemaType": "GenericRecord",
        "_fieldKinds": {"customerId": "STRING", "orders": "INT32", "total": "NULLABLE_FLOAT64"},
        "_fields": {"customerId": f"legacy-{i}", "orders": i, "total": None},
    }


def insert_framework_rows(
    deployment: Deployment,
    events: list[tuple[str, dict[str, Any], dict[str, Any]]],
    views: dict[str, dict[str, Any]],
) -> None:
    """Insert rows exactly as the framework's PostgreSQL persistence did: no sidecar columns."""
    for map_key, columns, document in events:
        deployment.query(
            "INSERT INTO domain_events (map_name, map_key, aggregate_id, sequence, event_type,"
            " event_data, timestamp_millis, correlation_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            "Customer_ES",
            map_key,
            columns["aggregate_id"],
            columns["sequence"],
            columns["event_type"],
            json.dumps(document),
            columns["timestamp_millis"],
            columns["correlation_id"],
        )
    for view_key_text, document in views.items():
        deployment.query(
            "INSERT INTO domain_views (view_name, view_key, view_data, last_updated_millis)"
            " VALUES (?, ?, ?, ?)",
            "Customer_VIEW",
            view_key_text,
            json.dumps(document),
            1_600_000_000_000,
        )


_KIND_OF_JSON = {"STRING", "INT32", "INT64", "BOOLEAN", "NULLABLE_INT32", "NULLABLE_FLOAT64"}


def rebuilt(document: dict[str, Any] | None) -> dict[str, Any] | None:
    """What the framework's converter rebuilt from ``document``, in the driver's dump form."""
    if document is None:
        return None
    fields: dict[str, Any] = {}
    for name, kind in document["_fieldKinds"].items():
        value = document["_fields"].get(name)
        if kind == "COMPACT":
            fields[name] = {"kind": kind, "value": rebuilt(value)}
        elif kind == "ARRAY_OF_COMPACT":
            fields[name] = {"kind": kind, "value": [rebuilt(item) for item in value]}
        elif kind == "FLOAT32":
            fields[name] = {"kind": kind, "value": float(f"{value:.7g}")}
        elif kind == "FLOAT64":
            fields[name] = {"kind": kind, "value": float(value)}
        elif kind in _KIND_OF_JSON:
            fields[name] = {"kind": kind, "value": value}
        # other kinds: the framework skipped them when it rebuilt the record
    return {"type": document["_schemaType"], "fields": fields}


def normalised(dump: dict[str, Any] | None) -> dict[str, Any] | None:
    """The driver's dump with FLOAT32 values rounded to what a binary32 prints."""
    if dump is None:
        return None
    fields: dict[str, Any] = {}
    for name, field in dump["fields"].items():
        value = field["value"]
        if field["kind"] == "COMPACT":
            value = normalised(value)
        elif field["kind"] == "ARRAY_OF_COMPACT":
            value = [normalised(item) for item in value]
        elif field["kind"] == "FLOAT32":
            value = float(f"{value:.7g}")
        fields[name] = {"kind": field["kind"], "value": value}
    return {"type": dump["type"], "fields": fields}


def test_rows_the_framework_wrote_load_through_the_member(framework_deployment: Factory) -> None:
    deployment, driver = framework_deployment()
    events = [framework_event(i) for i in range(12)]
    views = {"legacy-0": framework_view(0)}
    # The view map holds 200 rows the sidecar wrote, besides the framework's one.
    driver.put_views("Customer_VIEW", 200)
    insert_framework_rows(deployment, events, views)

    driver = restart_member(deployment)
    assert driver.size("Customer_VIEW") == 201  # EAGER: every row, whoever wrote it
    dumped = driver.dump("Customer_VIEW", list(views))
    assert [normalised(d["value"]) for d in dumped] == [rebuilt(v) for v in views.values()]
    driver.verify_views("Customer_VIEW", 200, sample=25)

    keys = [event_key(i) for i in range(12)]
    dumped = driver.dump("Customer_ES", keys)
    assert [normalised(d["value"]) for d in dumped] == [rebuilt(doc) for _, _, doc in events]
    # The framework rows stay as they are: loading rewrites nothing.
    rows = deployment.query(
        "SELECT count(*) FROM domain_events WHERE map_name = ? AND value_format IS NULL",
        "Customer_ES",
    )
    assert rows == [(12,)]
    assert_clean_sidecar_log(deployment)


def test_a_row_that_cannot_be_read_is_skipped_listed_and_the_rest_loads(
    framework_deployment: Factory,
) -> None:
    deployment, driver = framework_deployment()
    driver.put_views("Customer_VIEW", 50)
    broken = "{not json" if deployment.dsn is None else '{"_schemaType": "X"}'
    deployment.query(
        "INSERT INTO domain_views (view_name, view_key, key_format, view_data, value_format,"
        " last_updated_millis) VALUES (?, ?, ?, ?, ?, ?)",
        "Customer_VIEW",
        "bad-format",
        "no-such-format",
        json.dumps(framework_view(0)),
        "compact",
        0,
    )
    deployment.query(
        "INSERT INTO domain_views (view_name, view_key, view_data, last_updated_millis)"
        " VALUES (?, ?, ?, ?)",
        "Customer_VIEW",
        "bad-document",
        broken,
        0,
    )
    driver = restart_member(deployment)
    assert driver.size("Customer_VIEW") == 50
    dumped = driver.dump("Customer_VIEW", ["bad-document", view_key(7)])
    assert dumped[0]["value"] is None and dumped[1]["value"] is not None
    listed = subprocess.run(
        [*sidecar_command(), "unreadable", "list", "--config", str(deployment.sidecar.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        cwd=deployment.workdir,
    ).stdout
    assert "2 unreadable row(s)" in listed, listed
    assert re.search(r"key='bad-format' format='no-such-format'", listed), listed
    assert "key='bad-document'" in listed, listed
    log = deployment.sidecar.log()
    assert log.count("'bad-document'") >= 1 and log.count("stored row with key 'bad-format'") == 1
    assert_clean_sidecar_log(deployment)
