"""A provider that keeps each map in an append-only JSON-lines file, indexed in memory.

Every Store or Delete call appends one line to its map's file: the line is the
transaction. It is written with one ``write`` and, by default, flushed to disk with
``fsync`` before the call returns; a line cut short by a crash has no newline at
its end and is dropped when the file is read again, so a call is kept whole or not
at all. A map's file is read once, on the map's first use, into a dictionary by
key identity (text and format): the whole map lives in memory, which suits small
maps, trials, and this example's purpose: showing what a provider must do.

Its lines are readable::

    {"map": "Customer_VIEW", "kind": "view"}
    {"store": [{"key": "c1", "format": "string", "document": "{\\"name\\": \\"Ada\\"}", ...}]}
    {"delete": [["c1", "string"]]}

File work blocks, so it runs on one worker thread that owns the files and the
index; the event loop only awaits it. One process at a time may use a directory
(an exclusive ``flock`` on its ``.lock`` file).

What it does not do: group commit, chunking, deadlines, retries. The sidecar's
writer does those for every provider; this one only says which of its failures a
later attempt may not meet (:meth:`JsonLinesProvider.is_transient`).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import errno
import fcntl
import hashlib
import json
import logging
import os
import re
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any, TypeVar

from sidecar.errors import ConfigError, StoreError, StoreUnavailableError
from sidecar.providers.base import (
    EventColumns,
    Provider,
    SchemaRecord,
    StoredKey,
    StoredValue,
    StoreEntry,
    StoreKind,
    raised_by,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: A key's identity within a map: its text and its format (Integer 1 is not String "1").
Identity = tuple[str, str]

#: OS errors that a later attempt may not meet: a resource or device busy for now
#: (an NFS server slow to answer, a file locked for a moment by a backup tool).
TRANSIENT_ERRNOS = frozenset({errno.EAGAIN, errno.EWOULDBLOCK, errno.EBUSY})

_SETTINGS = {"directory", "fsync"}
_SAFE_NAME = re.compile(r"[^A-Za-z0-9_.-]")
_CLOSE_TIMEOUT_SECONDS = 5.0


class JsonLinesProvider(Provider):
    """Settings: ``directory`` (``data/jsonl``, created if missing) and ``fsync``
    (true: a stored call survives a power loss, not only a crash)."""

    name = "jsonl"

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        unknown = set(self.settings) - _SETTINGS
        if unknown:
            raise ConfigError(f"provider.settings: unknown key(s) {', '.join(sorted(unknown))}")
        directory = self.settings.get("directory", "data/jsonl")
        if not isinstance(directory, str) or not directory:
            raise ConfigError("provider.settings.directory: expected a directory path")
        fsync = self.settings.get("fsync", True)
        if not isinstance(fsync, bool):
            raise ConfigError(f"provider.settings.fsync: expected true or false, got {fsync!r}")
        self.directory = Path(directory)
        self.fsync = fsync
        self._worker: ThreadPoolExecutor | None = None
        self._logs: _LogDirectory | None = None  # used on the worker thread only

    def __repr__(self) -> str:
        return f"JsonLinesProvider(directory={str(self.directory)!r})"

    # -- lifecycle ---------------------------------------------------------------

    async def open(self) -> None:
        """Lock the directory and read its schemas. Idempotent."""
        if self._worker is not None:
            return
        worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="hz-sidecar-jsonl")
        try:
            loop = asyncio.get_running_loop()
            self._logs = await loop.run_in_executor(
                worker, _LogDirectory, self.directory, self.fsync
            )
        except OSError as exc:
            worker.shutdown(wait=False)
            raise StoreUnavailableError(f"jsonl store {self.directory}: {exc}") from exc
        except BaseException:
            worker.shutdown(wait=False)
            raise
        self._worker = worker
        log.info("jsonl store open at %s (fsync=%s)", self.directory, self.fsync)

    async def close(self) -> None:
        """Release the directory's lock. Idempotent; gives up on a stuck disk after 5 s."""
        worker, self._worker = self._worker, None
        logs, self._logs = self._logs, None
        if worker is None or logs is None:
            return
        try:
            async with asyncio.timeout(_CLOSE_TIMEOUT_SECONDS):
                await asyncio.get_running_loop().run_in_executor(worker, logs.close)
        except TimeoutError:
            log.warning("jsonl store %s: the disk did not answer at close", self.directory)
        finally:
            worker.shutdown(wait=False, cancel_futures=True)

    async def _call(self, fn: Callable[[_LogDirectory], T]) -> T:
        """Run ``fn`` on the worker thread, which alone touches the files and the index."""
        worker, logs = self._worker, self._logs
        if worker is None or logs is None:
            raise StoreUnavailableError(f"jsonl store {self.directory} is not open")
        try:
            return await asyncio.get_running_loop().run_in_executor(worker, fn, logs)
        except OSError as exc:
            raise StoreUnavailableError(f"jsonl store {self.directory}: {exc}") from exc

    # -- what the sidecar's writer asks ---------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        """A busy resource (EAGAIN, EBUSY), raised as it is or as the cause of the
        StoreUnavailableError this provider wraps it in."""
        error = raised_by(exc, OSError)
        return error is not None and error.errno in TRANSIENT_ERRNOS

    # -- the provider interface ------------------------------------------------------

    async def is_available(self) -> bool:
        """The directory is writable, as the worker thread sees it; never raises."""
        try:
            return await self._call(lambda logs: os.access(logs.directory, os.W_OK))
        except Exception as exc:  # health must answer, whatever the failure
            log.debug("jsonl store %s is not available: %s", self.directory, exc)
            return False

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        if entries:
            await self._call(lambda logs: logs.map_log(map_name, kind).store(entries))

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        if not keys:
            return []
        return await self._call(lambda logs: logs.map_log(map_name, kind).load(keys))

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        if not keys:
            return 0
        return await self._call(lambda logs: logs.map_log(map_name, kind).delete(keys))

    async def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        # A snapshot taken at once: nothing is held while the caller reads the batches.
        keys = await self._call(lambda logs: logs.map_log(map_name, kind).keys())
        for start in range(0, len(keys), batch_size):
            yield keys[start : start + batch_size]

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        if schemas:
            await self._call(lambda logs: logs.put_schemas(schemas))

    async def get_schemas(self) -> list[SchemaRecord]:
        return await self._call(lambda logs: list(logs.schemas.values()))


class _LogDirectory:
    """The directory: its lock, the schema log and the maps' logs (worker thread only)."""

    def __init__(self, directory: Path, fsync: bool) -> None:
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError):
            raise ConfigError(
                f"provider.settings.directory: {directory} is a file, not a directory"
            ) from None
        self.directory = directory
        self.fsync = fsync
        self._lock = open(directory / ".lock", "a")  # held, and locked, until close()
        try:
            fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise StoreUnavailableError(
                f"jsonl store {directory} is in use by another process (one sidecar a directory)"
            ) from None
        self._maps: dict[tuple[StoreKind, str], _MapLog] = {}
        self._schema_path = directory / "schemas.jsonl"
        self.schemas: dict[int, SchemaRecord] = {}
        for record in _read_lines(self._schema_path):
            schema = SchemaRecord(
                schema_id=record["schema_id"],
                type_name=record["type_name"],
                fields=tuple((name, kind) for name, kind in record["fields"]),
            )
            self.schemas.setdefault(schema.schema_id, schema)

    def close(self) -> None:
        self._lock.close()  # releases the flock

    def map_log(self, map_name: str, kind: StoreKind) -> _MapLog:
        found = self._maps.get((kind, map_name))
        if found is None:
            found = self._maps[(kind, map_name)] = _MapLog(self, map_name, kind)
        return found

    def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        new = {s.schema_id: s for s in schemas if s.schema_id not in self.schemas}
        if not new:
            return
        lines = [
            {"schema_id": s.schema_id, "type_name": s.type_name, "fields": s.fields}
            for s in new.values()
        ]
        _append(self._schema_path, lines, fsync=self.fsync)
        self.schemas.update(new)


