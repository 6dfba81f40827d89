"""The single-row statements of the PostgreSQL provider (a store of one entry, a load or
delete of one key) against the array form: the same rows, column for column, the same
answers, and one statement text that the server prepares."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sidecar.errors import ConfigError
from sidecar.providers.base import EventColumns, StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.postgres import PostgresProvider, PostgresSettings
from tests.pgserver import PostgresServer

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW
#: Columns a row gets from the clock, compared apart (or not at all).
CLOCK_COLUMNS = frozenset({"created_at", "updated_at", "last_updated_millis"})
#: The column naming the map, which differs between the maps compared.
MAP_COLUMN = {EVENT: "map_name", VIEW: "view_name"}
KEY_COLUMN = {EVENT: "map_key", VIEW: "view_key"}
TABLE = {EVENT: "domain_events", VIEW: "domain_views"}

COMPACT_DOCUMENT = json.dumps({"id": "o-1", "amount": 12.5, "lines": [{"sku": "A", "qty": 2}]})


def framework_event(sequence: int, aggregate: str = "order-1") -> StoreEntry:
    """An entry as the reference framework's event maps store it, one per call."""
    return StoreEntry(
        key=StoredKey(f"seq:{sequence}|key:{aggregate}", ""),
        value=StoredValue(
            format="compact",
            document=json.dumps({"orderId": aggregate, "amount": sequence * 1.5}),
            type_name="com.example.OrderPlaced",
            schema_id=-4_611_686_018_427_387_904 + sequence,
        ),
        event=EventColumns(aggregate, sequence, "OrderPlaced", 1_700_000_000_000 + sequence, "c"),
    )


def awkward_entries() -> list[StoreEntry]:
    """Entries covering every column's odd case; keys unique (a view upserts by key)."""
    return [
        framework_event(1),
        framework_event(40_000),  # an int4 sequence
        # No event columns at all: every event column NULL.
        StoreEntry(StoredKey("bare", "string"), StoredValue("compact", "{}", "Order", 7)),
        # Some event columns; NUL in the text ones (stored as U+FFFD).
        StoreEntry(
            StoredKey("partial", "string"),
            StoredValue("compact", COMPACT_DOCUMENT, "Order", 2**63 - 1),
            EventColumns(aggregate_id="agg\x00x", event_type="T\x00", sequence=2**40),
        ),
        # Empty value format (NULL in the row), no type name, no schema id.
        StoreEntry(StoredKey("unformatted", ""), StoredValue("", '{"a": 1}')),
        # A HazelcastJsonValue: exact_data keeps the text JSONB reorders and respaces.
        StoreEntry(
            StoredKey("json", "string"),
            StoredValue("json", '{"zz": 1,   "a": [1.50, -0.0, 1e300], "b": "x"}'),
            EventColumns(timestamp_millis=-(2**63), correlation_id=""),
        ),
        # A document holding NUL: a readable JSONB copy and the exact text.
        StoreEntry(
            StoredKey("nul-document", "string"),
            StoredValue("compact", '{"s": "a\\u0000b"}', "Order", -1),
        ),
        # A key holding NUL (escaped, "+escaped" format) with its exact Data bytes.
        StoreEntry(
            StoredKey("k\x00\\ey", "java", b"\xac\xed\x00\x05t\x00\x03key"),
            StoredValue("java", '{"n": 1}', "com.example.Key", None),
            EventColumns("a", 0, "E", 0, "c"),
        ),
        # The same text under another format is another key.
        StoreEntry(StoredKey("bare", "int32"), StoredValue("compact", "[]", "Order", 0)),
        # Empty bytes, not NULL, in key_data.
        StoreEntry(StoredKey("empty-data", "java", b""), StoredValue("java", '"s"')),
    ]


@pytest.fixture
async def provider(postgres_server: PostgresServer, fresh_schema: str) -> AsyncIterator[Any]:
    provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
    await provider.open()
    yield provider
    await provider.close()


@pytest.fixture
async def array_form(
    postgres_server: PostgresServer, fresh_schema: str, provider: PostgresProvider
) -> AsyncIterator[Any]:
    """A second provider on the same schema whose calls all take the array form."""
    array_form = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "migrate-on-start": False}
    )
    array_form.single_row_statements = False
    await array_form.open()
    yield array_form
    await array_form.close()


