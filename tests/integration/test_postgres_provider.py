"""PostgreSQL specifics: readable JSONB rows, exact numbers, the reference's columns,
migrations, settings and error mapping, against the session's real server."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from sidecar.deadline import deadline_scope
from sidecar.errors import ConfigError, StoreError, StoreTimeoutError, StoreUnavailableError
from sidecar.providers.base import (
    EventColumns,
    StoredKey,
    StoredValue,
    StoreEntry,
    StoreKind,
)
from sidecar.providers.postgres import PostgresProvider, bundled_migrations, masked_dsn
from tests.pgserver import PostgresServer

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW


def value(document: str) -> StoredValue:
    return StoredValue(format="compact", document=document, type_name="Order", schema_id=-42)


def entry(text: str, document: str, event: EventColumns | None = None) -> StoreEntry:
    return StoreEntry(key=StoredKey(text, "string"), value=value(document), event=event)


@pytest.fixture
async def provider(postgres_server: PostgresServer, fresh_schema: str) -> AsyncIterator[Any]:
    provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
    await provider.open()
    yield provider
    await provider.close()


def query(server: PostgresServer, schema: str, text: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
        cur = conn.execute(text.encode(), params)
        return cur.fetchall() if cur.description is not None else []


# -- Readable JSON and exact round trips -------------------------------------------


async def test_event_data_is_plain_json_a_person_can_query(
    provider: PostgresProvider, postgres_server: PostgresServer, fresh_schema: str
) -> None:
    document = json.dumps({"id": "o-1", "amount": 12.5, "lines": [{"sku": "A", "qty": 2}]})
    await provider.store("Orders_ES", EVENT, [entry("o-1", document)])
    await provider.store("Orders_VIEW", VIEW, [entry("o-1", document)])
    assert query(
        postgres_server,
        fresh_schema,
        "SELECT event_data->>'amount', event_data->'lines'->0->>'sku', jsonb_typeof(event_data)"
        " FROM domain_events WHERE map_name = 'Orders_ES' AND map_key = 'o-1'",
    ) == [("12.5", "A", "object")]
    assert query(
        postgres_server,
        fresh_schema,
        "SELECT (view_data->>'amount')::numeric FROM domain_views WHERE view_name = 'Orders_VIEW'",
    ) == [(pytest.approx(12.5),)]
    [loaded] = await provider.load("Orders_ES", EVENT, [StoredKey("o-1", "string")])
    assert json.loads(loaded.value.document) == json.loads(document)


AWKWARD_NUMBERS: dict[str, Any] = {
    "huge": 1e300,
    "subnormal": 5e-324,
    "tenth": 0.1,
    "one": 1.0,
    "negative_tiny": -2.2250738585072014e-308,
    "max": 1.7976931348623157e308,
    "third": 1 / 3,
    "int64_past_double": 2**53 + 1,
    "int64_min": -(2**63),
    "int64_max": 2**63 - 1,
    "zero": 0,
}


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_float64_and_int64_values_round_trip_exactly_through_jsonb(
    provider: PostgresProvider, kind: StoreKind
) -> None:
    document = json.dumps(AWKWARD_NUMBERS)
    await provider.store("Numbers", kind, [entry("n", document)])
    [loaded] = await provider.load("Numbers", kind, [StoredKey("n", "string")])
    back = json.loads(loaded.value.document)
    assert set(back) == set(AWKWARD_NUMBERS)
    for name, original in AWKWARD_NUMBERS.items():
        if isinstance(original, float):
            # JSONB keeps the decimal value exactly but may drop the exponent
            # (1e300 comes back as 301 digits, parsed as an int): the codec
            # reads the field as float64 by its schema, and that is exact.
            assert float(back[name]) == original, name
        else:
            assert back[name] == original and isinstance(back[name], int), name


async def test_jsonb_reorders_object_keys_and_drops_the_sign_of_negative_zero(
    provider: PostgresProvider,
) -> None:
    """What the codec must not rely on: JSONB's text is not the stored text."""
    await provider.store("J_VIEW", VIEW, [entry("k", '{"zz": 1, "a": -0.0, "bbb": 1.50}')])
    [loaded] = await provider.load("J_VIEW", VIEW, [StoredKey("k", "string")])
    assert loaded.value.document == '{"a": 0.0, "zz": 1, "bbb": 1.50}'


async def test_event_columns_fill_the_reference_columns(
    provider: PostgresProvider, postgres_server: PostgresServer, fresh_schema: str
) -> None:
    columns = EventColumns("order-7", 12, "OrderPlaced", 1_700_000_000_123, "corr-1")
    await provider.store(
        "Orders_ES", EVENT, [entry("order-7:12", '{"a": 1}', columns), entry("bare", "{}")]
    )
    rows = query(
        postgres_server,
        fresh_schema,
        "SELECT map_key, aggregate_id, sequence, event_type, timestamp_millis, correlation_id,"
        " key_format, value_format, type_name, schema_id FROM domain_events ORDER BY map_key",
    )
    round_trip = ("string", "compact", "Order", -42)
    assert rows == [
        ("bare", None, None, None, None, None, *round_trip),
        ("order-7:12", "order-7", 12, "OrderPlaced", 1_700_000_000_123, "corr-1", *round_trip),
    ]
    [loaded] = await provider.load("Orders_ES", EVENT, [StoredKey("order-7:12", "string")])
    assert loaded.event == columns


async def test_view_upsert_updates_last_updated_millis_and_updated_at(
    provider: PostgresProvider, postgres_server: PostgresServer, fresh_schema: str
) -> None:
    before = time.time_ns() // 1_000_000
    await provider.store("V_VIEW", VIEW, [entry("k", '{"v": 1}')])
    sql_text = "SELECT last_updated_millis, created_at, updated_at, view_data FROM domain_views"
    [(first_millis, created, first_updated, _)] = query(postgres_server, fresh_schema, sql_text)
    await asyncio.sleep(0.01)
    await provider.store("V_VIEW", VIEW, [entry("k", '{"v": 2}')])
    [(millis, created_again, updated, data)] = query(postgres_server, fresh_schema, sql_text)
    assert before <= first_millis <= millis <= time.time_ns() // 1_000_000
    assert created_again == created and updated > first_updated
    assert data == {"v": 2}


async def test_duplicate_keys_in_one_view_batch_keep_the_last(provider: PostgresProvider) -> None:
    await provider.store("V_VIEW", VIEW, [entry("k", '{"v": 1}'), entry("k", '{"v": 2}')])
    [loaded] = await provider.load("V_VIEW", VIEW, [StoredKey("k", "string")])
    assert json.loads(loaded.value.document) == {"v": 2}


async def test_load_all_keys_batches_are_capped_by_the_setting(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "load-all-keys-batch-size": 7}
    )
    await provider.open()
    try:
        await provider.store("K_VIEW", VIEW, [entry(f"k{i:02d}", "{}") for i in range(20)])
        batches = [b async for b in provider.load_all_keys("K_VIEW", VIEW, 1000)]
        assert [len(b) for b in batches] == [7, 7, 6]
        assert [k.text for b in batches for k in b] == [f"k{i:02d}" for i in range(20)]
    finally:
        await provider.close()


# -- Migrations ---------------------------------------------------------------------


async def test_migrations_create_the_reference_tables_indexes_and_history(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "migrate-on-start": False}
    )
    versions = [str(m.version) for m in bundled_migrations()]
    assert versions[:4] == ["1", "2", "3", "4"]
    assert await provider.migrate() == versions
    assert await provider.migrate() == []
    indexes = query(
        postgres_server,
        fresh_schema,
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND tablename = 'domain_events'"
        " ORDER BY indexname",
        fresh_schema,
    )
    assert [name for (name,) in indexes] == [
        "domain_events_pkey",
        "idx_domain_events_aggregate",
        "idx_domain_events_timestamp",
        "idx_domain_events_type",
    ]
    history = query(
        postgres_server,
        fresh_schema,
        "SELECT version, description, length(checksum) FROM hz_sidecar_migrations ORDER BY 1",
    )
    assert [str(v) for v, _, _ in history] == versions
    assert history[0][1:] == ("create domain events", 64)


async def test_a_changed_migration_is_refused_not_reapplied(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "migrate-on-start": False}
    )
    await provider.migrate()
    query(postgres_server, fresh_schema, "UPDATE hz_sidecar_migrations SET checksum = 'x'")
    with pytest.raises(StoreError, match="checksum mismatch"):
        await provider.migrate()


async def test_tables_created_by_the_reference_flyway_migrations_are_adopted(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(fresh_schema)))
        conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(fresh_schema)))
        conn.execute(
            "CREATE TABLE domain_events (map_key VARCHAR(512) NOT NULL,"
            " aggregate_id VARCHAR(255) NOT NULL, sequence BIGINT NOT NULL,"
            " event_type VARCHAR(255) NOT NULL, event_data JSONB NOT NULL,"
            " timestamp_millis BIGINT NOT NULL, correlation_id VARCHAR(255),"
            " map_name VARCHAR(255) NOT NULL, created_at TIMESTAMPTZ DEFAULT NOW(),"
            " PRIMARY KEY (map_name, map_key))"
        )
        conn.execute(
            "INSERT INTO domain_events VALUES ('old', 'a', 1, 'T', '{\"x\": 1}', 5, NULL, 'M_ES')"
        )
    provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
    await provider.open()
    try:
        await provider.store("M_ES", EVENT, [entry("new", '{"x": 2}')])
        loaded = await provider.load(
            "M_ES", EVENT, [StoredKey("old", ""), StoredKey("new", "string")]
        )
        assert {e.key.text: json.loads(e.value.document) for e in loaded} == {
            "old": {"x": 1},
            "new": {"x": 2},
        }
    finally:
        await provider.close()


# -- Settings, logging, errors ---------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"pool-max-size": 0}, "pool-max-size"),
        ({"pool-min-size": 9, "pool-max-size": 2}, "pool-min-size"),
        ({"pool-min-size": "many"}, "pool-min-size"),
        ({"connect-timeout-seconds": -1}, "connect-timeout-seconds"),
        ({"statement-timeout-ms": 0}, "statement-timeout-ms"),
        ({"migrate-on-start": "perhaps"}, "migrate-on-start"),
        ({"load-all-keys-batch-size": 0}, "load-all-keys-batch-size"),
        ({"schema": ""}, "schema"),
        ({"schema": "s" * 64}, "schema"),
        ({"dsn": "host=x port"}, "dsn"),
        ({"dsn": 5}, "dsn"),
        ({"pool-size": 3}, "pool-size"),
    ],
)
def test_a_wrong_setting_is_a_config_error_naming_the_key(
    settings: dict[str, Any], named: str
) -> None:
    with pytest.raises(ConfigError, match=f"'{named}'"):
        PostgresProvider(settings)


def test_settings_from_environment_strings_are_accepted() -> None:
    provider = PostgresProvider(
        {"pool-min-size": "2", "pool-max-size": "4", "migrate-on-start": "false", "dsn": None}
    )
    assert (provider.config.pool_min_size, provider.config.pool_max_size) == (2, 4)
    assert provider.config.migrate_on_start is False and provider.config.dsn == ""


def test_a_dsn_error_does_not_repeat_the_password() -> None:
    with pytest.raises(ConfigError) as info:
        PostgresProvider({"dsn": "password=hunter2 host"})
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    "dsn",
    ["host=h user=u password=hunter2 dbname=d", "postgresql://u:hunter2@h:5432/d?sslmode=disable"],
)
def test_masked_dsn_hides_the_password(dsn: str) -> None:
    masked = masked_dsn(dsn)
    assert "hunter2" not in masked and "password=********" in masked and "host=h" in masked


async def test_the_password_never_reaches_the_log(
    postgres_server: PostgresServer, fresh_schema: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn() + " password=hunter2", "schema": fresh_schema}
    )
    await provider.open()  # trust authentication ignores the password
    await provider.close()
    assert "hunter2" not in caplog.text and "hunter2" not in repr(provider)
    assert "password=********" in caplog.text


async def test_an_unreachable_server_is_unavailable_within_the_deadline(
    postgres_server: PostgresServer,
) -> None:
    dead = f"host=127.0.0.1 port={postgres_server.port + 1} user=postgres connect_timeout=2"
    provider = PostgresProvider({"dsn": dead, "migrate-on-start": False, "retry-seconds": 30})
    await provider.open()
    try:
        assert await provider.is_available() is False
        started = time.monotonic()
        with deadline_scope(1.0), pytest.raises(StoreUnavailableError, match="map 'M_VIEW'"):
            await provider.store("M_VIEW", VIEW, [entry("k", "{}")])
        assert time.monotonic() - started < 3.0
    finally:
        await provider.close()


