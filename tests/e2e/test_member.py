"""A real Hazelcast member persisting its IMaps through the shim and the sidecar.

Each test runs twice: on SQLite and on a real PostgreSQL server. The client registers
the Compact classes; the member never has them (values reach the shim as GenericRecord).
"""

from __future__ import annotations

import dataclasses
import re
import signal
import time
from collections.abc import Callable
from typing import Any

import pytest
from hazelcast.predicate import greater_or_equal
from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter, FieldKind

from tests.e2e.conftest import Deployment, map_store_block, wait_until
from tests.e2e.model import Address, AllKinds, OrderEvent, serializers

pytestmark = pytest.mark.e2e

Factory = Callable[[Callable[[str], dict[str, Any]]], Deployment]


def standard_maps(address: str) -> dict[str, Any]:
    def store(delay: int, batch: int, coalescing: bool, mode: str) -> dict[str, Any]:
        return map_store_block(
            address, write_delay=delay, batch=batch, coalescing=coalescing, initial_mode=mode
        )

    return {
        "Orders_ES": {"map-store": store(1, 100, False, "LAZY")},
        "Customer_VIEW": {"map-store": store(0, 1, True, "EAGER")},
        "Profile_VIEW": {"map-store": store(0, 1, True, "LAZY")},
        "Bulk_VIEW": {"map-store": store(0, 1, True, "LAZY")},
        "Evicting_VIEW": {
            "map-store": store(0, 1, True, "LAZY"),
            "eviction": {"eviction-policy": "LRU", "max-size-policy": "PER_NODE", "size": 50},
        },
        # Values held deserialized in the member (the shim hands loaded values over as Data).
        "Object_VIEW": {"in-memory-format": "OBJECT", "map-store": store(0, 1, True, "EAGER")},
    }


def event(i: int) -> OrderEvent:
    return OrderEvent(
        f"order-{i % 97}", i, "OrderPlaced", 1_700_000_000_000 + i, f"corr-{i}", i * 1.25
    )


def count(deployment: Deployment, table: str, column: str, name: str) -> int:
    return int(deployment.query(f"SELECT count(*) FROM {table} WHERE {column} = ?", name)[0][0])


def restart_member(deployment: Deployment) -> None:
    for client in deployment.clients:
        client.shutdown()
    deployment.clients.clear()
    assert deployment.member is not None
    # SIGTERM runs the graceful shutdown hook (write-behind flushed first); the JVM exits 143.
    assert deployment.member.stop() in (0, 143)
    deployment.start_member()


def test_write_behind_event_map_persists_every_put_exactly_once(
    deployment_factory: Factory,
) -> None:
    deployment = deployment_factory(standard_maps)
    orders = deployment.client(serializers()).get_map("Orders_ES").blocking()
    n = 10_000
    for start in range(0, n, 1000):
        orders.put_all({f"evt-{i}": event(i) for i in range(start, start + 1000)})

    def stored() -> int:
        return count(deployment, "domain_events", "map_name", "Orders_ES")

    wait_until(lambda: stored() == n, 180, f"only {stored()} of {n} events reached the store")
    time.sleep(2)  # a duplicate flush would show up now
    distinct = deployment.query(
        "SELECT count(DISTINCT map_key) FROM domain_events WHERE map_name = ?", "Orders_ES"
    )
    assert stored() == n and distinct == [(n,)]
    sample = deployment.query(
        "SELECT map_key, event_type, timestamp_millis, correlation_id, sequence, "
        "json(event_data, 'amount') FROM domain_events WHERE map_key = ?",
        "evt-42",
    )
    assert [(*row[:5], float(row[5])) for row in sample] == [
        ("evt-42", "OrderPlaced", 1_700_000_000_042, "corr-42", 42, 52.5)
    ]