def query(server: PostgresServer, schema: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = conn.execute(text.encode(), params)
        return cur.fetchall() if cur.description is not None else []


def rows_of(
    server: PostgresServer, schema: str, kind: StoreKind, map_name: str
) -> list[dict[str, str | None]]:
    """Every row of ``map_name``, every column as its text (NULL as None), by key."""
    columns = [
        name
        for (name,) in query(
            server,
            schema,
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
            schema,
            TABLE[kind],
        )
        if name not in CLOCK_COLUMNS and name != MAP_COLUMN[kind]
    ]
    # The event table has 14 such columns, the view table 9: a new column shows here.
    assert len(columns) == (13 if kind is EVENT else 8), columns
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        select = sql.SQL(
            "SELECT {columns} FROM {table} WHERE {map} = %s ORDER BY {key}, key_format"
        ).format(
            columns=sql.SQL(", ").join(
                sql.SQL("{}::text").format(sql.Identifier(c)) for c in columns
            ),
            table=sql.Identifier(schema, TABLE[kind]),
            map=sql.Identifier(MAP_COLUMN[kind]),
            key=sql.Identifier(KEY_COLUMN[kind]),
        )
        rows = conn.execute(select, (map_name,)).fetchall()
    return [dict(zip(columns, row, strict=True)) for row in rows]


async def store_one_by_one(
    provider: PostgresProvider, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]
) -> None:
    for entry in entries:
        await provider.store(map_name, kind, [entry])


# -- Stores --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_a_single_entry_writes_the_row_the_array_form_writes(
    provider: PostgresProvider,
    array_form: PostgresProvider,
    postgres_server: PostgresServer,
    fresh_schema: str,
    kind: StoreKind,
) -> None:
    entries = awkward_entries()
    before = time.time_ns() // 1_000_000
    await store_one_by_one(provider, "Single", kind, entries)
    await provider.store("Batch", kind, entries)
    await store_one_by_one(array_form, "ArrayOfOne", kind, entries)
    after = time.time_ns() // 1_000_000

    single = rows_of(postgres_server, fresh_schema, kind, "Single")
    assert len(single) == len(entries)
    assert single == rows_of(postgres_server, fresh_schema, kind, "Batch")
    assert single == rows_of(postgres_server, fresh_schema, kind, "ArrayOfOne")

    # What the cases are there for, spelled out on the single-row rows.
    by_key = {(row[KEY_COLUMN[kind]], row["key_format"]): row for row in single}
    unformatted = by_key["unformatted", ""]
    assert unformatted["value_format"] is None
    assert unformatted["type_name"] is None and unformatted["schema_id"] is None
    assert by_key["json", "string"]["exact_data"] == entries[5].value.document
    data_column = "event_data" if kind is EVENT else "view_data"
    assert (
        by_key["json", "string"][data_column]
        == '{"a": [1.50, 0.0, 1' + "0" * 300 + '], "b": "x", "zz": 1}'
    )
    assert by_key["nul-document", "string"]["exact_data"] == '{"s": "a\\u0000b"}'
    assert by_key["nul-document", "string"][data_column] == '{"s": "a\ufffdb"}'
    assert by_key["bare", "string"]["exact_data"] is None
    escaped = by_key["k\\0\\\\ey", "java+escaped"]
    key_data = entries[7].key.data
    assert key_data is not None and escaped["key_data"] == "\\x" + key_data.hex()
    assert by_key["empty-data", "java"]["key_data"] == "\\x"
    assert by_key["bare", "int32"]["key_data"] is None
    if kind is EVENT:
        assert {k: by_key["bare", "string"][k] for k in ("aggregate_id", "sequence")} == {
            "aggregate_id": None,
            "sequence": None,
        }
        partial = by_key["partial", "string"]
        assert (partial["aggregate_id"], partial["event_type"]) == ("agg\ufffdx", "T\ufffd")
        assert (partial["sequence"], partial["timestamp_millis"]) == (str(2**40), None)
        assert partial["schema_id"] == str(2**63 - 1)
        assert by_key["json", "string"]["timestamp_millis"] == str(-(2**63))
        assert by_key["json", "string"]["correlation_id"] == ""
    else:
        stamps = query(
            postgres_server,
            fresh_schema,
            "SELECT DISTINCT last_updated_millis FROM domain_views WHERE view_name = 'Single'",
        )
        assert all(before <= stamp <= after for (stamp,) in stamps)


