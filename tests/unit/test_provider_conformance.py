"""The conformance suites (provider and writer) on the embedded providers (memory, SQLite)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.conformance import ProviderConformance, WriterConformance, entry, key
from sidecar.errors import ConfigError, ProviderLoadError, StoreUnavailableError
from sidecar.providers import create_provider, provider_class
from sidecar.providers.base import Provider, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.sqlite import SQLiteProvider


class TestMemoryProvider(ProviderConformance):
    @pytest.fixture
    async def provider(self) -> AsyncIterator[Provider]:
        async with MemoryProvider({}) as provider:
            yield provider


class _ReachableMemory(MemoryProvider):
    """Memory that calls a lost connection transient, as a networked store would."""

    def is_transient(self, exc: BaseException) -> bool:
        return isinstance(exc, ConnectionError)


class TestWriterOverReachableMemory(WriterConformance):
    """Nothing fails transiently in memory itself: the writer's retry contract is shown over
    a memory store whose ``is_transient`` names a failure, so no contract test is skipped."""

    @pytest.fixture
    async def provider(self) -> AsyncIterator[Provider]:
        async with _ReachableMemory({}) as provider:
            yield provider


class TestSQLiteProvider(ProviderConformance, WriterConformance):
    @pytest.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
        provider = SQLiteProvider({"path": str(tmp_path / "store.db"), "synchronous": "NORMAL"})
        async with provider:
            yield provider

    @pytest.fixture
    def transient_error(self) -> BaseException:
        """The database locked by another connection past busy-timeout-ms, as the provider
        raises it: SQLITE_BUSY under its own StoreUnavailableError."""
        busy = sqlite3.OperationalError("database is locked")
        busy.sqlite_errorcode = sqlite3.SQLITE_BUSY
        error = StoreUnavailableError("SQLite store: database is locked")
        error.__cause__ = busy
        return error


async def test_sqlite_data_survives_reopen(tmp_path: Path) -> None:
    path = str(tmp_path / "nested" / "dir" / "store.db")
    first = SQLiteProvider({"path": path})
    await first.open()
    await first.store("Orders_ES", StoreKind.EVENT, [entry("o1", amount=12.5)])
    await first.close()
    await first.close()  # idempotent
    second = SQLiteProvider({"path": path})
    await second.open()
    [loaded] = await second.load("Orders_ES", StoreKind.EVENT, [key("o1")])
    assert json.loads(loaded.value.document) == {"amount": 12.5}
    assert await second.migrate() == []
    await second.close()


async def test_sqlite_rows_are_queryable_json(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    provider = SQLiteProvider({"path": path})
    await provider.open()
    await provider.store("Orders_ES", StoreKind.EVENT, [entry("o1", amount=12.5, id="x")])
    await provider.close()
    with sqlite3.connect(path) as conn:
        row = conn.execute(
            "SELECT map_name, map_key, json_extract(event_data, '$.amount') FROM domain_events"
        ).fetchone()
    assert row == ("Orders_ES", "o1", 12.5)


async def test_sqlite_migrate_applies_once_without_open(tmp_path: Path) -> None:
    from sidecar.providers import sqlite as sqlite_module

    path = str(tmp_path / "m.db")
    every = [str(version) for version, _, _ in sqlite_module._MIGRATIONS]
    assert await SQLiteProvider({"path": path}).migrate() == every
    assert await SQLiteProvider({"path": path}).migrate() == []


async def test_closed_sqlite_provider_is_unavailable_and_refuses_calls(tmp_path: Path) -> None:
    provider = SQLiteProvider({"path": str(tmp_path / "c.db")})
    assert await provider.is_available() is False
    with pytest.raises(StoreUnavailableError):
        await provider.store("X_VIEW", StoreKind.VIEW, [entry("k")])


def test_sqlite_settings_are_validated() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        SQLiteProvider({"path": "x.db", "journal": "wal"})
    with pytest.raises(ConfigError, match="synchronous"):
        SQLiteProvider({"synchronous": "sometimes"})
    with pytest.raises(ConfigError, match="takes no settings"):
        MemoryProvider({"path": "x"})


def test_providers_are_found_by_name_and_unknown_names_are_explained() -> None:
    assert provider_class("memory") is MemoryProvider
    assert isinstance(create_provider("sqlite", {"path": "x.db"}), SQLiteProvider)
    with pytest.raises(ProviderLoadError, match=r"unknown provider 'oracle'.*entry point"):
        provider_class("oracle")


async def test_sqlite_v3_migration_keeps_rows_and_accepts_rows_without_format(
    tmp_path: Path,
) -> None:
    from sidecar.providers import sqlite as sqlite_module

    path = tmp_path / "old.db"
    with sqlite3.connect(path) as conn:
        for version, _, script in sqlite_module._MIGRATIONS[:2]:
            conn.executescript(script)
            conn.execute(f"PRAGMA user_version = {version}")
        conn.execute(
            "INSERT INTO domain_events (map_name, map_key, key_format, event_data, value_format,"
            " aggregate_id) VALUES ('A_ES', 'e1', 'string', '{\"n\": 1}', 'compact', 'agg')"
        )
        conn.execute(
            "INSERT INTO domain_views (view_name, view_key, key_format, view_data, value_format,"
            " last_updated_millis) VALUES ('A_VIEW', 'v1', 'string', '\"x\"', 'string', 5)"
        )
    provider = SQLiteProvider({"path": str(path)})
    await provider.open()
    try:
        [event] = await provider.load("A_ES", StoreKind.EVENT, [key("e1")])  # stays 'string'
        assert (event.key, event.value.document) == (key("e1"), '{"n": 1}')
        assert event.event is None or event.event.aggregate_id in (None, "agg")
        # A String key of a view map is stored in the framework's form now: format ''.
        [view] = await provider.load("A_VIEW", StoreKind.VIEW, [key("v1", "")])
        assert view.value.format == "string"
        with sqlite3.connect(path) as conn:
            conn.execute(
                "INSERT INTO domain_views (view_name, view_key, view_data, last_updated_millis)"
                " VALUES ('A_VIEW', 'legacy', '{}', 0)"
            )
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            indexes = {row[1] for row in conn.execute("PRAGMA index_list(domain_events)")}
        assert version == len(sqlite_module._MIGRATIONS)
        assert {"idx_domain_events_aggregate", "idx_domain_events_type"} <= indexes
        [legacy] = await provider.load("A_VIEW", StoreKind.VIEW, [key("legacy", "")])
        assert (legacy.key.format, legacy.value.format) == ("", "")
    finally:
        await provider.close()
