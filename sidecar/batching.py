"""Group commit: concurrent Store calls of one map share one provider transaction.

Write-through puts each pay one commit (one WAL flush in PostgreSQL) when they
are written one by one; the database is then bound by commits, not by rows.
:class:`GroupCommit` keeps one queue per (map, store kind). While a write of
that map is in flight, the calls that arrive wait in the queue; when it ends,
the waiting Store calls are merged into one ``provider.store`` (one
transaction), bounded by ``max_rows`` and, optionally, by a short window
``max_wait_seconds`` during which a batch waits for more calls to join. The
window is only taken while the map's writes are concurrent (its previous batch
merged several calls): a lone call is written at once, and group commit adds
no latency when there is no concurrency.

Guarantees:

* A caller is answered only after the transaction holding its rows committed.
* Calls of one map are written in arrival order, so merging gives the result
  of writing them one after another: for views the latest entry of a key wins,
  for events the first one is kept (the providers' semantics).
* A failure reaches exactly the callers it affects. A store that cannot reach
  the database (unavailable, timed out) fails every caller of the batch, which
  it would have failed alone too. Any other failure of a merged batch (a row
  the database refuses) is retried call by call, in order, so that one bad
  call cannot fail the others.
* Delete calls keep their place in the queue but are written alone: their
  answer is the number of rows *they* removed, which a merged DELETE cannot
  split between callers.

The batch is written with the latest deadline among its callers, and cancelled
(the statement with it) when that deadline passes: no write outlives every
caller it serves. A caller whose own deadline passes first is answered
DEADLINE_EXCEEDED by the service while its rows may still commit, which
Hazelcast's at-least-once retries tolerate (events keep their first write,
views are idempotent).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from collections.abc import Awaitable, Sequence
from typing import Protocol, TypeVar

from sidecar.errors import StoreTimeoutError, StoreUnavailableError
from sidecar.providers.base import StoredKey, StoreEntry, StoreKind
from sidecar.retry import call_deadline, remaining

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Default bound on the rows of one shared transaction (a write-behind batch of
#: Hazelcast's default size 100 times ten, so big batches are never split).
DEFAULT_MAX_ROWS = 1000
#: Default window a batch waits for more calls to join, taken only while the map's
#: writes are concurrent. Measured with write-through sets from 1, 8 and 32 threads
#: through a member (2 cores, PostgreSQL on local disk): 2 ms took 32 putters from
#: 1,242 to 1,596 puts/s and left 1 and 8 putters within run-to-run noise; 5 ms
#: reached 1,940 at 32 but cost 8 putters 40 %.
DEFAULT_MAX_WAIT_SECONDS = 0.002
#: How long after its deadline a write is cancelled. The deadline is the callers'
#: retry scope, which ends this much before their gRPC deadline (sidecar.service)
#: so that a store that keeps failing answers with its own error (a database that
#: is down: UNAVAILABLE); the write is cancelled only once the gRPC deadline passed.
CANCEL_AFTER_DEADLINE_SECONDS = 0.05


class Writer(Protocol):
    """What group commit writes through: a provider's store and delete."""

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        """Write ``entries`` in one transaction."""

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """Delete ``keys`` in one transaction; return how many were present."""


class _Call:
    __slots__ = ("deadline", "entries", "future", "keys")

    def __init__(
        self,
        future: asyncio.Future[int],
        entries: Sequence[StoreEntry] | None,
        keys: Sequence[StoredKey] | None,
    ) -> None:
        self.future = future
        self.entries = entries
        self.keys = keys
        self.deadline = call_deadline.get()

    @property
    def rows(self) -> int:
        return len(self.entries) if self.entries is not None else len(self.keys or ())


class _Queue:
    __slots__ = ("pending", "task")

    def __init__(self) -> None:
        self.pending: collections.deque[_Call] = collections.deque()
        self.task: asyncio.Task[None] | None = None