async def test_events_keep_the_first_write_through_the_single_row_statement(
    provider: PostgresProvider, postgres_server: PostgresServer, fresh_schema: str
) -> None:
    first = framework_event(3)
    second = StoreEntry(
        first.key,
        StoredValue("json", '{"other": true}'),
        EventColumns("order-2", 99, "Changed", 1, "d"),
    )
    await provider.store("Orders_ES", EVENT, [first])
    await provider.store("Orders_ES", EVENT, [second])  # a retry with other content
    await provider.store("Orders_ES", EVENT, [first])
    await provider.store("Expected_ES", EVENT, [first, framework_event(4)])
    assert rows_of(postgres_server, fresh_schema, EVENT, "Orders_ES") == [
        rows_of(postgres_server, fresh_schema, EVENT, "Expected_ES")[0]
    ]


async def test_views_keep_the_latest_write_through_the_single_row_statement(
    provider: PostgresProvider, postgres_server: PostgresServer, fresh_schema: str
) -> None:
    entries = awkward_entries()
    # Over rows the array form wrote, then over the single-row statement's own rows.
    await provider.store("Orders_VIEW", VIEW, entries)
    latest = [
        StoreEntry(e.key, StoredValue("compact", json.dumps({"v": i}), "Order", i), e.event)
        for i, e in enumerate(entries)
    ]
    await store_one_by_one(provider, "Orders_VIEW", VIEW, entries[::-1])
    stamp_before = query(
        postgres_server,
        fresh_schema,
        "SELECT max(last_updated_millis) FROM domain_views WHERE view_name = 'Orders_VIEW'",
    )[0][0]
    await asyncio.sleep(0.002)
    await store_one_by_one(provider, "Orders_VIEW", VIEW, latest)
    await provider.store("Expected_VIEW", VIEW, latest)
    rows = rows_of(postgres_server, fresh_schema, VIEW, "Orders_VIEW")
    assert rows == rows_of(postgres_server, fresh_schema, VIEW, "Expected_VIEW")
    assert sorted(str(row["view_data"]) for row in rows) == sorted(e.value.document for e in latest)
    # Back to a format-less value: the upsert clears what the previous value had.
    unformatted = StoreEntry(entries[0].key, StoredValue("", "{}"))
    await provider.store("Orders_VIEW", VIEW, [unformatted])
    [row] = [
        r
        for r in rows_of(postgres_server, fresh_schema, VIEW, "Orders_VIEW")
        if r["view_key"] == entries[0].key.text
    ]
    assert (row["value_format"], row["type_name"], row["schema_id"], row["exact_data"]) == (
        None,
        None,
        None,
        None,
    )
    stamps = query(
        postgres_server,
        fresh_schema,
        "SELECT min(last_updated_millis), bool_and(updated_at >= created_at)"
        " FROM domain_views WHERE view_name = 'Orders_VIEW'",
    )
    assert stamps[0][0] > stamp_before and stamps[0][1] is True


