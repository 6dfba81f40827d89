"""The one write path: every Store and Delete, for every provider, built-in or third-party.

A provider only writes one transaction when asked (``store``, ``delete``) and says
which of its errors are transient (``is_transient``). Everything else a write needs
is here, once:

* **Chunking.** A Store call of more than ``chunk_rows`` entries is handed over in
  chunks, each written while the caller decodes the next (the sidecar decodes on
  one core while the database writes on another). When some chunks fail and
  others were written, the caller learns which entries failed
  (:class:`StoreOutcome`) and the member retries just those; when none was
  written, the call fails as a whole.
* **Group commit.** Write-through puts pay one commit (one WAL flush in
  PostgreSQL) each when written one by one; the database is then bound by commits,
  not by rows. While a write of a map is in flight, the calls that arrive wait in
  the map's queue; when it ends, the waiting Store calls are merged into one
  ``provider.store`` (one transaction), bounded by ``max_rows`` and, while the
  map's writes are concurrent, by a short window ``max_wait_seconds`` in which a
  batch waits for more calls. A lone call is written at once.
* **Order and merging.** Calls of one map are written in arrival order, so merging
  gives the result of writing them one after another: for views the latest entry
  of a key wins, for events the first one is kept (the providers' semantics). A
  key is its text and its format together (Integer 1 is not String "1").
* **Failures reach exactly the callers they affect.** A batch that cannot reach
  the database (unavailable, timed out) fails every caller in it, as it would have
  alone. Any other failure of a merged batch (a row the database refuses) is
  written again call by call, so that one bad call cannot fail the others. A
  Delete keeps its place in the queue but is written alone: its answer is the
  number of rows it removed, which a merged DELETE cannot split.
* **Deadlines and cancellation.** A write runs in a task of its own, never in a
  caller's: a caller that gives up (its gRPC deadline, a cancel) does not
  interrupt it, since a second interruption while psycopg cancels the statement
  makes it drop the connection and the statement would wait on the server, unseen.
  Each write is bounded instead by the latest deadline among the callers it
  serves (:mod:`sidecar.deadline`), and cancelled (the statement with it) just
  after: no write outlives every caller it serves.
* **Retries.** Each provider call is retried while the provider calls its failure
  transient, within that deadline (:mod:`sidecar.retry`).

A caller whose own deadline passes first is answered DEADLINE_EXCEEDED while its
rows may still commit, which Hazelcast's at-least-once retries tolerate (events
keep their first write, views are idempotent).
"""

from __future__ import annotations

import asyncio
import collections
import contextvars
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, TypeVar

from sidecar.deadline import call_deadline, remaining
from sidecar.errors import StoreTimeoutError, StoreUnavailableError
from sidecar.providers.base import Provider, StoredKey, StoreEntry, StoreKind
from sidecar.retry import OnRetry, Retrying, RetryPolicy

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A key's identity within a map: its text and its format.
Identity = tuple[str, str]

#: Default bound on the rows of one shared transaction (a write-behind batch of
#: Hazelcast's default size 100 times ten, so big batches are never split).
DEFAULT_MAX_ROWS = 1000
#: Default window a batch waits for more calls to join, taken only while the map's
#: writes are concurrent. Measured with write-through sets from 1, 8 and 32 threads
#: through a member (2 cores, PostgreSQL on local disk): 2 ms took 32 putters from
#: 1,242 to 1,596 puts/s and left 1 and 8 putters within run-to-run noise; 5 ms
#: reached 1,940 at 32 but cost 8 putters 40 %.
DEFAULT_MAX_WAIT_SECONDS = 0.002
#: A Store call with more entries is handed over in chunks of this many rows.
DEFAULT_CHUNK_ROWS = 256
#: How long after its deadline a write is cancelled. The deadline is the callers'
#: retry scope, which the service ends this much before their gRPC deadline so that
#: a store that keeps failing answers with its own error (a database that is down:
#: UNAVAILABLE); the write is cancelled only once the gRPC deadline passed.
CANCEL_AFTER_DEADLINE_SECONDS = 0.05


