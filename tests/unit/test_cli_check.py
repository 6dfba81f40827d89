"""``hz-sidecar check`` changes nothing: it lists what ``migrate`` would apply instead."""

from __future__ import annotations

import hashlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import EXIT_FAILURE, EXIT_OK, main
from sidecar.providers.sqlite import SQLiteProvider


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("HZ_SIDECAR_"):
            monkeypatch.delenv(name)
    yield


def config_file(tmp_path: Path, provider: dict[str, Any]) -> str:
    path = tmp_path / "sidecar.yaml"
    document = {"provider": provider, "maps": [{"pattern": "*_VIEW", "kind": "view"}]}
    path.write_text(yaml.safe_dump(document))
    return str(path)


def sqlite_file(tmp_path: Path, db: Path) -> str:
    return config_file(tmp_path, {"name": "sqlite", "settings": {"path": str(db)}})


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files(directory: Path) -> dict[str, str]:
    """Every file of ``directory`` → its digest."""
    return {path.name: digest(path) for path in directory.iterdir()}


def test_check_of_a_new_sqlite_store_creates_nothing_and_lists_every_migration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "data" / "store.db"
    assert main(["check", "--config", sqlite_file(tmp_path, db)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "configuration OK; provider sqlite available" in out
    assert "pending migrations: 1, 2, 3" in out
    assert "`hz-sidecar migrate` would apply them; check applied nothing" in out
    assert not db.parent.exists()


async def test_check_lists_pending_migrations_of_an_old_store_and_leaves_it_as_it_was(
    tmp_path: Path,
) -> None:
    db = tmp_path / "store.db"
    versions = await SQLiteProvider({"path": str(db)}).migrate()
    assert len(versions) >= 3
    with sqlite3.connect(db) as conn:  # as if the last migrations came with a newer version
        conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = files(tmp_path)
    provider = SQLiteProvider({"path": str(db)})
    assert await provider.pending_migrations() == versions[2:]
    assert files(tmp_path) == before
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA user_version").fetchone() == (2,)
    conn.close()


def test_check_after_migrate_says_the_schema_is_up_to_date(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = sqlite_file(tmp_path, tmp_path / "store.db")
    assert main(["migrate", "--config", config]) == EXIT_OK
    assert capsys.readouterr().out.startswith("applied migrations: 1, 2, 3")
    assert main(["check", "--config", config]) == EXIT_OK
    assert "migrations: none pending, the schema is up to date" in capsys.readouterr().out


def test_check_of_a_file_that_is_no_database_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "store.db"
    db.write_bytes(b"not a database, but a file of 100 bytes. " * 3)
    before = digest(db)
    assert main(["check", "--config", sqlite_file(tmp_path, db)]) == EXIT_FAILURE
    assert "file is not a database" in capsys.readouterr().err
    assert digest(db) == before


def test_check_of_a_provider_without_migrations_probes_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = config_file(tmp_path, {"name": "memory", "settings": {}})
    assert main(["check", "--config", config]) == EXIT_OK
    out = capsys.readouterr().out
    assert "provider memory available" in out
    assert "migrations: none (MemoryProvider has no migrations)" in out
