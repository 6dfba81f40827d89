"""Retry policies for transient store failures, bounded by the call's deadline.

Only failures that a second attempt can fix are retried: a lost connection, a
server that is shutting down or starting up, too many connections, and the two
conflicts PostgreSQL tells the client to retry (serialization failure,
deadlock; https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html).
Everything else (a constraint violation, bad JSON, a statement timeout) fails
at once: retrying would only repeat it, and a canceled statement already used
the time it was given.

A :class:`RetryPolicy` is a value built once (from configuration); each call
turns it into a ``tenacity.AsyncRetrying`` bound to that call's deadline with
:meth:`RetryPolicy.retrying`. The deadline is an absolute ``time.monotonic()``
timestamp; the gRPC layer sets it for the provider calls it makes with
:func:`deadline_scope`, so a provider retries no longer than the shim waits.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import psycopg
import psycopg_pool
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from sidecar.telemetry import record_retry

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: SQLSTATEs worth a second attempt (https://www.postgresql.org/docs/current/errcodes-appendix.html).
TRANSIENT_SQLSTATES: frozenset[str] = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown: the server is stopping (smart/fast shutdown)
        "57P02",  # crash_shutdown: another backend crashed, the server restarts
        "57P03",  # cannot_connect_now: the server is starting up or shutting down
        "53300",  # too_many_connections
    }
)
#: SQLSTATE class 08: connection exceptions.
_CONNECTION_EXCEPTION_CLASS = "08"

#: The deadline of the call being served, as a ``time.monotonic()`` timestamp.
call_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "hz_sidecar_call_deadline", default=None
)


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` is a store failure that a later attempt may not meet."""
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc, psycopg_pool.PoolClosed):
        return False  # the provider is closing: nothing will come back
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # Raised by the client, not the server: the connection broke (or the
        # pool found none in time); only OperationalError means that.
        return isinstance(exc, psycopg.OperationalError)
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith(_CONNECTION_EXCEPTION_CLASS)


@contextlib.contextmanager
def deadline_scope(seconds: float | None) -> Iterator[float | None]:
    """Bound every retry inside the block to ``seconds`` from now (None: unbounded).

    An enclosing scope with an earlier deadline wins.
    """
    outer = call_deadline.get()
    deadline = None if seconds is None else time.monotonic() + seconds
    if outer is not None and (deadline is None or outer < deadline):
        deadline = outer
    token = call_deadline.set(deadline)
    try:
        yield deadline
    finally:
        call_deadline.reset(token)


def remaining(deadline: float | None) -> float | None:
    """Seconds left before ``deadline`` (never negative), None when unbounded."""
    if deadline is None:
        return None
    return max(0.0, deadline - time.monotonic())


class stop_before_deadline(stop_base):
    """Stop when the next attempt would start after ``deadline`` (monotonic time)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


def _log_retry(retry_state: RetryCallState) -> None:
    exc = retry_state.outcome.exception() if retry_state.outcome is not None else None
    record_retry(retry_state.attempt_number, exc)
    logger.warning(
        "transient store failure (attempt %d), retrying in %.3fs: %s: %s",
        retry_state.attempt_number,
        retry_state.upcoming_sleep,
        type(exc).__name__,
        exc,
    )


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with full jitter for transient failures only.

    Attributes:
        initial_wait: the upper bound of the first jittered wait, in seconds.
        max_wait: the cap of any single wait, in seconds.
        max_attempts: attempts in all (the first included); bounds a call that has no deadline.
    """

    initial_wait: float = 0.05
    max_wait: float = 2.0
    max_attempts: int = 20

    def retrying(self, deadline: float | None) -> AsyncRetrying:
        """A tenacity controller for one call that must end by ``deadline``.

        The last failure is re-raised as it is (not wrapped in ``RetryError``),
        so the caller maps it like any other.
        """
        stop: stop_base = stop_after_attempt(self.max_attempts)
        if deadline is not None:
            stop = stop | stop_before_deadline(deadline)
        return AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            stop=stop,
            before_sleep=_log_retry,
            reraise=True,
        )


async def run_with_retry(
    policy: RetryPolicy, fn: Callable[[], Awaitable[T]], *, deadline: float | None
) -> T:
    """Await ``fn()`` until it succeeds, fails for good, or ``deadline`` comes."""
    async for attempt in policy.retrying(deadline):
        with attempt:
            return await fn()
    raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover
