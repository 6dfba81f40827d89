"""MySQL provider specifics on a real MariaDB server: the dialect (collations, long keys,
JSON text kept as written, errors that INSERT IGNORE would have hidden), the tables and
indexes, settings and errors, and ``hz-sidecar check`` / ``migrate``, ten of them at once."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncmy
import pytest
import yaml
from asyncmy.errors import OperationalError, ProgrammingError

from sidecar.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, main
from sidecar.conformance import RetryLog
from sidecar.deadline import deadline_scope
from sidecar.errors import ConfigError, StoreError, StoreTimeoutError, StoreUnavailableError
from sidecar.providers import provider_class
from sidecar.providers.base import EventColumns, StoredKey, StoredValue, StoreEntry, StoreKind
from sidecar.providers.mysql import (
    MySQLProvider,
    bundled_migrations,
    key_hash,
    migration_lock_name,
    transient_error,
)
from sidecar.retry import RetryPolicy
from sidecar.writer import Writer
from tests.mariadbserver import MariaDBServer
from tests.system.conftest import sidecar_command

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW


def compact(document: str) -> StoredValue:
    return StoredValue(format="compact", document=document, type_name="Order", schema_id=-42)


def entry(text: str, document: str = '{"n": 1}', fmt: str = "string") -> StoreEntry:
    return StoreEntry(key=StoredKey(text, fmt), value=compact(document))


@pytest.fixture
async def provider(mariadb_server: MariaDBServer, mariadb_database: str) -> AsyncIterator[Any]:
    async with MySQLProvider(mariadb_server.settings(mariadb_database)) as provider:
        yield provider


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("HZ_SIDECAR_"):
            monkeypatch.delenv(name)
    yield


# -- the dialect -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_keys_and_map_names_are_compared_byte_for_byte_without_pad_space(
    provider: MySQLProvider, kind: StoreKind
) -> None:
    texts = ["a", "A", "a ", "ä", "a\u0308", "😀", "x\x00y", "x"]
    for name in ("Case_M", "Case_M "):
        await provider.store(name, kind, [entry(t, json.dumps({"t": t, "m": name})) for t in texts])
    for name in ("Case_M", "Case_M "):
        loaded = await provider.load(name, kind, [StoredKey(t, "string") for t in texts])
        assert {e.key.text: json.loads(e.value.document) for e in loaded} == {
            t: {"t": t, "m": name} for t in texts
        }
        streamed = [k.text async for batch in provider.load_all_keys(name, kind, 3) for k in batch]
        assert sorted(streamed) == sorted(texts)
    assert await provider.delete("Case_M", kind, [StoredKey("A", "string")]) == 1
    left = await provider.load("Case_M", kind, [StoredKey(t, "string") for t in texts])
    assert sorted(e.key.text for e in left) == sorted(set(texts) - {"A"})


async def test_a_key_longer_than_any_innodb_index_is_stored_and_found(
    provider: MySQLProvider,
) -> None:
    long_keys = [("k" * 20_000) + str(i) for i in range(3)] + ["é" * 5000]
    for kind, name in ((EVENT, "Long_ES"), (VIEW, "Long_VIEW")):
        await provider.store(
            name, kind, [entry(k, json.dumps({"i": i})) for i, k in enumerate(long_keys)]
        )
        loaded = await provider.load(name, kind, [StoredKey(k, "string") for k in long_keys])
        assert sorted(e.key.text for e in loaded) == sorted(long_keys)
        streamed = [k.text async for batch in provider.load_all_keys(name, kind, 2) for k in batch]
        assert sorted(streamed) == sorted(long_keys)


async def test_mariadb_keeps_the_json_text_as_written(provider: MySQLProvider) -> None:
    document = '{"zz": 1,  "a": -0.0, "bbb": 1.50, "big": 1e300, "s": "\\u0000 😀"}'
    json_value = StoredValue(format="json", document='{"b":1, "a" : [ ]}')
    await provider.store("Text_VIEW", VIEW, [entry("c", document)])
    await provider.store("Text_ES", EVENT, [StoreEntry(StoredKey("j", "string"), json_value)])
    [view] = await provider.load("Text_VIEW", VIEW, [StoredKey("c", "string")])
    [event] = await provider.load("Text_ES", EVENT, [StoredKey("j", "string")])
    assert view.value.document == document
    assert event.value == json_value


async def test_key_and_dead_letter_bytes_round_trip_exactly(provider: MySQLProvider) -> None:
    every_byte = bytes(range(256)) * 64
    key = StoredKey("seq:1|key:c", "java", every_byte)
    await provider.store("Bytes_VIEW", VIEW, [StoreEntry(key, compact("{}"))])
    [loaded] = await provider.load("Bytes_VIEW", VIEW, [key])
    assert loaded.key == key
    assert [k async for batch in provider.load_all_keys("Bytes_VIEW", VIEW, 10) for k in batch] == [
        key
    ]


@pytest.mark.parametrize("kind", [EVENT, VIEW])
async def test_a_value_the_table_refuses_fails_the_store_and_writes_nothing(
    provider: MySQLProvider, kind: StoreKind
) -> None:
    """What INSERT IGNORE would have turned into a warning (and a wrong row) is an error."""
    good = [entry(f"ok{i}") for i in range(10)]
    with pytest.raises(StoreError, match="CONSTRAINT") as raised:
        await provider.store("Refused", kind, [*good, entry("bad", "not json")])
    assert not provider.is_transient(raised.value)
    with pytest.raises(StoreError, match=r"(?i)too long"):
        await provider.store("M" * 256, kind, good)
    assert await provider.load("Refused", kind, [e.key for e in good]) == []


async def test_a_store_larger_than_one_statement_is_one_transaction(
    provider: MySQLProvider,
) -> None:
    payload = "x" * 300_000  # 30 rows: about 9 MB, three statements
    rows = [entry(f"big{i}", json.dumps({"p": payload, "i": i})) for i in range(30)]
    await provider.store("Big_VIEW", VIEW, rows)
    assert len(await provider.load("Big_VIEW", VIEW, [e.key for e in rows])) == 30
    broken = [entry(f"next{i}", json.dumps({"p": payload})) for i in range(29)]
    with pytest.raises(StoreError):
        await provider.store("Big_VIEW", VIEW, [*broken, entry("last", "{broken")])
    assert await provider.load("Big_VIEW", VIEW, [e.key for e in broken]) == []


async def test_the_reference_columns_are_readable_with_sql(
    provider: MySQLProvider, mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    columns = EventColumns("order-1", 3, "OrderPlaced", 1_700_000_000_000, "corr-1")
    document = json.dumps({"amount": 12.5, "lines": [{"sku": "A"}]})
    event = StoreEntry(StoredKey("seq:3|key:order-1", ""), compact(document), columns)
    await provider.store("Orders_ES", EVENT, [event])
    await provider.store("Orders_VIEW", VIEW, [entry("o-1", document)])
    await provider.store("Orders_VIEW", VIEW, [entry("o-1", json.dumps({"amount": 13}))])
    rows = mariadb_server.sql(
        "SELECT map_key, aggregate_id, sequence, event_type, timestamp_millis, correlation_id,"
        " JSON_VALUE(event_data, '$.amount'), JSON_VALUE(event_data, '$.lines[0].sku'),"
        " key_format, value_format, type_name, schema_id, HEX(key_hash)"
        " FROM domain_events WHERE map_name = 'Orders_ES' AND map_key = 'seq:3|key:order-1'",
        mariadb_database,
    )
    hashed = key_hash("seq:3|key:order-1").hex().upper()
    reference = ("seq:3|key:order-1", "order-1", "3", "OrderPlaced", "1700000000000", "corr-1")
    assert rows == [(*reference, "12.5", "A", "", "compact", "Order", "-42", hashed)]
    views = mariadb_server.sql(
        "SELECT view_key, JSON_VALUE(view_data, '$.amount'), updated_at >= created_at,"
        " last_updated_millis > 0 FROM domain_views WHERE view_name = 'Orders_VIEW'",
        mariadb_database,
    )
    assert views == [("o-1", "13", "1", "1")]


async def test_migrations_create_the_tables_keys_and_indexes(
    provider: MySQLProvider, mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    indexes = mariadb_server.sql(
        "SELECT table_name, index_name, GROUP_CONCAT(CONCAT(column_name,"
        " IFNULL(CONCAT('(', sub_part, ')'), '')) ORDER BY seq_in_index)"
        f" FROM information_schema.statistics WHERE table_schema = '{mariadb_database}'"
        " GROUP BY table_name, index_name"
    )
    assert sorted(indexes) == [
        ("domain_events", "PRIMARY", "map_name,key_hash,key_format"),
        ("domain_events", "idx_domain_events_aggregate", "aggregate_id(255),sequence"),
        ("domain_events", "idx_domain_events_key", "map_name,map_key(255)"),
        ("domain_events", "idx_domain_events_timestamp", "timestamp_millis"),
        ("domain_events", "idx_domain_events_type", "event_type(255)"),
        ("domain_views", "PRIMARY", "view_name,key_hash,key_format"),
        ("domain_views", "idx_domain_views_key", "view_name,view_key(255)"),
        ("hz_sidecar_dead_letters", "PRIMARY", "id"),
        ("hz_sidecar_dead_letters", "idx_hz_sidecar_dead_letters_map", "map_name,id"),
        ("hz_sidecar_migrations", "PRIMARY", "version"),
        ("hz_sidecar_schemas", "PRIMARY", "schema_id"),
        ("hz_sidecar_unreadable_rows", "PRIMARY", "map_name,key_hash,key_format"),
    ]
    history = mariadb_server.sql(
        "SELECT version, description, checksum FROM hz_sidecar_migrations", mariadb_database
    )
    assert history == [(str(m.version), m.description, m.checksum) for m in bundled_migrations()]
    assert await provider.migrate() == []  # nothing left to apply


async def test_a_changed_migration_is_refused_not_reapplied(
    provider: MySQLProvider, mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    mariadb_server.sql("UPDATE hz_sidecar_migrations SET checksum = 'x'", mariadb_database)
    with pytest.raises(StoreError, match="checksum mismatch"):
        await provider.migrate()
    with pytest.raises(StoreError, match="checksum mismatch"):
        await provider.pending_migrations()


# -- errors, retries and settings --------------------------------------------------------


async def test_a_killed_connection_is_retried_by_the_writer(
    provider: MySQLProvider, mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    await provider.store("Killed_VIEW", VIEW, [entry("before")])
    ids = mariadb_server.sql(
        f"SELECT id FROM information_schema.processlist WHERE db = '{mariadb_database}'"
    )
    assert ids, "the provider's pooled connection"
    for (connection_id,) in ids:
        mariadb_server.sql(f"KILL CONNECTION {connection_id}")
    retries = RetryLog()
    writer = Writer(
        provider,
        retry=RetryPolicy(initial_wait=0.01, max_wait=0.1, max_attempts=20),
        on_retry=retries,
    )
    try:
        with deadline_scope(10):
            assert (await writer.store("Killed_VIEW", VIEW, [entry("after")])).failed == {}
    finally:
        await writer.close()
    # The pool may notice the closed socket before handing the connection out; when it
    # does not, the statement fails with 2013 (lost connection) and is retried.
    assert all(provider.is_transient(exc) for _, _, exc in retries.retries), retries.retries
    assert len(await provider.load("Killed_VIEW", VIEW, [StoredKey("after", "string")])) == 1


async def test_an_unreachable_server_is_unavailable_and_transient(
    mariadb_server: MariaDBServer,
) -> None:
    provider = MySQLProvider(
        {
            **mariadb_server.settings("nowhere", port=mariadb_server.port + 1),
            "migrate-on-start": False,
            "connect-timeout-seconds": 1,
        }
    )
    async with provider:
        assert await provider.is_available() is False
        started = time.monotonic()
        with deadline_scope(1.0), pytest.raises(StoreUnavailableError) as raised:
            await provider.store("Down_VIEW", VIEW, [entry("k")])
        assert time.monotonic() - started < 3.0
        assert provider.is_transient(raised.value)


@pytest.mark.parametrize(
    ("error", "transient"),
    [
        (OperationalError(2013, "Lost connection to server during query"), True),
        (OperationalError(2006, "Server has gone away"), True),
        (OperationalError(1213, "Deadlock found"), True),
        (OperationalError(1205, "Lock wait timeout exceeded"), True),
        (OperationalError(1040, "Too many connections"), True),
        (OperationalError(1053, "Server shutdown in progress"), True),
        (OperationalError(1290, "running with --read-only"), True),
        (OperationalError(4025, "CONSTRAINT failed"), False),
        (OperationalError(1406, "Data too long"), False),
        (ProgrammingError(1146, "Table doesn't exist"), False),
        (ConnectionResetError(), True),
        (ValueError("a bug"), False),
    ],
)
def test_transient_errors_are_told_by_number_not_by_class(
    error: BaseException, transient: bool
) -> None:
    assert transient_error(error) is transient


def test_settings_come_from_the_dsn_and_keys_override_it() -> None:
    provider = MySQLProvider(
        {
            "dsn": "mysql://app:s%40cret@db.example:3307/orders?unix_socket=/run/m.sock",
            "user": "other",
            "pool-max-size": "4",
        }
    )
    config = provider.config
    assert (config.host, config.port, config.user, config.password, config.database) == (
        "db.example",
        3307,
        "other",
        "s@cret",
        "orders",
    )
    assert config.unix_socket == "/run/m.sock" and config.pool_max_size == 4
    assert "s@cret" not in repr(provider)
    assert provider_class("mysql") is MySQLProvider


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"database": "d", "pool-size": 1}, "unknown setting 'pool-size'"),
        ({"host": "h"}, "'database'"),
        ({"database": "d", "pool-min-size": 9}, "exceeds 'pool-max-size'"),
        ({"database": "d", "retry-seconds": 0}, "'retry-seconds' must be positive"),
        ({"dsn": "postgres://u:hunter2@h/d"}, "not a mysql://"),
        ({"dsn": "mysql://u:hunter2@h:99999/d"}, "not a mysql://"),
    ],
)
def test_a_wrong_setting_is_a_config_error_naming_the_key(
    settings: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError, match=message) as raised:
        MySQLProvider(settings)
    assert "hunter2" not in str(raised.value)


# -- hz-sidecar check and migrate ----------------------------------------------------------


def config_file(path: Path, settings: dict[str, Any]) -> str:
    document = {
        "provider": {"name": "mysql", "settings": settings},
        "maps": [{"pattern": "*_VIEW", "kind": "view"}],
    }
    path.write_text(yaml.safe_dump(document))
    return str(path)


def tables(server: MariaDBServer, database: str) -> list[str]:
    return [row[0] for row in server.sql("SHOW TABLES", database)]


def test_check_lists_pending_migrations_creates_nothing_and_migrate_applies_them(
    tmp_path: Path,
    mariadb_server: MariaDBServer,
    mariadb_database: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path / "sidecar.yaml", mariadb_server.settings(mariadb_database))
    assert main(["check", "--config", config]) == EXIT_OK
    versions = ", ".join(str(m.version) for m in bundled_migrations())
    assert f"pending migrations: {versions} (`hz-sidecar migrate` would apply them" in (
        capsys.readouterr().out
    )
    assert tables(mariadb_server, mariadb_database) == []
    assert main(["migrate", "--config", config]) == EXIT_OK
    assert capsys.readouterr().out.strip() == f"applied migrations: {versions}"
    assert "domain_events" in tables(mariadb_server, mariadb_database)
    assert main(["check", "--config", config]) == EXIT_OK
    assert "migrations: none pending" in capsys.readouterr().out
    mariadb_server.sql("UPDATE hz_sidecar_migrations SET checksum = 'x'", mariadb_database)
    assert main(["check", "--config", config]) == EXIT_FAILURE
    assert "checksum mismatch" in capsys.readouterr().err


def test_check_of_an_unreachable_server_exits_3(
    tmp_path: Path, mariadb_server: MariaDBServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = mariadb_server.settings("x", port=mariadb_server.port + 1)
    config = config_file(tmp_path / "sidecar.yaml", {**settings, "connect-timeout-seconds": 1})
    assert main(["check", "--config", config]) == EXIT_UNAVAILABLE
    assert "store unavailable" in capsys.readouterr().err


def test_ten_concurrent_migrate_processes_on_an_empty_database_one_applies_none_fails(
    tmp_path: Path, mariadb_server: MariaDBServer, mariadb_database: str
) -> None:
    config = config_file(tmp_path / "sidecar.yaml", mariadb_server.settings(mariadb_database))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    processes = [
        subprocess.Popen(
            [*sidecar_command(), "migrate", "--config", config],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for _ in range(10)
    ]
    results = [(p.wait(120), *p.communicate()) for p in processes]
    assert [code for code, _, _ in results] == [0] * 10, [err for _, _, err in results]
    versions = ", ".join(str(m.version) for m in bundled_migrations())
    outputs = sorted(out.strip() for _, out, _ in results)
    assert outputs == [f"applied migrations: {versions}"] + ["schema is up to date"] * 9
    history = mariadb_server.sql("SELECT version FROM hz_sidecar_migrations", mariadb_database)
    assert history == [(str(m.version),) for m in bundled_migrations()]


async def test_a_migration_waits_for_the_lock_of_its_own_database_only(
    mariadb_server: MariaDBServer,
) -> None:
    held, free = (mariadb_server.create_database(f"hz_lock_{i}_{os.getpid()}") for i in (1, 2))
    settings = {"migrate-on-start": False, "migration-lock-seconds": 1, "retry-seconds": 1}
    other = await asyncmy.connect(
        **MySQLProvider(mariadb_server.settings(held)).config.connection_kwargs()
    )
    try:
        async with other.cursor() as cur:
            await cur.execute("SELECT GET_LOCK(%s, 0)", (migration_lock_name(held),))
            assert await cur.fetchall() == ((1,),)
        assert await MySQLProvider({**mariadb_server.settings(free), **settings}).migrate() == [
            str(m.version) for m in bundled_migrations()
        ]
        started = time.monotonic()
        with pytest.raises(StoreTimeoutError, match="migration lock"):
            await MySQLProvider({**mariadb_server.settings(held), **settings}).migrate()
        assert 1.0 <= time.monotonic() - started < 5.0
        assert tables(mariadb_server, held) == []
    finally:
        other.close()
