"""Nothing acknowledged is lost or wrong: key identity, first write wins, unreadable rows,
errors that keep their cause. Against the real `hz-sidecar run` process, on SQLite and on
a real PostgreSQL server.
"""

from __future__ import annotations

import signal
import sqlite3
import struct
import subprocess
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization, Customer
from tests.system import conftest as system
from tests.system.conftest import SidecarProcess, free_port, sidecar_command, sqlite_config

WRITTEN = pb.ENTRY_STATUS_WRITTEN
CLIENT = ClientSerialization()


def long_key(value: int) -> bytes:
    """A ``java.lang.Long`` key's Data (the client writes Python ints as Integer)."""
    return struct.pack(">iiq", 0, -8, value)


def data(obj: object) -> bytes:
    return CLIENT.to_bytes(obj)


@pytest.fixture
def sidecar(sidecar_on_each_provider: SidecarProcess) -> SidecarProcess:
    return sidecar_on_each_provider


def store(sidecar: SidecarProcess, map_name: str, entries: list[tuple[bytes, bytes]]) -> list[int]:
    request = pb.StoreRequest(
        map_name=map_name,
        entries=[pb.Entry(key=k, value=v) for k, v in entries],
        schemas=CLIENT.schemas(),
    )
    return [r.status for r in sidecar.stub.Store(request, timeout=20).results]


def load(sidecar: SidecarProcess, map_name: str, keys: list[bytes]) -> dict[bytes, Any]:
    answer = sidecar.stub.Load(pb.LoadRequest(map_name=map_name, keys=keys), timeout=20)
    reader = ClientSerialization()
    reader.register(answer.schemas)
    return {e.key: reader.to_object(e.value) for e in answer.entries}


def execute(sidecar: SidecarProcess, workdir: Path, statement: str, *params: object) -> None:
    dsn = sidecar.dsn
    if dsn is None:
        with sqlite3.connect(workdir / "data" / "store.db") as conn:
            conn.execute(statement, params)
    else:
        with psycopg.connect(dsn) as conn:
            conn.execute(statement.replace("?", "%s"), params)


# -- 1. a key is its format and its text ------------------------------------------------


@pytest.mark.parametrize("map_name", ["Keys_VIEW", "Keys_ES"])
def test_keys_whose_texts_collide_are_distinct_keys(sidecar: SidecarProcess, map_name: str) -> None:
    keys = {
        "int32 1": data(1),
        "int64 1": long_key(1),
        'String "1"': data("1"),
        "boolean true": data(True),
        'String "true"': data("true"),
    }
    assert len(set(keys.values())) == len(keys)
    entries = [(key, data(name)) for name, key in keys.items()]
    assert store(sidecar, map_name, entries) == [WRITTEN] * len(keys)
    loaded = load(sidecar, map_name, list(keys.values()))
    assert {name: loaded.get(key) for name, key in keys.items()} == {n: n for n in keys}
    # Deleting a key never stored deletes nothing, not a key of the same text.
    gone = sidecar.stub.Delete(
        pb.DeleteRequest(map_name=map_name, keys=[long_key(7), data(False)]), timeout=10
    )
    assert gone.deleted == 0
    gone = sidecar.stub.Delete(pb.DeleteRequest(map_name=map_name, keys=[long_key(1)]), timeout=10)
    assert gone.deleted == 1
    left = load(sidecar, map_name, list(keys.values()))
    assert sorted(left.values()) == sorted(n for n in keys if n != "int64 1")


# -- 11. an event map keeps the first write of a key, whatever the chunking --------------


def test_the_first_write_of_an_event_key_wins_within_and_across_chunks(
    sidecar: SidecarProcess,
) -> None:
    entries = [(data(f"k{i}"), data(f"v{i}")) for i in range(600)]
    for index, value in ((0, "first"), (10, "same chunk"), (300, "next chunk"), (599, "last")):
        entries[index] = (data("dup"), data(value))
    assert store(sidecar, "Chunks_ES", entries) == [WRITTEN] * 600
    assert load(sidecar, "Chunks_ES", [data("dup")]) == {data("dup"): "first"}
    # A view keeps the last write, across chunks too.
    assert store(sidecar, "Chunks_VIEW", entries) == [WRITTEN] * 600
    assert load(sidecar, "Chunks_VIEW", [data("dup")]) == {data("dup"): "last"}


