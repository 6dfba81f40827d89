"""``hz-sidecar check`` on PostgreSQL reads the migration history and changes nothing."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import yaml

from sidecar.cli import EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE, main
from sidecar.providers.postgres import PostgresProvider, bundled_migrations
from tests.pgserver import PostgresServer


@pytest.fixture(autouse=True)
def no_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("HZ_SIDECAR_"):
            monkeypatch.delenv(name)
    yield


def config_file(tmp_path: Path, dsn: str, schema: str) -> str:
    path = tmp_path / "sidecar.yaml"
    settings = {"dsn": dsn, "schema": schema, "connect-timeout-seconds": 2}
    document = {
        "provider": {"name": "postgres", "settings": settings},
        "maps": [{"pattern": "*_VIEW", "kind": "view"}],
    }
    path.write_text(yaml.safe_dump(document))
    return str(path)


def schema_exists(server: PostgresServer, schema: str) -> bool:
    with psycopg.connect(server.dsn()) as conn:
        row = conn.execute("SELECT to_regnamespace(%s) IS NOT NULL", (schema,)).fetchone()
    return bool(row and row[0])


def test_check_lists_every_migration_of_a_new_schema_and_creates_nothing(
    tmp_path: Path,
    postgres_server: PostgresServer,
    fresh_schema: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path, postgres_server.dsn(), fresh_schema)
    assert main(["check", "--config", config]) == EXIT_OK
    versions = ", ".join(str(m.version) for m in bundled_migrations())
    assert f"pending migrations: {versions} (`hz-sidecar migrate` would apply them" in (
        capsys.readouterr().out
    )
    assert not schema_exists(postgres_server, fresh_schema)
    # migrate-on-start is true: only opening the provider, which check does not, migrates.
    assert main(["migrate", "--config", config]) == EXIT_OK
    assert capsys.readouterr().out.startswith("applied migrations: ")
    assert main(["check", "--config", config]) == EXIT_OK
    assert "migrations: none pending" in capsys.readouterr().out


async def test_pending_migrations_name_what_migrate_then_applies(
    postgres_server: PostgresServer, fresh_schema: str
) -> None:
    settings = {"dsn": postgres_server.dsn(), "schema": fresh_schema}
    provider = PostgresProvider(settings)
    await provider.migrate()
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f'DELETE FROM "{fresh_schema}".hz_sidecar_migrations WHERE version = 1')
    assert await PostgresProvider(settings).pending_migrations() == ["1"]


def test_check_refuses_a_migration_changed_after_it_was_applied(
    tmp_path: Path,
    postgres_server: PostgresServer,
    fresh_schema: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    config = config_file(tmp_path, postgres_server.dsn(), fresh_schema)
    assert main(["migrate", "--config", config]) == EXIT_OK
    with psycopg.connect(postgres_server.dsn(), autocommit=True) as conn:
        conn.execute(f"UPDATE \"{fresh_schema}\".hz_sidecar_migrations SET checksum = 'x'")
    assert main(["check", "--config", config]) == EXIT_FAILURE
    assert "checksum mismatch" in capsys.readouterr().err


def test_check_of_an_unreachable_server_exits_3(
    tmp_path: Path, postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"host=127.0.0.1 port={postgres_server.port + 1} user=postgres"
    assert main(["check", "--config", config_file(tmp_path, dead, "public")]) == EXIT_UNAVAILABLE
    assert "store unavailable" in capsys.readouterr().err