async def test_a_provider_that_cannot_migrate_on_start_fails_to_open(
    postgres_server: PostgresServer,
) -> None:
    dead = f"host=127.0.0.1 port={postgres_server.port + 1} user=postgres"
    provider = PostgresProvider({"dsn": dead, "retry-seconds": 0.5})
    with pytest.raises(StoreUnavailableError):
        await provider.open()
    assert await provider.is_available() is False


async def test_a_statement_timeout_is_a_store_timeout(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "statement-timeout-ms": 200}
    )
    await provider.open()
    try:
        await provider.store("L_VIEW", VIEW, [entry("k", '{"v": 1}')])
        async with await psycopg.AsyncConnection.connect(postgres_server.dsn()) as locker:
            await locker.execute(
                sql.SQL("SELECT 1 FROM {} FOR UPDATE").format(
                    sql.Identifier(fresh_schema, "domain_views")
                )
            )
            with pytest.raises(StoreTimeoutError, match=r"map 'L_VIEW'.*QueryCanceled"):
                await provider.store("L_VIEW", VIEW, [entry("k", '{"v": 2}')])
    finally:
        await provider.close()


async def test_invalid_json_is_a_store_error_naming_the_map(provider: PostgresProvider) -> None:
    with pytest.raises(StoreError, match=r"map 'Bad_ES'.*invalid input syntax for type json"):
        await provider.store("Bad_ES", EVENT, [entry("k", "{not json")])


async def test_calls_on_a_closed_provider_are_unavailable(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
    await provider.open()
    await provider.open()  # idempotent
    await provider.close()
    await provider.close()  # idempotent
    assert await provider.is_available() is False
    with pytest.raises(StoreUnavailableError, match="not open"):
        await provider.load("M_VIEW", VIEW, [StoredKey("k", "string")])


# -- LoadAllKeys holds nothing between batches --------------------------------------------


async def test_unread_load_all_keys_streams_hold_no_pooled_connection(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    provider = PostgresProvider(
        {"dsn": postgres_server.dsn(), "schema": fresh_schema, "pool-max-size": 2}
    )
    await provider.open()
    try:
        await provider.store("Many_VIEW", VIEW, [entry(f"k{i:03d}", "{}") for i in range(50)])
        # More half-read streams than the pool has connections, as a slow member's would be.
        streams = [provider.load_all_keys("Many_VIEW", VIEW, 5) for _ in range(6)]
        firsts = [await anext(stream) for stream in streams]
        assert all(len(batch) == 5 for batch in firsts)
        with deadline_scope(3.0):
            await provider.store("Many_VIEW", VIEW, [entry("z-after", "{}")])
            assert len(await provider.load("Many_VIEW", VIEW, [StoredKey("k007", "string")])) == 1
        idle_in_transaction = query(
            postgres_server,
            fresh_schema,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hz-sidecar'"
            " AND state = 'idle in transaction'",
        )
        assert idle_in_transaction == [(0,)]
        # Each stream goes on where it stopped, and the keys come whole and in order.
        rest = [k.text for batch in [firsts[0]] for k in batch]
        async for batch in streams[0]:
            rest.extend(k.text for k in batch)
        assert rest == [f"k{i:03d}" for i in range(50)] + ["z-after"]
        for stream in streams[1:]:
            await stream.aclose()
        busy = query(
            postgres_server,
            fresh_schema,
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hz-sidecar'"
            " AND state <> 'idle'",
        )
        assert busy == [(0,)]
    finally:
        await provider.close()


async def test_framework_rows_without_formats_load_with_empty_formats(
    provider: PostgresProvider, postgres_server: PostgresServer
) -> None:
    schema = provider.config.schema
    query(
        postgres_server,
        schema,
        "INSERT INTO domain_views (view_name, view_key, view_data, last_updated_millis)"
        ' VALUES (\'Legacy_VIEW\', \'c1\', \'{"_schemaType": "T", "_fieldKinds": {},'
        ' "_fields": {}}\', 1)',
    )
    [row] = await provider.load("Legacy_VIEW", VIEW, [StoredKey("c1", "")])
    assert (row.key, row.value.format, row.value.schema_id) == (StoredKey("c1", ""), "", None)
    keys = [k async for batch in provider.load_all_keys("Legacy_VIEW", VIEW, 10) for k in batch]
    assert keys == [StoredKey("c1", "")]