# -- 10, 15. one unreadable row never fails a Load; its error keeps its cause ---------------


def test_an_unreadable_row_is_skipped_and_recorded_with_an_ungarbled_message(
    sidecar: SidecarProcess, tmp_path: Path
) -> None:
    keys = [data(f"k{i}") for i in range(1000)]
    entries = [(k, data(f"v{i}")) for i, k in enumerate(keys)]
    entries[500] = (keys[500], data(Customer("Ada", True)))
    assert store(sidecar, "Big_VIEW", entries) == [WRITTEN] * 1000
    # The schema of one stored value is lost, another row's document is broken.
    execute(sidecar, tmp_path, "DELETE FROM hz_sidecar_schemas")
    execute(
        sidecar,
        tmp_path,
        "UPDATE domain_views SET view_data = ? WHERE view_key = ?",
        '{"not": "a string"}',
        "k7",
    )
    sidecar.stop()
    sidecar.start()
    loaded = load(sidecar, "Big_VIEW", keys)
    assert len(loaded) == 998 and keys[500] not in loaded and keys[7] not in loaded
    assert loaded[keys[999]] == "v999"
    listed = subprocess.run(
        [*sidecar_command(), "unreadable", "list", "--config", str(sidecar.config_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert "2 unreadable row(s)" in listed, listed
    assert "unknown compact schema id" in listed and "stored value of key" not in listed, listed
    log = sidecar.log()
    assert log.count("stored row with key 'k500'") == 1, log[-3000:]
    assert "Traceback" not in log


# -- 12. a full disk is reported as such ---------------------------------------------------


def test_a_full_disk_on_sqlite_reports_the_real_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The file size limit makes every write past it fail as a full disk would (EFBIG).
    plain = sidecar_command()
    monkeypatch.setattr(system, "sidecar_command", lambda: ["prlimit", "--fsize=4000000", *plain])
    process = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"127.0.0.1:{free_port()}"))
    process.start()
    try:
        big = data("x" * 200_000)
        failure: grpc.RpcError | None = None
        for i in range(100):
            try:
                store(process, "Full_VIEW", [(data(f"k{i}"), big)])
            except grpc.RpcError as exc:
                failure = exc
                break
        assert failure is not None, "the file size limit was never reached"
        assert failure.code() == grpc.StatusCode.UNAVAILABLE, failure
        message = failure.details() or ""
        assert "cannot rollback" not in message, message
        assert "disk" in message or "full" in message, message
    finally:
        process.stop(signal.SIGKILL)


# -- 4. NUL in strings and HazelcastJsonValue text round-trip exactly ----------------------


def test_nul_strings_and_json_values_round_trip_byte_exactly(sidecar: SidecarProcess) -> None:
    from hazelcast.core import HazelcastJsonValue

    values: dict[bytes, bytes] = {
        data("nul-value"): data("before\x00after"),
        data("json-value"): data(HazelcastJsonValue('{"b": 1,   "a": [1.50, 2e3, "x\\u0000y"]}')),
        data("compact-nul"): data(Customer("A\x00da", True)),
        data("key\x00with\\0nul"): data("v1"),
        data("key\\0with\\0nul"): data("v2"),  # the same text once NUL is escaped naively
    }
    for map_name in ("Exact_VIEW", "Exact_ES"):
        assert store(sidecar, map_name, list(values.items())) == [WRITTEN] * len(values)
        answer = sidecar.stub.Load(pb.LoadRequest(map_name=map_name, keys=list(values)), timeout=20)
        assert {e.key: e.value for e in answer.entries} == values
        if map_name == "Exact_VIEW":
            keys = [
                key
                for batch in sidecar.stub.LoadAllKeys(
                    pb.LoadAllKeysRequest(map_name=map_name), timeout=20
                )
                for key in batch.keys
            ]
            assert sorted(keys) == sorted(values)
        gone = sidecar.stub.Delete(
            pb.DeleteRequest(map_name=map_name, keys=[data("key\x00with\\0nul")]), timeout=10
        )
        assert gone.deleted == 1
        left = load(sidecar, map_name, [data("key\\0with\\0nul")])
        assert left == {data("key\\0with\\0nul"): "v2"}
