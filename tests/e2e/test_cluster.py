"""A cluster of three members, each with its own sidecar, sharing one PostgreSQL database.

Backups: every map keeps Hazelcast's default of one synchronous backup (``backup-count: 1``,
stated explicitly below). A put returns once the owner and one backup hold the entry, and a
map with backups keeps a backup of the owner's write-behind queue too: when the owner is lost
the backup is promoted and its queue is flushed through the new owner's MapStore, that is
through a surviving member's sidecar (hazelcast/hazelcast#9103: "if map has backup
configured, after fail, backup will become new primary and it will continue the
processing"; ``WriteBehindStore.addBackup`` in the Hazelcast javadoc). One backup suffices
for the loss of one member at a time, which is what these tests do; surviving two
simultaneous losses would need ``backup-count: 2``.

Hazelcast may hand the same entry to a MapStore more than once around migrations
(hazelcast/hazelcast#20820); event rows stay unique because the sidecar's event INSERT keeps
the first row of a key.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import pytest

from tests.e2e.cluster import Cluster, ClusterFactory, cluster_factory  # noqa: F401
from tests.e2e.conftest import map_store_block, wait_until
from tests.e2e.model import AllKinds, OrderEvent, serializers

pytestmark = pytest.mark.e2e


def event(i: int) -> OrderEvent:
    return OrderEvent(
        f"order-{i % 97}", i, "OrderPlaced", 1_700_000_000_000 + i, f"corr-{i}", i * 1.25
    )


def cluster_maps(events_delay: int) -> Any:
    def maps(address: str) -> dict[str, Any]:
        def store(delay: int, coalescing: bool, mode: str) -> dict[str, Any]:
            block = map_store_block(
                address, write_delay=delay, batch=1000, coalescing=coalescing, initial_mode=mode
            )
            return {"backup-count": 1, "map-store": block}

        return {
            "Orders_ES": store(events_delay, False, "LAZY"),
            "Customer_VIEW": store(0, True, "EAGER"),
            "Ledger_VIEW": store(1, True, "LAZY"),
        }

    return maps


def events_stored(cluster: Cluster) -> tuple[int, int]:
    """(rows, distinct keys) of the Orders_ES event map."""
    row = cluster.query(
        "SELECT count(*), count(DISTINCT map_key) FROM domain_events WHERE map_name = %s",
        "Orders_ES",
    )[0]
    return int(row[0]), int(row[1])


def test_write_behind_across_the_cluster_stores_each_put_once_through_every_sidecar(
    cluster_factory: ClusterFactory,  # noqa: F811
) -> None:
    # A coalescing write-behind map: Hazelcast hands each member's due entries to storeAll in
    # batches (a non-coalescing map's queue reaches the MapStore one store() per entry).
    cluster = cluster_factory(cluster_maps(events_delay=1))
    n = 30_000
    ledger = cluster.client(serializers()).get_map("Ledger_VIEW").blocking()
    for start in range(0, n, 1000):
        ledger.put_all({f"l{i}": event(i) for i in range(start, start + 1000)})

    def stored() -> tuple[int, int]:
        row = cluster.query(
            "SELECT count(*), count(DISTINCT view_key) FROM domain_views WHERE view_name = %s",
            "Ledger_VIEW",
        )[0]
        return int(row[0]), int(row[1])

    wait_until(lambda: stored()[0] >= n, 240, f"{stored()} of {n}")
    time.sleep(3)  # a second flush of any entry would show in the metrics now
    assert stored() == (n, n)
    shares = [node.stored("Ledger_VIEW") for node in cluster.nodes]
    # Each member flushes the partitions it owns through its own sidecar: three shares,
    # none empty, that add up to every put exactly once.
    assert all(share > 0 for share in shares), shares
    assert sum(shares) == n, shares


def test_member_loss_flushes_its_queued_entries_from_backups_through_the_survivors(
    cluster_factory: ClusterFactory,  # noqa: F811
) -> None:
    delay = 8  # seconds: every entry is still queued when the member is killed
    cluster = cluster_factory(cluster_maps(events_delay=delay))
    n = 3000
    orders = cluster.client(serializers()).get_map("Orders_ES").blocking()
    started = time.monotonic()
    for start in range(0, n, 500):  # acknowledged: the owner and its backup hold each entry
        orders.put_all({f"evt-{i}": event(i) for i in range(start, start + 500)})
    lost = cluster.nodes[2]
    stored_by_lost = lost.stored("Orders_ES")
    rows_at_kill = events_stored(cluster)[0]
    cluster.kill(2)
    assert time.monotonic() - started < delay, "the puts outlasted the write delay"
    assert stored_by_lost == 0 and rows_at_kill == 0, (stored_by_lost, rows_at_kill)

    wait_until(lambda: events_stored(cluster)[0] >= n, 180, f"{events_stored(cluster)} of {n}")
    time.sleep(3)
    assert events_stored(cluster) == (n, n)
    survivors = [node.stored("Orders_ES") for node in cluster.nodes[:2]]
    # The lost member's third of the entries was flushed by the survivors' sidecars.
    assert sum(survivors) >= n and all(share > 0 for share in survivors), survivors


def sidecar_calls(cluster: Cluster, pattern: str, offsets: list[int]) -> list[list[int]]:
    """Per sidecar, the key counts of the log lines matching ``pattern`` after ``offsets``."""
    return [
        [int(k) for k in re.findall(pattern, node.sidecar.log()[offset:])]
        for node, offset in zip(cluster.nodes, offsets, strict=True)
    ]


def test_cold_start_loads_views_eagerly_through_every_sidecar_and_events_lazily(
    cluster_factory: ClusterFactory,  # noqa: F811
) -> None:
    cluster = cluster_factory(cluster_maps(events_delay=1))
    client = cluster.client(serializers())
    views = {f"v{i}": AllKinds.sample(i) for i in range(600)}
    client.get_map("Customer_VIEW").blocking().put_all(views)  # write-through
    client.get_map("Orders_ES").blocking().put_all({f"e{i}": event(i) for i in range(300)})
    wait_until(lambda: events_stored(cluster)[0] == 300, 60, "events not flushed")
    for node in cluster.nodes:  # the whole cluster goes down; the sidecars stay
        assert node.member is not None
        node.member.kill()
        node.member = None
    offsets = [len(node.sidecar.log()) for node in cluster.nodes]
    cluster.start_members([0, 1, 2])

    client = cluster.client(serializers())
    view_map = client.get_map("Customer_VIEW").blocking()
    assert view_map.size() == 600  # EAGER: the first use loads every key
    assert view_map.get_all(list(views)) == views
    key_listings = sidecar_calls(cluster, r"LoadAllKeys map=Customer_VIEW keys=(\d+)", offsets)
    loads = sidecar_calls(cluster, r"Load map=Customer_VIEW keys=(\d+)", offsets)
    # loadAllKeys once, on one member; loadAll from each partition owner through its own
    # sidecar, every key exactly once.
    assert [calls for calls in key_listings if calls] == [[600]], key_listings
    assert sum(1 for calls in loads if calls) >= 2, loads
    assert sum(sum(calls) for calls in loads) == 600, loads

    # LAZY: an event is loaded on get, whichever member the client talks to.
    for node in cluster.nodes:
        member_client = cluster.client(
            serializers(), cluster_members=[f"127.0.0.1:{node.port}"], smart_routing=False
        )
        events = member_client.get_map("Orders_ES").blocking()
        for i in range(node.index, 300, 37):
            assert events.get(f"e{i}") == event(i)
    event_loads = sidecar_calls(cluster, r"Load map=Orders_ES keys=(\d+)", offsets)
    assert sum(1 for calls in event_loads if calls) >= 2, event_loads


def test_rolling_restart_under_load_loses_no_entry_and_duplicates_no_event(
    cluster_factory: ClusterFactory,  # noqa: F811
) -> None:
    cluster = cluster_factory(cluster_maps(events_delay=1))
    client = cluster.client(serializers())
    orders = client.get_map("Orders_ES").blocking()
    customers = client.get_map("Customer_VIEW").blocking()
    acknowledged: list[int] = []
    failed: list[int] = []
    stop = threading.Event()

    def load() -> None:
        i = 0
        while not stop.is_set():
            try:
                orders.put(f"evt-{i}", event(i))
                if i % 10 == 0:
                    customers.set(f"c{i}", AllKinds.sample(i))
                acknowledged.append(i)
            except Exception:  # a put caught in a member's shutdown; counted, not asserted
                failed.append(i)
            i += 1
            time.sleep(0.005)

    putter = threading.Thread(target=load)
    putter.start()
    try:
        wait_until(lambda: events_stored(cluster)[0] > 0, 30, "write-behind is not flowing")
        for index in range(3):
            cluster.restart_member(index)
            # The puts go on through the restarted cluster before the next restart.
            served = len(acknowledged)
            wait_until(
                lambda served=served: len(acknowledged) > served + 20,
                30,
                f"no put was acknowledged after member {index} restarted",
            )
    finally:
        stop.set()
        putter.join()

    assert len(acknowledged) > 200, (len(acknowledged), len(failed))
    keys = {f"evt-{i}" for i in acknowledged}

    def missing() -> set[str]:
        rows = cluster.query("SELECT map_key FROM domain_events WHERE map_name = %s", "Orders_ES")
        return keys - {row[0] for row in rows}

    wait_until(lambda: not missing(), 120, f"acknowledged events missing: {sorted(missing())[:5]}")
    time.sleep(2)
    rows, distinct = events_stored(cluster)
    attempted = len(acknowledged) + len(failed)
    assert rows == distinct and len(keys) <= rows <= attempted, (rows, distinct, attempted)
    view_keys = [f"c{i}" for i in acknowledged if i % 10 == 0]
    stored_views = cluster.query(
        "SELECT count(*) FROM domain_views WHERE view_name = %s AND view_key = ANY(%s)",
        "Customer_VIEW",
        view_keys,
    )
    assert stored_views == [(len(view_keys),)]
    for key in view_keys[::25]:
        assert customers.get(key) == AllKinds.sample(int(key[1:]))


def test_a_cluster_on_per_sidecar_sqlite_stores_is_refused_at_the_first_write(
    cluster_factory: ClusterFactory,  # noqa: F811
) -> None:
    # The shim sends the member's cluster size with every call; a SQLite sidecar refuses to
    # persist a cluster's writes (each would hold a different slice of the map).
    sqlite = {"provider": {"name": "sqlite", "settings": {"path": "data/store.db"}}}
    cluster = cluster_factory(cluster_maps(events_delay=1), size=2, sidecar_overrides=sqlite)
    views = cluster.client(serializers()).get_map("Customer_VIEW").blocking()
    with pytest.raises(Exception, match="FAILED_PRECONDITION") as error:
        views.put_all({f"c{i}": AllKinds.sample(i) for i in range(20)})  # write-through
    assert "keeps its data beside this one sidecar" in str(error.value)
    assert "cluster of 2 members" in str(error.value)
