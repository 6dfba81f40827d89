"""The compiled helper's binary arrays (``sidecar.providers._pgarrays``) against psycopg's own.

The PostgreSQL provider sends a batch's columns as ``text[]``, ``bytea[]`` and
``int8[]`` parameters. Where the helper is built it writes them in PostgreSQL's
binary array form itself; the server must read exactly what it reads from psycopg's
list dumper, for every value (generated text, bytes and integers, NULLs, empty
arrays), and the helper must step aside (None) for what psycopg has to explain: a
NUL in text, an integer past int8, a value of another type. Then the provider's rows
are compared with the helper on and off (``compiled-arrays``).
"""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.providers import postgres as pg
from sidecar.providers.base import EventColumns, StoredKey, StoredValue, StoreEntry, StoreKind
from tests.prerequisites import missing

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", codec="utf-8"), max_size=40)
INT8 = st.integers(-(2**63), 2**63 - 1)


@pytest.fixture(autouse=True)
def _built() -> None:
    if pg._pgarrays is None:
        missing(
            "the PostgreSQL provider's compiled helper (sidecar.providers._pgarrays) is not built",
            "install gcc and the Python headers (Debian: apt-get install gcc python3-dev), "
            "then `make install`",
        )


@pytest.fixture
def conn(fresh_database: str) -> Any:
    with psycopg.connect(fresh_database, autocommit=True) as connection:
        for wrapper, dumper in pg._ARRAY_DUMPERS:
            connection.adapters.register_dumper(wrapper, dumper)
        yield connection


def _read(conn: Any, cast: str, parameter: object) -> Any:
    """The array as the server read it: its elements, and its dimensions (lower bound)."""
    row = conn.execute(f"SELECT %b::{cast}, array_dims(%b::{cast})", (parameter, parameter))
    return tuple(row.fetchone())


@SETTINGS
@given(st.lists(st.none() | TEXT, max_size=30))
def test_text_arrays_read_as_psycopg_sends_them(conn: Any, values: list[str | None]) -> None:
    data = pg._pgarrays.text_array(values)
    assert data is not None
    assert _read(conn, "text[]", pg._TextArray(data)) == _read(conn, "text[]", values)
    assert _read(conn, "text[]", values)[0] == values


@SETTINGS
@given(st.lists(st.none() | st.binary(max_size=40), max_size=30))
def test_bytea_arrays_read_as_psycopg_sends_them(conn: Any, values: list[bytes | None]) -> None:
    data = pg._pgarrays.bytea_array(values)
    assert data is not None
    assert _read(conn, "bytea[]", pg._ByteaArray(data)) == _read(conn, "bytea[]", values)
    assert _read(conn, "bytea[]", values)[0] == values


@SETTINGS
@given(st.lists(st.none() | INT8, max_size=30))
def test_int8_arrays_read_as_psycopg_sends_them(conn: Any, values: list[int | None]) -> None:
    data = pg._pgarrays.int8_array(values)
    assert data is not None
    assert _read(conn, "int8[]", pg._Int8Array(data)) == _read(conn, "int8[]", pg._int8s(values))
    assert _read(conn, "int8[]", values)[0] == values


@pytest.mark.parametrize(
    ("function", "values"),
    [
        ("text_array", ["ok", "nul\x00inside"]),
        ("text_array", ["ok", b"bytes"]),
        ("text_array", ["ok", 1]),
        ("bytea_array", [b"ok", "text"]),
        ("bytea_array", [bytearray(b"not bytes")]),
        ("int8_array", [1, 2**63]),
        ("int8_array", [1, -(2**63) - 1]),
        ("int8_array", [True]),
        ("int8_array", [1.5]),
    ],
)
def test_values_psycopg_must_explain_are_left_to_it(function: str, values: list[object]) -> None:
    assert getattr(pg._pgarrays, function)(values) is None


def _entries(kind: StoreKind) -> list[StoreEntry]:
    out = []
    for n in range(40):
        event = EventColumns(f"agg-{n % 3}", n, "Placed", 1_700_000_000_000 + n, None)
        out.append(
            StoreEntry(
                key=StoredKey(
                    f"k-é-{n}", "string" if n % 2 else "", b"\x00\x01" if n % 5 else None
                ),
                value=StoredValue(
                    "compact",
                    json.dumps({"n": n, "text": 'q"é'}),
                    None if n % 4 == 0 else "Order",
                    None if n % 4 == 0 else -(2**62) + n,
                ),
                event=event if kind is StoreKind.EVENT else None,
            )
        )
    return out


_COLUMNS = {
    StoreKind.EVENT: (
        "domain_events",
        "map_name",
        "map_key, key_format, key_data, value_format, type_name, schema_id, event_data,"
        " exact_data, aggregate_id, sequence, event_type, timestamp_millis, correlation_id",
    ),
    StoreKind.VIEW: (
        "domain_views",
        "view_name",
        "view_key, key_format, key_data, value_format, type_name, schema_id, view_data, exact_data",
    ),
}


@pytest.mark.parametrize("kind", [StoreKind.EVENT, StoreKind.VIEW])
async def test_the_provider_writes_the_same_rows_with_the_helper_or_without(
    fresh_database: str, kind: StoreKind
) -> None:
    table, map_column, columns = _COLUMNS[kind]
    rows = {}
    for compiled in (True, False):
        map_name = f"with_{compiled}"
        async with pg.PostgresProvider(
            {"dsn": fresh_database, "compiled-arrays": compiled}
        ) as provider:
            await provider.store(map_name, kind, _entries(kind))
            loaded = await provider.load(map_name, kind, [e.key for e in _entries(kind)])
        assert sorted(e.key.text for e in loaded) == sorted(e.key.text for e in _entries(kind))
        with psycopg.connect(fresh_database) as conn:
            rows[compiled] = conn.execute(
                f"SELECT {columns} FROM {table} WHERE {map_column} = %s ORDER BY 1, 2",
                (map_name,),
            ).fetchall()
    assert rows[True] == rows[False]
    assert len(rows[True]) == 40
