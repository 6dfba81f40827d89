"""The one write path (sidecar.writer) over a provider that records its transactions.

Nothing here waits a fixed time for something to happen: a test that needs a write
in flight holds it on an event, and waits for a state (a transaction started, calls
queued) by turning the event loop until it holds (:func:`until`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence

import pytest

from sidecar.deadline import call_deadline, deadline_scope
from sidecar.errors import StoreError, StoreTimeoutError, StoreUnavailableError
from sidecar.providers.base import StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.retry import RetryPolicy
from sidecar.writer import Writer

MAP = "orders_VIEW"
FAST = RetryPolicy(initial_wait=0.001, max_wait=0.002, max_attempts=5)


def entry(key: str, value: str = "1", fmt: str = "string") -> StoreEntry:
    return StoreEntry(StoredKey(key, fmt), StoredValue("json", value))


class Transient(Exception):
    """A failure the recording provider calls transient."""


class Recording(MemoryProvider):
    """A memory provider that logs each transaction, can hold it open, and refuses 'bad' keys."""

    def __init__(self) -> None:
        super().__init__({})
        self.transactions: list[tuple[str, list[str]]] = []
        self.deadlines: list[float | None] = []
        self.gate: asyncio.Event | None = None
        self.unavailable = False
        self.transient_failures = 0
        self.cancelled = 0

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, Transient)

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        self.transactions.append(("store", [e.key.text for e in entries]))
        self.deadlines.append(call_deadline.get())
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled += 1
                raise
        if self.transient_failures:
            self.transient_failures -= 1
            raise Transient("try again")
        if self.unavailable:
            raise StoreUnavailableError("database down", map_name=map_name)
        if any(e.key.text.startswith("bad") for e in entries):
            raise StoreError("row refused", map_name=map_name)
        await super().store(map_name, kind, entries)

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        self.transactions.append(("delete", [k.text for k in keys]))
        return await super().delete(map_name, kind, keys)

    async def value(
        self, key: str, kind: StoreKind = StoreKind.VIEW, fmt: str = "string"
    ) -> str | None:
        found = await self.load(MAP, kind, [StoredKey(key, fmt)])
        return found[0].value.document if found else None


async def until(condition: Callable[[], bool], what: str, turns: int = 1000) -> None:
    """Turn the event loop until ``condition`` holds (at most ``turns`` times)."""
    for _ in range(turns):
        if condition():
            return
        await asyncio.sleep(0)
    raise AssertionError(f"never happened: {what}")


def queued(writer: Writer, count: int, kind: StoreKind = StoreKind.VIEW) -> Callable[[], bool]:
    """Whether ``count`` calls wait in the map's queue."""

    def check() -> bool:
        queue = writer._queues.get((MAP, kind))
        return queue is not None and len(queue.pending) == count

    return check


async def hold_first_write(provider: Recording, writer: Writer) -> asyncio.Task[object]:
    """Start a write that stays in flight until ``provider.gate`` is set."""
    provider.gate = asyncio.Event()
    first = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("first")]))
    await until(lambda: bool(provider.transactions), "the first write started")
    return first


def release(provider: Recording) -> None:
    assert provider.gate is not None
    provider.gate.set()


async def test_a_lone_call_is_written_at_once_in_its_own_transaction() -> None:
    provider = Recording()
    outcome = await Writer(provider).store(MAP, StoreKind.VIEW, [entry("a"), entry("b")])
    assert outcome.failed == {}
    assert provider.transactions == [("store", ["a", "b"])]


async def test_calls_arriving_during_a_write_share_the_next_transaction() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    waiting = [
        asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry(f"k{i}")])) for i in range(5)
    ]
    await until(queued(writer, 5), "five calls queued")
    assert not any(task.done() for task in waiting)  # answered only after their commit
    release(provider)
    await asyncio.gather(first, *waiting)
    assert provider.transactions == [("store", ["first"]), ("store", [f"k{i}" for i in range(5)])]
    assert await provider.value("k4") == "1"