# -- Loads and deletes -----------------------------------------------------------------


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_a_single_key_loads_what_the_array_form_loads(
    provider: PostgresProvider, array_form: PostgresProvider, kind: StoreKind
) -> None:
    entries = awkward_entries()
    await provider.store("Orders", kind, entries)
    missing = [StoredKey("missing", "string"), StoredKey("bare", "int64"), StoredKey("bare", "")]
    everything = await provider.load("Orders", kind, [e.key for e in entries])
    assert len(everything) == len(entries)
    by_key = {(e.key.text, e.key.format): e for e in everything}
    for entry in entries:
        [single] = await provider.load("Orders", kind, [entry.key])
        assert [single] == await array_form.load("Orders", kind, [entry.key])
        assert single == by_key[entry.key.text, entry.key.format]
        assert single.key == entry.key  # the escaped key comes back as it was
        assert single.value.format == entry.value.format
        if entry.value.format == "json" or "\\u0000" in entry.value.document:
            assert single.value.document == entry.value.document  # exact_data, as written
        if kind is EVENT:
            assert single.event == (entry.event or EventColumns()) or entry.key.text == "partial"
    for key in missing:
        assert await provider.load("Orders", kind, [key]) == []
        assert await array_form.load("Orders", kind, [key]) == []
    assert await provider.load("Other", kind, [entries[0].key]) == []


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_a_single_key_deletes_what_the_array_form_deletes(
    provider: PostgresProvider,
    array_form: PostgresProvider,
    postgres_server: PostgresServer,
    fresh_schema: str,
    kind: StoreKind,
) -> None:
    entries = awkward_entries()
    await provider.store("Single", kind, entries)
    await provider.store("Array", kind, entries)
    await provider.store("Untouched", kind, entries)
    for callee, map_name in ((provider, "Single"), (array_form, "Array")):
        assert await callee.delete(map_name, kind, [StoredKey("bare", "int64")]) == 0
        assert await callee.delete(map_name, kind, [StoredKey("missing", "")]) == 0
        for entry in entries[::2]:
            assert await callee.delete(map_name, kind, [entry.key]) == 1
            assert await callee.delete(map_name, kind, [entry.key]) == 0
    single = rows_of(postgres_server, fresh_schema, kind, "Single")
    assert len(single) == len(entries) - len(entries[::2])
    assert single == rows_of(postgres_server, fresh_schema, kind, "Array")
    assert len(rows_of(postgres_server, fresh_schema, kind, "Untouched")) == len(entries)
    remaining = await provider.load("Single", kind, [e.key for e in entries])
    assert sorted(e.key.text for e in remaining) == sorted(e.key.text for e in entries[1::2])


# -- One statement text, prepared by the server -------------------------------------


async def test_single_row_statements_are_prepared_once_per_connection(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    """psycopg prepares a statement seen prepare_threshold (5) times with the same text and
    parameter types; sequences of every size are sent as int8, so one statement serves."""
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "pool-max-size": 1}
    )
    await provider.open()
    try:
        for sequence in (1, 2, 40_000, 2**40, 3, 4, 5, 6, 7, 8):
            await provider.store("Orders_ES", EVENT, [framework_event(sequence)])
        for sequence in range(10):
            key = framework_event(sequence + 1).key
            await provider.load("Orders_ES", EVENT, [key])
            await provider.delete("Gone_ES", EVENT, [key])
        assert provider._pool is not None
        async with provider._pool.connection() as conn:
            cur = await conn.execute(
                "SELECT statement, generic_plans + custom_plans FROM pg_prepared_statements"
            )
            prepared = await cur.fetchall()
    finally:
        await provider.close()
    ours = [(s, n) for s, n in prepared if '."domain_events"' in s]
    assert len(ours) == 3, prepared  # one INSERT, one SELECT, one DELETE
    [(insert, runs)] = [(s, n) for s, n in ours if s.startswith("INSERT") and " VALUES " in s]
    assert runs == 10 - 5  # the first five ran unprepared
    assert "ON CONFLICT (map_name, map_key, key_format) DO NOTHING" in insert
    assert sorted(s.split()[0] for s, _ in ours) == ["DELETE", "INSERT", "SELECT"]
    assert len(rows_of(postgres_server, fresh_schema, EVENT, "Orders_ES")) == 10


async def test_prepared_statements_off_prepares_nothing(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    """``prepared-statements: false`` (PgBouncer before 1.21 in transaction mode): the same
    calls leave no prepared statement on the server, and write the same rows."""
    provider = PostgresProvider(
        {
            "dsn": postgres_server.dsn(),
            "schema": fresh_schema,
            "pool-max-size": 1,
            "prepared-statements": False,
        }
    )
    await provider.open()
    try:
        for sequence in range(1, 11):
            await provider.store("Orders_ES", EVENT, [framework_event(sequence)])
            await provider.load("Orders_ES", EVENT, [framework_event(sequence).key])
        assert provider._pool is not None
        async with provider._pool.connection() as conn:
            cur = await conn.execute("SELECT count(*) FROM pg_prepared_statements")
            row = await cur.fetchone()
    finally:
        await provider.close()
    assert row == (0,)
    assert len(rows_of(postgres_server, fresh_schema, EVENT, "Orders_ES")) == 10


def test_prepared_statements_must_be_a_boolean() -> None:
    with pytest.raises(ConfigError, match="prepared-statements"):
        PostgresSettings.from_mapping({"prepared-statements": "sometimes"})
