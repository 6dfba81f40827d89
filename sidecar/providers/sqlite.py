"""SQLite provider: the embedded default. Durable, no server, one member only.

The tables mirror the PostgreSQL ones (``domain_events``, ``domain_views``,
``hz_sidecar_schemas``), with the JSON documents in TEXT columns that
``json_extract(event_data, '$.amount')`` can query.

sqlite3 calls block, so every statement runs on one dedicated worker thread
that owns the connection; the event loop only awaits it. WAL mode lets a
person read the database while the sidecar writes. ``synchronous`` defaults to
FULL: an acknowledged store survives a power loss, not only a crash.

SQLite keeps its data in one file of one process's host, so it cannot serve a
cluster of several members (see DESIGN.md, "Clusters").
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sidecar.errors import ConfigError, StoreError, StoreUnavailableError, UnknownSchemaError
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

log = logging.getLogger(__name__)
T = TypeVar("T")
P = ParamSpec("P")

# Versioned migrations, applied in order; PRAGMA user_version records the last one.
_MIGRATIONS: tuple[tuple[int, str, str], ...] = (
    (
        1,
        "event store, view store and schema tables",
        """
        CREATE TABLE IF NOT EXISTS domain_events (
            map_name         TEXT    NOT NULL,
            map_key          TEXT    NOT NULL,
            key_format       TEXT    NOT NULL,
            aggregate_id     TEXT,
            sequence         INTEGER,
            event_type       TEXT,
            event_data       TEXT    NOT NULL,
            value_format     TEXT    NOT NULL,
            type_name        TEXT,
            schema_id        INTEGER,
            timestamp_millis INTEGER,
            correlation_id   TEXT,
            created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (map_name, map_key)
        );
        CREATE INDEX IF NOT EXISTS idx_domain_events_aggregate
            ON domain_events (aggregate_id, sequence);
        CREATE INDEX IF NOT EXISTS idx_domain_events_type ON domain_events (event_type);
        CREATE INDEX IF NOT EXISTS idx_domain_events_timestamp ON domain_events (timestamp_millis);
        CREATE TABLE IF NOT EXISTS domain_views (
            view_name           TEXT    NOT NULL,
            view_key            TEXT    NOT NULL,
            key_format          TEXT    NOT NULL,
            view_data           TEXT    NOT NULL,
            value_format        TEXT    NOT NULL,
            type_name           TEXT,
            schema_id           INTEGER,
            last_updated_millis INTEGER NOT NULL,
            created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            updated_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (view_name, view_key)
        );
        CREATE TABLE IF NOT EXISTS hz_sidecar_schemas (
            schema_id  INTEGER PRIMARY KEY,
            type_name  TEXT NOT NULL,
            fields     TEXT NOT NULL,
            created_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
        );
        """,
    ),
    (
        2,
        "dead-letter table",
        """
        CREATE TABLE IF NOT EXISTS hz_sidecar_dead_letters (
            id                      INTEGER PRIMARY KEY AUTOINCREMENT,
            map_name                TEXT    NOT NULL,
            key_data                BLOB    NOT NULL,
            value_data              BLOB    NOT NULL,
            error                   TEXT    NOT NULL,
            dead_lettered_at_millis INTEGER NOT NULL
        );
        CREATE INDEX IF NOT EXISTS idx_hz_sidecar_dead_letters_map
            ON hz_sidecar_dead_letters (map_name, id);
        """,
    ),
    (
        3,
        "keys identified by text and format ('' for the reference framework's own key form), "
        "nullable value formats (rows written by the framework), key bytes, unreadable rows",
        """
        CREATE TABLE domain_events_v3 (
            map_name         TEXT    NOT NULL,
            map_key          TEXT    NOT NULL,
            key_format       TEXT    NOT NULL DEFAULT '',
            key_data         BLOB,
            aggregate_id     TEXT,
            sequence         INTEGER,
            event_type       TEXT,
            event_data       TEXT    NOT NULL,
            value_format     TEXT,
            type_name        TEXT,
            schema_id        INTEGER,
            timestamp_millis INTEGER,
            correlation_id   TEXT,
            created_at       TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (map_name, map_key, key_format)
        );
        INSERT INTO domain_events_v3 (map_name, map_key, key_format, aggregate_id, sequence,
            event_type, event_data, value_format, type_name, schema_id, timestamp_millis,
            correlation_id, created_at)
        SELECT map_name, map_key, COALESCE(key_format, ''), aggregate_id, sequence, event_type,
            event_data, value_format, type_name, schema_id, timestamp_millis, correlation_id,
            created_at
        FROM domain_events;
        DROP TABLE domain_events;
        ALTER TABLE domain_events_v3 RENAME TO domain_events;
        CREATE INDEX IF NOT EXISTS idx_domain_events_aggregate
            ON domain_events (aggregate_id, sequence);
        CREATE INDEX IF NOT EXISTS idx_domain_events_type ON domain_events (event_type);
        CREATE INDEX IF NOT EXISTS idx_domain_events_timestamp ON domain_events (timestamp_millis);
        CREATE TABLE domain_views_v3 (
            view_name           TEXT    NOT NULL,
            view_key            TEXT    NOT NULL,
            key_format          TEXT    NOT NULL DEFAULT '',
            key_data            BLOB,
            view_data           TEXT    NOT NULL,
            value_format        TEXT,
            type_name           TEXT,
            schema_id           INTEGER,
            last_updated_millis INTEGER NOT NULL,
            created_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            updated_at          TEXT    NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
            PRIMARY KEY (view_name, view_key, key_format)
        );
        INSERT INTO domain_views_v3 (view_name, view_key, key_format, view_data, value_format,
            type_name, schema_id, last_updated_millis, created_at, updated_at)
        SELECT view_name, view_key,
            CASE WHEN key_format IS NULL OR key_format = 'string' THEN '' ELSE key_format END,
            view_data, value_format, type_name, schema_id, last_updated_millis, created_at,
            updated_at
        FROM domain_views;
        DROP TABLE domain_views;
        ALTER TABLE domain_views_v3 RENAME TO domain_views;
        CREATE TABLE IF NOT EXISTS hz_sidecar_unreadable_rows (
            map_name       TEXT    NOT NULL,
            key_text       TEXT    NOT NULL,
            key_format     TEXT    NOT NULL,
            error          TEXT    NOT NULL,
            seen_at_millis INTEGER NOT NULL,
            PRIMARY KEY (map_name, key_text, key_format)
        );
        """,
    ),
    (
        4,
        "schema write orders",
        # The order in which a schema's Java serializer writes its variable-size
        # fields, as a JSON array: NULL for schemas persisted before (legacy, their
        # documents keep "@order"), [] while pending, else the claimed order.
        """
        ALTER TABLE hz_sidecar_schemas ADD COLUMN write_order TEXT
        """,
    ),
)

_EVENT_INSERT = """
    INSERT INTO domain_events (map_name, map_key, key_format, key_data, aggregate_id, sequence,
                               event_type, event_data, value_format, type_name, schema_id,
                               timestamp_millis, correlation_id)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (map_name, map_key, key_format) DO NOTHING
