"""A real Hazelcast member persisting through the shim and a real `hz-sidecar run` on MariaDB.

The member tests of ``test_member.py`` (write-behind exactly once, EAGER and LAZY cold
starts, Compact keys, deletes, the sidecar going away) run here unchanged, against a
deployment whose sidecar stores in MariaDB through the MySQL provider: this module's
``deployment_factory`` stands in for the SQLite/PostgreSQL one of ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import asyncmy
import pytest

from sidecar.providers.mysql import MySQLSettings
from tests.e2e import test_member as member_tests
from tests.e2e.conftest import Deployment, require_jars
from tests.mariadbserver import MariaDBServer
from tests.system.conftest import SidecarProcess, sqlite_config

pytestmark = [pytest.mark.e2e, pytest.mark.mariadb]


class MariaDBDeployment(Deployment):
    """One sidecar on MariaDB (the ``mysql`` provider) and one member."""

    def __init__(
        self, workdir: Path, maps: Callable[[str], dict[str, Any]], settings: dict[str, Any]
    ) -> None:
        super().__init__(workdir, maps)
        self.settings = settings
        config = sqlite_config(workdir, self.address)
        config["logging"] = {"level": "DEBUG"}
        config["provider"] = {"name": "mysql", "settings": settings}
        self.sidecar = SidecarProcess(workdir, config)  # in place of the SQLite one

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run SQL on MariaDB: ``?`` placeholders, ``json(col, 'field')`` for a field."""
        statement = re.sub(r"json\((\w+), '(\w+)'\)", r"JSON_VALUE(\1, '$.\2')", statement)
        kwargs = MySQLSettings.from_mapping(self.settings).connection_kwargs()

        async def run() -> list[tuple[Any, ...]]:
            conn = await asyncmy.connect(**kwargs)
            try:
                async with conn.cursor() as cur:
                    await cur.execute(statement.replace("?", "%s"), params)
                    return [tuple(row) for row in await cur.fetchall()]
            finally:
                conn.close()

        return asyncio.run(run())


@pytest.fixture
def deployment_factory(
    tmp_path: Path, mariadb_server: MariaDBServer, mariadb_database: str
) -> Iterator[Callable[..., Deployment]]:
    """Makes deployments on the session's MariaDB server (a fresh database each test)."""
    require_jars()
    made: list[Deployment] = []

    def make(maps: Callable[[str], dict[str, Any]]) -> Deployment:
        deployment = MariaDBDeployment(tmp_path, maps, mariadb_server.settings(mariadb_database))
        made.append(deployment)
        deployment.sidecar.start()
        deployment.start_member()
        return deployment

    yield make
    for deployment in made:
        deployment.close()


test_write_behind_event_map_persists_every_put_exactly_once = (
    member_tests.test_write_behind_event_map_persists_every_put_exactly_once
)
test_write_through_view_map_row_exists_when_put_returns = (
    member_tests.test_write_through_view_map_row_exists_when_put_returns
)
test_cold_start_reloads_views_eagerly_and_events_lazily = (
    member_tests.test_cold_start_reloads_views_eagerly_and_events_lazily
)
test_cold_start_with_compact_keys_registers_their_schemas = (
    member_tests.test_cold_start_with_compact_keys_registers_their_schemas
)
test_sidecar_down_during_write_behind_loses_nothing = (
    member_tests.test_sidecar_down_during_write_behind_loses_nothing
)
test_delete_and_delete_all_remove_rows = member_tests.test_delete_and_delete_all_remove_rows
