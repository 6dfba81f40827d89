"""A write that finds its work done waits for the synchronous standby before it is acknowledged.

PostgreSQL keeps a commit whose wait for the synchronous standby is cancelled on the
primary alone ("The transaction has already committed locally, but might not have been
replicated to the standby"). The sidecar cancels a write once its callers' deadline has
passed, and the member sends the entries again: the retried INSERT of events that are
already there, or the DELETE of keys already gone, changes no row, writes no WAL, and
its commit would not wait for the standby. Acknowledged then, a failover before the
standby catches up would lose the earlier commit. The provider makes such a write wait
as a commit of its own does (``_replicated``).

A real primary with a real synchronous standby (:func:`tests.pgserver.replicated_pair`);
the standby is cut off, so every commit that writes WAL waits.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import psycopg
import pytest

from sidecar.providers.base import EventColumns, StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.postgres import PostgresProvider
from tests.pgserver import (
    DATABASE,
    ReplicatedPair,
    replicated_pair,
    require_postgres_binaries,
    server_user,
)

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW
MAP = "Orders_ES"
#: Long enough for a write that does not wait to end; a waiting one never ends here.
PATIENCE_SECONDS = 1.5


def event(sequence: int) -> StoreEntry:
    return StoreEntry(
        key=StoredKey(f"seq:{sequence}|key:order-1", ""),
        value=StoredValue("compact", json.dumps({"sequence": sequence}), "OrderPlaced", 7),
        event=EventColumns("order-1", sequence, "OrderPlaced", 1_700_000_000_000, "c"),
    )


@pytest.fixture
def pair() -> Iterator[ReplicatedPair]:
    with replicated_pair(require_postgres_binaries(), server_user(), synchronous=True) as made:
        yield made


@pytest.fixture
async def provider(pair: ReplicatedPair) -> AsyncIterator[PostgresProvider]:
    async with PostgresProvider({"dsn": pair.dsn(DATABASE)}) as opened:
        yield opened


def on_primary(pair: ReplicatedPair, statement: str) -> int:
    with psycopg.connect(pair.primary.dsn(DATABASE), autocommit=True) as conn:
        row = conn.execute(statement).fetchone()
    assert row is not None
    return int(row[0])


async def waits_for_the_standby(write: asyncio.Future[object] | object) -> bool:
    """Whether ``write`` (a coroutine) is still waiting after PATIENCE_SECONDS."""
    try:
        await asyncio.wait_for(write, PATIENCE_SECONDS)  # type: ignore[arg-type]
    except TimeoutError:
        return True
    return False


@pytest.mark.parametrize("count", [1, 3], ids=["one-row statement", "array statement"])
async def test_events_already_stored_wait_for_the_standby(
    pair: ReplicatedPair, provider: PostgresProvider, count: int
) -> None:
    entries = [event(n) for n in range(count)]
    pair.disconnect_standby()
    # The first attempt commits on the primary and waits for the standby; its deadline
    # passes and it is cancelled: the rows stay, on the primary only.
    assert await waits_for_the_standby(provider.store(MAP, EVENT, entries))
    assert on_primary(pair, "SELECT count(*) FROM domain_events") == count
    # The member sends them again: nothing to insert, and still no acknowledgement
    # while the standby lacks the first attempt's commit.
    assert await waits_for_the_standby(provider.store(MAP, EVENT, entries))


@pytest.mark.parametrize("count", [1, 3], ids=["one-row statement", "array statement"])
async def test_keys_already_deleted_wait_for_the_standby(
    pair: ReplicatedPair, provider: PostgresProvider, count: int
) -> None:
    entries = [event(n) for n in range(count)]
    await provider.store(MAP, EVENT, entries)  # replicated: the standby streams
    pair.disconnect_standby()
    keys = [e.key for e in entries]
    assert await waits_for_the_standby(provider.delete(MAP, EVENT, keys))
    assert on_primary(pair, "SELECT count(*) FROM domain_events") == 0
    assert await waits_for_the_standby(provider.delete(MAP, EVENT, keys))


async def test_a_write_that_changes_its_rows_is_not_held_twice(
    pair: ReplicatedPair, provider: PostgresProvider
) -> None:
    """With the standby streaming, stores and deletes, changing rows or not, all return."""
    entries = [event(n) for n in range(3)]
    await asyncio.wait_for(provider.store(MAP, EVENT, entries), 10)
    await asyncio.wait_for(provider.store(MAP, EVENT, entries), 10)  # already there
    assert await asyncio.wait_for(provider.delete(MAP, EVENT, [e.key for e in entries]), 10) == 3
    assert await asyncio.wait_for(provider.delete(MAP, EVENT, [entries[0].key]), 10) == 0
