"""The MySQL / MariaDB provider: the reference's tables in MySQL's dialect.

Shared by every sidecar of a cluster, like PostgreSQL. Built on asyncmy, an
asyncio driver whose protocol and escaping are compiled (Cython): a store is
one multi-row ``INSERT`` whose every value the client escapes into the
statement's text, so the client's cost per value decides how close a store
comes to the server's own ceiling. asyncmy also closes a connection whose
statement was cancelled mid-read (the writer cancels a write at its deadline),
so that no pooled connection is left out of step with the server.

Tables (``mysql_migrations/``): the PostgreSQL provider's columns, JSON for the
documents (MariaDB's JSON is LONGTEXT with a ``JSON_VALID`` check, which keeps
the text as written; MySQL's is a binary form that, like JSONB, normalises it,
hence ``exact_data`` for ``HazelcastJsonValue`` text as in PostgreSQL), binary
columns for bytes, and a byte-wise collation without PAD SPACE for every text
that identifies something. InnoDB keys are limited to 3072 bytes, less than a
key's text may take, so the primary keys hold the key text's SHA-256
(``key_hash``) where PostgreSQL's hold the text.

Writes: events are ``INSERT ... ON DUPLICATE KEY UPDATE map_name = map_name``,
which keeps the first row of a key and, unlike ``INSERT IGNORE``, still fails on
a value the column refuses (``INSERT IGNORE`` turns data errors into warnings and
writes a truncated or default value instead,
https://dev.mysql.com/doc/refman/8.0/en/sql-mode.html#ignore-effect-on-execution).
Views are ``INSERT ... ON DUPLICATE KEY UPDATE col = VALUES(col)``: the form both
MySQL (deprecated since 8.0.20 in favour of a row alias MariaDB lacks, still
accepted) and MariaDB understand; of a key given twice, the last row wins.

Migrations run under ``GET_LOCK`` (a named lock per database, held by the
migrating session), so that the sidecars of every member starting together
migrate once. MySQL commits each DDL statement by itself: a migration is not
atomic, so every migration is written to be applied again after an interruption.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import importlib.resources
import json
import logging
import math
import re
import time
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import asyncmy
from asyncmy.connection import Connection
from asyncmy.cursors import Cursor
from asyncmy.errors import MySQLError
from asyncmy.pool import Pool

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
)

logger = logging.getLogger(__name__)

T = TypeVar("T")

MIGRATIONS_PACKAGE: Final = "sidecar.providers"
MIGRATIONS_DIRECTORY: Final = "mysql_migrations"
_MIGRATION_FILE = re.compile(r"^V(?P<version>[0-9]+)__(?P<description>[A-Za-z0-9_]+)\.sql$")
#: The collation the migrations name (MariaDB's binary, NO PAD) and MySQL 8's equivalent.
_MARIADB_BINARY: Final = "utf8mb4_nopad_bin"
_MYSQL_BINARY: Final = "utf8mb4_0900_bin"
_HEALTH_TIMEOUT_SECONDS: Final = 2.0
_MASK: Final = "********"
_SELECTORS: Final = frozenset({"type", "name"})
#: Every session: strict (a value a column cannot hold is an error, never a
#: warning), no NO_BACKSLASH_ESCAPES or ANSI_QUOTES (the driver escapes with
#: backslashes), and UTC for the DATETIME defaults' readers.
_INIT_COMMAND: Final = (
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION', time_zone = '+00:00'"
)
#: The most bytes of one INSERT statement. A larger store is several statements in
#: one transaction. Under MySQL 5.7's 4 MiB ``max_allowed_packet`` (MariaDB's is
#: 16 MiB, MySQL 8's 64 MiB); a single row above the server's limit is refused.
_STATEMENT_BYTES: Final = 4 * 1024 * 1024 - 64 * 1024


# -- Settings --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MySQLSettings:
    """The provider block of the configuration, validated.

    Attributes:
        host, port, user, password, database, unix_socket: where to connect;
            each taken from ``dsn`` (``mysql://user:password@host:port/database``,
            ``?unix_socket=/path``) unless set on its own.
        pool_min_size, pool_max_size: connections kept open / at most.
        connect_timeout_seconds: a connection attempt's limit, and how long a call
            waits for a pooled connection when it has no deadline of its own.
        migrate_on_start: ``open`` applies pending migrations.
        load_all_keys_batch_size: the largest page ``load_all_keys`` reads.
        retry_seconds: how long a call without a deadline retries transient failures.
        migration_lock_seconds: how long ``migrate`` waits for another sidecar's
            migration (``GET_LOCK``) before it fails.
    """

    host: str = "127.0.0.1"
    port: int = 3306
    user: str = ""
    password: str = ""
    database: str = ""
    unix_socket: str | None = None
    pool_min_size: int = 1
    pool_max_size: int = 8
    connect_timeout_seconds: float = 10.0
    migrate_on_start: bool = True
    load_all_keys_batch_size: int = 1000
    retry_seconds: float = 10.0
    migration_lock_seconds: float = 60.0

    def connection_kwargs(self) -> dict[str, Any]:
        """What every connection of the provider is opened with (pool, migrations, check)."""
        kwargs: dict[str, Any] = {
            "user": self.user,
            "password": self.password,
            "database": self.database,
            "charset": "utf8mb4",
            # A single statement is its own transaction; several use begin/commit.
            "autocommit": True,
            # Bytes are sent as _binary'...', never read in the connection's charset.
            "binary_prefix": True,
            "connect_timeout": max(1, math.ceil(self.connect_timeout_seconds)),
            "init_command": _INIT_COMMAND,
            "program_name": "hz-sidecar",
        }
        if self.unix_socket:
            kwargs["unix_socket"] = self.unix_socket
        else:
            kwargs["host"] = self.host
            kwargs["port"] = self.port
        return kwargs

    def where(self) -> str:
        """Where the provider connects, fit for a log (no password)."""
        at = self.unix_socket or f"{self.host}:{self.port}"
        return f"mysql://{self.user}@{at}/{self.database}"

    @classmethod
    def from_mapping(cls, settings: Mapping[str, Any]) -> MySQLSettings:
        """Validate ``settings``; raise :class:`ConfigError` naming the offending key."""
        known = {
            "dsn",
            "host",
            "port",
            "user",
            "password",
            "database",
            "unix-socket",
            "pool-min-size",
            "pool-max-size",
            "connect-timeout-seconds",
            "migrate-on-start",
            "load-all-keys-batch-size",
            "retry-seconds",
            "migration-lock-seconds",
        }
        unknown = sorted(set(settings) - known - _SELECTORS)
        if unknown:
            raise ConfigError(
                f"mysql provider: unknown setting {unknown[0]!r} "
                f"(known: {', '.join(sorted(known))})"
            )
        defaults = cls()
        parts = _dsn_parts(settings.get("dsn"))
        for key in ("host", "user", "password", "database", "unix-socket"):
            if settings.get(key) is not None:
                if not isinstance(settings[key], str):
                    raise ConfigError(f"mysql provider: {key!r} must be a string")
                parts[key] = settings[key]
        if settings.get("port") is not None:
            parts["port"] = _int(settings, "port", defaults.port, minimum=1)
        database = parts.get("database", "")
        if not database or len(database) > 64:
            raise ConfigError(
                "mysql provider: 'database' (or the dsn's path) must name the database, "
                "at most 64 characters"
            )
        parsed = cls(
            host=parts.get("host") or defaults.host,
            port=parts.get("port") or defaults.port,
            user=parts.get("user", ""),
            password=parts.get("password", ""),
            database=database,
            unix_socket=parts.get("unix-socket") or None,
            pool_min_size=_int(settings, "pool-min-size", defaults.pool_min_size, minimum=0),
            pool_max_size=_int(settings, "pool-max-size", defaults.pool_max_size, minimum=1),
            connect_timeout_seconds=_seconds(
                settings, "connect-timeout-seconds", defaults.connect_timeout_seconds
            ),
            migrate_on_start=_bool(settings, "migrate-on-start", defaults.migrate_on_start),
            load_all_keys_batch_size=_int(
                settings, "load-all-keys-batch-size", defaults.load_all_keys_batch_size, minimum=1
            ),
            retry_seconds=_seconds(settings, "retry-seconds", defaults.retry_seconds),
            migration_lock_seconds=_seconds(
                settings, "migration-lock-seconds", defaults.migration_lock_seconds
            ),
        )
        if parsed.pool_min_size > parsed.pool_max_size:
            raise ConfigError(
                f"mysql provider: 'pool-min-size' ({parsed.pool_min_size}) exceeds "
                f"'pool-max-size' ({parsed.pool_max_size})"
            )
        return parsed


def _dsn_parts(dsn: object) -> dict[str, Any]:
    """The parts of a ``mysql://`` (or ``mariadb://``) URL, by setting name."""
    if dsn is None or dsn == "":
        return {}
    if not isinstance(dsn, str):
        raise ConfigError("mysql provider: 'dsn' must be a string")
    # Messages never repeat the DSN: it may hold a password.
    invalid = "mysql provider: 'dsn' is not a mysql://user:password@host:port/database URL"
    try:
        url = urllib.parse.urlsplit(dsn)
        port = url.port
    except ValueError:
        raise ConfigError(invalid) from None
    if url.scheme not in {"mysql", "mariadb"}:
        raise ConfigError(invalid)
    query = urllib.parse.parse_qs(url.query)
    unknown = sorted(set(query) - {"unix_socket"})
    if unknown:
        raise ConfigError(f"mysql provider: 'dsn' has an unknown parameter {unknown[0]!r}")
    parts: dict[str, Any] = {
        "host": urllib.parse.unquote(url.hostname or ""),
        "port": port,
        "user": urllib.parse.unquote(url.username or ""),
        "password": urllib.parse.unquote(url.password or ""),
        "database": urllib.parse.unquote(url.path.lstrip("/")),
    }
    if "unix_socket" in query:
        parts["unix-socket"] = query["unix_socket"][-1]
    return {key: value for key, value in parts.items() if value}


