"""PostgreSQL under concurrency and failure: sidecars migrating together, a server
that stops and restarts in the middle of a storeAll."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from sidecar.errors import StoreUnavailableError
from sidecar.providers.base import StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.postgres import PostgresProvider, bundled_migrations
from tests.pgserver import PostgresServer

HZ_SIDECAR = Path(sys.executable).with_name("hz-sidecar")


def test_ten_concurrent_migrate_commands_apply_each_migration_exactly_once(
    postgres_server: PostgresServer, fresh_database: str, tmp_path: Path
) -> None:
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        json.dumps({"provider": {"name": "postgres", "settings": {"dsn": fresh_database}}})
    )
    command = [str(HZ_SIDECAR), "migrate", "--config", str(config)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    processes = [
        subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
        )
        for _ in range(10)
    ]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert [p.returncode for p in processes] == [0] * 10, outputs
    versions = [str(m.version) for m in bundled_migrations()]
    applied = [out.strip() for out, _ in outputs if out.startswith("applied migrations")]
    assert applied == [f"applied migrations: {', '.join(versions)}"], outputs
    assert sum(out.strip() == "schema is up to date" for out, _ in outputs) == 9
    with psycopg.connect(fresh_database) as conn:
        rows = conn.execute("SELECT version FROM hz_sidecar_migrations ORDER BY version").fetchall()
    assert [str(v) for (v,) in rows] == versions


def event(i: int) -> StoreEntry:
    return StoreEntry(
        key=StoredKey(f"e{i:06d}", "string"),
        value=StoredValue("compact", json.dumps({"i": i, "pad": "x" * 100}), "Ev", 1),
    )


async def test_a_restart_during_store_all_loses_and_duplicates_nothing_acknowledged(
    postgres_control: PostgresServer,
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    provider = PostgresProvider(
        {
            "dsn": postgres_control.dsn(),
            "schema": schema,
            "pool-max-size": 4,
            "connect-timeout-seconds": 2,
            "retry-seconds": 15,
        }
    )
    await provider.open()
    batches = [[event(b * 500 + i) for i in range(500)] for b in range(80)]
    acknowledged: list[int] = []
    unavailable: list[int] = []
    started = asyncio.Event()
    queue: asyncio.Queue[int] = asyncio.Queue()
    for b in range(len(batches)):
        queue.put_nowait(b)

    async def writer() -> None:
        while not queue.empty():
            b = queue.get_nowait()
            if b == 8:
                started.set()
            try:
                await provider.store("Outage_ES", StoreKind.EVENT, batches[b])
            except StoreUnavailableError:
                unavailable.append(b)
            else:
                acknowledged.append(b)

    async def outage() -> None:
        await started.wait()
        await asyncio.to_thread(postgres_control.stop, "fast")
        await asyncio.sleep(1.5)
        await asyncio.to_thread(postgres_control.start)

    try:
        await asyncio.wait_for(asyncio.gather(outage(), *(writer() for _ in range(4))), 120)
        assert sorted(acknowledged + unavailable) == list(range(len(batches)))
        assert len(acknowledged) > len(batches) // 2
        assert await provider.is_available()
    finally:
        await provider.close()
    with psycopg.connect(postgres_control.dsn()) as conn:
        rows = conn.execute(
            sql.SQL("SELECT map_key, count(*) FROM {} GROUP BY map_key").format(
                sql.Identifier(schema, "domain_events")
            )
        ).fetchall()
    stored = {key for key, count in rows}
    assert all(count == 1 for _, count in rows)
    for b in acknowledged:
        assert {e.key.text for e in batches[b]} <= stored, f"acknowledged batch {b} is missing"
    # A failed batch was one transaction: all of it or none of it.
    for b in unavailable:
        present = {e.key.text for e in batches[b]} & stored
        assert not present or len(present) == len(batches[b])


@pytest.mark.parametrize("mode", ["fast", "immediate"])
async def test_a_server_stopped_for_good_fails_calls_as_unavailable_within_the_budget(
    postgres_control: PostgresServer, mode: str
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    provider = PostgresProvider(
        {
            "dsn": postgres_control.dsn(),
            "schema": schema,
            "retry-seconds": 1.5,
            "connect-timeout-seconds": 2,
        }
    )
    await provider.open()
    try:
        await provider.store("Down_ES", StoreKind.EVENT, [event(1)])
        await asyncio.to_thread(postgres_control.stop, mode)
        loop = asyncio.get_running_loop()
        began = loop.time()
        with pytest.raises(StoreUnavailableError, match="map 'Down_ES'"):
            await provider.store("Down_ES", StoreKind.EVENT, [event(2)])
        assert loop.time() - began < 5
        assert await provider.is_available() is False
        await asyncio.to_thread(postgres_control.start)
        restarted = loop.time()
        while not await provider.is_available():
            assert loop.time() - restarted < 10, "the pool did not reconnect"
            await asyncio.sleep(0.2)
        await provider.store("Down_ES", StoreKind.EVENT, [event(2)])
        assert len(await provider.load("Down_ES", StoreKind.EVENT, [event(2).key])) == 1
    finally:
        await provider.close()
