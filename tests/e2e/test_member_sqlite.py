"""A real Hazelcast member persisting its IMaps through the shim and the sidecar (SQLite)."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.e2e.conftest import Deployment, map_store_block, wait_until
from tests.e2e.model import AllKinds, OrderEvent, serializers

pytestmark = pytest.mark.e2e

Factory = Callable[[Callable[[str], dict[str, Any]]], Deployment]


def standard_maps(address: str) -> dict[str, Any]:
    return {
        "Orders_ES": {
            "map-store": map_store_block(
                address, write_delay=1, batch=100, coalescing=False, initial_mode="LAZY"
            )
        },
        "Customer_VIEW": {
            "map-store": map_store_block(
                address, write_delay=0, batch=1, coalescing=True, initial_mode="EAGER"
            )
        },
        "Evicting_VIEW": {
            "map-store": map_store_block(
                address, write_delay=0, batch=1, coalescing=True, initial_mode="LAZY"
            ),
            "eviction": {"eviction-policy": "LRU", "max-size-policy": "PER_NODE", "size": 50},
        },
    }


def rows(db: Any, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(sql, params).fetchall()


def event(i: int) -> OrderEvent:
    return OrderEvent(
        f"order-{i % 97}", i, "OrderPlaced", 1_700_000_000_000 + i, f"corr-{i}", i * 1.25
    )


def test_write_behind_event_map_persists_every_put_exactly_once(
    deployment_factory: Factory,
) -> None:
    deployment = deployment_factory(standard_maps)
    orders = deployment.client(serializers()).get_map("Orders_ES").blocking()
    n = 10_000
    orders.put_all({f"evt-{i}": event(i) for i in range(n)})
    db = deployment.db_path

    def count() -> int:
        return int(
            rows(db, "SELECT count(*) FROM domain_events WHERE map_name = 'Orders_ES'")[0][0]
        )

    wait_until(lambda: count() == n, 120, f"only {count()} of {n} events reached the database")
    time.sleep(2)  # a duplicate flush would show up now
    assert count() == n
    sample = rows(
        db,
        "SELECT map_key, event_type, timestamp_millis, correlation_id, sequence, "
        "json_extract(event_data, '$.amount') FROM domain_events WHERE map_key = 'evt-42'",
    )
    assert sample == [("evt-42", "OrderPlaced", 1_700_000_000_042, "corr-42", 42, 52.5)]


def test_write_through_view_map_row_exists_when_put_returns(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Customer_VIEW").blocking()
    for i in range(20):
        views.put(f"c{i}", AllKinds.sample(i))
        assert rows(
            deployment.db_path, "SELECT count(*) FROM domain_views WHERE view_key = ?", f"c{i}"
        ) == [(1,)]


def test_cold_start_reloads_views_eagerly_and_events_lazily(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    client = deployment.client(serializers())
    views = {f"v{i}": AllKinds.sample(i) for i in range(60)}
    client.get_map("Customer_VIEW").blocking().put_all(views)
    client.get_map("Orders_ES").blocking().put_all({f"e{i}": event(i) for i in range(30)})
    client.shutdown()
    deployment.clients.clear()
    assert deployment.member is not None
    # SIGTERM runs the graceful shutdown hook (write-behind flushed first); the JVM exits 143.
    assert deployment.member.stop() in (0, 143)
    deployment.start_member()
    client = deployment.client(serializers())
    view_map = client.get_map("Customer_VIEW").blocking()
    assert view_map.size() == 60  # EAGER: loaded before the first operation answers
    assert view_map.get_all(list(views)) == views
    events = client.get_map("Orders_ES").blocking()
    assert events.get("e7") == event(7)  # LAZY: loaded on get


def test_evicted_entries_reload_transparently(deployment_factory: Factory) -> None:
    deployment = deployment_factory(standard_maps)
    views = deployment.client(serializers()).get_map("Evicting_VIEW").blocking()
    items = {f"k{i}": AllKinds.sample(i) for i in range(400)}
    for key, value in items.items():
        views.put(key, value)
    assert views.size() < 400  # eviction happened
    for key in list(items)[::7]:
        assert views.get(key) == items[key]