def test_write_through_view_map_row_exists_when_put_returns(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Customer_VIEW").blocking()
    for i in range(20):
        views.put(f"c{i}", AllKinds.sample(i))
        rows = deployment.query(
            "SELECT count(*) FROM domain_views WHERE view_name = ? AND view_key = ?",
            "Customer_VIEW",
            f"c{i}",
        )
        assert rows == [(1,)]


def test_cold_start_reloads_views_eagerly_and_events_lazily(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    client = deployment.client(serializers())
    views = {f"v{i}": AllKinds.sample(i) for i in range(60)}
    client.get_map("Customer_VIEW").blocking().put_all(views)
    client.get_map("Orders_ES").blocking().put_all({f"e{i}": event(i) for i in range(30)})
    restart_member(deployment)
    client = deployment.client(serializers())
    view_map = client.get_map("Customer_VIEW").blocking()
    assert view_map.size() == 60  # EAGER: every key loaded on first use
    # Every FieldKind, nested records and arrays come back with equal values and types.
    assert view_map.get_all(list(views)) == views
    events = client.get_map("Orders_ES").blocking()
    assert events.get("e7") == event(7)  # LAZY: loaded on get


def test_loaded_values_serve_object_format_maps_and_member_side_queries(
    deployment_factory: Factory,
) -> None:
    deployment = deployment_factory(standard_maps)
    client = deployment.client(serializers())
    events = {f"o{i}": event(i) for i in range(40)}
    client.get_map("Object_VIEW").blocking().put_all(events)
    restart_member(deployment)
    objects = deployment.client(serializers()).get_map("Object_VIEW").blocking()
    assert objects.size() == 40  # EAGER, into OBJECT in-memory format
    assert objects.get_all(list(events)) == events
    # The member reads fields of the loaded values itself.
    late = objects.values(greater_or_equal("sequence", 30))
    assert sorted(e.sequence for e in late) == list(range(30, 40))
    objects.evict("o3")
    assert objects.get("o3") == event(3)  # a single-key load on the get path


def test_evicted_entries_reload_transparently(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Evicting_VIEW").blocking()
    items = {f"k{i}": AllKinds.sample(i) for i in range(400)}
    for key, value in items.items():
        views.put(key, value)
    assert views.size() < 400  # eviction happened
    for key in list(items)[::7]:
        assert views.get(key) == items[key]


# -- schema evolution: the same Compact type name, one field more -------------------------------


@dataclasses.dataclass
class Profile:
    name: str
    age: int | None = None


class ProfileV1(CompactSerializer[Profile]):
    def read(self, reader: CompactReader) -> Profile:
        return Profile(reader.read_string("name") or "")

    def write(self, writer: CompactWriter, obj: Profile) -> None:
        writer.write_string("name", obj.name)

    def get_type_name(self) -> str:
        return "Profile"

    def get_class(self) -> type[Profile]:
        return Profile


class ProfileV2(ProfileV1):
    def read(self, reader: CompactReader) -> Profile:
        age = None
        if reader.get_field_kind("age") == FieldKind.NULLABLE_INT32:
            age = reader.read_nullable_int32("age")
        return Profile(reader.read_string("name") or "", age)

    def write(self, writer: CompactWriter, obj: Profile) -> None:
        writer.write_string("name", obj.name)
        writer.write_nullable_int32("age", obj.age)


def test_schema_evolution_old_and_new_entries_load_back(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    old = deployment.client([ProfileV1()]).get_map("Profile_VIEW").blocking()
    old.put("p-old", Profile("Ada"))
    new = deployment.client([ProfileV2()]).get_map("Profile_VIEW").blocking()
    new.put("p-new", Profile("Grace", 85))
    schemas = deployment.query(
        "SELECT count(DISTINCT schema_id) FROM domain_views WHERE view_name = ?", "Profile_VIEW"
    )
    assert schemas == [(2,)]
    restart_member(deployment)
    reader = deployment.client([ProfileV2()]).get_map("Profile_VIEW").blocking()
    assert reader.get("p-old") == Profile("Ada", None)
    assert reader.get("p-new") == Profile("Grace", 85)


# -- the sidecar goes away for a while -----------------------------------------------------------


def test_sidecar_down_during_write_behind_loses_nothing(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    orders = deployment.client(serializers()).get_map("Orders_ES").blocking()
    orders.put_all({f"before-{i}": event(i) for i in range(200)})
    deployment.sidecar.stop(signal.SIGKILL)
    orders.put_all({f"during-{i}": event(i) for i in range(300)})
    # Write-behind tried to store them while the sidecar was down, and the member said so.
    assert deployment.member is not None
    deployment.member.wait_for_log(r"Orders_ES.*UNAVAILABLE|UNAVAILABLE.*Orders_ES")
    deployment.sidecar.start()

    def stored() -> int:
        return count(deployment, "domain_events", "map_name", "Orders_ES")

    wait_until(lambda: stored() == 500, 120, f"only {stored()} of 500 events reached the store")
    distinct = deployment.query(
        "SELECT count(DISTINCT map_key) FROM domain_events WHERE map_name = ?", "Orders_ES"
    )
    assert distinct == [(500,)]


# -- deletes, and loadAll as one call --------------------------------------------------------


def test_delete_and_delete_all_remove_rows(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Customer_VIEW").blocking()
    views.put_all({f"d{i}": AllKinds.sample(i) for i in range(10)})
    assert count(deployment, "domain_views", "view_name", "Customer_VIEW") == 10
    views.delete("d0")
    views.remove("d1")
    assert count(deployment, "domain_views", "view_name", "Customer_VIEW") == 8
    views.clear()  # IMap.clear() -> MapStore.deleteAll(keys)
    assert count(deployment, "domain_views", "view_name", "Customer_VIEW") == 0


def test_load_all_of_a_thousand_keys_is_one_call(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    # One partition, so that Hazelcast hands all keys of getAll to one loadAll call.
    restart_properties = {"hazelcast.partition.count": 1}
    assert deployment.member is not None
    deployment.member.kill()
    deployment.start_member(restart_properties)
    client = deployment.client(serializers())
    bulk = client.get_map("Bulk_VIEW").blocking()
    items = {f"b{i}": event(i) for i in range(1000)}
    bulk.put_all(items)
    bulk.evict_all()
    loads_before = deployment.sidecar.log().count("Load map=Bulk_VIEW")
    assert bulk.get_all(list(items)) == items
    calls = re.findall(r"Load map=Bulk_VIEW keys=(\d+)", deployment.sidecar.log())[loads_before:]
    assert calls == ["1000"], calls


def test_cold_start_with_compact_keys_registers_their_schemas(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Customer_VIEW").blocking()
    keys = [Address(f"city{i}", i) for i in range(25)]
    for key in keys:
        views.put(key, AllKinds.sample(key.zip))
    restart_member(deployment)  # the new member knows no schema at all
    views = deployment.client(serializers()).get_map("Customer_VIEW").blocking()
    assert views.size() == 25  # EAGER: loadAllKeys deserialized every Compact key
    for key in keys[::5]:
        assert views.get(key) == AllKinds.sample(key.zip)
