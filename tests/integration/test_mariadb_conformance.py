"""The conformance suites (provider and writer) on MariaDB: a fresh database per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from asyncmy.errors import OperationalError

from sidecar.conformance import ProviderConformance, WriterConformance
from sidecar.errors import StoreUnavailableError
from sidecar.providers.base import Provider
from sidecar.providers.mysql import MySQLProvider
from tests.mariadbserver import MariaDBServer


class TestMariaDBProvider(ProviderConformance, WriterConformance):
    @pytest.fixture
    async def provider(
        self, mariadb_server: MariaDBServer, mariadb_database: str
    ) -> AsyncIterator[Provider]:
        async with MySQLProvider(mariadb_server.settings(mariadb_database)) as provider:
            yield provider

    @pytest.fixture
    def transient_error(self) -> BaseException:
        """A deadlock (1213) as the provider raises it: under its own StoreUnavailableError."""
        error = StoreUnavailableError("mysql store failed: Deadlock found")
        error.__cause__ = OperationalError(1213, "Deadlock found when trying to get lock")
        return error
