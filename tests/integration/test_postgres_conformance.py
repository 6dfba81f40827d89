"""The provider conformance suite on PostgreSQL: a fresh schema of one server per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sidecar.providers.base import Provider
from sidecar.providers.postgres import PostgresProvider
from tests.conformance import ProviderConformance
from tests.pgserver import PostgresServer


class TestPostgresProvider(ProviderConformance):
    @pytest.fixture
    async def provider(
        self, postgres_server: PostgresServer, fresh_schema: str
    ) -> AsyncIterator[Provider]:
        provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
        await provider.open()
        yield provider
        await provider.close()
