"""Fixtures shared by every test directory."""

from tests.pgserver import fresh_database, fresh_schema, postgres_control, postgres_server

__all__ = ["fresh_database", "fresh_schema", "postgres_control", "postgres_server"]