async def test_merged_view_writes_keep_the_latest_value_of_a_key() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    tasks = [
        asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("k", str(v))]))
        for v in range(3)
    ]
    await until(queued(writer, 3), "three calls queued")
    release(provider)
    await asyncio.gather(first, *tasks)
    assert provider.transactions[1] == ("store", ["k"])
    assert await provider.value("k") == "2"


async def test_merged_event_writes_keep_the_first_value_of_a_key() -> None:
    provider = Recording()
    writer = Writer(provider)
    provider.gate = asyncio.Event()
    first = asyncio.create_task(writer.store(MAP, StoreKind.EVENT, [entry("first")]))
    await until(lambda: bool(provider.transactions), "the first write started")
    tasks = [
        asyncio.create_task(writer.store(MAP, StoreKind.EVENT, [entry("e", str(v))]))
        for v in range(3)
    ]
    await until(queued(writer, 3, StoreKind.EVENT), "three calls queued")
    release(provider)
    await asyncio.gather(first, *tasks)
    assert await provider.value("e", StoreKind.EVENT) == "0"


async def test_merging_keeps_keys_of_the_same_text_and_another_format_apart() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    as_int = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("1", "int", "int32")]))
    as_text = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("1", "text", "string")]))
    await until(queued(writer, 2), "two calls queued")
    release(provider)
    await asyncio.gather(first, as_int, as_text)
    assert provider.transactions[1] == ("store", ["1", "1"])
    assert await provider.value("1", fmt="int32") == "int"
    assert await provider.value("1", fmt="string") == "text"


async def test_a_batch_holds_at_most_max_rows_and_never_splits_a_chunk() -> None:
    provider = Recording()
    writer = Writer(provider, max_rows=4)
    first = await hold_first_write(provider, writer)
    sizes = [3, 1, 2, 5, 1]
    tasks = [
        asyncio.create_task(
            writer.store(MAP, StoreKind.VIEW, [entry(f"c{c}-{i}") for i in range(size)])
        )
        for c, size in enumerate(sizes)
    ]
    await until(queued(writer, len(sizes)), "every call queued")
    release(provider)
    await asyncio.gather(first, *tasks)
    assert [len(keys) for _, keys in provider.transactions[1:]] == [4, 2, 5, 1]


async def test_a_large_call_is_handed_over_in_chunks_of_chunk_rows() -> None:
    provider = Recording()
    writer = Writer(provider, group_commit=False, chunk_rows=3)
    outcome = await writer.store(MAP, StoreKind.VIEW, [entry(f"k{i}") for i in range(8)])
    assert outcome.failed == {}
    assert sorted(len(keys) for _, keys in provider.transactions) == [2, 3, 3]


async def test_a_failed_chunk_is_reported_entry_by_entry_and_the_others_are_written() -> None:
    provider = Recording()
    writer = Writer(provider, group_commit=False, chunk_rows=2)
    entries = [entry("a"), entry("b"), entry("bad1"), entry("c"), entry("d")]
    outcome = await writer.store(MAP, StoreKind.VIEW, entries)
    assert sorted(outcome.failed) == [2, 3]
    assert all(isinstance(exc, StoreError) for exc in outcome.failed.values())
    assert await provider.value("a") == "1" and await provider.value("d") == "1"
    assert await provider.value("c") is None


async def test_a_call_whose_every_chunk_fails_raises() -> None:
    provider = Recording()
    provider.unavailable = True
    writer = Writer(provider, chunk_rows=2)
    with pytest.raises(StoreUnavailableError):
        await writer.store(MAP, StoreKind.VIEW, [entry(f"k{i}") for i in range(5)])


async def test_a_repeated_event_key_is_answered_as_its_first_entry() -> None:
    provider = Recording()
    writer = Writer(provider, group_commit=False, chunk_rows=2)
    entries = [entry("x", "first"), entry("bad"), entry("y"), entry("x", "again")]
    outcome = await writer.store(MAP, StoreKind.EVENT, entries)
    # "x" and "bad" share the failed first chunk; the repeat of "x" fails with it.
    assert sorted(outcome.failed) == [0, 1, 3]
    assert await provider.value("y", StoreKind.EVENT) == "1"