def identity(key: StoredKey) -> Identity:
    """The identity of ``key`` within its map."""
    return (key.text, key.format)


@dataclass(slots=True)
class StoreOutcome:
    """What became of a Store call's entries: those not written, and why (by index)."""

    failed: dict[int, BaseException] = field(default_factory=dict)


class Writer:
    """Writes the Store and Delete calls of every map through one provider.

    Args:
        provider: the store; its ``is_transient`` decides what is retried.
        group_commit: merge concurrent calls of a map into one transaction (False:
            each call is written on its own, concurrently with the others).
        max_rows: the most rows one shared transaction holds; a chunk larger than
            that is written alone, never split.
        max_wait_seconds: how long a batch waits for more calls, while the map's
            previous batch merged several (0: written as soon as the previous ends).
        chunk_rows: the rows of one chunk of a large Store call.
        retry: the retry policy (default: :class:`RetryPolicy` with the provider's
            ``retry_budget_seconds`` for calls without a deadline).
        on_retry: told of every retry (operation, attempt, exception); telemetry's
            counter, passed in as a value.
    """

    def __init__(
        self,
        provider: Provider,
        *,
        group_commit: bool = True,
        max_rows: int = DEFAULT_MAX_ROWS,
        max_wait_seconds: float = DEFAULT_MAX_WAIT_SECONDS,
        chunk_rows: int = DEFAULT_CHUNK_ROWS,
        retry: RetryPolicy | None = None,
        on_retry: OnRetry | None = None,
    ) -> None:
        if max_rows < 1:
            raise ValueError(f"max_rows must be at least 1, not {max_rows}")
        if chunk_rows < 1:
            raise ValueError(f"chunk_rows must be at least 1, not {chunk_rows}")
        if max_wait_seconds < 0:
            raise ValueError(f"max_wait_seconds must not be negative, not {max_wait_seconds}")
        if retry is None:
            budget = provider.retry_budget_seconds
            retry = RetryPolicy() if budget is None else RetryPolicy(budget_seconds=budget)
        self.provider = provider
        self.retrying = Retrying(retry, provider.is_transient, on_retry)
        self.group_commit = group_commit
        self.max_rows = max_rows
        self.max_wait_seconds = max_wait_seconds
        self.chunk_rows = chunk_rows
        self._queues: dict[tuple[str, StoreKind], _Queue] = {}
        #: Whether the last batch of each map merged several calls (the window is used then).
        self._concurrent: dict[tuple[str, StoreKind], bool] = {}
        #: Writes in flight, so that close() can wait for them.
        self._tasks: set[asyncio.Future[Any]] = set()

    # -- the callers' side -------------------------------------------------------------

    def session(self, map_name: str, kind: StoreKind) -> StoreSession:
        """A Store call being handed over entry by entry (see :class:`StoreSession`)."""
        return StoreSession(self, map_name, kind)

    async def store(
        self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]
    ) -> StoreOutcome:
        """Write ``entries`` (keys may repeat); return which were not written.

        Raises:
            the error of the write when none of the entries was written.
        """
        async with self.session(map_name, kind) as session:
            for index, entry in enumerate(entries):
                await session.add(index, entry)
            return await session.finish()

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """Delete ``keys`` after the map's writes queued before; return how many were present."""
        if not keys:
            return 0
        deadline = call_deadline.get()
        if self.group_commit:
            call = self._enqueue(map_name, kind, None, keys, deadline)
            return await self._answer(call)
        task = self._spawn(
            self._write(deadline, "delete", lambda: self.provider.delete(map_name, kind, keys)),
            f"hz-sidecar-delete-{map_name}",
        )
        return await asyncio.shield(task)

    async def run(self, operation: str, fn: Callable[[], Awaitable[T]]) -> T:
        """Any other provider call (a load, schemas, dead letters), retried like a write."""
        return await self.retrying.run(operation, fn)

    async def close(self, grace_seconds: float = 5.0) -> None:
        """Wait for the writes in flight (at most ``grace_seconds``), then cancel the rest."""
        pending = [task for task in self._tasks if not task.done()]
        if not pending:
            return
        _, late = await asyncio.wait(pending, timeout=grace_seconds)
        if late:
            log.warning(
                "%d writes still running at close after %.1f s: cancelled", len(late), grace_seconds
            )
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)

    # -- chunks ----------------------------------------------------------------------

    def _submit(
        self, map_name: str, kind: StoreKind, rows: list[StoreEntry], deadline: float | None
    ) -> asyncio.Future[Any]:
        """Start writing one chunk: a future that ends with its outcome (a result, or the
        chunk's error). With group commit it is the queued call's own future (no task of its
        own: the map's queue writes it); without, the task writing it."""
        if self.group_commit:
            return self._enqueue(map_name, kind, rows, None, deadline).future
        work = self._write(deadline, "store", lambda: self.provider.store(map_name, kind, rows))
        return self._spawn(work, f"hz-sidecar-store-{map_name}")

    def _spawn(self, work: Awaitable[T], name: str) -> asyncio.Task[T]:
        task = asyncio.ensure_future(work)
        task.set_name(name)
        self._track(task)
        return task

    def _track(self, task: asyncio.Future[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(_observed)
        task.add_done_callback(self._tasks.discard)

    async def _write(
        self, deadline: float | None, operation: str, fn: Callable[[], Awaitable[T]]
    ) -> T:
        """One provider call, retried while transient, cancelled just after ``deadline``.

        Without this bound a statement waiting on a lock would keep its pooled
        connection, and the map's queue behind it, until the lock goes. Cancelling the
        task cancels the statement on the server (psycopg sends a cancel request) and
        rolls it back.
        """
        call_deadline.set(deadline)  # the provider's own waits (a pooled connection) end then
        attempt = self.retrying.run(operation, fn, deadline=deadline)
        if deadline is None:
            return await attempt
        scope = asyncio.timeout(remaining(deadline + CANCEL_AFTER_DEADLINE_SECONDS))
        try:
            async with scope:
                return await attempt
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise StoreTimeoutError(
                "the store did not answer within the deadline of the calls it was writing"
            ) from exc

    # -- group commit ----------------------------------------------------------------

    def _enqueue(
        self,
        map_name: str,
        kind: StoreKind,
        entries: Sequence[StoreEntry] | None,
        keys: Sequence[StoredKey] | None,
        deadline: float | None,
    ) -> _Call:
        queue = self._queues.get((map_name, kind))
        if queue is None:
            queue = self._queues[(map_name, kind)] = _Queue()
        call = _Call(asyncio.get_running_loop().create_future(), entries, keys, deadline)
        queue.pending.append(call)
        if queue.task is None:
            queue.task = asyncio.create_task(
                self._drain(map_name, kind, queue),
                name=f"hz-sidecar-group-commit-{map_name}",
                context=contextvars.Context(),
            )
            self._track(queue.task)
        return call

    async def _answer(self, call: _Call) -> int:
        """Wait for ``call``'s turn; give up just after its deadline (it is then skipped)."""
        if call.deadline is None:
            return await call.future
        scope = asyncio.timeout(remaining(call.deadline + CANCEL_AFTER_DEADLINE_SECONDS))
        try:
            async with scope:
                return await call.future
        except TimeoutError as exc:
            if not scope.expired():
                raise
            raise StoreTimeoutError(
                "the store did not answer within the call deadline (queued behind the "
                "map's earlier writes)"
            ) from exc

    async def _drain(self, map_name: str, kind: StoreKind, queue: _Queue) -> None:
        batch: list[_Call] = []
        # The task starts on the loop's next turn: the calls made in the turn that created
        # it are queued by then, so the first batch need not wait a turn for them.
        first = True
        try:
            while queue.pending:
                concurrent = self._concurrent.get((map_name, kind), False)
                if (
                    self.max_wait_seconds > 0
                    and concurrent
                    and _rows(queue.pending) < self.max_rows
                ):
                    await asyncio.sleep(self.max_wait_seconds)
                elif not first:
                    # Let the calls already made in this turn of the loop join.
                    await asyncio.sleep(0)
                first = False
                batch = self._take(queue)
                if not batch:
                    continue
                self._concurrent[(map_name, kind)] = len(batch) > 1
                if batch[0].entries is None:
                    await self._delete_alone(map_name, kind, batch[0])
                else:
                    await self._store_batch(map_name, kind, batch)
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

    async def _delete_alone(self, map_name: str, kind: StoreKind, call: _Call) -> None:
        keys = call.keys
        assert keys is not None
        try:
            deleted = await self._write(
                call.deadline, "delete", lambda: self.provider.delete(map_name, kind, keys)
            )
        except Exception as exc:
            _fail(call, exc)
        else:
            _succeed(call, deleted)

    async def _store_batch(self, map_name: str, kind: StoreKind, batch: list[_Call]) -> None:
        if len(batch) == 1:
            await self._store_alone(map_name, kind, batch[0])
            return
        deadlines = [call.deadline for call in batch]
        deadline = None if None in deadlines else max(d for d in deadlines if d is not None)
        rows = _merge(kind, batch)
        try:
            await self._write(deadline, "store", lambda: self.provider.store(map_name, kind, rows))
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
        log.debug("group commit map=%s calls=%d rows=%d", map_name, len(batch), len(rows))
        for call in batch:
            _succeed(call, 0)

    async def _store_alone(self, map_name: str, kind: StoreKind, call: _Call) -> None:
        entries = call.entries
        assert entries is not None
        try:
            await self._write(
                call.deadline, "store", lambda: self.provider.store(map_name, kind, entries)
            )
        except Exception as exc:
            _fail(call, exc)
        else:
            _succeed(call, 0)


class StoreSession:
    """One Store call, handed to the writer entry by entry while the caller decodes.

    Use as ``async with writer.session(map, kind) as s: await s.add(i, entry) ...;
    outcome = await s.finish()``. Every ``chunk_rows`` entries a chunk starts being
    written. A repeated key is answered as the entry it repeats: for an event map
    the first entry is written, for a view the latest. Leaving the block by an
    exception waits for the chunks already handed over, so that no write of the call
    outlives it unobserved.
    """

    def __init__(self, writer: Writer, map_name: str, kind: StoreKind) -> None:
        self._writer = writer
        self._map_name = map_name
        self._kind = kind
        self._batch: dict[Identity, StoreEntry] = {}
        self._indexes: list[int] = []
        self._chunks: list[tuple[asyncio.Future[Any], list[int]]] = []
        #: The call's deadline, taken when its first chunk is handed over.
        self._deadline: float | None = None
        self._handed: set[Identity] = set()
        self._first_at: dict[Identity, int] = {}
        self._repeats: list[tuple[int, int]] = []

    async def __aenter__(self) -> StoreSession:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._settled()

    async def add(self, index: int, entry: StoreEntry) -> None:
        """Hand over entry number ``index`` of the call."""
        key = identity(entry.key)
        if self._kind is StoreKind.EVENT:
            first = self._first_at.get(key)
            if first is not None:
                self._repeats.append((index, first))
                return
            self._first_at[key] = index
        elif key in self._handed and key not in self._batch and not self._writer.group_commit:
            # A view key repeated in a later chunk: the latest write must win, so the
            # earlier chunks end first (group commit writes a map's chunks in order).
            await self._settled()
        self._batch[key] = entry
        self._indexes.append(index)
        if len(self._batch) >= self._writer.chunk_rows:
            self._hand_over()
            await asyncio.sleep(0)  # let the write reach the database

    async def finish(self) -> StoreOutcome:
        """Write what is left and wait for every chunk; the entries not written.

        Raises:
            the first chunk's error when no chunk was written.
        """
        if self._batch:
            self._hand_over()
        outcomes = await self._settled()
        failed = [
            (outcome, indexes)
            for outcome, (_, indexes) in zip(outcomes, self._chunks, strict=True)
            if isinstance(outcome, BaseException)
        ]
        result = StoreOutcome()
        if not failed:
            return result
        if len(failed) == len(self._chunks):
            raise failed[0][0]
        for exc, indexes in failed:
            for index in indexes:
                result.failed[index] = exc
        for index, first in self._repeats:
            if first in result.failed:
                result.failed[index] = result.failed[first]
        return result

    def _hand_over(self) -> None:
        rows = list(self._batch.values())
        if not self._chunks:
            self._deadline = call_deadline.get()
        chunk = self._writer._submit(self._map_name, self._kind, rows, self._deadline)
        self._chunks.append((chunk, self._indexes))
        self._handed.update(self._batch)
        self._batch, self._indexes = {}, []

    async def _settled(self) -> list[BaseException | None]:
        """The outcomes of the chunks handed over (None, or the exception).

        Waiting never cancels a chunk: a Store call cancelled meanwhile leaves each write
        to its own deadline (see the module docstring). A queued chunk still unwritten
        just after the call's deadline is given up: the queue skips it.
        """
        if not self._chunks:
            return []
        pending = [chunk for chunk, _ in self._chunks if not chunk.done()]
        if pending:
            timeout = None
            if self._deadline is not None and self._writer.group_commit:
                timeout = remaining(self._deadline + CANCEL_AFTER_DEADLINE_SECONDS)
            _, late = await asyncio.wait(pending, timeout=timeout)
            for chunk in late:
                # A queued call's own future: failing it takes it out of its queue.
                chunk.set_exception(
                    StoreTimeoutError(
                        "the store did not answer within the call deadline (queued behind "
                        "the map's earlier writes)"
                    )
                )
        return [_outcome(chunk) for chunk, _ in self._chunks]


class _Call:
    __slots__ = ("deadline", "entries", "future", "keys")

    def __init__(
        self,
        future: asyncio.Future[int],
        entries: Sequence[StoreEntry] | None,
        keys: Sequence[StoredKey] | None,
        deadline: float | None,
    ) -> None:
        self.future = future
        self.entries = entries
        self.keys = keys
        self.deadline = deadline

    @property
    def rows(self) -> int:
        return len(self.entries) if self.entries is not None else len(self.keys or ())


class _Queue:
    __slots__ = ("pending", "task")

    def __init__(self) -> None:
        self.pending: collections.deque[_Call] = collections.deque()
        self.task: asyncio.Task[None] | None = None


def _rows(calls: collections.deque[_Call]) -> int:
    return sum(call.rows for call in calls)


def _merge(kind: StoreKind, batch: list[_Call]) -> list[StoreEntry]:
    """The entries of ``batch`` as if its calls were written one after another."""
    merged: dict[Identity, StoreEntry] = {}
    for call in batch:
        assert call.entries is not None
        if kind is StoreKind.EVENT:
            for entry in call.entries:
                merged.setdefault(identity(entry.key), entry)  # the first write is kept
        else:
            for entry in call.entries:
                merged[identity(entry.key)] = entry  # the latest write wins
    return list(merged.values())


def _outcome(chunk: asyncio.Future[Any]) -> BaseException | None:
    """A finished chunk's error (None: written)."""
    if chunk.cancelled():
        return asyncio.CancelledError()
    return chunk.exception()


def _observed(task: asyncio.Future[Any]) -> None:
    """Mark a write's failure as seen: its callers got it, or gave up before it came."""
    if not task.cancelled():
        task.exception()


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
