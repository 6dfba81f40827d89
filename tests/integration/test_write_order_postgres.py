"""Schema write orders in PostgreSQL: kept as given, the first claim wins across sidecars,
schemas persisted before the V6 migration stay legacy."""

from __future__ import annotations

import asyncio
import decimal
import json
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from hazelcast.serialization.api import FieldKind
from psycopg import sql

from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.codec.schemas import settle_write_orders, to_record
from sidecar.errors import UnknownSchemaError
from sidecar.providers import postgres as postgres_module
from sidecar.providers.base import SchemaRecord, StoredKey, StoreEntry, StoreKind
from sidecar.providers.postgres import PostgresProvider
from tests.pgserver import PostgresServer
from tests.unit.codec.codec_client import ClientWorld

FIELDS = (("a", 8), ("b", 8), ("n", 3))


def schema(schema_id: int, write_order: tuple[str, ...] | None) -> SchemaRecord:
    return SchemaRecord(schema_id, f"T{schema_id}", FIELDS, write_order)


@pytest.fixture
async def provider(postgres_server: PostgresServer, fresh_schema: str) -> AsyncIterator[Any]:
    provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
    await provider.open()
    yield provider
    await provider.close()


async def test_write_orders_are_kept_as_given(provider: PostgresProvider) -> None:
    assert provider.supports_write_order
    given = [schema(1, None), schema(2, ()), schema(3, ("b", "a")), schema(2**63 - 1, ("a", "b"))]
    await provider.put_schemas(given)
    await provider.put_schemas([schema(2, ("a", "b")), schema(3, ())])  # known ids kept
    assert await provider.get_schemas() == sorted(given, key=lambda s: s.schema_id)
    await provider.put_schemas([schema(4, None), schema(5, None)])  # only legacy ones
    assert {s.schema_id: s.write_order for s in await provider.get_schemas()}[5] is None


async def test_the_first_claim_wins_and_legacy_schemas_stay_legacy(
    provider: PostgresProvider,
) -> None:
    await provider.put_schemas([schema(7, ()), schema(8, None)])
    assert await provider.claim_write_order(7, ("b", "a")) == ("b", "a")
    assert await provider.claim_write_order(7, ("a", "b")) == ("b", "a")
    assert await provider.claim_write_order(8, ("a", "b")) is None
    with pytest.raises(UnknownSchemaError):
        await provider.claim_write_order(404, ("a", "b"))
    orders = {s.schema_id: s.write_order for s in await provider.get_schemas()}
    assert orders == {7: ("b", "a"), 8: None}


async def test_claims_racing_from_several_sidecars_agree(
    postgres_server: PostgresServer, fresh_schema: str, provider: PostgresProvider
) -> None:
    others = [
        PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema}) for _ in range(3)
    ]
    for other in others:
        await other.open()
    try:
        for schema_id in range(20, 30):
            await provider.put_schemas([schema(schema_id, ())])
            claims = [
                sidecar.claim_write_order(schema_id, order)
                for sidecar in (provider, *others)
                for order in (("a", "b"), ("b", "a"))
            ]
            results = await asyncio.gather(*claims)
            assert len(set(results)) == 1, results
            [stored] = [s for s in await provider.get_schemas() if s.schema_id == schema_id]
            assert stored.write_order == results[0]
    finally:
        for other in others:
            await other.close()


async def test_a_claim_waiting_on_another_sidecar_s_claim_returns_that_claim(
    postgres_server: PostgresServer, fresh_schema: str, provider: PostgresProvider
) -> None:
    await provider.put_schemas([schema(40, ())])
    async with await psycopg.AsyncConnection.connect(postgres_server.dsn()) as other:
        await other.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(fresh_schema)))
        # The other sidecar's claim holds the row lock, not yet committed.
        await other.execute(
            'UPDATE hz_sidecar_schemas SET write_order = \'["b", "a"]\'::jsonb'
            " WHERE schema_id = 40 AND write_order = '[]'::jsonb"
        )
        waiting = asyncio.ensure_future(provider.claim_write_order(40, ("a", "b")))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await other.commit()
    # Re-evaluated on the committed row: the first claim, not this one nor "pending".
    assert await waiting == ("b", "a")


async def test_schemas_persisted_before_the_migration_stay_legacy(
    postgres_server: PostgresServer, fresh_schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = {"dsn": postgres_server.dsn(), "schema": fresh_schema, "migrate-on-start": False}
    every = postgres_module.bundled_migrations()
    assert every[-1].version == 6 and every[-1].description == "schema write order"
    monkeypatch.setattr(
        postgres_module, "bundled_migrations", lambda: [m for m in every if m.version < 6]
    )
    assert await PostgresProvider(settings).migrate() == ["1", "2", "3", "4", "5"]
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(fresh_schema)))
        conn.execute(
            "INSERT INTO hz_sidecar_schemas (schema_id, type_name, fields) VALUES"
            ' (5, \'Old\', \'[{"name": "a", "kind": 8}, {"name": "b", "kind": 8}]\')'
        )
    monkeypatch.setattr(postgres_module, "bundled_migrations", lambda: every)
    provider = PostgresProvider(settings)
    assert await provider.migrate() == ["6"]
    await provider.open()
    try:
        [old] = await provider.get_schemas()
        assert (old.schema_id, old.type_name, old.write_order) == (5, "Old", None)
        assert await provider.claim_write_order(5, ("b", "a")) is None
        await provider.put_schemas([schema(6, ())])
        assert await provider.claim_write_order(6, ("b", "a")) == ("b", "a")
    finally:
        await provider.close()


async def test_a_java_record_is_stored_without_order_and_loads_back_exactly(
    provider: PostgresProvider,
) -> None:
    world = ClientWorld()
    cls = world.define(
        "Order",
        [("zeta", FieldKind.STRING), ("alpha", FieldKind.STRING), ("mid", FieldKind.DECIMAL)],
    )
    data, (client_schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=decimal.Decimal("1.5")))
    await provider.put_schemas([to_record(client_schema, ())])
    registry = SchemaRegistry()
    for record in await provider.get_schemas():
        registry.add(record)
    codec = DataCodec(registry)
    decoded = await settle_write_orders(lambda: codec.decode_for_store(data), registry, provider)
    key = StoredKey("o-1", "string")
    await provider.store("Orders_VIEW", StoreKind.VIEW, [StoreEntry(key, decoded.stored)])
    [row] = await provider.load("Orders_VIEW", StoreKind.VIEW, [key])
    assert json.loads(row.value.document) == {"alpha": "a", "mid": "1.5", "zeta": "z"}
    # Another sidecar, whose registry still has the order pending, reads it back exactly.
    fresh = SchemaRegistry()
    fresh.insert(registry.get(client_schema.schema_id), ())
    reader = DataCodec(fresh)
    encoded = await settle_write_orders(lambda: reader.encode_value(row.value), fresh, provider)
    assert encoded.data == data
