"""Group commit (sidecar.batching) over a fake provider that records its transactions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence

import pytest

from sidecar.batching import GroupCommit
from sidecar.errors import StoreError, StoreTimeoutError, StoreUnavailableError
from sidecar.providers.base import StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.retry import call_deadline, deadline_scope

MAP = "orders_VIEW"


def entry(key: str, value: str = "1") -> StoreEntry:
    return StoreEntry(StoredKey(key, "string"), StoredValue("json", value))


class RecordingWriter:
    """A memory provider that logs each transaction, can hold it open, and refuses 'bad' keys."""

    def __init__(self) -> None:
        self.memory = MemoryProvider({})
        self.transactions: list[tuple[str, list[str]]] = []
        self.deadlines: list[float | None] = []
        self.gate: asyncio.Event | None = None
        self.unavailable = False

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        self.transactions.append(("store", [e.key.text for e in entries]))
        self.deadlines.append(call_deadline.get())
        if self.gate is not None:
            await self.gate.wait()
        if self.unavailable:
            raise StoreUnavailableError("database down", map_name=map_name)
        if any(e.key.text.startswith("bad") for e in entries):
            raise StoreError("row refused", map_name=map_name)
        await self.memory.store(map_name, kind, entries)

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        self.transactions.append(("delete", [k.text for k in keys]))
        return await self.memory.delete(map_name, kind, keys)

    async def value(self, key: str, kind: StoreKind = StoreKind.VIEW) -> str | None:
        found = await self.memory.load(MAP, kind, [StoredKey(key, "string")])
        return found[0].value.document if found else None


async def _hold_first_write(writer: RecordingWriter, group: GroupCommit) -> asyncio.Task[None]:
    """Start a write that stays in flight until ``writer.gate`` is set."""
    writer.gate = asyncio.Event()
    first = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("first")]))
    for _ in range(10):  # a few turns of the loop: the task starts its write
        await asyncio.sleep(0)
    assert writer.transactions, "the first write did not start"
    return first


async def test_a_lone_call_is_written_at_once_in_its_own_transaction() -> None:
    writer = RecordingWriter()
    await GroupCommit(writer).store(MAP, StoreKind.VIEW, [entry("a"), entry("b")])
    assert writer.transactions == [("store", ["a", "b"])]


async def test_calls_arriving_during_a_write_share_the_next_transaction() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    waiting = [
        asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry(f"k{i}")])) for i in range(5)
    ]
    await asyncio.sleep(0.01)
    assert not any(task.done() for task in waiting)  # answered only after their commit
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *waiting)
    assert writer.transactions == [("store", ["first"]), ("store", [f"k{i}" for i in range(5)])]


async def test_callers_are_answered_only_after_their_transaction_commits() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    second = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("second")]))
    await asyncio.sleep(0.01)
    assert not first.done() and not second.done()
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, second)
    assert await writer.value("second") == "1"


async def test_merged_view_writes_keep_the_latest_value_of_a_key() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    calls = [group.store(MAP, StoreKind.VIEW, [entry("k", str(v))]) for v in range(3)]
    tasks = [asyncio.create_task(c) for c in calls]
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *tasks)
    assert writer.transactions[1] == ("store", ["k"])
    assert await writer.value("k") == "2"


async def test_merged_event_writes_keep_the_first_value_of_a_key() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    tasks = [
        asyncio.create_task(group.store(MAP, StoreKind.EVENT, [entry("e", str(v))]))
        for v in range(3)
    ]
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *tasks)
    assert await writer.value("e", StoreKind.EVENT) == "0"


async def test_a_batch_holds_at_most_max_rows_and_never_splits_a_call() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer, max_rows=4)
    first = await _hold_first_write(writer, group)
    sizes = [3, 1, 2, 5, 1]
    tasks = [
        asyncio.create_task(
            group.store(MAP, StoreKind.VIEW, [entry(f"c{c}-{i}") for i in range(size)])
        )
        for c, size in enumerate(sizes)
    ]
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *tasks)
    assert [len(keys) for _, keys in writer.transactions[1:]] == [4, 2, 5, 1]


async def test_a_refused_row_fails_only_its_own_caller() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    good = [asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry(f"g{i}")])) for i in (1, 2)]
    bad = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("bad")]))
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *good)
    with pytest.raises(StoreError, match="row refused"):
        await bad
    assert await writer.value("g1") == "1" and await writer.value("g2") == "1"
    # The merged attempt, then each call alone, in arrival order.
    assert [keys for _, keys in writer.transactions[1:]] == [
        ["g1", "g2", "bad"],
        ["g1"],
        ["g2"],
        ["bad"],
    ]


async def test_an_unavailable_store_fails_every_caller_of_the_batch_without_retrying_each() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    writer.unavailable = True
    tasks = [
        asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry(f"u{i}")])) for i in (1, 2)
    ]
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailableError) for r in results)
    assert len(writer.transactions) == 2


async def test_deletes_are_written_alone_in_arrival_order_with_their_own_count() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    store_a = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("a")]))
    delete_a = asyncio.create_task(group.delete(MAP, StoreKind.VIEW, [StoredKey("a", "string")]))
    delete_none = asyncio.create_task(
        group.delete(MAP, StoreKind.VIEW, [StoredKey("zz", "string")])
    )
    store_b = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("b")]))
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, store_a, store_b)
    assert await delete_a == 1 and await delete_none == 0
    assert writer.transactions[1:] == [
        ("store", ["a"]),
        ("delete", ["a"]),
        ("delete", ["zz"]),
        ("store", ["b"]),
    ]
    assert await writer.value("a") is None


async def test_a_caller_that_gave_up_before_its_batch_was_taken_is_not_written() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)
    gone = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("gone")]))
    kept = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("kept")]))
    await asyncio.sleep(0)
    gone.cancel()
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, kept)
    assert writer.transactions[1:] == [("store", ["kept"])]


async def test_a_merged_batch_runs_under_the_latest_deadline_of_its_callers() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer)
    first = await _hold_first_write(writer, group)

    async def call(key: str, seconds: float) -> None:
        with deadline_scope(seconds):
            await group.store(MAP, StoreKind.VIEW, [entry(key)])

    tasks = [asyncio.create_task(call("short", 5)), asyncio.create_task(call("long", 50))]
    await asyncio.sleep(0)
    assert writer.gate is not None
    writer.gate.set()
    await asyncio.gather(first, *tasks)
    merged_deadline = writer.deadlines[1]
    assert merged_deadline is not None
    assert merged_deadline - time.monotonic() > 40


async def test_a_write_past_its_callers_deadline_is_cancelled_and_frees_the_queue() -> None:
    writer = RecordingWriter()
    writer.gate = asyncio.Event()  # the write hangs, as a statement waiting on a lock does
    group = GroupCommit(writer)
    with deadline_scope(0.1), pytest.raises(StoreTimeoutError, match="deadline"):
        await asyncio.wait_for(group.store(MAP, StoreKind.VIEW, [entry("stuck")]), 5)
    for _ in range(10):
        await asyncio.sleep(0)
    assert not group._queues, "the queue's task still waits on the abandoned write"
    writer.gate = None
    await group.store(MAP, StoreKind.VIEW, [entry("next")])
    assert await writer.value("stuck") is None
    assert await writer.value("next") == "1"


async def test_the_wait_window_gathers_calls_while_the_map_sees_concurrent_writes() -> None:
    writer = RecordingWriter()
    group = GroupCommit(writer, max_wait_seconds=1.0)

    async def later(key: str, delay: float) -> None:
        await asyncio.sleep(delay)
        await group.store(MAP, StoreKind.VIEW, [entry(key)])

    # A lone call is written at once: no window without concurrency.
    started = time.monotonic()
    await group.store(MAP, StoreKind.VIEW, [entry("alone")])
    assert time.monotonic() - started < 0.5
    # Calls that overlap are merged, and the map now counts as concurrent ...
    writer.gate = asyncio.Event()
    first = asyncio.create_task(group.store(MAP, StoreKind.VIEW, [entry("x")]))
    await asyncio.sleep(0.01)
    queued = [asyncio.create_task(later(key, 0)) for key in ("y", "z")]
    await asyncio.sleep(0.01)
    writer.gate.set()
    await asyncio.gather(first, *queued)
    assert writer.transactions[-1] == ("store", ["y", "z"])  # queued behind "x"
    # ... so calls that trickle in within the window share one transaction.
    await asyncio.gather(later("a", 0), later("b", 0.05), later("c", 0.1))
    assert writer.transactions[-1] == ("store", ["a", "b", "c"])


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        GroupCommit(MemoryProvider({}), max_rows=0)
    with pytest.raises(ValueError, match="max_wait_seconds"):
        GroupCommit(MemoryProvider({}), max_wait_seconds=-1)
