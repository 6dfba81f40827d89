"""The PostgreSQL provider: the reference's ``domain_events`` / ``domain_views`` tables.

Shared by every sidecar of a cluster. Built on psycopg 3 with an async
connection pool; every store, load and delete is one statement (one round trip)
whatever the number of entries: arrays travel as *binary* parameters (``%b``)
into ``unnest`` / ``= ANY``, because dumping a list of JSON strings as a text
array costs more client CPU than the server spends on the whole upsert
(``reference/measured-ceilings.md``). A call for a single entry or key, the
common case of event maps (Hazelcast calls ``store`` once per entry), takes a
statement with scalar parameters instead, built once per table so that psycopg
prepares it on the server after a few executions (its ``prepare_threshold``):
the same row, the same result, without dumping one-element arrays.

Values go into JSONB columns so the database stays readable
(``SELECT event_data->>'amount' FROM domain_events``). JSONB does not keep the
text it was given: object keys come back sorted by length then bytes, numbers
in PostgreSQL ``numeric`` form (``1e300`` as 301 digits, ``-0.0`` as ``0.0``)
and duplicate keys collapse (https://www.postgresql.org/docs/current/datatype-json.html).
``load`` therefore returns an equivalent document, not the same text; the
codec rebuilds values by schema field name and kind, for which that is exact.
JSONB also refuses ``\\u0000`` in strings, and text columns refuse NUL.

Schema changes are versioned SQL files in ``postgres_migrations/`` applied by
:meth:`PostgresProvider.migrate` in one transaction under an advisory lock, so
that the sidecars of every member starting together migrate once.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import logging
import math
import re
import time
import weakref
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import psycopg
import psycopg_pool
from psycopg import sql
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.pq import Format
from psycopg.rows import TupleRow
from psycopg.types.numeric import Int8

from sidecar.deadline import call_deadline, remaining
from sidecar.errors import (
    ConfigError,
    SidecarError,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    UnknownSchemaError,
)
from sidecar.providers.base import (
    DeadLetter,
    EventColumns,
    Provider,
    SchemaRecord,
    StoredKey,
    StoredValue,
    StoreEntry,
    StoreKind,
    UnreadableRow,
    raised_by,
)

try:  # the compiled helper, built with the package where a C compiler exists (setup.py)
    import sidecar.providers._pgarrays as _pgarrays  # type: ignore[import-not-found, unused-ignore]
except ImportError as exc:
    _pgarrays = None
    _PGARRAYS_MISSING = str(exc)


def arrays_status() -> str:
    """One line for ``make install``: how a batch's array parameters are written."""
    if _pgarrays is not None:
        return "postgres arrays: compiled helper (sidecar.providers._pgarrays)"
    return f"postgres arrays: psycopg's list dumper (the helper is not built: {_PGARRAYS_MISSING})"


logger = logging.getLogger(__name__)

T = TypeVar("T")
Connection = psycopg.AsyncConnection[TupleRow]

MIGRATIONS_PACKAGE: Final = "sidecar.providers"
MIGRATIONS_DIRECTORY: Final = "postgres_migrations"
_MIGRATION_FILE = re.compile(r"^V(?P<version>[0-9]+)__(?P<description>[A-Za-z0-9_]+)\.sql$")
#: First key of the two-key advisory lock that serializes migrations; the second
#: is a hash of the PostgreSQL schema, so different schemas migrate independently.
_MIGRATION_LOCK_CLASS: Final = 0x687A5344  # "hzSD"
_HEALTH_TIMEOUT_SECONDS: Final = 2.0
_APPLICATION_NAME: Final = "hz-sidecar"
#: A pooled connection idle longer than this is checked (one round trip) before use.
_CHECK_IDLE_SECONDS: Final = 2.0
_MASK: Final = "********"
#: Keys of the provider block that select the provider rather than set it.
_SELECTORS: Final = frozenset({"type", "name"})


# -- Settings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PostgresSettings:
    """The provider block of the configuration, validated.

    Attributes:
        dsn: libpq connection string or URL; empty: the standard ``PG*``
            environment variables (and ``PGPASSFILE``) alone decide.
        pool_min_size, pool_max_size: connections kept open / at most.
        connect_timeout_seconds: libpq ``connect_timeout``, and how long a call
            waits for a pooled connection when it has no deadline of its own.
        statement_timeout_ms: the server's ``statement_timeout`` (None: the server's default).
        migrate_on_start: ``open`` applies pending migrations.
        load_all_keys_batch_size: the largest batch ``load_all_keys`` fetches.
        schema: the PostgreSQL schema holding the tables.
        retry_seconds: how long a call without a deadline retries transient failures.
        prepared_statements: let psycopg prepare the statements it runs often (its
            ``prepare_threshold``); off for a pooler that cannot keep them, such as
            PgBouncer before 1.21 in transaction mode.
        compiled_arrays: write the array parameters of a batch with the compiled helper
            (:mod:`sidecar.providers._pgarrays`) when it is built, rather than with
            psycopg's list dumper; the same rows either way.
    """

    dsn: str = ""
    pool_min_size: int = 1
    pool_max_size: int = 8
    connect_timeout_seconds: float = 10.0
    statement_timeout_ms: int | None = None
    migrate_on_start: bool = True
    load_all_keys_batch_size: int = 1000
    schema: str = "public"
    retry_seconds: float = 10.0
    prepared_statements: bool = True
    compiled_arrays: bool = True

    def connection_kwargs(self) -> dict[str, Any]:
        """What every connection of the provider is opened with (pool, migrations, check)."""
        kwargs: dict[str, Any] = {
            # A single statement is its own transaction; several use conn.transaction().
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.connect_timeout_seconds)),
        }
        if "application_name" not in conninfo_to_dict(self.dsn):
            kwargs["application_name"] = _APPLICATION_NAME
        if not self.prepared_statements:
            kwargs["prepare_threshold"] = None
        return kwargs

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> PostgresSettings:
        """Validate ``settings``; raise :class:`ConfigError` naming the offending key."""
        known = {
            "dsn",
            "pool-min-size",
            "pool-max-size",
            "connect-timeout-seconds",
            "statement-timeout-ms",
            "migrate-on-start",
            "load-all-keys-batch-size",
            "schema",
            "retry-seconds",
            "prepared-statements",
            "compiled-arrays",
        }
        unknown = sorted(set(settings) - known - _SELECTORS)
        if unknown:
            raise ConfigError(
                f"postgres provider: unknown setting {unknown[0]!r} "
                f"(known: {', '.join(sorted(known))})"
            )
        defaults = cls()
        dsn = settings.get("dsn", defaults.dsn)
        if dsn is None:
            dsn = ""
        if not isinstance(dsn, str):
            raise ConfigError("postgres provider: 'dsn' must be a string")
        try:
            conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            # The libpq message may quote the DSN, password included: not repeated here.
            raise ConfigError(
                "postgres provider: 'dsn' is not a valid libpq connection string or URL"
            ) from None
        parsed = cls(
            dsn=dsn,
            pool_min_size=_int(settings, "pool-min-size", defaults.pool_min_size, minimum=0),
            pool_max_size=_int(settings, "pool-max-size", defaults.pool_max_size, minimum=1),
            connect_timeout_seconds=_seconds(
                settings, "connect-timeout-seconds", defaults.connect_timeout_seconds
            ),
            statement_timeout_ms=(
                None
                if settings.get("statement-timeout-ms") is None
                else _int(settings, "statement-timeout-ms", 0, minimum=1)
            ),
            migrate_on_start=_bool(settings, "migrate-on-start", defaults.migrate_on_start),
            load_all_keys_batch_size=_int(
                settings, "load-all-keys-batch-size", defaults.load_all_keys_batch_size, minimum=1
            ),
            schema=_schema_name(settings.get("schema", defaults.schema)),
            retry_seconds=_seconds(settings, "retry-seconds", defaults.retry_seconds),
            prepared_statements=_bool(
                settings, "prepared-statements", defaults.prepared_statements
            ),
            compiled_arrays=_bool(settings, "compiled-arrays", defaults.compiled_arrays),
        )
        if parsed.pool_min_size > parsed.pool_max_size:
            raise ConfigError(
                f"postgres provider: 'pool-min-size' ({parsed.pool_min_size}) exceeds "
                f"'pool-max-size' ({parsed.pool_max_size})"
            )
        return parsed


