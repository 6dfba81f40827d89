"""The conformance suites (provider and writer) on PostgreSQL: a fresh schema per test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import psycopg
import pytest

from sidecar.conformance import ProviderConformance, WriterConformance
from sidecar.errors import StoreUnavailableError
from sidecar.providers.base import Provider
from sidecar.providers.postgres import PostgresProvider
from tests.pgserver import PostgresServer


class TestPostgresProvider(ProviderConformance, WriterConformance):
    @pytest.fixture
    async def provider(
        self, postgres_server: PostgresServer, fresh_schema: str
    ) -> AsyncIterator[Provider]:
        provider = PostgresProvider({"dsn": postgres_server.dsn(), "schema": fresh_schema})
        async with provider:
            yield provider

    @pytest.fixture
    def transient_error(self) -> BaseException:
        """A serialization failure (SQLSTATE 40001) as the provider raises it: under its
        own StoreUnavailableError."""
        error = StoreUnavailableError("postgres store failed: could not serialize access")
        error.__cause__ = psycopg.errors.SerializationFailure("could not serialize access")
        return error