def _int(settings: Mapping[str, Any], key: str, default: int, *, minimum: int) -> int:
    value = settings.get(key, default)
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        value = int(value)  # from an environment variable
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"mysql provider: {key!r} must be an integer, not {value!r}")
    if value < minimum:
        raise ConfigError(f"mysql provider: {key!r} must be at least {minimum}, not {value}")
    return value


def _seconds(settings: Mapping[str, Any], key: str, default: float) -> float:
    value = settings.get(key, default)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"mysql provider: {key!r} must be a number of seconds, not {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"mysql provider: {key!r} must be positive, not {value!r}")
    return float(value)


def _bool(settings: Mapping[str, Any], key: str, default: bool) -> bool:
    value = settings.get(key, default)
    if isinstance(value, str) and value.lower() in {"true", "false"}:
        value = value.lower() == "true"
    if not isinstance(value, bool):
        raise ConfigError(f"mysql provider: {key!r} must be true or false, not {value!r}")
    return value


# -- Migrations ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Migration:
    """One versioned SQL file of ``mysql_migrations/``."""

    version: int
    description: str
    script: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.script.encode()).hexdigest()

    def statements(self, *, mariadb: bool) -> list[str]:
        """The script's statements, in the server's collation (comments left out)."""
        text = "\n".join(
            line for line in self.script.splitlines() if not line.lstrip().startswith("--")
        )
        if not mariadb:
            text = text.replace(_MARIADB_BINARY, _MYSQL_BINARY)
        return [statement.strip() for statement in text.split(";") if statement.strip()]