async def test_transient_failures_are_retried_within_the_deadline() -> None:
    provider = Recording()
    provider.transient_failures = 2
    retries: list[tuple[str, int]] = []
    writer = Writer(provider, retry=FAST, on_retry=lambda op, n, exc: retries.append((op, n)))
    with deadline_scope(5.0):
        await writer.store(MAP, StoreKind.VIEW, [entry("k")])
    assert retries == [("store", 1), ("store", 2)]
    assert len(provider.transactions) == 3
    assert await provider.value("k") == "1"


async def test_other_failures_are_not_retried() -> None:
    provider = Recording()
    retries: list[int] = []
    writer = Writer(provider, retry=FAST, on_retry=lambda op, n, exc: retries.append(n))
    with pytest.raises(StoreError, match="row refused"):
        await writer.store(MAP, StoreKind.VIEW, [entry("bad")])
    assert retries == [] and len(provider.transactions) == 1


async def test_loads_and_other_calls_are_retried_too() -> None:
    provider = Recording()
    await provider.store(MAP, StoreKind.VIEW, [entry("k")])
    failures = [Transient("once")]

    async def flaky_load() -> list[StoreEntry]:
        if failures:
            raise failures.pop()
        return await provider.load(MAP, StoreKind.VIEW, [StoredKey("k", "string")])

    found = await Writer(provider, retry=FAST).run("load", flaky_load)
    assert [row.key.text for row in found] == ["k"]


async def test_a_refused_row_fails_only_its_own_caller() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    good = [
        asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry(f"g{i}")])) for i in (1, 2)
    ]
    bad = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("bad")]))
    await until(queued(writer, 3), "three calls queued")
    release(provider)
    await asyncio.gather(first, *good)
    with pytest.raises(StoreError, match="row refused"):
        await bad
    assert await provider.value("g1") == "1" and await provider.value("g2") == "1"
    # The merged attempt, then each call alone, in arrival order.
    assert [keys for _, keys in provider.transactions[1:]] == [
        ["g1", "g2", "bad"],
        ["g1"],
        ["g2"],
        ["bad"],
    ]


async def test_an_unavailable_store_fails_every_caller_of_the_batch_without_retrying_each() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    provider.unavailable = True
    tasks = [
        asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry(f"u{i}")])) for i in (1, 2)
    ]
    await until(queued(writer, 2), "two calls queued")
    release(provider)
    results = await asyncio.gather(first, *tasks, return_exceptions=True)
    assert all(isinstance(r, StoreUnavailableError) for r in results)
    assert len(provider.transactions) == 2


async def test_deletes_are_written_alone_in_arrival_order_with_their_own_count() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    store_a = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("a")]))
    delete_a = asyncio.create_task(writer.delete(MAP, StoreKind.VIEW, [StoredKey("a", "string")]))
    delete_none = asyncio.create_task(
        writer.delete(MAP, StoreKind.VIEW, [StoredKey("zz", "string")])
    )
    store_b = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("b")]))
    await until(queued(writer, 4), "four calls queued")
    release(provider)
    await asyncio.gather(first, store_a, store_b)
    assert await delete_a == 1 and await delete_none == 0
    assert provider.transactions[1:] == [
        ("store", ["a"]),
        ("delete", ["a"]),
        ("delete", ["zz"]),
        ("store", ["b"]),
    ]
    assert await provider.value("a") is None


async def test_a_caller_that_gave_up_before_its_batch_was_taken_is_not_written() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)
    with deadline_scope(0.0):
        gone = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("gone")]))
    kept = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("kept")]))
    with pytest.raises(StoreTimeoutError, match="queued behind"):
        await gone
    release(provider)
    await asyncio.gather(first, kept)
    assert provider.transactions[1:] == [("store", ["kept"])]


async def test_a_merged_batch_runs_under_the_latest_deadline_of_its_callers() -> None:
    provider = Recording()
    writer = Writer(provider)
    first = await hold_first_write(provider, writer)

    async def call(key: str, seconds: float) -> None:
        with deadline_scope(seconds):
            await writer.store(MAP, StoreKind.VIEW, [entry(key)])

    tasks = [asyncio.create_task(call("short", 5)), asyncio.create_task(call("long", 50))]
    await until(queued(writer, 2), "two calls queued")
    release(provider)
    await asyncio.gather(first, *tasks)
    merged_deadline = provider.deadlines[1]
    assert merged_deadline is not None
    assert merged_deadline - time.monotonic() > 40


@pytest.mark.parametrize("group_commit", [True, False])
async def test_a_write_past_its_callers_deadline_is_cancelled_and_frees_the_queue(
    group_commit: bool,
) -> None:
    provider = Recording()
    provider.gate = asyncio.Event()  # the write hangs, as a statement waiting on a lock does
    writer = Writer(provider, group_commit=group_commit)
    with deadline_scope(0.1), pytest.raises(StoreTimeoutError, match="deadline"):
        await asyncio.wait_for(writer.store(MAP, StoreKind.VIEW, [entry("stuck")]), 5)
    assert provider.cancelled == 1  # the provider saw its statement cancelled
    await until(lambda: not writer._queues, "the queue's task let go of the abandoned write")
    provider.gate = None
    await writer.store(MAP, StoreKind.VIEW, [entry("next")])
    assert await provider.value("stuck") is None
    assert await provider.value("next") == "1"


async def test_a_cancelled_caller_does_not_cancel_the_write_it_handed_over() -> None:
    provider = Recording()
    writer = Writer(provider, group_commit=False)
    provider.gate = asyncio.Event()
    caller = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("k")]))
    await until(lambda: bool(provider.transactions), "the write started")
    caller.cancel()
    for _ in range(10):  # the cancellation reaches the caller, which waits for its write
        await asyncio.sleep(0)
    assert not caller.done()
    release(provider)
    with pytest.raises(asyncio.CancelledError):
        await caller
    assert provider.cancelled == 0
    assert await provider.value("k") == "1"


async def test_the_wait_window_gathers_calls_while_the_map_sees_concurrent_writes() -> None:
    provider = Recording()
    writer = Writer(provider, max_wait_seconds=0.5)
    # Calls that overlap are merged, and the map then counts as concurrent ...
    first = await hold_first_write(provider, writer)
    queued_calls = [
        asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry(k)])) for k in ("y", "z")
    ]
    await until(queued(writer, 2), "two calls queued")
    release(provider)
    await asyncio.gather(first, *queued_calls)
    assert provider.transactions[-1] == ("store", ["y", "z"])
    provider.gate = None
    # ... so a call now waits in the window, and the calls made meanwhile join it.
    a = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("a")]))
    await until(queued(writer, 1), "the first call of the window queued")
    b = asyncio.create_task(writer.store(MAP, StoreKind.VIEW, [entry("b")]))
    await until(queued(writer, 2), "the second call joined the window")
    await asyncio.gather(a, b)
    assert provider.transactions[-1] == ("store", ["a", "b"])


async def test_a_lone_call_takes_no_window() -> None:
    provider = Recording()
    writer = Writer(provider, max_wait_seconds=60.0)
    await asyncio.wait_for(writer.store(MAP, StoreKind.VIEW, [entry("alone")]), 5)
    assert provider.transactions == [("store", ["alone"])]


def test_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_rows"):
        Writer(MemoryProvider({}), max_rows=0)
    with pytest.raises(ValueError, match="chunk_rows"):
        Writer(MemoryProvider({}), chunk_rows=0)
    with pytest.raises(ValueError, match="max_wait_seconds"):
        Writer(MemoryProvider({}), max_wait_seconds=-1)
