"""``hz-sidecar adopt``: the reference framework's rows rewritten into the sidecar's form.

On a real PostgreSQL server and on SQLite: framework rows in, sidecar rows out, the
counts equal, the member's bytes unchanged by the rewrite, and a second run changes
nothing.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml

from sidecar.adopt import adopt
from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.providers.base import Provider, StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.postgres import PostgresProvider
from sidecar.providers.sqlite import SQLiteProvider
from tests.pgserver import PostgresServer
from tests.system.conftest import sidecar_command

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW


def event_document(i: int) -> str:
    return json.dumps(
        {
            "_schemaType": "OrderPlacedEvent",
            "_fieldKinds": {
                "eventType": "STRING",
                "amount": "FLOAT64",
                "items": "INT32",
                "customer": "COMPACT",
            },
            "_fields": {
                "eventType": "OrderPlacedEvent",
                "amount": i * 2.5,
                "items": i,
                "customer": {
                    "_schemaType": "GenericRecord",
                    "_fieldKinds": {"name": "STRING"},
                    "_fields": {"name": f"c{i}"},
                },
            },
        }
    )


def view_document(i: int) -> str:
    return json.dumps(
        {
            "_schemaType": "GenericRecord",
            "_fieldKinds": {"total": "NULLABLE_FLOAT64", "orders": "INT64"},
            "_fields": {"total": None if i % 2 else i * 1.5, "orders": i},
        }
    )


async def framework_rows(provider: Provider, events: int, views: int) -> None:
    """Rows with no key or value format, as the framework's own MapStores wrote them."""
    await provider.store(
        "Orders_ES",
        EVENT,
        [
            StoreEntry(
                StoredKey(f"seq:{100 + i}|key:order-{i % 3}", ""),
                StoredValue("", event_document(i)),
            )
            for i in range(events)
        ],
    )
    await provider.store(
        "Orders_VIEW",
        VIEW,
        [
            StoreEntry(StoredKey(f"order-{i}", ""), StoredValue("", view_document(i)))
            for i in range(views)
        ],
    )


async def member_bytes(provider: Provider, codec: DataCodec) -> dict[tuple[str, str], bytes]:
    """Every row's key and value as the sidecar hands them to the member."""
    result: dict[tuple[str, str], bytes] = {}
    for kind, name in ((EVENT, "Orders_ES"), (VIEW, "Orders_VIEW")):
        keys: list[StoredKey] = []
        async for batch in provider.load_all_keys(name, kind, 100):
            keys.extend(batch)
        for stored in await provider.load(name, kind, keys):
            key = codec.resolve_key(kind, stored.key)
            result[(name, stored.key.text)] = (
                codec.encode_key(key).data + codec.encode_value(stored.value).data
            )
    return result


@pytest.fixture(params=["sqlite", "postgres"])
async def provider(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Provider]:
    if request.param == "sqlite":
        store: Provider = SQLiteProvider({"path": str(tmp_path / "store.db")})
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        schema = request.getfixturevalue("fresh_schema")
        store = PostgresProvider({"dsn": server.dsn(), "schema": schema})
    await store.open()
    yield store
    await store.close()


async def test_adopt_rewrites_every_framework_row_once_and_keeps_the_bytes(
    provider: Provider,
) -> None:
    await framework_rows(provider, events=1200, views=700)
    await provider.store(
        "Orders_VIEW", VIEW, [StoreEntry(StoredKey("own", "string"), StoredValue("string", '"x"'))]
    )
    codec = DataCodec(SchemaRegistry())
    before = await member_bytes(provider, codec)

    dry = await adopt(provider, codec, dry_run=True, batch_size=250)
    assert (dry.found[EVENT], dry.converted[EVENT], dry.rewritten[EVENT]) == (1200, 1200, 0)
    assert (dry.found[VIEW], dry.converted[VIEW], dry.rewritten[VIEW]) == (700, 700, 0)
    assert len(await provider.rows_without_format(EVENT, after=None, limit=5)) == 5

    done = await adopt(provider, codec, dry_run=False, batch_size=250)
    assert (done.found[EVENT], done.rewritten[EVENT], done.unreadable[EVENT]) == (1200, 1200, 0)
    assert (done.found[VIEW], done.rewritten[VIEW], done.unreadable[VIEW]) == (700, 700, 0)
    assert await provider.rows_without_format(EVENT, after=None, limit=5) == []
    assert await provider.rows_without_format(VIEW, after=None, limit=5) == []

    [row] = await provider.load("Orders_ES", EVENT, [StoredKey("seq:107|key:order-1", "")])
    assert row.key == StoredKey("seq:107|key:order-1", "")  # keys are kept as they are
    assert (row.value.format, row.value.type_name) == ("compact", "OrderPlacedEvent")
    assert json.loads(row.value.document)["amount"] == 17.5
    # A fresh sidecar (no schema in memory) serves the same bytes as before the rewrite.
    fresh = DataCodec(SchemaRegistry())
    for record in await provider.get_schemas():
        fresh.registry.add(record)
    assert await member_bytes(provider, fresh) == before

    again = await adopt(provider, fresh, dry_run=False, batch_size=250)
    assert sum(again.found.values()) == 0 and sum(again.rewritten.values()) == 0


async def test_adopt_leaves_unreadable_rows_and_records_them(provider: Provider) -> None:
    await framework_rows(provider, events=3, views=3)
    await provider.store(
        "Orders_VIEW",
        VIEW,
        [
            StoreEntry(
                StoredKey("broken", ""),
                StoredValue(
                    "", '{"_schemaType": "X", "_fieldKinds": {"a": "NOPE"}, "_fields": {}}'
                ),
            )
        ],
    )
    await provider.store(
        "Orders_ES",
        EVENT,
        [StoreEntry(StoredKey("not-a-reference-key", ""), StoredValue("", event_document(1)))],
    )
    counts = await adopt(provider, DataCodec(SchemaRegistry()), dry_run=False, batch_size=2)
    assert (counts.rewritten[EVENT], counts.unreadable[EVENT]) == (3, 1)
    assert (counts.rewritten[VIEW], counts.unreadable[VIEW]) == (3, 1)
    listed = {(r.map_name, r.key_text) for r in await provider.list_unreadable_rows()}
    assert listed == {("Orders_VIEW", "broken"), ("Orders_ES", "not-a-reference-key")}
    left = await provider.rows_without_format(VIEW, after=None, limit=10)
    assert [e.key.text for _, e in left] == ["broken"]


def test_adopt_command_dry_run_then_run(tmp_path: Path) -> None:
    import asyncio

    path = tmp_path / "store.db"

    async def seed() -> None:
        store = SQLiteProvider({"path": str(path)})
        await store.open()
        await framework_rows(store, events=10, views=4)
        await store.close()

    asyncio.run(seed())
    config = tmp_path / "sidecar.yaml"
    config.write_text(
        yaml.safe_dump({"provider": {"name": "sqlite", "settings": {"path": str(path)}}})
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [*sidecar_command(), "adopt", "--config", str(config), *args],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    assert run("--dry-run") == (
        "domain_events: 10 row(s) of the reference framework, 10 would be rewritten, "
        "0 unreadable (left as they are)\n"
        "domain_views: 4 row(s) of the reference framework, 4 would be rewritten, "
        "0 unreadable (left as they are)\n"
    )
    assert "10 rewritten" in run() and "0 row(s) of the reference framework, 0 rewritten" in run()