def bundled_migrations() -> list[Migration]:
    """The migrations shipped in the package, in version order."""
    directory = importlib.resources.files(MIGRATIONS_PACKAGE).joinpath(MIGRATIONS_DIRECTORY)
    migrations = [
        Migration(
            version=int(match["version"]),
            description=match["description"].replace("_", " "),
            script=resource.read_text(encoding="utf-8"),
        )
        for resource in directory.iterdir()
        if (match := _MIGRATION_FILE.match(resource.name)) is not None
    ]
    migrations.sort(key=lambda m: m.version)
    versions = [m.version for m in migrations]
    if len(set(versions)) != len(versions):
        raise StoreError(f"mysql migrations: duplicate version among {versions}")
    return migrations


def migration_lock_name(database: str) -> str:
    """The ``GET_LOCK`` name of a database's migrations: locks are server-wide, at most
    64 characters, so the database is named by a digest."""
    return "hz-sidecar-migrate-" + hashlib.sha256(database.encode()).hexdigest()[:40]


# -- Errors ----------------------------------------------------------------------


#: Server and client error numbers worth a second attempt
#: (https://mariadb.com/kb/en/mariadb-error-code-reference/,
#: https://dev.mysql.com/doc/mysql-errors/8.0/en/).
TRANSIENT_ERRORS: Final[frozenset[int]] = frozenset(
    {
        1040,  # ER_CON_COUNT_ERROR: too many connections
        1053,  # ER_SERVER_SHUTDOWN: the server is shutting down
        1205,  # ER_LOCK_WAIT_TIMEOUT: the statement, not the transaction, was rolled back
        1213,  # ER_LOCK_DEADLOCK: the transaction was rolled back; run it again
        1290,  # ER_OPTION_PREVENTS_STATEMENT: --read-only (a primary being switched over)
        1836,  # ER_READ_ONLY_MODE
        1927,  # ER_CONNECTION_KILLED (MariaDB)
        2002,  # CR_CONNECTION_ERROR: the local socket is not there (yet)
        2003,  # CR_CONN_HOST_ERROR: cannot connect (the server is down or restarting)
        2006,  # CR_SERVER_GONE_ERROR
        2013,  # CR_SERVER_LOST: lost connection during a query
        2055,  # CR_SERVER_LOST_EXTENDED
    }
)
#: A statement that ran out of its time (max_statement_time, max_execution_time).
_TIMEOUT_ERRORS: Final = frozenset({1969, 3024})


class _ConnectionWaitTimeout(TimeoutError):
    """No pooled connection came free, or could be opened, within the call's deadline."""


def error_number(exc: BaseException) -> int | None:
    """The server's or the client's error number of an asyncmy error, if it has one."""
    if isinstance(exc, MySQLError) and exc.args and isinstance(exc.args[0], int):
        return exc.args[0]
    return None


def transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is a driver failure that a later attempt may not meet.

    Classified by error number, never by class: asyncmy raises a refused CHECK
    (4025) or a bad value as OperationalError too, which no retry fixes. A
    socket failure the driver did not wrap, and a connection that did not come
    free in time, are transient as well.
    """
    if isinstance(exc, _ConnectionWaitTimeout):
        return True
    if isinstance(exc, MySQLError):
        return error_number(exc) in TRANSIENT_ERRORS
    return isinstance(exc, ConnectionError | asyncio.IncompleteReadError)


def store_error(exc: BaseException, *, operation: str, map_name: str | None) -> SidecarError:
    """The sidecar error for a failure of ``operation`` on ``map_name``."""
    if isinstance(exc, SidecarError):
        return exc
    cause = f"{type(exc).__name__}: {exc}".strip()
    message = f"mysql {operation} failed: {cause}"
    if error_number(exc) in _TIMEOUT_ERRORS:
        return StoreTimeoutError(message, map_name=map_name)
    number = error_number(exc)
    if transient_error(exc) or isinstance(exc, OSError) or (number and 2000 <= number < 3000):
        return StoreUnavailableError(message, map_name=map_name)
    return StoreError(message, map_name=map_name)


# -- Statements ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Table:
    """Where one store kind lives and what its columns are called (trusted constants)."""

    name: str
    map_column: str
    key_column: str
    data_column: str


_TABLES: Final = {
    StoreKind.EVENT: _Table("domain_events", "map_name", "map_key", "event_data"),
    StoreKind.VIEW: _Table("domain_views", "view_name", "view_key", "view_data"),
}
_EVENT_INSERT: Final = (
    "INSERT INTO domain_events (map_name, map_key, key_hash, key_format, key_data,"
    " value_format, type_name, schema_id, event_data, exact_data, aggregate_id, sequence,"
    " event_type, timestamp_millis, correlation_id) VALUES "
)
_EVENT_ROW: Final = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
#: Keep the first row of a key: a no-op update (see the module's docstring).
_EVENT_ON_DUPLICATE: Final = " ON DUPLICATE KEY UPDATE map_name = map_name"
_VIEW_INSERT: Final = (
    "INSERT INTO domain_views (view_name, view_key, key_hash, key_format, key_data,"
    " value_format, type_name, schema_id, view_data, exact_data, last_updated_millis) VALUES "
)
_VIEW_ROW: Final = "(%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
_VIEW_ON_DUPLICATE: Final = (
    " ON DUPLICATE KEY UPDATE key_data = VALUES(key_data), value_format = VALUES(value_format),"
    " type_name = VALUES(type_name), schema_id = VALUES(schema_id),"
    " view_data = VALUES(view_data), exact_data = VALUES(exact_data),"
    " last_updated_millis = VALUES(last_updated_millis), updated_at = UTC_TIMESTAMP(6)"
)
_EVENT_COLUMNS: Final = ", aggregate_id, sequence, event_type, timestamp_millis, correlation_id"
_NO_EVENT: Final = EventColumns()


def key_hash(text: str) -> bytes:
    """The SHA-256 of a key's text (UTF-8), as the ``key_hash`` columns hold it."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _load_columns(table: _Table, kind: StoreKind) -> str:
    """What a load selects: the row :func:`_entry` reads."""
    return (
        f"{table.key_column}, key_format, key_data, value_format,"
        f" COALESCE(exact_data, {table.data_column}), type_name, schema_id"
        + (_EVENT_COLUMNS if kind is StoreKind.EVENT else "")
    )


def _placeholders(count: int, each: str = "%s") -> str:
    return ", ".join([each] * count)


def _exact(entry: StoreEntry) -> str | None:
    """The exact text of a value whose JSON column may not keep it: a HazelcastJsonValue
    (MySQL's JSON type reorders keys and respaces; MariaDB's keeps the text)."""
    return entry.value.document if entry.value.format == "json" else None


def _event_row(map_name: str, entry: StoreEntry) -> tuple[Any, ...]:
    key, value = entry.key, entry.value
    event = entry.event or _NO_EVENT
    return (
        map_name,
        key.text,
        key_hash(key.text),
        key.format,
        key.data,
        value.format or None,
        value.type_name,
        value.schema_id,
        value.document,
        _exact(entry),
        event.aggregate_id,
        event.sequence,
        event.event_type,
        event.timestamp_millis,
        event.correlation_id,
    )


def _view_row(map_name: str, entry: StoreEntry, now_millis: int) -> tuple[Any, ...]:
    key, value = entry.key, entry.value
    return (
        map_name,
        key.text,
        key_hash(key.text),
        key.format,
        key.data,
        value.format or None,
        value.type_name,
        value.schema_id,
        value.document,
        _exact(entry),
        now_millis,
    )


def _statements(
    cur: Cursor, head: str, row: str, rows: Sequence[tuple[Any, ...]], tail: str
) -> list[bytes]:
    """Multi-row INSERT statements of ``rows``, each at most :data:`_STATEMENT_BYTES`
    (a row larger than that goes alone)."""
    prefix, postfix = head.encode(), tail.encode()
    statements: list[bytes] = []
    parts: list[bytes] = []
    size = len(prefix) + len(postfix)
    for values in rows:
        text = cur.mogrify(row, values).encode("utf-8", "surrogateescape")
        if parts and size + len(text) + 1 > _STATEMENT_BYTES:
            statements.append(prefix + b",".join(parts) + postfix)
            parts, size = [], len(prefix) + len(postfix)
        parts.append(text)
        size += len(text) + 1
    if parts:
        statements.append(prefix + b",".join(parts) + postfix)
    return statements


def _entry(row: Sequence[Any], kind: StoreKind) -> StoreEntry:
    key_text, key_format, key_data, value_format, document, type_name, schema_id = row[:7]
    event = None
    if kind is StoreKind.EVENT:
        aggregate_id, sequence, event_type, timestamp_millis, correlation_id = row[7:12]
        event = EventColumns(aggregate_id, sequence, event_type, timestamp_millis, correlation_id)
    return StoreEntry(
        key=StoredKey(key_text, key_format or "", None if key_data is None else bytes(key_data)),
        value=StoredValue(value_format or "", document, type_name, schema_id),
        event=event,
    )


def _write_order_json(order: tuple[str, ...] | None) -> str | None:
    return None if order is None else json.dumps(list(order))