def _int(settings: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # from an environment variable
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"postgres provider: {key!r} must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(f"postgres provider: {key!r} must be at least {minimum}, not {value}")
    return value


def _seconds(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"postgres provider: {key!r} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"postgres provider: {key!r} must be positive, not {value!r}")
    return float(value)


def _bool(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"postgres provider: {key!r} must be true or false, not {value!r}")
    return value


def _schema_name(value: object) -> str:
    # https://www.postgresql.org/docs/current/sql-syntax-lexical.html#SQL-SYNTAX-IDENTIFIERS:
    # longer names are truncated to 63 bytes, which would silently pick another schema.
    if not isinstance(value, str) or not value or len(value.encode()) > 63 or "\x00" in value:
        raise ConfigError(
            f"postgres provider: 'schema' must be a PostgreSQL schema name, not {value!r}"
        )
    return value


def masked_dsn(dsn: str) -> str:
    """``dsn`` fit for a log: the password, if any, replaced by asterisks."""
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<invalid dsn>"
    if params.get("password"):
        params["password"] = _MASK
    return make_conninfo("", **params) or "<PG* environment>"


# -- Migrations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file of ``postgres_migrations/``."""

    version: int
    description: str
    script: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in the package, in version order."""
    directory = importlib.resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_DIRECTORY)
    migrations: list[Migration] = []
    for resource in directory.iterdir():
        match = _MIGRATION_FILE.match(resource.name)
        if match is None:
            continue
        migrations.append(
            Migration(
                version=int(match["version"]),
                description=match["description"].replace("_", " "),
                script=resource.read_text(encoding="utf-8"),
            )
        )
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise StoreError(f"postgres migrations: duplicate version among {versions}")
    return migrations


# -- Errors ----------------------------------------------------------------------


#: SQLSTATEs worth a second attempt (https://www.postgresql.org/docs/current/errcodes-appendix.html).
TRANSIENT_SQLSTATES: Final[frozenset[str]] = frozenset(
    {
        "40001",  # serialization_failure
        "40P01",  # deadlock_detected
        "57P01",  # admin_shutdown: the server is stopping (smart/fast shutdown)
        "57P02",  # crash_shutdown: another backend crashed, the server restarts
        "57P03",  # cannot_connect_now: the server is starting up or shutting down
        "53300",  # too_many_connections
        # read_only_sql_transaction: the server stopped accepting writes (a primary
        # demoted, or fenced read-only, after a failover); the pool is drained so that
        # the next attempt connects again, to whichever host accepts writes.
        "25006",
    }
)
#: SQLSTATE class 08: connection exceptions.
_CONNECTION_EXCEPTION_CLASS: Final = "08"


def transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a psycopg failure that a later attempt may not meet.

    Only failures that a second attempt can fix: a lost connection, a server that
    is shutting down or starting up, too many connections, a server that became
    read-only (a new connection finds the new primary), and the two conflicts
    PostgreSQL tells the client to retry (serialization failure, deadlock;
    https://www.postgresql.org/docs/current/mvcc-serialization-failure-handling.html).
    Everything else (a constraint violation, bad JSON, a statement timeout) fails at
    once: retrying would only repeat it, and a canceled statement already used the
    time it was given.
    """
    if not isinstance(exc, psycopg.Error):
        return False
    if isinstance(exc, psycopg_pool.PoolClosed):
        return False  # the provider is closing: nothing will come back
    sqlstate = exc.sqlstate
    if sqlstate is None:
        # Raised by the client, not the server: the connection broke (or the
        # pool found none in time); only OperationalError means that.
        return isinstance(exc, psycopg.OperationalError)
    return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith(_CONNECTION_EXCEPTION_CLASS)


def store_error(exc: BaseException, *, operation: str, map_name: str | None) -> SidecarError:
    """The sidecar error for a failure of ``operation`` on ``map_name``."""
    if isinstance(exc, SidecarError):
        return exc
    cause = f"{type(exc).__name__}: {exc}".strip()
    sqlstate = getattr(exc, "sqlstate", None)
    if sqlstate:
        cause = f"{cause} (SQLSTATE {sqlstate})"
    message = f"postgres {operation} failed: {cause}"
    if isinstance(exc, psycopg.errors.QueryCanceled):
        return StoreTimeoutError(message, map_name=map_name)
    if transient_error(exc) or isinstance(exc, psycopg.OperationalError):
        return StoreUnavailableError(message, map_name=map_name)
    return StoreError(message, map_name=map_name)


# -- The provider ----------------------------------------------------------------


#: The reference's event columns, as a load selects them after the key and value columns.
_EVENT_COLUMNS = ", aggregate_id, sequence, event_type, timestamp_millis, correlation_id"


@dataclass(frozen=True, slots=True)
class _Table:
    """Where one store kind lives and what its columns are called."""

    name: sql.Identifier
    map_column: sql.Identifier
    key_column: sql.Identifier
    data_column: sql.Identifier


_COLUMNS = {
    StoreKind.EVENT: ("domain_events", "map_name", "map_key", "event_data"),
    StoreKind.VIEW: ("domain_views", "view_name", "view_key", "view_data"),
}

#: The column lists of a store, and what a view's upsert sets: shared by the array
#: form and the single-row form so that both write the same row.
_EVENT_INSERT_COLUMNS: Final = (
    "map_name, map_key, key_format, key_data, value_format, type_name, schema_id,"
    " event_data, exact_data, aggregate_id, sequence, event_type, timestamp_millis,"
    " correlation_id"
)
_VIEW_INSERT_COLUMNS: Final = (
    "view_name, view_key, key_format, key_data, value_format, type_name, schema_id,"
    " view_data, exact_data, last_updated_millis"
)
_EVENT_ON_CONFLICT: Final = " ON CONFLICT (map_name, map_key, key_format) DO NOTHING"
_VIEW_ON_CONFLICT: Final = (
    " ON CONFLICT (view_name, view_key, key_format) DO UPDATE SET"
    " key_format = excluded.key_format, key_data = excluded.key_data,"
    " value_format = excluded.value_format,"
    " type_name = excluded.type_name, schema_id = excluded.schema_id,"
    " view_data = excluded.view_data, exact_data = excluded.exact_data,"
    " last_updated_millis = excluded.last_updated_millis, updated_at = now()"
)
#: The single-row statements, by name: their text never changes (see _single_row_sql).
_STORE_ONE: Final = "store"
_LOAD_ONE: Final = "load"
_DELETE_ONE: Final = "delete"
_INT8_MIN: Final = -(2**63)
_INT8_MAX: Final = 2**63 - 1
_NO_EVENT: Final = EventColumns()


def _load_columns(kind: StoreKind) -> str:
    """What a load selects (``{key}`` and ``{data}`` to fill): the row :func:`_entry` reads."""
    return (
        "{key}, key_format, key_data, value_format, COALESCE(exact_data, {data}::text),"
        " type_name, schema_id" + (_EVENT_COLUMNS if kind is StoreKind.EVENT else "")
    )


def _single_row_sql(statement: str, kind: StoreKind, table: _Table) -> sql.Composed:
    """The statement of one entry or key: the array form's, with scalar parameters.

    A store writes what the array form writes (the same columns, ``NULLIF`` and
    ``::jsonb``, the same ON CONFLICT); its parameters come in the array form's
    order (:meth:`PostgresProvider._store_one`). Every parameter is typed in the
    text, so that a NULL (sent untyped) leaves the plan as it is.
    """
    if statement == _STORE_ONE:
        values = (
            "%b::text, %b::text, %b::text, %b::bytea, NULLIF(%b::text, ''), %b::text,"
            " %b::int8, %b::text::jsonb, %b::text"
        )
        if kind is StoreKind.EVENT:
            columns, on_conflict = _EVENT_INSERT_COLUMNS, _EVENT_ON_CONFLICT
            values += ", %b::text, %b::int8, %b::text, %b::int8, %b::text"
        else:
            columns, on_conflict = _VIEW_INSERT_COLUMNS, _VIEW_ON_CONFLICT
            values += ", %b::int8"
        text = f"INSERT INTO {{table}} AS t ({columns}) VALUES ({values}){on_conflict}"
    elif statement == _LOAD_ONE:
        text = (
            "SELECT " + _load_columns(kind) + " FROM {table}"
            " WHERE {map} = %b::text AND {key} = %b::text AND key_format = %b::text"
        )
    elif statement == _DELETE_ONE:
        text = (
            "DELETE FROM {table}"
            " WHERE {map} = %b::text AND {key} = %b::text AND key_format = %b::text"
        )
    else:
        raise ValueError(f"no single-row statement {statement!r}")
    return sql.SQL(text).format(
        table=table.name, map=table.map_column, key=table.key_column, data=table.data_column
    )


class PostgresProvider(Provider):
    """Events and views in PostgreSQL, shared by every sidecar of a cluster.

    Settings (the provider block of the configuration): ``dsn``,
    ``pool-min-size`` (1), ``pool-max-size`` (8), ``connect-timeout-seconds``
    (10), ``statement-timeout-ms`` (server default), ``migrate-on-start``
    (true), ``load-all-keys-batch-size`` (1000), ``schema`` (``public``),
    ``retry-seconds`` (10: the retry budget of a call without a deadline).
    """

    name = "postgres"
    shared = True
    supports_write_order = True
    #: A store of one entry, and a load or delete of one key, take a statement with
    #: scalar parameters (False: the array form of any size; for measurements).
    single_row_statements: bool = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.config = PostgresSettings.from_mapping(settings)
        self.retry_budget_seconds = self.config.retry_seconds
        self._pool: psycopg_pool.AsyncConnectionPool[Connection] | None = None
        #: When each pooled connection was last given back (for the idle check).
        self._returned_at: weakref.WeakKeyDictionary[Connection, float] = (
            weakref.WeakKeyDictionary()
        )
        #: ``host:port`` of the server the latest new connection reached (see _note_server).
        self._server: str | None = None
        schema = self.config.schema
        self._tables = {
            kind: _Table(
                sql.Identifier(schema, table),
                sql.Identifier(map_column),
                sql.Identifier(key_column),
                sql.Identifier(data_column),
            )
            for kind, (table, map_column, key_column, data_column) in _COLUMNS.items()
        }
        self._schemas_table = sql.Identifier(schema, "hz_sidecar_schemas")
        self._dead_letters_table = sql.Identifier(schema, "hz_sidecar_dead_letters")
        self._unreadable_table = sql.Identifier(schema, "hz_sidecar_unreadable_rows")
        self._history_table = sql.Identifier(schema, "hz_sidecar_migrations")
        self._single_row = {
            (statement, kind): _single_row_sql(statement, kind, self._tables[kind])
            for statement in (_STORE_ONE, _LOAD_ONE, _DELETE_ONE)
            for kind in StoreKind
        }
        #: The single-row statements as the connections' encoding renders them, made
        #: once: psycopg then finds the same text each time, with no composing.
        self._single_row_text: dict[tuple[str, StoreKind], bytes] = {}

    def __repr__(self) -> str:
        return (
            f"PostgresProvider(dsn={masked_dsn(self.config.dsn)!r}, schema={self.config.schema!r})"
        )

    # -- Lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Open the connection pool, then migrate if ``migrate-on-start``. Idempotent.

        The pool connects in the background: a database that is down at start
        makes ``is_available`` false (and calls fail with UNAVAILABLE) until it
        answers, except that ``migrate-on-start`` needs it within the retry budget.
        """
        if self._pool is not None:
            return
        config = self.config
        kwargs = config.connection_kwargs()
        pool: psycopg_pool.AsyncConnectionPool[Connection] = psycopg_pool.AsyncConnectionPool(
            config.dsn,
            kwargs=kwargs,
            min_size=config.pool_min_size,
            max_size=config.pool_max_size,
            open=False,
            configure=self._configure_connection,
            check=self._check_connection,
            reset=self._connection_returned,
            timeout=config.connect_timeout_seconds,
            # The pool retries a failed connection with a doubling delay until
            # reconnect_timeout, then gives up and lets the next request start
            # afresh: a short timeout bounds how long a restarted server goes
            # unnoticed (with the default five minutes, up to minutes).
            reconnect_timeout=config.connect_timeout_seconds,
            name=f"hz-sidecar-postgres-{config.schema}",
        )
        logger.info(
            "opening postgres pool: dsn=%r schema=%r size=%d..%d",
            masked_dsn(config.dsn),
            config.schema,
            config.pool_min_size,
            config.pool_max_size,
        )
        await pool.open(wait=False)
        self._pool = pool
        if config.migrate_on_start:
            try:
                await self.migrate()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the pool, waiting at most a few seconds for connections in use. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close(timeout=5.0)

    def pool_stats(self) -> dict[str, int]:
        """The pool's gauges for telemetry (psycopg_pool ``get_stats()``); empty while closed."""
        pool = self._pool
        return {} if pool is None else pool.get_stats()

    async def _connection_returned(self, conn: Connection) -> None:
        self._returned_at[conn] = time.monotonic()

    async def _check_connection(self, conn: Connection) -> None:
        """Check a connection that sat idle, before handing it out.

        One that was in use within the last couple of seconds is handed out as it
        is: checking it would add a round trip to every call (a point load would
        cost two), and a connection that broke since then fails its statement
        with a transient error that the retry answers on a fresh connection (the
        pool discards broken connections when they come back).
        """
        returned = self._returned_at.get(conn)
        if returned is None or time.monotonic() - returned > _CHECK_IDLE_SECONDS:
            await psycopg_pool.AsyncConnectionPool.check_connection(conn)

    async def _configure_connection(self, conn: Connection) -> None:
        self._note_server(conn)
        for wrapper, dumper in _ARRAY_DUMPERS:
            conn.adapters.register_dumper(wrapper, dumper)
        timeout = self.config.statement_timeout_ms
        if timeout is not None:
            await conn.execute("SELECT set_config('statement_timeout', %s, false)", (f"{timeout}",))

    def _note_server(self, conn: Connection) -> None:
        """Log the server a new connection reached when it is not the previous one's.

        With several hosts in the DSN and ``target_session_attrs=read-write``, libpq
        connects to the first host that accepts writes
        (https://www.postgresql.org/docs/current/libpq-connect.html#LIBPQ-CONNECT-TARGET-SESSION-ATTRS):
        after a failover, the promoted standby. No round trip: libpq knows where it is.
        """
        server = f"{conn.info.host}:{conn.info.port}"
        previous, self._server = self._server, server
        if previous is None:
            logger.info("postgres connected to the primary at %s", server)
        elif previous != server:
            logger.warning("PostgreSQL primary changed from %s to %s", previous, server)

    # -- Array parameters --------------------------------------------------------

    def _texts(self, values: Sequence[str | None]) -> Any:
        """A ``%b::text[]`` parameter: preformatted by the compiled helper when it can."""
        if _pgarrays is not None and self.config.compiled_arrays:
            data = _pgarrays.text_array(list(values))
            if data is not None:
                return _TextArray(data)
        return values

    def _byteas(self, values: Sequence[bytes | None]) -> Any:
        """A ``%b::bytea[]`` parameter (see :meth:`_texts`)."""
        if _pgarrays is not None and self.config.compiled_arrays:
            data = _pgarrays.bytea_array(list(values))
            if data is not None:
                return _ByteaArray(data)
        return values

    def _int8s(self, values: Sequence[int | None]) -> Any:
        """A ``%b::int8[]`` parameter (see :meth:`_texts`)."""
        if _pgarrays is not None and self.config.compiled_arrays:
            data = _pgarrays.int8_array(list(values))
            if data is not None:
                return _Int8Array(data)
        return _int8s(values)

    # -- Calls -------------------------------------------------------------------

    def _deadline(self) -> float:
        """The deadline of the current call: the caller's, else the retry budget."""
        own = time.monotonic() + self.config.retry_seconds
        caller = call_deadline.get()
        return own if caller is None else min(caller, own)

    def is_transient(self, exc: BaseException) -> bool:
        """A lost connection or a SQLSTATE worth a second attempt (:func:`transient_error`),
        raised as it is or as the cause of this provider's own error."""
        error = raised_by(exc, psycopg.Error)
        return error is not None and transient_error(error)

    async def _run(
        self,
        operation: str,
        map_name: str | None,
        work: Callable[[Connection], Awaitable[T]],
        *,
        retried: bool = False,
    ) -> T:
        """Run ``work`` on a pooled connection, waiting for one until the call's deadline.

        The sidecar's writer retries whole calls (store, load, delete, ...); ``retried``
        runs ``work`` through the retry hook it gave this provider instead, for what the
        writer cannot repeat as a whole: one page of ``load_all_keys``, a migration.
        """
        deadline = self._deadline()

        async def attempt() -> T:
            pool = self._pool
            if pool is None:
                raise StoreUnavailableError(
                    f"postgres {operation}: the provider is not open", map_name=map_name
                )
            wait = remaining(deadline)
            # A pool timeout of 0 would mean "no wait" only after the queue; give it a moment.
            async with pool.connection(timeout=max(wait or 0.0, 0.05)) as conn:
                try:
                    return await work(conn)
                except psycopg.errors.ReadOnlySqlTransaction:
                    # Every pooled connection is to a server that no longer takes
                    # writes: replace them all (this one when it is given back).
                    await pool.drain()
                    raise

        try:
            return await (self.retry(operation, attempt) if retried else attempt())
        except (psycopg.Error, OSError) as exc:
            raise store_error(exc, operation=operation, map_name=map_name) from exc

    async def is_available(self) -> bool:
        """``SELECT 1`` answered within two seconds; never raises."""
        pool = self._pool
        if pool is None:
            return False
        timeout = min(_HEALTH_TIMEOUT_SECONDS, self.config.connect_timeout_seconds)
        try:
            async with pool.connection(timeout=timeout) as conn:
                cur = await conn.execute("SELECT 1")
                return await cur.fetchone() == (1,)
        except Exception as exc:  # health must answer, whatever the failure
            logger.debug("postgres is not available: %s: %s", type(exc).__name__, exc)
            return False

    def _single_row_query(self, conn: Connection, statement: str, kind: StoreKind) -> bytes:
        """The text of a single-row statement, rendered on first use and kept."""
        key = (statement, kind)
        text = self._single_row_text.get(key)
        if text is None:
            text = self._single_row_text[key] = self._single_row[key].as_bytes(conn)
        return text

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        """One INSERT of all ``entries`` (events: first kept; views: latest wins).

        A key is identified by its text and its format together. An empty value
        format is written as NULL, as in a row of the reference framework. A
        single entry takes ``INSERT ... VALUES`` with scalar parameters, the same
        row as the array form writes.
        """
        if not entries:
            return
        if len(entries) == 1 and self.single_row_statements:
            await self._store_one(map_name, kind, entries[0])
            return
        table = self._tables[kind]
        if kind is StoreKind.VIEW:
            # Keys are unique within a call by contract; if a caller breaks it the
            # last one must win, and ON CONFLICT DO UPDATE refuses a row twice.
            entries = list({(e.key.text, e.key.format): e for e in entries}.values())
        stored_keys = [_pg_key(e.key) for e in entries]
        texts, int8s = self._texts, self._int8s
        keys = texts([text for text, _ in stored_keys])
        key_formats = texts([fmt for _, fmt in stored_keys])
        key_data = self._byteas([e.key.data for e in entries])
        value_formats = texts([e.value.format for e in entries])
        type_names = [e.value.type_name for e in entries]
        schema_ids = [e.value.schema_id for e in entries]
        document_texts, exact_texts = _pg_documents(entries)
        documents, exact = texts(document_texts), texts(exact_texts)
        if kind is StoreKind.EVENT:
            events = [e.event or _NO_EVENT for e in entries]
            query = sql.SQL(
                "INSERT INTO {table} AS t (" + _EVENT_INSERT_COLUMNS + ")"
                " SELECT %b, k, kf, kd, NULLIF(vf, ''), tn, sid, d::jsonb, x, agg, seq, et, ts,"
                " cid FROM unnest(%b::text[], %b::text[], %b::bytea[], %b::text[], %b::text[],"
                " %b::int8[], %b::text[], %b::text[], %b::text[], %b::int8[], %b::text[],"
                " %b::int8[], %b::text[]) AS u(k, kf, kd, vf, tn, sid, d, x, agg, seq, et, ts, cid)"
                + _EVENT_ON_CONFLICT
            ).format(table=table.name)
            params: tuple[Any, ...] = (
                map_name,
                keys,
                key_formats,
                key_data,
                value_formats,
                texts(type_names),
                int8s(schema_ids),
                documents,
                exact,
                texts([_readable(ev.aggregate_id) for ev in events]),
                int8s([ev.sequence for ev in events]),
                texts([_readable(ev.event_type) for ev in events]),
                int8s([ev.timestamp_millis for ev in events]),
                texts([_readable(ev.correlation_id) for ev in events]),
            )
        else:
            query = sql.SQL(
                "INSERT INTO {table} AS t (" + _VIEW_INSERT_COLUMNS + ")"
                " SELECT %b, k, kf, kd, NULLIF(vf, ''), tn, sid, d::jsonb, x, %b"
                " FROM unnest(%b::text[], %b::text[], %b::bytea[], %b::text[], %b::text[],"
                " %b::int8[], %b::text[], %b::text[]) AS u(k, kf, kd, vf, tn, sid, d, x)"
                + _VIEW_ON_CONFLICT
            ).format(table=table.name)
            params = (
                map_name,
                Int8(time.time_ns() // 1_000_000),
                keys,
                key_formats,
                key_data,
                value_formats,
                texts(type_names),
                int8s(schema_ids),
                documents,
                exact,
            )

        async def work(conn: Connection) -> None:
            # One statement in autocommit: atomic, one commit, one round trip
            # (an explicit BEGIN ... COMMIT would cost two more).
            cur = await conn.execute(query, params)
            if cur.rowcount < len(entries):
                await _replicated(conn)  # events already there: see _replicated

        await self._run(f"store of {len(entries)} {kind} entries", map_name, work)

    async def _store_one(self, map_name: str, kind: StoreKind, entry: StoreEntry) -> None:
        """``store`` of one entry: INSERT ... VALUES, the parameters in the array form's order."""
        key_text, key_format = _pg_key(entry.key)
        value = entry.value
        document, exact = _pg_document(entry)
        params: tuple[Any, ...] = (
            map_name,
            key_text,
            key_format,
            entry.key.data,
            value.format,
            value.type_name,
            _int8(value.schema_id),
            document,
            exact,
        )
        if kind is StoreKind.EVENT:
            event = entry.event or _NO_EVENT
            params += (
                _readable(event.aggregate_id),
                _int8(event.sequence),
                _readable(event.event_type),
                _int8(event.timestamp_millis),
                _readable(event.correlation_id),
            )
        else:
            params += (Int8(time.time_ns() // 1_000_000),)

        async def work(conn: Connection) -> None:
            # One statement in autocommit, as the array form.
            cur = await conn.execute(self._single_row_query(conn, _STORE_ONE, kind), params)
            if cur.rowcount < 1:
                await _replicated(conn)

        await self._run(f"store of 1 {kind} entries", map_name, work)

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        """One query joining the (text, format) pairs; documents come back as JSONB renders them.

        A single key takes a query on the primary key with scalar parameters.
        """
        if not keys:
            return []
        if len(keys) == 1 and self.single_row_statements:
            key_text, key_format = _pg_key(keys[0])
            one = (map_name, key_text, key_format)

            async def work_one(conn: Connection) -> list[tuple[Any, ...]]:
                cur = await conn.execute(self._single_row_query(conn, _LOAD_ONE, kind), one)
                return await cur.fetchall()

            rows = await self._run("load of 1 keys", map_name, work_one)
            return [_entry(row, kind) for row in rows]
        table = self._tables[kind]
        query = sql.SQL(
            "SELECT " + _load_columns(kind) + " FROM {table} JOIN unnest(%b::text[], %b::text[])"
            " AS u(k, f) ON {key} = u.k AND key_format = u.f WHERE {map} = %b"
        ).format(
            key=table.key_column, data=table.data_column, table=table.name, map=table.map_column
        )
        pairs = [_pg_key(key) for key in keys]
        params = (self._texts([t for t, _ in pairs]), self._texts([f for _, f in pairs]), map_name)

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        rows = await self._run(f"load of {len(keys)} keys", map_name, work)
        return [_entry(row, kind) for row in rows]

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """One DELETE; the number of rows it removed. A single key: a DELETE by primary key."""
        if not keys:
            return 0
        if len(keys) == 1 and self.single_row_statements:
            key_text, key_format = _pg_key(keys[0])
            one = (map_name, key_text, key_format)

            async def work_one(conn: Connection) -> int:
                cur = await conn.execute(self._single_row_query(conn, _DELETE_ONE, kind), one)
                if cur.rowcount < 1:
                    await _replicated(conn)
                return cur.rowcount

            return await self._run("delete of 1 keys", map_name, work_one)
        table = self._tables[kind]
        query = sql.SQL(
            "DELETE FROM {table} USING unnest(%b::text[], %b::text[]) AS u(k, f)"
            " WHERE {map} = %b AND {key} = u.k AND key_format = u.f"
        ).format(table=table.name, map=table.map_column, key=table.key_column)
        unique = list({_pg_key(key) for key in keys})
        params = ([t for t, _ in unique], [f for _, f in unique], map_name)

        async def work(conn: Connection) -> int:
            cur = await conn.execute(query, params)  # one statement: its own transaction
            if cur.rowcount < len(unique):
                await _replicated(conn)
            return cur.rowcount

        return await self._run(f"delete of {len(keys)} keys", map_name, work)

    async def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        """Yield the map's keys in key order, one page query per batch.

        Keyset pagination (``WHERE (key, format) > last ORDER BY ... LIMIT n``): no
        connection or transaction is held between batches, so a member that
        reads the stream slowly, or never finishes it, holds nothing of the
        pool. Each page is one statement, retried through the sidecar's retry hook. Batches
        hold at most ``batch_size`` keys and never more than
        ``load-all-keys-batch-size``.
        """
        size = min(batch_size, self.config.load_all_keys_batch_size)
        if size < 1:
            size = self.config.load_all_keys_batch_size
        table = self._tables[kind]
        first = sql.SQL(
            "SELECT {key}, key_format, key_data FROM {table} WHERE {map} = %b"
            " ORDER BY {key}, key_format LIMIT %b"
        ).format(key=table.key_column, table=table.name, map=table.map_column)
        following = sql.SQL(
            "SELECT {key}, key_format, key_data FROM {table}"
            " WHERE {map} = %b AND ({key}, key_format) > (%b, %b)"
            " ORDER BY {key}, key_format LIMIT %b"
        ).format(key=table.key_column, table=table.name, map=table.map_column)
        last: tuple[str, str] | None = None
        params: tuple[Any, ...]
        while True:
            if last is None:
                query, params = first, (map_name, Int8(size))
            else:
                query, params = following, (map_name, *last, Int8(size))

            async def page(
                conn: Connection, query: sql.Composed = query, params: tuple[Any, ...] = params
            ) -> list[tuple[Any, ...]]:
                cur = await conn.execute(query, params)
                return await cur.fetchall()

            rows = await self._run("load_all_keys", map_name, page, retried=True)
            if not rows:
                return
            yield [_key(text, key_format, data) for text, key_format, data in rows]
            if len(rows) < size:
                return
            last = (rows[-1][0], rows[-1][1])

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        """One INSERT ... ON CONFLICT DO NOTHING: a known id keeps its first record."""
        if not schemas:
            return
        query = sql.SQL(
            "INSERT INTO {table} (schema_id, type_name, fields, write_order)"
            " SELECT id, tn, f::jsonb, w::jsonb"
            " FROM unnest(%b::int8[], %b::text[], %b::text[], %b::text[])"
            " AS u(id, tn, f, w) ON CONFLICT (schema_id) DO NOTHING"
        ).format(table=self._schemas_table)
        params = (
            _int8s([s.schema_id for s in schemas]),
            [s.type_name for s in schemas],
            [
                json.dumps([{"name": name, "kind": kind} for name, kind in s.fields])
                for s in schemas
            ],
            _texts([_write_order_json(s.write_order) for s in schemas]),
        )

        async def work(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(query, params)

        await self._run(f"put_schemas of {len(schemas)} schemas", None, work)

    async def get_schemas(self) -> list[SchemaRecord]:
        """Every persisted schema, fields in their schema order."""
        query = sql.SQL(
            "SELECT schema_id, type_name, fields::text, write_order::text FROM {table}"
            " ORDER BY schema_id"
        ).format(table=self._schemas_table)

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query)
            return await cur.fetchall()

        rows = await self._run("get_schemas", None, work)
        return [
            SchemaRecord(
                schema_id=schema_id,
                type_name=type_name,
                fields=tuple((f["name"], int(f["kind"])) for f in json.loads(fields)),
                write_order=_write_order(write_order),
            )
            for schema_id, type_name, fields, write_order in rows
        ]

    async def claim_write_order(
        self, schema_id: int, order: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        """One UPDATE that sets the order only where it is pending and returns the row's order.

        Safe among sidecars sharing the database: a concurrent claim waits for the
        first one's row lock and then, under READ COMMITTED, re-evaluates the
        statement on the row as committed, so the CASE keeps the first order and
        RETURNING gives it back
        (https://www.postgresql.org/docs/current/transaction-iso.html#XACT-READ-COMMITTED).
        A second statement reading the row would not do: its snapshot could predate
        the first claim's commit.
        """
        if not order:
            raise ValueError("a claimed write order names the schema's variable-size fields")
        query = sql.SQL(
            "UPDATE {table} SET write_order ="
            " CASE WHEN write_order = '[]'::jsonb THEN %s::jsonb ELSE write_order END"
            " WHERE schema_id = %s RETURNING write_order::text"
        ).format(table=self._schemas_table)
        params = (_write_order_json(order), Int8(schema_id))

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            async with conn.transaction():
                cur = await conn.execute(query, params)
                return await cur.fetchall()

        rows = await self._run(f"claim_write_order of schema {schema_id}", None, work)
        if not rows:
            raise UnknownSchemaError(schema_id)
        return _write_order(rows[0][0])

    # -- Dead letters ----------------------------------------------------------------

    async def put_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """One INSERT of every letter, raw bytes as BYTEA."""
        if not letters:
            return
        query = sql.SQL(
            "INSERT INTO {table} (map_name, key_data, value_data, error, dead_lettered_at_millis)"
            " SELECT * FROM unnest(%b::text[], %b::bytea[], %b::bytea[], %b::text[], %b::int8[])"
        ).format(table=self._dead_letters_table)
        params = (
            [d.map_name for d in letters],
            [d.key for d in letters],
            [d.value for d in letters],
            [d.error for d in letters],
            _int8s([d.dead_lettered_at_millis for d in letters]),
        )

        async def work(conn: Connection) -> None:
            async with conn.transaction():
                await conn.execute(query, params)

        await self._run(f"put_dead_letters of {len(letters)} entries", None, work)

    async def list_dead_letters(
        self, *, map_name: str | None = None, letter_id: int | None = None
    ) -> list[DeadLetter]:
        """The kept dead letters, oldest first."""
        query = sql.SQL(
            "SELECT id, map_name, key_data, value_data, error, dead_lettered_at_millis"
            " FROM {table} WHERE (%s::text IS NULL OR map_name = %s::text)"
            " AND (%s::int8 IS NULL OR id = %s::int8) ORDER BY id"
        ).format(table=self._dead_letters_table)
        params = (map_name, map_name, letter_id, letter_id)

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        rows = await self._run("list_dead_letters", map_name, work)
        return [
            DeadLetter(
                map_name=name,
                key=bytes(key),
                value=bytes(value),
                error=error,
                dead_lettered_at_millis=at,
                id=letter,
            )
            for letter, name, key, value, error, at in rows
        ]

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        """One DELETE; the number of rows it removed."""
        if not ids:
            return 0
        query = sql.SQL("DELETE FROM {table} WHERE id = ANY(%b::int8[])").format(
            table=self._dead_letters_table
        )
        params = (_int8s(sorted(set(ids))),)

        async def work(conn: Connection) -> int:
            async with conn.transaction():
                cur = await conn.execute(query, params)
                return cur.rowcount

        return await self._run(f"delete_dead_letters of {len(ids)} ids", None, work)

    # -- Rows of the reference framework ---------------------------------------------

    async def rows_without_format(
        self,
        kind: StoreKind,
        *,
        after: tuple[str, str, str] | None,
        limit: int,
        map_name: str | None = None,
    ) -> list[tuple[str, StoreEntry]]:
        """One keyset page of the rows whose value format is NULL."""
        table = self._tables[kind]
        event_columns = _EVENT_COLUMNS if kind is StoreKind.EVENT else ""
        query = sql.SQL(
            "SELECT {map}, {key}, key_format, key_data, value_format,"
            " COALESCE(exact_data, {data}::text), type_name, schema_id"
            + event_columns
            + " FROM {table}"
            " WHERE value_format IS NULL"
            " AND (%s::text IS NULL OR {map} = %s::text)"
            " AND (%s::text IS NULL OR ({map}, {key}, key_format) > (%s::text, %s::text, %s::text))"
            " ORDER BY {map}, {key}, key_format LIMIT %s"
        ).format(
            map=table.map_column, key=table.key_column, data=table.data_column, table=table.name
        )
        after_map, after_key, after_format = after if after is not None else (None, None, None)
        params = (map_name, map_name, after_map, after_map, after_key, after_format, limit)

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, params)
            return await cur.fetchall()

        rows = await self._run("rows_without_format", map_name, work)
        return [(row[0], _entry(row[1:], kind)) for row in rows]

    async def rewrite_rows(self, kind: StoreKind, rows: Sequence[tuple[str, StoreEntry]]) -> int:
        """One UPDATE ... FROM unnest of every row, guarded by the value format still being NULL."""
        if not rows:
            return 0
        table = self._tables[kind]
        query = sql.SQL(
            "UPDATE {table} AS t SET value_format = u.vf, type_name = u.tn, schema_id = u.sid,"
            " {data} = u.d::jsonb, exact_data = NULL"
            " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[],"
            " %b::text[], %b::int8[], %b::text[]) AS u(m, k, kf, vf, tn, sid, d)"
            " WHERE t.{map} = u.m AND t.{key} = u.k AND t.key_format = u.kf"
            " AND t.value_format IS NULL"
        ).format(
            table=table.name, data=table.data_column, map=table.map_column, key=table.key_column
        )
        entries = [entry for _, entry in rows]
        pairs = [_pg_key(e.key) for e in entries]
        params = (
            [name for name, _ in rows],
            [t for t, _ in pairs],
            [f for _, f in pairs],
            [e.value.format for e in entries],
            _texts([e.value.type_name for e in entries]),
            _int8s([e.value.schema_id for e in entries]),
            [e.value.document for e in entries],
        )

        async def work(conn: Connection) -> int:
            cur = await conn.execute(query, params)  # one statement: its own transaction
            return cur.rowcount

        return await self._run(f"rewrite of {len(rows)} {kind} rows", None, work)

    # -- Unreadable rows -------------------------------------------------------------

    async def put_unreadable_rows(self, rows: Sequence[UnreadableRow]) -> None:
        """One INSERT ... ON CONFLICT DO NOTHING: the first record of a key is kept."""
        if not rows:
            return
        query = sql.SQL(
            "INSERT INTO {table} (map_name, key_text, key_format, error, seen_at_millis)"
            " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::int8[])"
            " ON CONFLICT (map_name, key_text, key_format) DO NOTHING"
        ).format(table=self._unreadable_table)
        # Recorded under the text and format its row has (a key holding NUL is escaped).
        keys = [_pg_key(StoredKey(r.key_text, r.key_format)) for r in rows]
        params = (
            [r.map_name for r in rows],
            [text for text, _ in keys],
            [fmt for _, fmt in keys],
            [_readable(r.error) for r in rows],
            _int8s([r.seen_at_millis for r in rows]),
        )

        async def work(conn: Connection) -> None:
            await conn.execute(query, params)

        await self._run(f"put_unreadable_rows of {len(rows)} rows", None, work)

    async def list_unreadable_rows(self, *, map_name: str | None = None) -> list[UnreadableRow]:
        """The recorded rows, by map and key."""
        query = sql.SQL(
            "SELECT map_name, key_text, key_format, error, seen_at_millis FROM {table}"
            " WHERE (%s::text IS NULL OR map_name = %s::text)"
            " ORDER BY map_name, key_text, key_format"
        ).format(table=self._unreadable_table)

        async def work(conn: Connection) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, (map_name, map_name))
            return await cur.fetchall()

        rows = await self._run("list_unreadable_rows", map_name, work)
        return [UnreadableRow(*row) for row in rows]

    async def delete_unreadable_rows(self, *, map_name: str | None = None) -> int:
        """One DELETE; the number of records it removed."""
        query = sql.SQL(
            "DELETE FROM {table} WHERE (%s::text IS NULL OR map_name = %s::text)"
        ).format(table=self._unreadable_table)

        async def work(conn: Connection) -> int:
            cur = await conn.execute(query, (map_name, map_name))
            return cur.rowcount

        return await self._run("delete_unreadable_rows", map_name, work)

    # -- Migrations ----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply the pending bundled migrations in one transaction; return their versions.

        Holds a transaction-level advisory lock for the schema while it reads the
        history and applies what is missing, so concurrent sidecars wait for the
        first one and then find nothing to do. A migration whose file changed
        after it was applied (checksum mismatch) is an error, not re-applied.
        """
        migrations = bundled_migrations()
        schema = self.config.schema
        opened_here = self._pool is None
        if opened_here:
            # ``hz-sidecar migrate`` may call this without ``open``.
            config = self.config
            self._pool = psycopg_pool.AsyncConnectionPool(
                config.dsn,
                kwargs=config.connection_kwargs(),
                min_size=0,
                max_size=1,
                open=False,
                timeout=config.connect_timeout_seconds,
            )
            await self._pool.open(wait=False)

        async def work(conn: Connection) -> list[str]:
            applied_now: list[str] = []
            async with conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, hashtext(%s))",
                    (_MIGRATION_LOCK_CLASS, schema),
                )
                cur = await conn.execute("SELECT to_regnamespace(%s) IS NULL", (schema,))
                row = await cur.fetchone()
                if row is not None and row[0]:
                    await conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
                await conn.execute(
                    sql.SQL(
                        "CREATE TABLE IF NOT EXISTS {history} ("
                        " version INTEGER PRIMARY KEY,"
                        " description TEXT NOT NULL,"
                        " checksum TEXT NOT NULL,"
                        " applied_at TIMESTAMPTZ NOT NULL DEFAULT now(),"
                        " execution_ms INTEGER NOT NULL)"
                    ).format(history=self._history_table)
                )
                cur = await conn.execute(
                    sql.SQL("SELECT version, checksum FROM {history}").format(
                        history=self._history_table
                    )
                )
                applied: dict[int, str] = dict(await cur.fetchall())
                await conn.execute(
                    sql.SQL("SET LOCAL search_path TO {}").format(sql.Identifier(schema))
                )
                for migration in migrations:
                    if migration.version in applied:
                        if applied[migration.version] != migration.checksum:
                            raise StoreError(
                                f"postgres migration V{migration.version} "
                                f"({migration.description}) changed after it was applied "
                                f"to schema {schema!r}: checksum mismatch"
                            )
                        continue
                    started = time.monotonic()
                    await conn.execute(migration.script.encode())
                    elapsed_ms = round((time.monotonic() - started) * 1000)
                    await conn.execute(
                        sql.SQL(
                            "INSERT INTO {history} (version, description, checksum, execution_ms)"
                            " VALUES (%s, %s, %s, %s)"
                        ).format(history=self._history_table),
                        (migration.version, migration.description, migration.checksum, elapsed_ms),
                    )
                    applied_now.append(str(migration.version))
            return applied_now

        try:
            applied_now = await self._run("migrate", None, work, retried=True)
        finally:
            if opened_here:
                await self.close()
        if applied_now:
            logger.info("postgres schema %r migrated: versions %s", schema, applied_now)
        else:
            logger.info("postgres schema %r is up to date", schema)
        return applied_now

    async def pending_migrations(self) -> list[str]:
        """The bundled migrations not applied yet, read in a read-only transaction.

        Takes no lock and creates nothing (no schema, no history table), on a
        connection of its own: works whether or not the provider is open.

        Raises:
            StoreError: an applied migration's file changed since (as :meth:`migrate`).
            StoreUnavailableError: the server cannot be reached.
        """
        migrations = bundled_migrations()
        config = self.config
        kwargs = config.connection_kwargs()
        applied: dict[int, str] = {}
        try:
            async with await psycopg.AsyncConnection.connect(config.dsn, **kwargs) as conn:
                async with conn.transaction():
                    await conn.execute("SET TRANSACTION READ ONLY")
                    cur = await conn.execute(
                        "SELECT to_regclass(%s) IS NOT NULL",
                        (self._history_table.as_string(conn),),
                    )
                    row = await cur.fetchone()
                    if row is not None and row[0]:
                        cur = await conn.execute(
                            sql.SQL("SELECT version, checksum FROM {history}").format(
                                history=self._history_table
                            )
                        )
                        applied = dict(await cur.fetchall())
        except (psycopg.Error, OSError) as exc:
            raise store_error(exc, operation="pending_migrations", map_name=None) from exc
        for migration in migrations:
            if applied.get(migration.version, migration.checksum) != migration.checksum:
                raise StoreError(
                    f"postgres migration V{migration.version} ({migration.description}) "
                    f"changed after it was applied to schema {config.schema!r}: checksum mismatch"
                )
        return [str(m.version) for m in migrations if m.version not in applied]


# -- Parameters and rows ----------------------------------------------------------


def _write_order_json(order: tuple[str, ...] | None) -> str | None:
    """A schema's write order as its JSONB column holds it: NULL (legacy) or an array."""
    return None if order is None else json.dumps(list(order))


def _write_order(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(str(name) for name in json.loads(text))


def _int8(value: int | None) -> int | None:
    """A BIGINT parameter: sent as int8 whatever its size, so that the statement's
    parameter types (and its prepared plan) stay the same. A value out of range is
    left as it is: the ``::int8`` cast refuses it as it does in the array form."""
    if value is None or not _INT8_MIN <= value <= _INT8_MAX:
        return value
    return Int8(value)


async def _replicated(conn: Connection) -> None:
    """Wait until what this server committed so far is as durable as a commit of ours.

    A write that changed fewer rows than it was given (events already stored, keys
    already deleted) may have written no WAL, and a commit that wrote none waits for no
    synchronous standby. The rows may come from an earlier attempt whose wait for the
    standby was cancelled (its deadline passed): PostgreSQL keeps such a commit on the
    primary alone ("The transaction has already committed locally, but might not have
    been replicated to the standby"), and acknowledging now could lose it in a failover.
    A transactional logical message is one WAL record in a transaction of its own: its
    commit waits, as any commit that wrote WAL does with ``synchronous_commit`` on, until
    the standby has everything up to it, the earlier commit included
    (https://www.postgresql.org/docs/current/warm-standby.html#SYNCHRONOUS-REPLICATION).
    (Only taking a transaction id, ``txid_current()``, writes no WAL and does not wait.)
    Logical decoding consumers see it as an empty message with the prefix ``hz-sidecar``.
    Without synchronous replication it costs one round trip, and only on such writes.
    """
    await conn.execute("SELECT pg_logical_emit_message(true, 'hz-sidecar', '')")


class _Preformatted:
    """An array parameter already in PostgreSQL's binary form (:mod:`._pgarrays`)."""

    __slots__ = ("data",)

    def __init__(self, data: bytes) -> None:
        self.data = data


class _TextArray(_Preformatted):
    __slots__ = ()


class _ByteaArray(_Preformatted):
    __slots__ = ()


class _Int8Array(_Preformatted):
    __slots__ = ()


class _PreformattedDumper(Dumper):
    """Sends a :class:`_Preformatted` array as it is, in the binary format."""

    format = Format.BINARY

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


def _dumper(array_oid: int) -> type[Dumper]:
    return type(f"_Array{array_oid}Dumper", (_PreformattedDumper,), {"oid": array_oid})


_TYPES = psycopg.postgres.types
#: Each preformatted array's type and its dumper (registered on every pooled connection).
_ARRAY_DUMPERS: tuple[tuple[type[_Preformatted], type[Dumper]], ...] = (
    (_TextArray, _dumper(_TYPES["text"].array_oid)),
    (_ByteaArray, _dumper(_TYPES["bytea"].array_oid)),
    (_Int8Array, _dumper(_TYPES["int8"].array_oid)),
)


def _int8s(values: Sequence[int | None]) -> list[int | None]:
    # psycopg dumps a list of ints as int2[], int4[] or int8[] by its largest
    # value (and a list of None untyped); the ::int8[] cast in the statement
    # makes the column type constant. Cheaper than wrapping each value in Int8.
    return list(values)


def _texts(values: Sequence[str | None]) -> list[str | None]:
    return list(values)


#: The format suffix of a key whose text holds NUL, escaped in PostgreSQL (see _pg_key).
_ESCAPED = "+escaped"
#: NUL in a JSON document's text (json.dumps writes it so).
_JSON_NUL = "\\u0000"


def _pg_key(key: StoredKey) -> tuple[str, str]:
    """The (text, format) a key is stored under: PostgreSQL text cannot hold NUL.

    A key whose text holds NUL (a legal Java String) is stored with its
    backslashes doubled and NUL as ``\\0``, under its format plus ``+escaped``:
    the mapping is one-to-one, and no key without NUL has such a format.
    """
    if "\x00" not in key.text:
        return key.text, key.format
    escaped = key.text.replace("\\", "\\\\").replace("\x00", "\\0")
    return escaped, key.format + _ESCAPED


def _key(text: str, key_format: str | None, data: bytes | None) -> StoredKey:
    """The key a stored (text, format) stands for: the inverse of :func:`_pg_key`."""
    key_format = key_format or ""
    if key_format.endswith(_ESCAPED):
        key_format = key_format[: -len(_ESCAPED)]
        text = re.sub(r"\\(.)", lambda m: "\x00" if m[1] == "0" else m[1], text)
    return StoredKey(text, key_format, None if data is None else bytes(data))


def _pg_documents(entries: Sequence[StoreEntry]) -> tuple[list[str], list[str | None]]:
    """Each value's JSONB document, and its exact text where JSONB would not keep it.

    JSONB normalises what it stores (key order, spacing, numbers) and refuses
    NUL in strings. The codec reads a Compact or Java document by field name,
    for which that is exact; a HazelcastJsonValue's text must come back as it
    was, and a document with NUL cannot be JSONB at all. Those are kept as
    text in ``exact_data`` (loads prefer it); their JSONB column holds a
    readable copy (NUL shown as U+FFFD).
    """
    documents: list[str] = []
    exact: list[str | None] = []
    for entry in entries:
        document, exact_text = _pg_document(entry)
        documents.append(document)
        exact.append(exact_text)
    return documents, exact


def _pg_document(entry: StoreEntry) -> tuple[str, str | None]:
    """One value's JSONB document and exact text (see :func:`_pg_documents`)."""
    document = entry.value.document
    if _JSON_NUL in document:
        return document.replace(_JSON_NUL, "\\ufffd"), document
    return document, (document if entry.value.format == "json" else None)


def _readable(text: str | None) -> str | None:
    """An event column's text fit for PostgreSQL (a readable copy: NUL as U+FFFD)."""
    return None if text is None else text.replace("\x00", "\ufffd")


def _entry(row: tuple[Any, ...], kind: StoreKind) -> StoreEntry:
    key_text, key_format, key_data, value_format, document, type_name, schema_id = row[:7]
    event = None
    if kind is StoreKind.EVENT:
        aggregate_id, sequence, event_type, timestamp_millis, correlation_id = row[7:]
        event = EventColumns(aggregate_id, sequence, event_type, timestamp_millis, correlation_id)
    return StoreEntry(
        key=_key(key_text, key_format, key_data),
        value=StoredValue(value_format or "", document, type_name, schema_id),
        event=event,
    )
