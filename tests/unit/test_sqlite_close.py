"""SQLite's close never blocks the event loop, is bounded, and is idempotent."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path

import pytest

from sidecar.errors import StoreUnavailableError
from sidecar.providers.base import StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.sqlite import SQLiteProvider

VIEW = StoreKind.VIEW


def entry(key: str) -> StoreEntry:
    return StoreEntry(StoredKey(key, "string"), StoredValue("json", '{"v": 1}'))


async def test_close_with_a_stuck_worker_returns_after_its_timeout_and_the_loop_keeps_running(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "store.db"
    provider = SQLiteProvider({"path": str(path), "busy-timeout-ms": 30_000})
    await provider.open()
    # Another process holds the write lock: the worker waits in SQLite's busy handler.
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        store = asyncio.create_task(provider.store("A_VIEW", VIEW, [entry("k")]))
        await asyncio.sleep(0)  # the store reaches the worker's queue before the close
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0.01)

        ticker = asyncio.create_task(tick())
        began = time.monotonic()
        await provider.close(timeout=0.5)
        waited = time.monotonic() - began
        ticker.cancel()
        assert 0.5 <= waited < 3, waited
        assert ticks >= 10, "the event loop was blocked while close waited"
        assert "the worker is still busy after 0.5 s" in caplog.text
        assert not store.done()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    # The store queued before the close still completes, then the connection closes.
    await asyncio.wait_for(store, 30)
    reader = SQLiteProvider({"path": str(path)})
    await reader.open()
    try:
        assert [e.key.text for e in await reader.load("A_VIEW", VIEW, [entry("k").key])] == ["k"]
    finally:
        await reader.close()


async def test_close_is_idempotent_and_later_calls_are_refused(tmp_path: Path) -> None:
    provider = SQLiteProvider({"path": str(tmp_path / "store.db")})
    await provider.open()
    await provider.store("A_VIEW", VIEW, [entry("k")])
    await provider.close()
    await provider.close()
    assert await provider.is_available() is False
    with pytest.raises(StoreUnavailableError, match="is not open"):
        await provider.store("A_VIEW", VIEW, [entry("j")])
