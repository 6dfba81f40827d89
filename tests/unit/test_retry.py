"""The retry policy: transient failures only (the provider says which), within the deadline."""

from __future__ import annotations

import time

import psycopg
import psycopg_pool
import pytest
from psycopg import errors

from sidecar.deadline import call_deadline, deadline_scope
from sidecar.errors import StoreUnavailableError
from sidecar.providers.postgres import PostgresProvider, store_error, transient_error
from sidecar.retry import Retrying, RetryPolicy

FAST = RetryPolicy(initial_wait=0.001, max_wait=0.01, max_attempts=5)


def is_transient(exc: BaseException) -> bool:
    return transient_error(exc)


async def run_with_retry(policy: RetryPolicy, fn: object, *, deadline: float | None) -> object:
    return await Retrying(policy, transient_error).run("test", fn, deadline=deadline)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("server closed the connection unexpectedly"),
        psycopg_pool.PoolTimeout("couldn't get a connection after 1.00 sec"),
        errors.SerializationFailure(),
        errors.DeadlockDetected(),
        errors.AdminShutdown(),
        errors.CrashShutdown(),
        errors.CannotConnectNow(),
        errors.TooManyConnections(),
        errors.ConnectionFailure(),
    ],
)
def test_connection_loss_and_retryable_sqlstates_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        errors.QueryCanceled(),  # a statement timeout already spent its time
        errors.UniqueViolation(),
        errors.InvalidTextRepresentation(),
        errors.DiskFull(),
        errors.UndefinedTable(),
        psycopg.ProgrammingError("bad query"),
        psycopg_pool.PoolClosed("the pool is closed"),
        ValueError("not a store failure"),
    ],
)
def test_other_failures_are_not_retried(exc: BaseException) -> None:
    assert not is_transient(exc)


async def test_a_transient_failure_is_retried_until_it_succeeds() -> None:
    calls = 0

    async def flaky() -> str:
        nonlocal calls
        calls += 1
        if calls < 3:
            raise errors.AdminShutdown()
        return "ok"

    assert await run_with_retry(FAST, flaky, deadline=None) == "ok"
    assert calls == 3


async def test_a_permanent_failure_is_raised_at_once_as_it_is() -> None:
    calls = 0

    async def broken() -> None:
        nonlocal calls
        calls += 1
        raise errors.UniqueViolation()

    with pytest.raises(errors.UniqueViolation):
        await run_with_retry(FAST, broken, deadline=None)
    assert calls == 1


async def test_attempts_are_bounded_without_a_deadline() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise psycopg.OperationalError("connection refused")

    with pytest.raises(psycopg.OperationalError):
        await run_with_retry(FAST, down, deadline=None)
    assert calls == FAST.max_attempts


async def test_the_deadline_bounds_the_retries() -> None:
    policy = RetryPolicy(initial_wait=0.05, max_wait=0.05, max_attempts=1000)
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise psycopg.OperationalError("connection refused")

    started = time.monotonic()
    with pytest.raises(psycopg.OperationalError):
        await run_with_retry(policy, down, deadline=started + 0.3)
    elapsed = time.monotonic() - started
    assert elapsed < 0.3 + 0.06  # never sleeps past the deadline
    assert 2 <= calls < 1000


async def test_a_deadline_in_the_past_allows_one_attempt() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise errors.CannotConnectNow()

    with pytest.raises(errors.CannotConnectNow):
        await run_with_retry(FAST, down, deadline=time.monotonic() - 1)
    assert calls == 1


def test_deadline_scopes_nest_and_the_earlier_deadline_wins() -> None:
    assert call_deadline.get() is None
    with deadline_scope(10.0) as outer:
        assert outer is not None and call_deadline.get() == outer
        with deadline_scope(60.0) as inner:
            assert inner == outer
        with deadline_scope(1.0) as inner:
            assert inner is not None and inner < outer
        with deadline_scope(None) as inner:
            assert inner == outer
    assert call_deadline.get() is None


def test_postgres_calls_its_own_errors_transient_by_their_cause() -> None:
    provider = PostgresProvider({"dsn": "postgresql://localhost/db"})
    down = psycopg.OperationalError("server closed the connection unexpectedly")
    wrapped = store_error(down, operation="store", map_name="M_VIEW")
    wrapped.__cause__ = down
    assert isinstance(wrapped, StoreUnavailableError)
    assert provider.is_transient(wrapped)
    refused = store_error(errors.UniqueViolation(), operation="store", map_name="M_VIEW")
    refused.__cause__ = errors.UniqueViolation()
    assert not provider.is_transient(refused)
    assert not provider.is_transient(ValueError("not a store failure"))


async def test_every_retry_is_told_to_the_callback_it_was_given() -> None:
    told: list[tuple[str, int, str]] = []
    failures = [errors.AdminShutdown(), errors.DeadlockDetected()]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    retrying = Retrying(
        FAST, transient_error, lambda op, n, exc: told.append((op, n, type(exc).__name__))
    )
    assert await retrying.run("store", flaky) == "ok"
    assert told == [("store", 1, "AdminShutdown"), ("store", 2, "DeadlockDetected")]


async def test_without_an_argument_the_call_deadline_bounds_the_retries() -> None:
    calls = 0

    async def down() -> None:
        nonlocal calls
        calls += 1
        raise errors.CannotConnectNow()

    policy = RetryPolicy(initial_wait=0.05, max_wait=0.05, max_attempts=1000)
    with deadline_scope(0.0), pytest.raises(errors.CannotConnectNow):
        await Retrying(policy, transient_error).run("load", down)
    assert calls == 1


def test_a_call_without_a_deadline_retries_within_the_policy_budget() -> None:
    before = time.monotonic()
    deadline = RetryPolicy(budget_seconds=7.0).deadline()
    assert 7.0 <= deadline - before < 8.0


def test_a_policy_is_an_immutable_value() -> None:
    with pytest.raises(AttributeError):
        FAST.max_attempts = 3  # type: ignore[misc]
    assert RetryPolicy() == RetryPolicy()
