"""Fixtures shared by every test directory, the markers every test gets, and how a
missing prerequisite (jar, JDK, openssl, PostgreSQL) is treated (``tests/prerequisites.py``).

Markers (select with ``-m``; ``make test-fast`` runs ``not e2e and not postgres``):

* ``e2e``: starts a real Hazelcast member with the shim (JDK and the built jars);
* ``postgres``: needs a real PostgreSQL server (started by the fixtures);
* ``mariadb``: needs a real MariaDB server (started by the fixtures).

They are applied here, from where a test lives and what it uses, so that no test
file has to remember them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

# The provider conformance suite lives in the package: its assertions are rewritten too,
# so a failure shows the values compared (it must be registered before it is imported).
pytest.register_assert_rewrite("sidecar.conformance")

from tests import prerequisites  # noqa: E402
from tests.mariadbserver import mariadb_database, mariadb_server  # noqa: E402
from tests.pgserver import (  # noqa: E402
    fresh_database,
    fresh_schema,
    postgres_control,
    postgres_server,
)

__all__ = [
    "fresh_database",
    "fresh_schema",
    "mariadb_database",
    "mariadb_server",
    "postgres_control",
    "postgres_server",
]

TESTS = Path(__file__).resolve().parent

#: Every test under a directory gets its markers.
DIRECTORY_MARKERS: dict[str, tuple[str, ...]] = {
    "e2e": ("e2e",),
    "faults": ("e2e", "postgres"),
    "integration": ("postgres",),
}
#: A test that uses one of these fixtures, even indirectly, is marked ``postgres``. (A
#: fixture that starts the server only for one of its parameters marks that parameter:
#: :data:`tests.pgserver.SQLITE_AND_POSTGRES`.)
POSTGRES_FIXTURES = frozenset({"postgres_server"})
#: Likewise, a test that uses one of these is marked ``mariadb``.
MARIADB_FIXTURES = frozenset({"mariadb_server"})


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        prerequisites.STRICT_OPTION,
        action="store_true",
        help="fail, never skip, a test whose prerequisite (a built jar, a JDK, openssl, "
        "PostgreSQL, kustomize) is missing; implied by CI=true",
    )


def pytest_configure(config: pytest.Config) -> None:
    prerequisites.set_strict(bool(config.getoption(prerequisites.STRICT_OPTION)))


def markers_of(item: pytest.Item) -> set[str]:
    """The markers ``item`` gets from its directory and from the fixtures it uses."""
    names: set[str] = set()
    path = Path(item.path).resolve()
    if TESTS in path.parents:
        top = path.relative_to(TESTS).parts[0]
        names.update(DIRECTORY_MARKERS.get(top, ()))
    fixtures = set(getattr(item, "fixturenames", ()))
    if POSTGRES_FIXTURES & fixtures:
        names.add("postgres")
    if MARIADB_FIXTURES & fixtures:
        names.add("mariadb")
    return names


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        present = {mark.name for mark in item.iter_markers()}
        for name in sorted(markers_of(item) - present):
            item.add_marker(name)
