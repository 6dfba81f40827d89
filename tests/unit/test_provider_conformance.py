"""The conformance suite on the embedded providers (memory, SQLite)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sidecar.errors import ConfigError, ProviderLoadError, StoreUnavailableError
from sidecar.providers import create_provider, provider_class
from sidecar.providers.base import Provider, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.providers.sqlite import SQLiteProvider
from tests.conformance import ProviderConformance, entry, key


class TestMemoryProvider(ProviderConformance):
    @pytest.fixture
    async def provider(self) -> AsyncIterator[Provider]:
        provider = MemoryProvider({})
        await provider.open()
        yield provider
        await provider.close()


class TestSQLiteProvider(ProviderConformance):
    @pytest.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
        provider = SQLiteProvider({"path": str(tmp_path / "store.db"), "synchronous": "NORMAL"})
        await provider.open()
        yield provider
        await provider.close()


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
    path = str(tmp_path / "m.db")
    assert await SQLiteProvider({"path": path}).migrate() == ["1", "2"]
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
    with pytest.raises(ProviderLoadError, match=r"unknown provider 'mysql'.*entry point"):
        provider_class("mysql")
