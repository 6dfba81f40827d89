"""Keys whose texts collide stay distinct keys, through a sidecar restart mid-flow.

Integer 1, Long 1 and String "1"; boolean true and String "true"; a UUID and its
String; a Compact key and the String of its JSON text: a key is its format and its
text together (DESIGN.md), so each is its own entry, on PostgreSQL, write-behind from
a real member, with the sidecar killed and restarted while the queue flushes.
"""

from __future__ import annotations

import json
import signal
import uuid
from collections.abc import Callable
from functools import partial
from typing import Any

import hazelcast
import pytest
from hazelcast.config import IntType

from tests.e2e.conftest import wait_until
from tests.e2e.model import Address, AddressSerializer
from tests.faults.conftest import FaultRig, event_maps

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Keys_ES"


def client(rig: FaultRig, int_type: IntType) -> Any:
    made = hazelcast.HazelcastClient(
        cluster_name=rig.member.cluster_name,
        cluster_members=[f"127.0.0.1:{rig.member.port}"],
        compact_serializers=[AddressSerializer()],
        default_int_type=int_type,
        cluster_connect_timeout=30,
    )
    rig.clients.append(made)
    return made.get_map(MAP).blocking()


def entries() -> dict[str, dict[Any, str]]:
    """5,000 entries by the client that puts them: each group's texts collide."""
    ints = range(666)
    uuids = [uuid.UUID(int=(7 << 100) + i) for i in range(499)]
    addresses = [Address(f"c{i}", i) for i in range(1000)]
    as_int = {i: f"int:{i}" for i in ints}
    as_long = {i: f"long:{i}" for i in ints}
    as_other: dict[Any, str] = {}
    as_other.update({str(i): f"string:{i}" for i in ints})
    as_other.update({True: "boolean:true", False: "boolean:false"})
    as_other.update({"true": "string:true", "false": "string:false"})
    as_other.update({u: f"uuid:{u}" for u in uuids})
    as_other.update({str(u): f"string:{u}" for u in uuids})
    as_other.update({a: f"compact:{a.zip}" for a in addresses})
    text = {a: json.dumps({"city": a.city, "zip": a.zip}, separators=(",", ":")) for a in addresses}
    as_other.update({text[a]: f"string-of-compact:{a.zip}" for a in addresses})
    return {"int": as_int, "long": as_long, "other": as_other}


def test_colliding_key_texts_stay_distinct_keys_through_a_sidecar_restart(
    rig_factory: Callable[..., FaultRig],
) -> None:
    rig = rig_factory(partial(event_maps, Keys_ES={"write_delay": 1, "batch": 200}))
    groups = entries()
    assert sum(len(g) for g in groups.values()) == 5000
    maps = {"int": client(rig, IntType.INT), "long": client(rig, IntType.LONG)}
    maps["other"] = maps["int"]
    puts = [(name, key, value) for name, group in groups.items() for key, value in group.items()]
    half = len(puts) // 2
    for name, key, value in puts[:half]:
        maps[name].set(key, value)
    wait_until(lambda: rig.stored(MAP) > 0, 30, "write-behind is not flowing")
    killed_at = len(rig.member.log())
    rig.sidecar.stop(signal.SIGKILL)  # mid-flow: the member keeps its queue and retries
    for name, key, value in puts[half:]:
        maps[name].set(key, value)
    # The member tried to store while the sidecar was down, and keeps the entries.
    rig.member.wait_for_log(f"for map '{MAP}' failed with UNAVAILABLE", after=killed_at)
    rig.sidecar.start()
    wait_until(
        lambda: rig.stored(MAP) == 5000,
        180,
        f"only {rig.stored(MAP)} of 5000 entries reached the database",
    )
    # The texts really collide: far fewer distinct texts than rows.
    [(distinct,)] = rig.query(
        "SELECT count(DISTINCT map_key) FROM domain_events WHERE map_name = %s", MAP
    )
    assert distinct < 3000, distinct

    # A cold member: every entry is loaded back, each key with its own value.
    for made in rig.clients:
        made.shutdown()
    rig.clients.clear()
    assert rig.member.stop() in (0, 143)
    rig.member.start()
    maps = {"int": client(rig, IntType.INT), "long": client(rig, IntType.LONG)}
    maps["other"] = maps["int"]
    for name, group in groups.items():
        keys = list(group)
        loaded: dict[Any, str] = {}
        for start in range(0, len(keys), 500):
            loaded.update(maps[name].get_all(keys[start : start + 500]))
        wrong = {k: (loaded.get(k), v) for k, v in group.items() if loaded.get(k) != v}
        assert not wrong, f"{name} keys: {len(wrong)} wrong, e.g. {list(wrong.items())[:5]}"