"""
_VIEW_UPSERT = """
    INSERT INTO domain_views (view_name, view_key, key_format, key_data, view_data, value_format,
                              type_name, schema_id, last_updated_millis)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (view_name, view_key, key_format) DO UPDATE SET
        key_format = excluded.key_format,
        key_data = excluded.key_data,
        view_data = excluded.view_data,
        value_format = excluded.value_format,
        type_name = excluded.type_name,
        schema_id = excluded.schema_id,
        last_updated_millis = excluded.last_updated_millis,
        updated_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')
"""
# (table, map column, key column, data column) per store kind.
_TABLES = {
    StoreKind.EVENT: ("domain_events", "map_name", "map_key", "event_data"),
    StoreKind.VIEW: ("domain_views", "view_name", "view_key", "view_data"),
}
#: The reference's event columns, as a load selects them after the key and value columns.
_EVENT_COLUMNS = ", aggregate_id, sequence, event_type, timestamp_millis, correlation_id"
# SQLite's default limit on bound parameters per statement is 32766; stay well below.
_IN_CHUNK = 900
_SYNCHRONOUS = {"OFF", "NORMAL", "FULL", "EXTRA"}
#: How often the health probe looks for progress of a busy worker.
_PROBE_POLL_SECONDS = 0.05
#: How long ``close`` waits for the worker to finish what was queued before it.
_CLOSE_TIMEOUT_SECONDS = 5.0


class _StatementWorker(ThreadPoolExecutor):
    """The one thread that owns the connection; it counts the tasks it answered.

    An answer is a result or any error but ``OperationalError`` (locked, disk I/O
    error: the store did not do the work). The health probe reads the count, so
    that a busy worker that keeps answering is healthy however long its queue,
    and one stuck on a task (a lock held by another process, a frozen
    filesystem) is not.
    """

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="hz-sidecar-sqlite")
        self.answered = 0  # written by the worker thread only

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        def counted() -> T:
            try:
                result = fn(*args, **kwargs)
            except sqlite3.OperationalError:
                raise
            except BaseException:
                self.answered += 1
                raise
            self.answered += 1
            return result

        return super().submit(counted)


class SQLiteProvider(Provider):
    """Settings: ``path`` (database file, created with its directory),
    ``synchronous`` (FULL by default), ``busy-timeout-ms`` (5000)."""

    name = "sqlite"
    supports_write_order = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        unknown = set(self.settings) - {"path", "synchronous", "busy-timeout-ms"}
        if unknown:
            raise ConfigError(f"provider.settings: unknown key(s) {', '.join(sorted(unknown))}")
        path = self.settings.get("path", "data/hz-sidecar.db")
        if not isinstance(path, str) or not path:
            raise ConfigError("provider.settings.path: expected a file path")
        self.path = path
        raw = self.settings.get("synchronous", "FULL")
        # YAML 1.1 reads an unquoted OFF (as the README writes it) as false.
        synchronous = "OFF" if raw is False else str(raw).upper()
        if synchronous not in _SYNCHRONOUS:
            raise ConfigError(
                f"provider.settings.synchronous: expected one of {sorted(_SYNCHRONOUS)}, "
                f"got {raw!r}"
            )
        self.synchronous = synchronous
        busy = self.settings.get("busy-timeout-ms", 5000)
        if not isinstance(busy, int) or busy < 0:
            raise ConfigError("provider.settings.busy-timeout-ms: expected a non-negative integer")
        self.busy_timeout_ms = busy
        self._executor: _StatementWorker | None = None
        self._conn: sqlite3.Connection | None = None

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = _StatementWorker()
        try:
            await self._run(self._connect)
            await self._run(self._migrate)
        except BaseException:
            await self.close()
            raise
        log.info("SQLite store open at %s (synchronous=%s)", self.path, self.synchronous)

    def _connect(self) -> None:
        if self.path != ":memory:":
            try:
                Path(self.path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:  # a regular file where a directory should be, say
                raise ConfigError(
                    f"provider.settings.path: cannot create the directory {exc.filename} "
                    f"for {self.path}: {exc.strerror}"
                ) from None
            if Path(self.path).is_dir():
                raise ConfigError(f"provider.settings.path: {self.path} is a directory")
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute(f"PRAGMA synchronous = {self.synchronous}")
        self._conn = conn

    # A bound that logs, as psycopg_pool's close(timeout): cancelling the close instead
    # (asyncio.timeout) would stop it half-way.
    async def close(self, timeout: float = _CLOSE_TIMEOUT_SECONDS) -> None:  # noqa: ASYNC109
        """Close the connection once the statements queued before it are done, and end
        the worker thread; idempotent, and the event loop never waits on the thread.

        Waits at most ``timeout`` seconds for the worker: one stuck on a statement (a
        lock another process holds, a frozen filesystem) is logged and left to close
        the connection itself when that statement returns.
        """
        executor, self._executor = self._executor, None
        if executor is None:
            return
        # Queued after the calls already submitted, which still find the connection;
        # calls made from now on are refused (no executor).
        closed = executor.submit(self._close_connection)
        # No join here: the thread exits by itself once its queue is empty.
        executor.shutdown(wait=False)
        done, _ = await asyncio.wait({asyncio.wrap_future(closed)}, timeout=timeout)
        if not done:
            log.warning(
                "SQLite store %s: the worker is still busy after %.1f s; it closes the "
                "connection when its statement returns",
                self.path,
                timeout,
            )
        elif closed.exception() is not None:
            log.warning(
                "SQLite store %s: closing the connection failed",
                self.path,
                exc_info=closed.exception(),
            )

    def _close_connection(self) -> None:
        """On the worker thread: the connection's last task."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    async def pending_migrations(self) -> list[str]:
        """The migrations :meth:`migrate` would apply, read through a read-only connection
        of its own (works whether or not the provider is open); a database file that
        does not exist lacks them all, and is not created."""
        return await asyncio.to_thread(self._pending_migrations)

    def _pending_migrations(self) -> list[str]:
        versions = [version for version, _, _ in _MIGRATIONS]
        path = Path(self.path)
        if self.path == ":memory:" or not path.exists():
            return [str(version) for version in versions]
        if path.is_dir():
            raise ConfigError(f"provider.settings.path: {self.path} is a directory")
        # Read-only. A WAL database closed cleanly has no -wal file and everything in
        # its main file, which is then opened immutable: read-only alone would still
        # create the -wal and -shm files. With a -wal file (a sidecar has the store
        # open), the newest pages may be in it: read through it, read-only
        # (https://www.sqlite.org/uri.html#urimode, #uriimmutable).
        wal = path.with_name(f"{path.name}-wal")
        query = "mode=ro" if wal.exists() else "mode=ro&immutable=1"
        try:
            conn = sqlite3.connect(f"{path.resolve().as_uri()}?{query}", uri=True)
            try:
                conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
                (current,) = conn.execute("PRAGMA user_version").fetchone()
            finally:
                conn.close()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(f"SQLite store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc
        return [str(version) for version in versions if version > current]

    async def migrate(self) -> list[str]:
        """Apply pending migrations; works whether or not the provider is open."""
        if self._executor is not None:
            return await self._run(self._migrate)
        executor = _StatementWorker()
        self._executor = executor
        try:
            await self._run(self._connect)
            return await self._run(self._migrate)
        finally:
            await self.close()

    def _migrate(self) -> list[str]:
        conn = self._connection()
        applied = []
        (current,) = conn.execute("PRAGMA user_version").fetchone()
        for version, description, script in _MIGRATIONS:
            if version <= current:
                continue
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in script.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {int(version)}")
                conn.execute("COMMIT")
            except BaseException:
                _rollback(conn)
                raise
            log.info("SQLite migration V%d applied: %s", version, description)
            applied.append(str(version))
        return applied

    # -- plumbing ----------------------------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        """The database is locked by another connection (SQLITE_BUSY, SQLITE_LOCKED),
        past ``busy-timeout-ms``: a later attempt may find it free
        (https://www.sqlite.org/rescode.html#busy)."""
        error = raised_by(exc, sqlite3.Error)
        code = getattr(error, "sqlite_errorcode", None)
        return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreUnavailableError(f"SQLite store {self.path} is not open")
        return self._conn

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._executor is None:
            raise StoreUnavailableError(f"SQLite store {self.path} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except sqlite3.OperationalError as exc:
            # Locked, disk I/O error, unable to open: conditions that may pass.
            raise StoreUnavailableError(f"SQLite store {self.path}: {exc}") from exc
        except sqlite3.Error as exc:
            raise StoreError(f"SQLite store {self.path}: {exc}") from exc

    def _transaction(self, statement: str, rows: Sequence[tuple[Any, ...]]) -> int:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            cursor = conn.executemany(statement, rows)
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return cursor.rowcount

    # -- the provider interface --------------------------------------------------

    async def is_available(self) -> bool:
        """True once the worker answers the probe, or any task, while the caller waits.

        The probe never waits for the worker's whole queue, only for its next
        answer: an idle worker answers the probe at once, a busy one its current
        task. A worker stuck on a task answers nothing, and the caller's bound
        (the health check's timeout) decides; cancelling this call withdraws the
        probe from the queue.
        """
        worker = self._executor
        if worker is None:
            return False
        answered = worker.answered
        probe = asyncio.ensure_future(self._run(self._fetch, "PRAGMA schema_version", ()))
        try:
            while not probe.done():
                await asyncio.wait({probe}, timeout=_PROBE_POLL_SECONDS)
                if not probe.done() and worker.answered != answered:
                    return True
            probe.result()
        except Exception:  # any failure means "not available"; is_available never raises
            log.warning("SQLite store %s is not available", self.path, exc_info=True)
            return False
        finally:
            probe.cancel()
        return True

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        if not entries:
            return
        if kind is StoreKind.EVENT:
            rows = [_event_row(map_name, entry) for entry in entries]
            await self._run(self._transaction, _EVENT_INSERT, rows)
        else:
            now = int(time.time() * 1000)
            view_rows = [
                (
                    map_name,
                    e.key.text,
                    e.key.format,
                    e.key.data,
                    e.value.document,
                    e.value.format or None,
                    e.value.type_name,
                    e.value.schema_id,
                    now,
                )
                for e in entries
            ]
            await self._run(self._transaction, _VIEW_UPSERT, view_rows)

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        if not keys:
            return []
        pairs = list({(k.text, k.format) for k in keys})
        return await self._run(self._load, map_name, kind, pairs)

    def _load(
        self, map_name: str, kind: StoreKind, pairs: list[tuple[str, str]]
    ) -> list[StoreEntry]:
        table, map_col, key_col, data_col = _TABLES[kind]
        conn = self._connection()
        found: list[StoreEntry] = []
        # Two parameters a key: half as many keys a statement.
        for start in range(0, len(pairs), _IN_CHUNK // 2):
            chunk = pairs[start : start + _IN_CHUNK // 2]
            marks = ",".join("(?, ?)" for _ in chunk)
            rows = conn.execute(
                f"SELECT {key_col}, key_format, key_data, {data_col}, value_format, type_name,"
                f" schema_id FROM {table} WHERE {map_col} = ?"
                f" AND ({key_col}, key_format) IN (VALUES {marks})",
                (map_name, *(part for pair in chunk for part in pair)),
            ).fetchall()
            found.extend(_row_entry(row) for row in rows)
        return found

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        if not keys:
            return 0
        table, map_col, key_col, _ = _TABLES[kind]
        statement = f"DELETE FROM {table} WHERE {map_col} = ? AND {key_col} = ? AND key_format = ?"
        unique = sorted({(k.text, k.format) for k in keys})
        return await self._run(self._transaction, statement, [(map_name, t, f) for t, f in unique])

    async def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        # Keyset pagination: no cursor is held open across awaits. The first page
        # has no lower bound, so that an empty-string key is not skipped.
        table, map_col, key_col, _ = _TABLES[kind]
        select = f"SELECT {key_col}, key_format, key_data FROM {table} WHERE {map_col} = ?"
        order = f" ORDER BY {key_col}, key_format LIMIT ?"
        query = select + order
        params: tuple[Any, ...] = (map_name, batch_size)
        while True:
            rows = await self._run(self._fetch, query, params)
            if not rows:
                return
            yield [StoredKey(r[0], r[1] or "", _blob(r[2])) for r in rows]
            if len(rows) < batch_size:
                return
            query = f"{select} AND ({key_col}, key_format) > (?, ?){order}"
            params = (map_name, rows[-1][0], rows[-1][1], batch_size)

    def _fetch(self, query: str, params: tuple[Any, ...]) -> list[Any]:
        return self._connection().execute(query, params).fetchall()

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        rows = [
            (s.schema_id, s.type_name, json.dumps(s.fields), _write_order_text(s.write_order))
            for s in schemas
        ]
        if rows:
            await self._run(
                self._transaction,
                "INSERT INTO hz_sidecar_schemas (schema_id, type_name, fields, write_order)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (schema_id) DO NOTHING",
                rows,
            )

    async def get_schemas(self) -> list[SchemaRecord]:
        rows = await self._run(
            self._fetch,
            "SELECT schema_id, type_name, fields, write_order FROM hz_sidecar_schemas",
            (),
        )
        return [
            SchemaRecord(
                schema_id=row[0],
                type_name=row[1],
                fields=tuple((str(name), int(kind)) for name, kind in json.loads(row[2])),
                write_order=_write_order(row[3]),
            )
            for row in rows
        ]

    async def claim_write_order(
        self, schema_id: int, order: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        if not order:
            raise ValueError("a claimed write order names the schema's variable-size fields")
        found = await self._run(self._claim_write_order, schema_id, _write_order_text(order))
        if not found:
            raise UnknownSchemaError(schema_id)
        return _write_order(found[0][0])

    def _claim_write_order(self, schema_id: int, order: str) -> list[Any]:
        # One statement: only a pending order ('[]') is replaced, and the row's
        # order after the update is returned, whoever claimed it (other processes
        # may share the file; the statement's write lock orders them).
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute(
                "UPDATE hz_sidecar_schemas SET write_order ="
                " CASE WHEN write_order = '[]' THEN ? ELSE write_order END"
                " WHERE schema_id = ? RETURNING write_order",
                (order, schema_id),
            ).fetchall()
            conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        return rows

    async def put_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        rows = [(d.map_name, d.key, d.value, d.error, d.dead_lettered_at_millis) for d in letters]
        if rows:
            await self._run(
                self._transaction,
                "INSERT INTO hz_sidecar_dead_letters"
                " (map_name, key_data, value_data, error, dead_lettered_at_millis)"
                " VALUES (?, ?, ?, ?, ?)",
                rows,
            )

    async def list_dead_letters(
        self, *, map_name: str | None = None, letter_id: int | None = None
    ) -> list[DeadLetter]:
        rows = await self._run(
            self._fetch,
            "SELECT id, map_name, key_data, value_data, error, dead_lettered_at_millis"
            " FROM hz_sidecar_dead_letters"
            " WHERE (? IS NULL OR map_name = ?) AND (? IS NULL OR id = ?) ORDER BY id",
            (map_name, map_name, letter_id, letter_id),
        )
        return [
            DeadLetter(
                map_name=row[1],
                key=bytes(row[2]),
                value=bytes(row[3]),
                error=row[4],
                dead_lettered_at_millis=row[5],
                id=row[0],
            )
            for row in rows
        ]

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        unique = sorted(set(ids))
        if not unique:
            return 0
        return await self._run(
            self._transaction,
            "DELETE FROM hz_sidecar_dead_letters WHERE id = ?",
            [(i,) for i in unique],
        )

    async def rows_without_format(
        self,
        kind: StoreKind,
        *,
        after: tuple[str, str, str] | None,
        limit: int,
        map_name: str | None = None,
    ) -> list[tuple[str, StoreEntry]]:
        table, map_col, key_col, data_col = _TABLES[kind]
        event_columns = _EVENT_COLUMNS if kind is StoreKind.EVENT else ""
        after_map, after_key, after_format = after if after is not None else (None, None, None)
        rows = await self._run(
            self._fetch,
            f"SELECT {map_col}, {key_col}, key_format, key_data, {data_col}, value_format,"
            f" type_name, schema_id{event_columns} FROM {table}"
            " WHERE value_format IS NULL"
            f" AND (? IS NULL OR {map_col} = ?)"
            f" AND (? IS NULL OR ({map_col}, {key_col}, key_format) > (?, ?, ?))"
            f" ORDER BY {map_col}, {key_col}, key_format LIMIT ?",
            (map_name, map_name, after_map, after_map, after_key, after_format, limit),
        )
        return [(row[0], _row_entry(row[1:])) for row in rows]

    async def rewrite_rows(self, kind: StoreKind, rows: Sequence[tuple[str, StoreEntry]]) -> int:
        table, map_col, key_col, data_col = _TABLES[kind]
        statement = (
            f"UPDATE {table} SET value_format = ?, type_name = ?, schema_id = ?, {data_col} = ?"
            f" WHERE {map_col} = ? AND {key_col} = ? AND key_format = ? AND value_format IS NULL"
        )
        params = [
            (
                e.value.format,
                e.value.type_name,
                e.value.schema_id,
                e.value.document,
                name,
                e.key.text,
                e.key.format,
            )
            for name, e in rows
        ]
        if not params:
            return 0
        return await self._run(self._transaction, statement, params)

    async def put_unreadable_rows(self, rows: Sequence[UnreadableRow]) -> None:
        params = [(r.map_name, r.key_text, r.key_format, r.error, r.seen_at_millis) for r in rows]
        if params:
            await self._run(self._transaction, _Unreadable.INSERT, params)

    async def list_unreadable_rows(self, *, map_name: str | None = None) -> list[UnreadableRow]:
        rows = await self._run(self._fetch, _Unreadable.SELECT, (map_name, map_name))
        return [UnreadableRow(*row) for row in rows]

    async def delete_unreadable_rows(self, *, map_name: str | None = None) -> int:
        return await self._run(self._transaction, _Unreadable.DELETE, [(map_name, map_name)])


class _Unreadable:
    """SQL of the unreadable-rows table."""

    INSERT = (
        "INSERT INTO hz_sidecar_unreadable_rows"
        " (map_name, key_text, key_format, error, seen_at_millis) VALUES (?, ?, ?, ?, ?)"
        " ON CONFLICT (map_name, key_text, key_format) DO NOTHING"
    )
    SELECT = (
        "SELECT map_name, key_text, key_format, error, seen_at_millis"
        " FROM hz_sidecar_unreadable_rows WHERE (? IS NULL OR map_name = ?)"
        " ORDER BY map_name, key_text, key_format"
    )
    DELETE = "DELETE FROM hz_sidecar_unreadable_rows WHERE (? IS NULL OR map_name = ?)"


def _rollback(conn: sqlite3.Connection) -> None:
    """Roll back after a failure without hiding it.

    On a full disk or an I/O error SQLite has already rolled the transaction
    back itself (https://www.sqlite.org/lang_transaction.html, "Response To
    Errors Within A Transaction"); the explicit ROLLBACK then fails with "no
    transaction is active", which must not replace the real cause.
    """
    if not conn.in_transaction:
        return
    try:
        conn.execute("ROLLBACK")
    except sqlite3.Error:
        log.warning("SQLite ROLLBACK after a failed statement failed too", exc_info=True)


def _write_order_text(order: tuple[str, ...] | None) -> str | None:
    """A schema's write order as its column holds it: NULL (legacy) or a JSON array."""
    return None if order is None else json.dumps(list(order), ensure_ascii=False)


def _write_order(text: str | None) -> tuple[str, ...] | None:
    return None if text is None else tuple(str(name) for name in json.loads(text))


def _blob(value: bytes | None) -> bytes | None:
    return None if value is None else bytes(value)


def _row_entry(row: Sequence[Any]) -> StoreEntry:
    """(key, key format, key data, document, value format, type name, schema id, [event]).

    The event columns, when the query selected them, fill ``StoreEntry.event``.
    """
    event = EventColumns(*row[7:12]) if len(row) > 7 else None
    return StoreEntry(
        key=StoredKey(row[0], row[1] or "", _blob(row[2])),
        value=StoredValue(row[4] or "", row[3], row[5], row[6]),
        event=event,
    )


def _event_row(map_name: str, entry: StoreEntry) -> tuple[Any, ...]:
    event = entry.event or EventColumns()
    return (
        map_name,
        entry.key.text,
        entry.key.format,
        entry.key.data,
        event.aggregate_id,
        event.sequence,
        event.event_type,
        entry.value.document,
        entry.value.format or None,
        entry.value.type_name,
        entry.value.schema_id,
        event.timestamp_millis,
        event.correlation_id,
    )
