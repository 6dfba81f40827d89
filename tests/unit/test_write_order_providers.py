"""Schema write orders in the embedded providers (memory, SQLite): kept, claimed once, legacy kept.

PostgreSQL's are in tests/integration/test_write_order_postgres.py.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.errors import UnknownSchemaError
from sidecar.providers.base import Provider, SchemaRecord
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.sqlite import SQLiteProvider

FIELDS = (("a", 8), ("b", 8), ("n", 3))


def schema(schema_id: int, write_order: tuple[str, ...] | None) -> SchemaRecord:
    return SchemaRecord(schema_id, f"T{schema_id}", FIELDS, write_order)


@pytest.fixture(params=["memory", "sqlite"])
async def provider(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Provider]:
    store: Provider
    if request.param == "memory":
        store = MemoryProvider({})
    else:
        store = SQLiteProvider({"path": str(tmp_path / "store.db"), "synchronous": "NORMAL"})
    await store.open()
    try:
        yield store
    finally:
        await store.close()


async def test_put_schemas_keeps_the_write_order_as_given(provider: Provider) -> None:
    assert provider.supports_write_order
    given = [schema(1, None), schema(2, ()), schema(3, ("b", "a")), schema(-(2**63), ("a", "b"))]
    await provider.put_schemas(given)
    assert sorted(await provider.get_schemas(), key=lambda s: s.schema_id) == sorted(
        given, key=lambda s: s.schema_id
    )
    # A known id keeps its record, write order included.
    await provider.put_schemas([schema(2, ("a", "b")), schema(3, ())])
    orders = {s.schema_id: s.write_order for s in await provider.get_schemas()}
    assert (orders[2], orders[3]) == ((), ("b", "a"))


async def test_the_first_claim_wins_and_later_ones_get_it_back(provider: Provider) -> None:
    await provider.put_schemas([schema(7, ())])
    assert await provider.claim_write_order(7, ("b", "a")) == ("b", "a")
    assert await provider.claim_write_order(7, ("a", "b")) == ("b", "a")
    [stored] = await provider.get_schemas()
    assert stored.write_order == ("b", "a")


async def test_concurrent_claims_agree(provider: Provider) -> None:
    await provider.put_schemas([schema(8, ())])
    results = await asyncio.gather(
        *(provider.claim_write_order(8, order) for order in [("a", "b"), ("b", "a")] * 4)
    )
    assert len(set(results)) == 1
    assert (await provider.get_schemas())[0].write_order == results[0]


async def test_a_legacy_schema_stays_legacy(provider: Provider) -> None:
    await provider.put_schemas([schema(9, None)])
    assert await provider.claim_write_order(9, ("a", "b")) is None
    assert (await provider.get_schemas())[0].write_order is None


async def test_claiming_an_unknown_schema_or_no_order_is_refused(provider: Provider) -> None:
    with pytest.raises(UnknownSchemaError):
        await provider.claim_write_order(404, ("a", "b"))
    await provider.put_schemas([schema(10, ())])
    with pytest.raises(ValueError, match="variable-size"):
        await provider.claim_write_order(10, ())


async def test_sqlite_keeps_claims_across_reopen_and_sidecars(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.db")
    one, two = SQLiteProvider({"path": path}), SQLiteProvider({"path": path})
    await one.open()
    await two.open()
    try:
        await one.put_schemas([schema(11, ())])
        assert await two.claim_write_order(11, ("b", "a")) == ("b", "a")
        assert await one.claim_write_order(11, ("a", "b")) == ("b", "a")
    finally:
        await one.close()
        await two.close()
    again = SQLiteProvider({"path": path})
    await again.open()
    try:
        assert (await again.get_schemas())[0].write_order == ("b", "a")
    finally:
        await again.close()


async def test_sqlite_upgrade_keeps_schemas_persisted_before_legacy(tmp_path: Path) -> None:
    from sidecar.providers import sqlite as sqlite_module

    path = tmp_path / "old.db"
    before = [m for m in sqlite_module._MIGRATIONS if m[0] < 4]
    with sqlite3.connect(path) as conn:
        for version, _, script in before:
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute(
            "INSERT INTO hz_sidecar_schemas (schema_id, type_name, fields)"
            " VALUES (5, 'Old', '[[\"a\", 8], [\"b\", 8]]')"
        )
    provider = SQLiteProvider({"path": str(path)})
    await provider.open()
    try:
        [old] = await provider.get_schemas()
        assert (old.schema_id, old.write_order) == (5, None)
        assert await provider.claim_write_order(5, ("b", "a")) is None
        await provider.put_schemas([schema(6, ())])
        assert await provider.claim_write_order(6, ("b", "a")) == ("b", "a")
    finally:
        await provider.close()