class _MapLog:
    """One map's file and its entries by key identity (worker thread only).

    The file is named after the map (made safe for a file name) plus a digest of its
    exact name, so that any map name stays inside the directory and two names never
    share a file.
    """

    def __init__(self, directory: _LogDirectory, map_name: str, kind: StoreKind) -> None:
        digest = hashlib.sha256(map_name.encode()).hexdigest()[:16]
        safe = _SAFE_NAME.sub("_", map_name)[:64]
        self.path = directory.directory / kind.value / f"{safe}-{digest}.jsonl"
        self.map_name = map_name
        self.kind = kind
        self.fsync = directory.fsync
        self.entries: dict[Identity, StoreEntry] = {}
        for record in _read_lines(self.path):
            if "store" in record:
                self._apply([_entry(item) for item in record["store"]])
            elif "delete" in record:
                for text, key_format in record["delete"]:
                    self.entries.pop((text, key_format), None)

    def _apply(self, entries: Sequence[StoreEntry]) -> None:
        for entry in entries:
            identity = (entry.key.text, entry.key.format)
            if self.kind is StoreKind.EVENT:
                self.entries.setdefault(identity, entry)  # the first write is kept
            else:
                self.entries[identity] = entry  # the latest write wins

    def _append(self, record: dict[str, Any]) -> None:
        records = [record]
        if not self.path.exists():
            records.insert(0, {"map": self.map_name, "kind": self.kind.value})
            if not self.path.parent.exists():
                self.path.parent.mkdir()
                if self.fsync:
                    _sync_directory(self.path.parent.parent)
        _append(self.path, records, fsync=self.fsync)

    def store(self, entries: Sequence[StoreEntry]) -> None:
        if self.kind is StoreKind.EVENT:
            # Only first writes change anything: a retried batch appends nothing.
            fresh: dict[Identity, StoreEntry] = {}
            for entry in entries:
                identity = (entry.key.text, entry.key.format)
                if identity not in self.entries:
                    fresh.setdefault(identity, entry)
            entries = list(fresh.values())
            if not entries:
                return
        self._append({"store": [_record(entry) for entry in entries]})
        self._apply(entries)

    def load(self, keys: Sequence[StoredKey]) -> list[StoreEntry]:
        identities = dict.fromkeys((k.text, k.format) for k in keys)
        found = (self.entries.get(identity) for identity in identities)
        return [entry for entry in found if entry is not None]

    def delete(self, keys: Sequence[StoredKey]) -> int:
        present = [i for i in dict.fromkeys((k.text, k.format) for k in keys) if i in self.entries]
        if present:
            self._append({"delete": present})
            for identity in present:
                del self.entries[identity]
        return len(present)

    def keys(self) -> list[StoredKey]:
        return [self.entries[identity].key for identity in sorted(self.entries)]


