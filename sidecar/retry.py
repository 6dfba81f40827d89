"""Retry policies for transient store failures, bounded by the call's deadline.

Only failures that a second attempt can fix are retried, and the provider says
which those are (:meth:`sidecar.providers.base.Provider.is_transient`): a lost
connection, a server restarting, a serialization conflict. Everything else fails
at once, since retrying would only repeat it.

A :class:`RetryPolicy` is a value built once from configuration, like tenacity's
own policies; :class:`Retrying` binds it to a provider's ``is_transient`` and to a
callback told of every retry (telemetry passes its counter in: nothing here
reaches for a module global). Each call runs until it succeeds, fails for good, or
its deadline (the call's, :mod:`sidecar.deadline`, else the policy's budget)
would pass before the next attempt.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)
from tenacity.stop import stop_base

from sidecar.deadline import call_deadline

logger = logging.getLogger(__name__)

T = TypeVar("T")

#: Told of each retry: (operation, attempt number that failed, its exception).
OnRetry = Callable[[str, int, BaseException], None]


class stop_before_deadline(stop_base):
    """Stop when the next attempt would start after ``deadline`` (monotonic time)."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How transient failures are retried: jittered exponential backoff, bounded.

    Attributes:
        initial_wait: the first backoff in seconds (doubling, randomized).
        max_wait: the longest single backoff in seconds.
        max_attempts: attempts in all (the first included).
        budget_seconds: how long a call without a deadline keeps retrying.
    """

    initial_wait: float = 0.05
    max_wait: float = 2.0
    max_attempts: int = 20
    budget_seconds: float = 10.0

    def deadline(self) -> float:
        """The current call's deadline, or this policy's budget from now when it has none."""
        caller = call_deadline.get()
        return time.monotonic() + self.budget_seconds if caller is None else caller

    def controller(
        self,
        is_transient: Callable[[BaseException], bool],
        deadline: float,
        before_sleep: Callable[[RetryCallState], None],
    ) -> AsyncRetrying:
        """A tenacity controller for one call that must end by ``deadline``.

        The last failure is re-raised as it is (not wrapped in ``RetryError``), so
        the caller maps it like any other.
        """
        return AsyncRetrying(
            retry=retry_if_exception(is_transient),
            wait=wait_random_exponential(multiplier=self.initial_wait, max=self.max_wait),
            stop=stop_after_attempt(self.max_attempts) | stop_before_deadline(deadline),
            before_sleep=before_sleep,
            reraise=True,
        )


NO_RETRY = RetryPolicy(max_attempts=1)


@dataclass(frozen=True, slots=True)
class Retrying:
    """A policy bound to what is transient and to who hears of retries."""

    policy: RetryPolicy
    is_transient: Callable[[BaseException], bool]
    on_retry: OnRetry | None = None

    async def run(
        self, operation: str, fn: Callable[[], Awaitable[T]], *, deadline: float | None = None
    ) -> T:
        """Await ``fn()`` until it succeeds, fails for good, or the deadline comes.

        ``deadline`` (monotonic time) defaults to the call's, else the policy's budget.
        """

        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            if exc is None:  # pragma: no cover - tenacity sleeps only after a failure
                return
            logger.warning(
                "transient store failure of %s (attempt %d), retrying in %.3fs: %s: %s",
                operation,
                state.attempt_number,
                state.upcoming_sleep,
                type(exc).__name__,
                exc,
            )
            if self.on_retry is not None:
                self.on_retry(operation, state.attempt_number, exc)

        end = self.policy.deadline() if deadline is None else deadline
        # Nearly every call succeeds at once: the first attempt is made without building a
        # tenacity controller (a few dozen microseconds a call); one is built on failure.
        try:
            return await fn()
        except Exception as exc:
            if not self.is_transient(exc) or self.policy.max_attempts <= 1:
                raise
            first = exc
        controller = self.policy.controller(self.is_transient, end, before_sleep)
        # The controller counts the failed first attempt as its own first one.
        attempt_one = True
        async for attempt in controller:
            with attempt:
                if attempt_one:
                    attempt_one = False
                    raise first
                return await fn()
        raise AssertionError("unreachable: tenacity re-raises the last failure")  # pragma: no cover