class GroupCommit:
    """Writes Store calls of one map that arrive together in one transaction.

    Args:
        writer: the provider (anything with its ``store`` and ``delete``).
        max_rows: the most rows one shared transaction holds; a call larger than
            that is written alone, never split.
        max_wait_seconds: how long a batch waits for more calls before it is
            written, while the map's previous batch merged several calls (0: it is
            written as soon as the previous write of its map ends).
    """

    def __init__(
        self,
        writer: Writer,
        *,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must not be negative, not {max_wait_seconds}")
        self._writer = writer
        self.max_rows = max_rows
        self.max_wait_seconds = max_wait_seconds
        self._queues: dict[tuple[str, StoreKind], _Queue] = {}
        #: Whether the last batch of each map merged several calls (the window is used then).
        self._concurrent: dict[tuple[str, StoreKind], bool] = {}

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        """Write ``entries``; return once the transaction holding them committed."""
        if entries:
            await self._enqueue(map_name, kind, entries, None)

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """Delete ``keys`` after the writes queued before; return how many were present."""
        if not keys:
            return 0
        return await self._enqueue(map_name, kind, None, keys)

    async def _enqueue(
        self,
        map_name: str,
        kind: StoreKind,
        entries: Sequence[StoreEntry] | None,
        keys: Sequence[StoredKey] | None,
    ) -> int:
        queue = self._queues.get((map_name, kind))
        if queue is None:
            queue = self._queues[(map_name, kind)] = _Queue()
        call = _Call(asyncio.get_running_loop().create_future(), entries, keys)
        queue.pending.append(call)
        if queue.task is None:
            # The write runs in a task of its own, never in a caller's: a caller that
            # gives up (its gRPC deadline, or a cancel) must not interrupt it, since
            # a second interruption while psycopg cancels the statement makes it drop
            # the connection, and the statement would then wait on the server, unseen.
            # A context of its own, too: the batch's deadline is not the first caller's.
            queue.task = asyncio.create_task(
                self._drain(map_name, kind, queue),
                name=f"hz-sidecar-group-commit-{map_name}",
                context=contextvars.Context(),
            )
        return await call.future

    async def _drain(self, map_name: str, kind: StoreKind, queue: _Queue) -> None:
        batch: list[_Call] = []
        try:
            while queue.pending:
                concurrent = self._concurrent.get((map_name, kind), False)
                if (
                    self.max_wait_seconds > 0
                    and concurrent
                    and _rows(queue.pending) < self.max_rows
                ):
                    await asyncio.sleep(self.max_wait_seconds)
                else:
                    # Let the calls already made in this turn of the loop join.
                    await asyncio.sleep(0)
                batch = self._take(queue)
                if not batch:
                    continue
                self._concurrent[(map_name, kind)] = len(batch) > 1
                if batch[0].entries is None:
                    await self._delete(map_name, kind, batch[0])
                else:
                    await self._store(map_name, kind, batch)
        except BaseException as exc:
            # Cancelled (shutdown): nobody waiting may hang.
            for call in [*batch, *queue.pending]:
                _fail(call, exc)
            raise
        finally:
            queue.task = None
            if not queue.pending and self._queues.get((map_name, kind)) is queue:
                del self._queues[(map_name, kind)]

    def _take(self, queue: _Queue) -> list[_Call]:
        """The next batch: a delete alone, or consecutive stores within ``max_rows``."""
        pending = queue.pending
        while pending and pending[0].future.done():
            pending.popleft()  # its caller gave up (deadline) before it was written
        if not pending:
            return []
        first = pending.popleft()
        batch = [first]
        if first.entries is None:
            return batch
        rows = first.rows
        while pending and pending[0].entries is not None:
            nxt = pending[0]
            if nxt.future.done():
                pending.popleft()
                continue
            if rows + nxt.rows > self.max_rows:
                break
            batch.append(pending.popleft())
            rows += nxt.rows
        return batch

    async def _delete(self, map_name: str, kind: StoreKind, call: _Call) -> None:
        assert call.keys is not None
        call_deadline.set(call.deadline)
        try:
            deleted = await _within(call.deadline, self._writer.delete(map_name, kind, call.keys))
        except Exception as exc:
            _fail(call, exc)
        else:
            _succeed(call, deleted)

    async def _store(self, map_name: str, kind: StoreKind, batch: list[_Call]) -> None:
        if len(batch) == 1:
            await self._store_alone(map_name, kind, batch[0])
            return
        deadlines = [call.deadline for call in batch]
        deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
        call_deadline.set(deadline)
        try:
            await _within(deadline, self._writer.store(map_name, kind, _merge(kind, batch)))
        except (StoreUnavailableError, StoreTimeoutError) as exc:
            for call in batch:
                _fail(call, exc)
            return
        except Exception as exc:
            log.warning(
                "group commit of %d calls (map=%s) failed: %s; writing them one by one",
                len(batch),
                map_name,
                exc,
            )
            for call in batch:
                await self._store_alone(map_name, kind, call)
            return
        log.debug("group commit map=%s calls=%d", map_name, len(batch))
        for call in batch:
            _succeed(call, 0)

    async def _store_alone(self, map_name: str, kind: StoreKind, call: _Call) -> None:
        assert call.entries is not None
        call_deadline.set(call.deadline)
        try:
            await _within(call.deadline, self._writer.store(map_name, kind, call.entries))
        except Exception as exc:
            _fail(call, exc)
        else:
            _succeed(call, 0)


async def _within(deadline: float | None, write: Awaitable[T]) -> T:
    """Await ``write``, cancelled just after ``deadline`` (monotonic time) passes.

    The write runs in the queue's task, not in its callers' calls, so the gRPC
    deadline does not cancel it; by ``deadline`` every caller it serves has been
    answered DEADLINE_EXCEEDED. Without this bound a statement waiting on a lock
    would keep its pooled connection, and the map's queue behind it (with the
    entries of every retry), until the lock goes. Cancelling the task cancels the
    statement on the server (psycopg sends a cancel request) and rolls it back.
    """
    if deadline is None:
        return await write
    scope = asyncio.timeout(remaining(deadline + CANCEL_AFTER_DEADLINE_SECONDS))
    try:
        async with scope:
            return await write
    except TimeoutError as exc:
        if not scope.expired():
            raise
        raise StoreTimeoutError(
            "the store did not answer within the deadline of the calls it was writing"
        ) from exc


def _rows(calls: collections.deque[_Call]) -> int:
    return sum(call.rows for call in calls)


def _merge(kind: StoreKind, batch: list[_Call]) -> list[StoreEntry]:
    """The entries of ``batch`` as if its calls were written one after another."""
    merged: dict[str, StoreEntry] = {}
    for call in batch:
        assert call.entries is not None
        if kind is StoreKind.EVENT:
            for entry in call.entries:
                merged.setdefault(entry.key.text, entry)  # the first write is kept
        else:
            for entry in call.entries:
                merged[entry.key.text] = entry  # the latest write wins
    return list(merged.values())


def _succeed(call: _Call, value: int) -> None:
    if not call.future.done():
        call.future.set_result(value)


def _fail(call: _Call, exc: BaseException) -> None:
    if call.future.done():
        return
    if isinstance(exc, asyncio.CancelledError):
        call.future.cancel()
    else:
        call.future.set_exception(exc)