def _write_order(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(str(name) for name in json.loads(text))


# -- The provider ----------------------------------------------------------------


class MySQLProvider(Provider):
    """Events and views in MySQL 8 or MariaDB, shared by every sidecar of a cluster.

    Settings (the provider block of the configuration): ``dsn`` or ``host``,
    ``port`` (3306), ``user``, ``password``, ``database``, ``unix-socket``;
    ``pool-min-size`` (1), ``pool-max-size`` (8), ``connect-timeout-seconds`` (10),
    ``retry-seconds`` (10), ``migrate-on-start`` (true), ``migration-lock-seconds``
    (60), ``load-all-keys-batch-size`` (1000).
    """

    name = "mysql"
    shared = True
    supports_write_order = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        self.config = MySQLSettings.from_mapping(settings)
        self.retry_budget_seconds = self.config.retry_seconds
        self._pool: Pool | None = None
        self._waiting = 0

    def __repr__(self) -> str:
        return f"MySQLProvider({self.config.where()!r})"

    # -- Lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Create the connection pool, then migrate if ``migrate-on-start``. Idempotent.

        The pool connects on demand: a server that is down at start makes
        ``is_available`` false (and calls fail with UNAVAILABLE) until it answers,
        except that ``migrate-on-start`` needs it within the retry budget.
        """
        if self._pool is not None:
            return
        config = self.config
        logger.info(
            "opening mysql pool: %s size=%d..%d",
            config.where(),
            config.pool_min_size,
            config.pool_max_size,
        )
        self._pool = Pool(
            minsize=config.pool_min_size,
            maxsize=config.pool_max_size,
            # Connections older than an hour are replaced, well before a server's
            # wait_timeout (8 hours by default) closes them unseen.
            pool_recycle=3600,
            **config.connection_kwargs(),
        )
        if config.migrate_on_start:
            try:
                await self.migrate()
            except BaseException:
                await self.close()
                raise

    async def close(self) -> None:
        """Close the pool, waiting at most a few seconds for connections in use. Idempotent."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        pool.close()
        try:
            async with asyncio.timeout(5.0):
                await pool.wait_closed()
        except TimeoutError:
            logger.warning("mysql pool: connections still in use after 5 s; closing them")
            pool.terminate()

    def pool_stats(self) -> dict[str, int]:
        """The pool's gauges for telemetry, as psycopg_pool names them; empty while closed."""
        pool = self._pool
        if pool is None:
            return {}
        return {
            "pool_size": int(pool.size),
            "pool_available": int(pool.freesize),
            "requests_waiting": self._waiting,
        }

    # -- Calls -------------------------------------------------------------------

    def _deadline(self) -> float:
        """The deadline of the current call: the caller's, else the retry budget."""
        own = time.monotonic() + self.config.retry_seconds
        caller = call_deadline.get()
        return own if caller is None else min(caller, own)

    def is_transient(self, exc: BaseException) -> bool:
        """A lost connection or an error number worth a second attempt
        (:func:`transient_error`), raised as it is or as the cause of this
        provider's own error."""
        seen: BaseException | None = exc
        while seen is not None:
            if transient_error(seen):
                return True
            seen = seen.__cause__
        return False

    @contextlib.asynccontextmanager
    async def _connection(
        self, deadline: float, operation: str, map_name: str | None
    ) -> AsyncIterator[Connection]:
        pool = self._pool
        if pool is None:
            raise StoreUnavailableError(
                f"mysql {operation}: the provider is not open", map_name=map_name
            )
        wait = max(remaining(deadline) or 0.0, 0.05)
        self._waiting += 1
        try:
            async with asyncio.timeout(wait):
                conn = await pool.acquire()
        except TimeoutError:
            raise _ConnectionWaitTimeout(
                f"no connection within {wait:.2f} s ({pool.size} open of {pool.maxsize})"
            ) from None
        finally:
            self._waiting -= 1
        try:
            yield conn
        finally:
            pool.release(conn)

    async def _run(
        self,
        operation: str,
        map_name: str | None,
        work: Callable[[Connection], Awaitable[T]],
        *,
        retried: bool = False,
    ) -> T:
        """Run ``work`` on a pooled connection, waiting for one until the call's deadline.

        The writer retries whole calls; ``retried`` runs ``work`` through the retry
        hook instead, for what the writer cannot repeat as a whole (a page of
        ``load_all_keys``, a migration).
        """
        deadline = self._deadline()

        async def attempt() -> T:
            async with self._connection(deadline, operation, map_name) as conn:
                return await work(conn)

        try:
            return await (self.retry(operation, attempt) if retried else attempt())
        except (MySQLError, OSError, asyncio.IncompleteReadError) as exc:
            raise store_error(exc, operation=operation, map_name=map_name) from exc

    async def is_available(self) -> bool:
        """``SELECT 1`` answered within two seconds; never raises."""
        if self._pool is None:
            return False
        timeout = min(_HEALTH_TIMEOUT_SECONDS, self.config.connect_timeout_seconds)
        try:
            async with asyncio.timeout(timeout):
                rows = await self._run("is_available", None, _fetch_all("SELECT 1"))
            return rows == [(1,)]
        except Exception as exc:  # health must answer, whatever the failure
            logger.debug("mysql is not available: %s: %s", type(exc).__name__, exc)
            return False

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        """One multi-row INSERT of all ``entries`` (events: first kept; views: latest wins).

        A store larger than one statement may hold is several statements in one transaction.
        """
        if not entries:
            return
        if kind is StoreKind.EVENT:
            head, row, tail = _EVENT_INSERT, _EVENT_ROW, _EVENT_ON_DUPLICATE
            rows = [_event_row(map_name, e) for e in entries]
        else:
            head, row, tail = _VIEW_INSERT, _VIEW_ROW, _VIEW_ON_DUPLICATE
            now = time.time_ns() // 1_000_000
            rows = [_view_row(map_name, e, now) for e in entries]

        async def work(conn: Connection) -> None:
            async with conn.cursor() as cur:
                statements = _statements(cur, head, row, rows, tail)
                if len(statements) == 1:
                    await cur.execute(statements[0])  # autocommit: one round trip
                    return
                await _in_transaction(conn, cur, statements)

        await self._run(f"store of {len(entries)} {kind} entries", map_name, work)

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        """One query on the primary key; of rows sharing a key's text, those of its format."""
        if not keys:
            return []
        table = _TABLES[kind]
        select = (
            f"SELECT {_load_columns(table, kind)} FROM {table.name} WHERE {table.map_column} = %s"
        )
        if len(keys) == 1:
            query = select + " AND key_hash = %s AND key_format = %s"
            params: tuple[Any, ...] = (map_name, key_hash(keys[0].text), keys[0].format)
        else:
            hashes = list(dict.fromkeys(key_hash(k.text) for k in keys))
            query = select + f" AND key_hash IN ({_placeholders(len(hashes))})"
            params = (map_name, *hashes)
        wanted = {(k.text, k.format) for k in keys}
        rows = await self._run(f"load of {len(keys)} keys", map_name, _fetch_all(query, params))
        return [_entry(r, kind) for r in rows if (r[0], r[1]) in wanted]

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """One DELETE; the number of rows it removed."""
        if not keys:
            return 0
        table = _TABLES[kind]
        unique = list(dict.fromkeys((key_hash(k.text), k.format) for k in keys))
        if len(unique) == 1:
            where = "key_hash = %s AND key_format = %s"
            params: tuple[Any, ...] = (map_name, *unique[0])
        else:
            # The IN of hashes is the range the primary key answers; the pairs pick
            # the formats among the rows it finds.
            hashes = list(dict.fromkeys(h for h, _ in unique))
            where = (
                f"key_hash IN ({_placeholders(len(hashes))})"
                f" AND (key_hash, key_format) IN ({_placeholders(len(unique), '(%s, %s)')})"
            )
            params = (map_name, *hashes, *(part for pair in unique for part in pair))
        query = f"DELETE FROM {table.name} WHERE {table.map_column} = %s AND {where}"
        return await self._run(f"delete of {len(keys)} keys", map_name, _execute(query, params))

    async def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        """Yield the map's keys in primary key order, one page query per batch.

        Keyset pagination on (key_hash, key_format): no connection or transaction
        is held between batches, so a member that reads the stream slowly, or never
        finishes it, holds nothing of the pool. Each page is retried through the
        sidecar's retry hook.
        """
        size = min(batch_size, self.config.load_all_keys_batch_size)
        if size < 1:
            size = self.config.load_all_keys_batch_size
        table = _TABLES[kind]
        select = (
            f"SELECT {table.key_column}, key_format, key_data, key_hash FROM {table.name}"
            f" WHERE {table.map_column} = %s"
        )
        order = " ORDER BY key_hash, key_format LIMIT %s"
        last: tuple[bytes, str] | None = None
        params: tuple[Any, ...]
        while True:
            if last is None:
                query, params = select + order, (map_name, size)
            else:
                query = select + " AND (key_hash > %s OR (key_hash = %s AND key_format > %s))"
                query += order
                params = (map_name, last[0], last[0], last[1], size)
            rows = await self._run(
                "load_all_keys", map_name, _fetch_all(query, params), retried=True
            )
            if not rows:
                return
            yield [
                StoredKey(text, fmt or "", None if data is None else bytes(data))
                for text, fmt, data, _ in rows
            ]
            if len(rows) < size:
                return
            last = (bytes(rows[-1][3]), rows[-1][1])

    # -- Schemas -------------------------------------------------------------------

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        """One INSERT; a known id keeps its first record."""
        if not schemas:
            return
        rows = [
            (
                s.schema_id,
                s.type_name,
                json.dumps([{"name": name, "kind": kind} for name, kind in s.fields]),
                _write_order_json(s.write_order),
            )
            for s in schemas
        ]
        head = "INSERT INTO hz_sidecar_schemas (schema_id, type_name, fields, write_order) VALUES "
        tail = " ON DUPLICATE KEY UPDATE schema_id = schema_id"
        await self._insert(f"put_schemas of {len(schemas)} schemas", head, rows, tail)

    async def get_schemas(self) -> list[SchemaRecord]:
        """Every persisted schema, fields in their schema order."""
        query = (
            "SELECT schema_id, type_name, fields, write_order FROM hz_sidecar_schemas"
            " ORDER BY schema_id"
        )
        rows = await self._run("get_schemas", None, _fetch_all(query))
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
        """Lock the schema's row (``SELECT ... FOR UPDATE``), set the order if it is still
        pending, commit: a concurrent claim waits for the row and then reads the order
        the first one committed (a locking read reads the latest row, whatever the
        isolation level; https://dev.mysql.com/doc/refman/8.0/en/innodb-locking-reads.html)."""
        if not order:
            raise ValueError("a claimed write order names the schema's variable-size fields")

        async def work(conn: Connection) -> list[tuple[Any, ...]] | tuple[str, ...] | None:
            async with conn.cursor() as cur:
                await conn.begin()
                try:
                    await cur.execute(
                        "SELECT write_order FROM hz_sidecar_schemas WHERE schema_id = %s"
                        " FOR UPDATE",
                        (schema_id,),
                    )
                    rows = await cur.fetchall()
                    if not rows:
                        await conn.commit()
                        return []
                    current = _write_order(rows[0][0])
                    if current == ():
                        await cur.execute(
                            "UPDATE hz_sidecar_schemas SET write_order = %s WHERE schema_id = %s",
                            (_write_order_json(order), schema_id),
                        )
                        current = order
                    await conn.commit()
                    return current
                except Exception:
                    with contextlib.suppress(MySQLError, OSError):
                        await conn.rollback()
                    raise

        claimed = await self._run(f"claim_write_order of schema {schema_id}", None, work)
        if isinstance(claimed, list):
            raise UnknownSchemaError(schema_id)
        return claimed

    # -- Dead letters ----------------------------------------------------------------

    async def put_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """One INSERT of every letter (several statements in one transaction if large)."""
        if not letters:
            return
        head = (
            "INSERT INTO hz_sidecar_dead_letters"
            " (map_name, key_data, value_data, error, dead_lettered_at_millis) VALUES "
        )
        rows = [(d.map_name, d.key, d.value, d.error, d.dead_lettered_at_millis) for d in letters]
        await self._insert(f"put_dead_letters of {len(letters)} entries", head, rows, "")

    async def list_dead_letters(
        self, *, map_name: str | None = None, letter_id: int | None = None
    ) -> list[DeadLetter]:
        """The kept dead letters, oldest first."""
        query = (
            "SELECT id, map_name, key_data, value_data, error, dead_lettered_at_millis"
            " FROM hz_sidecar_dead_letters WHERE (%s IS NULL OR map_name = %s)"
            " AND (%s IS NULL OR id = %s) ORDER BY id"
        )
        params = (map_name, map_name, letter_id, letter_id)
        rows = await self._run("list_dead_letters", map_name, _fetch_all(query, params))
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
        unique = sorted(set(ids))
        if not unique:
            return 0
        query = f"DELETE FROM hz_sidecar_dead_letters WHERE id IN ({_placeholders(len(unique))})"
        return await self._run(
            f"delete_dead_letters of {len(ids)} ids", None, _execute(query, unique)
        )

    # -- Unreadable rows -------------------------------------------------------------

    async def put_unreadable_rows(self, rows: Sequence[UnreadableRow]) -> None:
        """One INSERT; the first record of a key is kept."""
        if not rows:
            return
        head = (
            "INSERT INTO hz_sidecar_unreadable_rows"
            " (map_name, key_text, key_hash, key_format, error, seen_at_millis) VALUES "
        )
        values = [
            (r.map_name, r.key_text, key_hash(r.key_text), r.key_format, r.error, r.seen_at_millis)
            for r in rows
        ]
        tail = " ON DUPLICATE KEY UPDATE map_name = map_name"
        await self._insert(f"put_unreadable_rows of {len(rows)} rows", head, values, tail)

    async def list_unreadable_rows(self, *, map_name: str | None = None) -> list[UnreadableRow]:
        """The recorded rows, by map and key."""
        query = (
            "SELECT map_name, key_text, key_format, error, seen_at_millis"
            " FROM hz_sidecar_unreadable_rows WHERE (%s IS NULL OR map_name = %s)"
            " ORDER BY map_name, key_text, key_format"
        )
        rows = await self._run(
            "list_unreadable_rows", map_name, _fetch_all(query, (map_name, map_name))
        )
        return [UnreadableRow(*row) for row in rows]

    async def delete_unreadable_rows(self, *, map_name: str | None = None) -> int:
        """One DELETE; the number of records it removed."""
        query = "DELETE FROM hz_sidecar_unreadable_rows WHERE (%s IS NULL OR map_name = %s)"
        return await self._run(
            "delete_unreadable_rows", map_name, _execute(query, (map_name, map_name))
        )

    async def _insert(
        self, operation: str, head: str, rows: Sequence[tuple[Any, ...]], tail: str
    ) -> None:
        row = "(" + _placeholders(len(rows[0])) + ")"

        async def work(conn: Connection) -> None:
            async with conn.cursor() as cur:
                statements = _statements(cur, head, row, rows, tail)
                if len(statements) == 1:
                    await cur.execute(statements[0])
                else:
                    await _in_transaction(conn, cur, statements)

        await self._run(operation, None, work)

    # -- Migrations ----------------------------------------------------------------

    async def migrate(self) -> list[str]:
        """Apply the pending bundled migrations; return their versions.

        Holds the database's named lock (``GET_LOCK``) while it reads the history
        and applies what is missing, so concurrent sidecars wait for the first one
        and then find nothing to do. Each migration is recorded once applied; a
        migration whose file changed after it was applied (checksum mismatch) is an
        error, not applied again.
        """
        migrations = bundled_migrations()
        config = self.config
        lock = migration_lock_name(config.database)

        async def work(conn: Connection) -> list[str]:
            async with conn.cursor() as cur:
                await cur.execute(
                    "SELECT GET_LOCK(%s, %s)", (lock, math.ceil(config.migration_lock_seconds))
                )
                [(granted,)] = await cur.fetchall()
                if granted != 1:
                    raise StoreTimeoutError(
                        f"mysql migrate: another sidecar held the migration lock of database "
                        f"{config.database!r} for {config.migration_lock_seconds:g} s"
                    )
                try:
                    return await _apply(cur, migrations, config.database)
                finally:
                    with contextlib.suppress(MySQLError, OSError):
                        await cur.execute("DO RELEASE_LOCK(%s)", (lock,))

        opened_here = self._pool is None
        if opened_here:
            # ``hz-sidecar migrate`` may call this without ``open``.
            self._pool = Pool(minsize=0, maxsize=1, **config.connection_kwargs())
        try:
            applied_now = await self._run("migrate", None, work, retried=True)
        finally:
            if opened_here:
                await self.close()
        if applied_now:
            logger.info("mysql database %r migrated: versions %s", config.database, applied_now)
        else:
            logger.info("mysql database %r is up to date", config.database)
        return applied_now

    async def pending_migrations(self) -> list[str]:
        """The bundled migrations not applied yet, read on a connection of its own.

        Takes no lock and creates nothing: works whether or not the provider is open.

        Raises:
            StoreError: an applied migration's file changed since (as :meth:`migrate`).
            StoreUnavailableError: the server cannot be reached.
        """
        migrations = bundled_migrations()
        config = self.config
        try:
            conn = await asyncmy.connect(**config.connection_kwargs())
            try:
                applied = await _history(conn, config.database)
            finally:
                conn.close()
        except (MySQLError, OSError, asyncio.IncompleteReadError) as exc:
            raise store_error(exc, operation="pending_migrations", map_name=None) from exc
        _check_unchanged(migrations, applied, config.database)
        return [str(m.version) for m in migrations if m.version not in applied]


# -- Statement helpers ------------------------------------------------------------


def _fetch_all(
    query: str, params: Sequence[Any] | None = None
) -> Callable[[Connection], Awaitable[list[tuple[Any, ...]]]]:
    async def work(conn: Connection) -> list[tuple[Any, ...]]:
        async with conn.cursor() as cur:
            await cur.execute(query, params)
            return list(await cur.fetchall())

    return work


def _execute(query: str, params: Sequence[Any]) -> Callable[[Connection], Awaitable[int]]:
    async def work(conn: Connection) -> int:
        async with conn.cursor() as cur:
            return int(await cur.execute(query, params))

    return work


async def _in_transaction(conn: Connection, cur: Cursor, statements: Sequence[bytes]) -> None:
    """Run ``statements`` in one transaction. On failure the transaction is rolled back
    (a connection given back to the pool inside one is closed, which rolls it back too)."""
    await conn.begin()
    try:
        for statement in statements:
            await cur.execute(statement)
        await conn.commit()
    except Exception:
        with contextlib.suppress(MySQLError, OSError):
            await conn.rollback()
        raise


async def _history(conn: Connection, database: str) -> dict[int, str]:
    """The applied migrations (version: checksum); empty without a history table."""
    async with conn.cursor() as cur:
        await cur.execute(
            "SELECT COUNT(*) FROM information_schema.tables"
            " WHERE table_schema = %s AND table_name = 'hz_sidecar_migrations'",
            (database,),
        )
        [(count,)] = await cur.fetchall()
        if not count:
            return {}
        await cur.execute("SELECT version, checksum FROM hz_sidecar_migrations")
        return {int(version): checksum for version, checksum in await cur.fetchall()}


def _check_unchanged(migrations: Sequence[Migration], applied: Mapping[int, str], db: str) -> None:
    for migration in migrations:
        if applied.get(migration.version, migration.checksum) != migration.checksum:
            raise StoreError(
                f"mysql migration V{migration.version} ({migration.description}) changed "
                f"after it was applied to database {db!r}: checksum mismatch"
            )


async def _apply(cur: Cursor, migrations: Sequence[Migration], database: str) -> list[str]:
    """Apply what the history lacks (the caller holds the migration lock)."""
    await cur.execute(
        "CREATE TABLE IF NOT EXISTS hz_sidecar_migrations ("
        " version INT NOT NULL PRIMARY KEY,"
        " description TEXT NOT NULL,"
        " checksum CHAR(64) NOT NULL,"
        " applied_at DATETIME(6) NOT NULL DEFAULT (UTC_TIMESTAMP(6)),"
        " execution_ms INT NOT NULL"
        ") ENGINE = InnoDB DEFAULT CHARSET = utf8mb4"
    )
    applied = await _history(cur.connection, database)
    _check_unchanged(migrations, applied, database)
    await cur.execute("SELECT VERSION()")
    [(version,)] = await cur.fetchall()
    mariadb = "mariadb" in str(version).lower()
    applied_now: list[str] = []
    for migration in migrations:
        if migration.version in applied:
            continue
        started = time.monotonic()
        for statement in migration.statements(mariadb=mariadb):
            await cur.execute(statement)
        elapsed_ms = round((time.monotonic() - started) * 1000)
        await cur.execute(
            "INSERT INTO hz_sidecar_migrations (version, description, checksum, execution_ms)"
            " VALUES (%s, %s, %s, %s)",
            (migration.version, migration.description, migration.checksum, elapsed_ms),
        )
        applied_now.append(str(migration.version))
    return applied_now


__all__ = [
    "TRANSIENT_ERRORS",
    "Migration",
    "MySQLProvider",
    "MySQLSettings",
    "bundled_migrations",
    "key_hash",
    "migration_lock_name",
    "store_error",
    "transient_error",
]