def _append(path: Path, records: Sequence[Mapping[str, Any]], *, fsync: bool) -> None:
    """Append ``records``, one line each, in one write; on failure leave the file as it was."""
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records).encode()
    new = not path.exists()
    with open(path, "ab") as file:
        size = file.seek(0, os.SEEK_END)
        try:
            file.write(data)
            file.flush()
            if fsync:
                os.fsync(file.fileno())
        except BaseException:
            _truncate(file, size)  # no half line for the next append to run into
            raise
    if fsync and new:
        _sync_directory(path.parent)  # a new file is durable once its name is (fsync(2))


def _sync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _truncate(file: IO[bytes], size: int) -> None:
    try:
        file.truncate(size)
    except OSError:
        log.exception("jsonl store: cannot take back a failed write to %s", file.name)


def _read_lines(path: Path) -> list[dict[str, Any]]:
    """The records of ``path`` (none if missing), dropping a last line cut short by a crash."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return []
    complete = data.rfind(b"\n") + 1
    if complete < len(data):
        log.warning(
            "jsonl store: %s ends with %d bytes of an unfinished write; dropped",
            path,
            len(data) - complete,
        )
        with open(path, "r+b") as file:
            file.truncate(complete)
    records = []
    for number, line in enumerate(data[:complete].splitlines(), start=1):
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise StoreError(f"jsonl store: {path} line {number} is not JSON: {exc}") from exc
        if "map" not in record:  # the header line names the file's map
            records.append(record)
    return records


def _record(entry: StoreEntry) -> dict[str, Any]:
    key, value = entry.key, entry.value
    record: dict[str, Any] = {
        "key": key.text,
        "format": key.format,
        "value_format": value.format,
        "document": value.document,
    }
    if key.data is not None:
        record["key_data"] = base64.b64encode(key.data).decode()
    if value.type_name is not None:
        record["type_name"] = value.type_name
    if value.schema_id is not None:
        record["schema_id"] = value.schema_id
    if entry.event is not None:
        record["event"] = dataclasses.asdict(entry.event)
    return record


def _entry(record: Mapping[str, Any]) -> StoreEntry:
    key_data = record.get("key_data")
    event = record.get("event")
    return StoreEntry(
        key=StoredKey(
            record["key"],
            record["format"],
            None if key_data is None else base64.b64decode(key_data),
        ),
        value=StoredValue(
            record["value_format"],
            record["document"],
            record.get("type_name"),
            record.get("schema_id"),
        ),
        event=None if event is None else EventColumns(**event),
    )
