"""The MapStore gRPC service: Hazelcast's MapStore/MapLoader calls, decoded and stored.

Each call: resolve the map's route, register the schemas it carries, decode
keys and values with the codec, call the provider under the call's deadline,
and answer. Errors become status codes in one place (:meth:`_fail`), from the
``status`` each :class:`sidecar.errors.SidecarError` declares.

An entry whose bytes cannot be decoded is a poison entry: it is dead-lettered
(or, with ``on-poison: reject``, fails alone; see :mod:`sidecar.deadletter`)
and the rest of its Store call is written. Everything else that goes wrong
fails the whole call.

A Store call of more than :data:`PIPELINE_ROWS` entries is written in chunks,
each while the next is decoded. If a chunk's write fails while another's
succeeded, the entries of the failed chunk are answered FAILED (with the
error's status) and the member retries them; if the call fails as a whole
after a chunk was written (an unknown schema further on, say), the member's
retry writes that chunk again, which the stores absorb (events keep their
first write, a view's row is overwritten with the same value).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import grpc
from hazelcast.serialization.compact import Schema

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.admission import Admission
from sidecar.batching import GroupCommit, Writer
from sidecar.cluster_check import check_cluster_size
from sidecar.codec import DataCodec, EncodedValue, SchemaRegistry
from sidecar.codec.compact import DEFAULT_MAX_DEPTH
from sidecar.config import InitialLoadMode, OnPoison
from sidecar.deadletter import DeadLetterCounter, PoisonEntries, count_nothing
from sidecar.errors import (
    DecodeError,
    EntryTooLargeError,
    InvalidRequestError,
    PersistenceDisabledError,
    SidecarError,
    StoreTimeoutError,
    UnknownSchemaError,
)
from sidecar.providers.base import Provider, SchemaRecord, StoredKey, StoreEntry, StoreKind
from sidecar.retry import deadline_scope
from sidecar.routing import Route, Router
from sidecar.telemetry import Telemetry
from sidecar.unreadable import UnreadableRows

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_KEY_BATCH = 1000
#: A Store call with more entries is written in chunks of this many rows, each
#: while the next is decoded (the sidecar decodes on one core while the database
#: writes on another). Smaller calls are written in one transaction.
PIPELINE_ROWS = 256
MAX_KEY_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """Bounds on what one call may ask for."""

    default_key_batch: int = DEFAULT_KEY_BATCH
    max_key_batch: int = MAX_KEY_BATCH
    max_entries_per_call: int = 100_000
    max_nesting_depth: int = DEFAULT_MAX_DEPTH
    #: ``listen.max-message-bytes``: gRPC sends no larger message, so Load answers fit it.
    max_response_bytes: int = 64 * 1024 * 1024

    def check_count(self, count: int, what: str, map_name: str) -> None:
        if count > self.max_entries_per_call:
            raise InvalidRequestError(
                f"{count} {what} in one call exceed limits.max-entries-per-call "
                f"({self.max_entries_per_call})",
                map_name=map_name,
            )


#: The result of every written entry (a response copies it, so it is shared).
_WRITTEN = pb.EntryResult(status=pb.ENTRY_STATUS_WRITTEN)


async def _settled(tasks: Iterable[asyncio.Task[None]]) -> list[BaseException | None]:
    """Wait for the chunk writes; their outcomes (None, or the exception).

    Shielded: a Store call cancelled meanwhile (its gRPC deadline) leaves each write
    to its own deadline. Cancelling it from here too could interrupt psycopg while
    it cancels the statement, which makes it drop the connection and leaves the
    statement waiting on the server.
    """
    return await asyncio.gather(*(asyncio.shield(task) for task in tasks), return_exceptions=True)


def _key_repr(data: bytes) -> str:
    return data[:24].hex() + ("..." if len(data) > 24 else "")


class MapStoreService(pb_grpc.MapStoreServicer):
    """Serves ``hzsidecar.v1.MapStore`` over one provider."""

    def __init__(
        self,
        *,
        provider: Provider,
        router: Router,
        registry: SchemaRegistry,
        persistence_enabled: bool = True,
        limits: ServiceLimits | None = None,
        on_poison: OnPoison = OnPoison.DEAD_LETTER,
        dead_letter_counter: DeadLetterCounter | None = None,
        telemetry: Telemetry | None = None,
        group_commit: GroupCommit | None = None,
        pipeline_rows: int = PIPELINE_ROWS,
        admission: Admission | None = None,
    ) -> None:
        self._provider = provider
        # Bounds on the calls, bytes and schemas taken on at once (sidecar.admission).
        self._admission = admission or Admission()
        self._router = router
        self._registry = registry
        self._enabled = persistence_enabled
        self._limits = limits or ServiceLimits()
        self._codec = DataCodec(registry, max_depth=self._limits.max_nesting_depth)
        self._on_poison = on_poison
        # The metric hook of dead-lettered entries (DEAD_LETTERED_METRIC).
        self._dead_letter_counter = dead_letter_counter
        self._telemetry = telemetry or Telemetry.disabled()
        # Stores and deletes go through group commit when it is on (sidecar.batching).
        self._writer: Writer = group_commit or provider
        self._schema_cache: dict[int, pb.Schema] = {}
        self._pipeline_rows = pipeline_rows
        self._unreadable = UnreadableRows(provider, self._telemetry.unreadable_row)

    # -- schemas -------------------------------------------------------------------

    async def load_schemas(self) -> int:
        """Register every schema the provider has persisted; return how many are known."""
        for record in await self._provider.get_schemas():
            if record.schema_id not in self._registry:
                self._registry.add(record)
        return len(self._registry.records())

    async def _register(self, schemas: Sequence[pb.Schema], map_name: str) -> None:
        self._admission.check_call_schemas(schemas, map_name)
        new: dict[int, tuple[SchemaRecord, Schema]] = {}
        for message in schemas:
            record = SchemaRecord(
                schema_id=message.schema_id,
                type_name=message.type_name,
                fields=tuple((f.name, f.kind) for f in message.fields),
            )
            try:
                schema = self._registry.check(record)
            except SidecarError as exc:
                context = f"schema {record.type_name!r} (id {record.schema_id})"
                raise exc.with_context(context, map_name=map_name) from exc
            if record.schema_id not in self._registry:
                new[record.schema_id] = (record, schema)
        if not new:
            return
        # Schemas are made durable before any value that uses them, and known only once
        # durable: a schema whose write failed is written again with the call's retry.
        with self._admission.new_schemas(len(new), len(self._registry), map_name):
            await self._provider.put_schemas([record for record, _ in new.values()])
            for _, schema in new.values():
                self._registry.insert(schema)

    async def _with_schemas(self, fn: Callable[[], T]) -> T:
        """Run a codec step; on an unknown schema id, refresh from the provider once."""
        try:
            return fn()
        except UnknownSchemaError:
            # Another sidecar sharing this store may have persisted it.
            await self.load_schemas()
            return fn()

    # -- helpers -------------------------------------------------------------------

    def _route(self, map_name: str) -> Route:
        if not map_name:
            raise InvalidRequestError("map_name is empty")
        if not self._enabled:
            raise PersistenceDisabledError(
                "persistence is disabled (framework.persistence.enabled: false); "
                "enable it in the sidecar configuration",
                map_name=map_name,
            )
        return self._router.route(map_name)

    async def _deadline(self, context: grpc.aio.ServicerContext, awaitable: Awaitable[T]) -> T:
        remaining = context.time_remaining()
        try:
            # The retry scope ends a little before the gRPC deadline, so that a
            # provider that keeps failing answers UNAVAILABLE rather than being
            # cancelled into DEADLINE_EXCEEDED.
            scope = None if remaining is None else max(remaining - 0.05, 0.0)
            with deadline_scope(scope):
                async with asyncio.timeout(remaining):
                    with self._telemetry.provider_call(awaitable):
                        return await awaitable
        except TimeoutError as exc:
            raise StoreTimeoutError(
                f"the store did not answer within the call deadline ({remaining:.3f} s)"
            ) from exc

    async def _fail(
        self, context: grpc.aio.ServicerContext, op: str, exc: BaseException
    ) -> NoReturn:
        self._telemetry.call_failed(exc)
        if isinstance(exc, SidecarError):
            log.warning("%s failed: %s (%s)", op, exc, exc.status.name)
            await context.abort(exc.status, str(exc))
        log.exception("%s failed unexpectedly", op)
        await context.abort(grpc.StatusCode.INTERNAL, f"{op}: internal error: {exc!r}")
        raise AssertionError("ServicerContext.abort returned")  # abort always raises

    async def _lookup_keys(
        self, route: Route, keys: Sequence[bytes]
    ) -> dict[tuple[str, str], tuple[StoredKey, bytes]]:
        """Decode the keys of a Load or Delete: (text, format) → (stored key, the bytes asked).

        A key whose Compact schema is unknown even after a refresh from the provider
        cannot be in the store (every schema is persisted before anything that uses
        it), so it is left out: Hazelcast loads before its first write-through put.
        """
        map_name = route.map_name
        requested: dict[tuple[str, str], tuple[StoredKey, bytes]] = {}
        refreshed = False
        for index, data in enumerate(keys):
            try:
                try:
                    key = self._codec.decode_key(data, route.java_key_text, route.kind)
                except UnknownSchemaError:
                    if refreshed:
                        continue
                    refreshed = True
                    await self.load_schemas()
                    key = self._codec.decode_key(data, route.java_key_text, route.kind)
            except UnknownSchemaError:
                continue
            except SidecarError as exc:
                context = f"key #{index} ({_key_repr(data)}) cannot be decoded"
                raise exc.with_context(context, map_name=map_name) from exc
            requested.setdefault((key.text, key.format), (key, data))
        return requested

    # -- Store ---------------------------------------------------------------------

    async def Store(
        self, request: pb.StoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.StoreResponse:
        try:
            with self._admission.admit(request, "Store", request.map_name):
                return await self._store(request, context)
        except Exception as exc:
            await self._fail(context, f"Store on map '{request.map_name}'", exc)

    async def _store(
        self, request: pb.StoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.StoreResponse:
        log.debug("Store received map=%s entries=%d", request.map_name, len(request.entries))
        route = self._route(request.map_name)
        check_cluster_size(type(self._provider), context.invocation_metadata() or ())
        self._limits.check_count(len(request.entries), "entries", request.map_name)
        await self._register(request.schemas, request.map_name)
        # One result per entry, in request order: None for written (filled in at the end).
        results: list[pb.EntryResult | None] = []
        poison = PoisonEntries(self._on_poison, self._dead_letter_counter or count_nothing)
        # The rows being decoded, by key identity (text, format), and their entries' indexes.
        batch: dict[tuple[str, str], StoreEntry] = {}
        indexes: list[int] = []
        # Earlier rows of a large call, being written while the next are decoded.
        writes: list[tuple[asyncio.Task[None], list[int]]] = []
        handed: set[tuple[str, str]] = set()
        # An event map keeps the first write of a key, within a call too: a repeated
        # key is answered as its first entry is (index → index of the first entry).
        first_at: dict[tuple[str, str], int] = {}
        repeats: list[tuple[int, int]] = []
        self._telemetry.begin_phase("decode")
        try:
            for index, entry in enumerate(request.entries):
                if len(batch) >= self._pipeline_rows:
                    writes.append((self._write_task(context, request, route, batch), indexes))
                    handed.update(batch)
                    batch, indexes = {}, []
                    await asyncio.sleep(0)  # let the write reach the database
                    self._telemetry.begin_phase("decode")
                try:
                    row = self._decode_entry(request, index, entry, route, poison)
                except UnknownSchemaError:
                    # Another sidecar sharing this store may have persisted it.
                    await self.load_schemas()
                    try:
                        row = self._decode_entry(request, index, entry, route, poison)
                    except UnknownSchemaError as exc:
                        raise UnknownSchemaError(exc.schema_id, map_name=request.map_name) from exc
                if isinstance(row, pb.EntryResult):
                    results.append(row)
                    continue
                identity, store_entry = row
                results.append(None)
                if route.kind is StoreKind.EVENT:
                    if identity in first_at:
                        repeats.append((index, first_at[identity]))
                        continue
                    first_at[identity] = index
                elif identity in handed and identity not in batch:
                    # A view key repeated in a later chunk: the latest write must win,
                    # so the earlier chunk's write ends first.
                    await _settled(task for task, _ in writes)
                batch[identity] = store_entry
                indexes.append(index)
            if batch and not writes and self._writer is not self._provider:
                # Group commit writes in a task of its own: awaiting it here is safe.
                rows = list(batch.values())
                await self._deadline(
                    context, self._writer.store(request.map_name, route.kind, rows)
                )
            elif batch:
                # A write of the provider's own: in a task that the call's cancellation
                # does not reach (see _settled).
                writes.append((self._write_task(context, request, route, batch), indexes))
        finally:
            # Whatever happens, no write of this call outlives it unobserved.
            outcomes = await _settled(task for task, _ in writes)
        self._chunk_failures(request.map_name, results, writes, outcomes)
        for index, first in repeats:
            results[index] = results[first]
        await self._deadline(context, poison.keep(self._provider))
        log.debug(
            "Store map=%s kind=%s entries=%d written=%d",
            request.map_name,
            route.kind.value,
            len(request.entries),
            sum(r is None for r in results),
        )
        return pb.StoreResponse(results=[_WRITTEN if r is None else r for r in results])

    def _decode_entry(
        self,
        request: pb.StoreRequest,
        index: int,
        entry: pb.Entry,
        route: Route,
        poison: PoisonEntries,
    ) -> tuple[tuple[str, str], StoreEntry] | pb.EntryResult:
        """One entry's key identity (text, format) and row, or the result of a poison entry.

        Raises:
            UnknownSchemaError: the entry uses a schema this sidecar was never sent.
        """
        try:
            key = self._codec.decode_key_fields(entry.key, route.java_key_text, route.kind)
            decoded = self._codec.decode_for_store(entry.value)
        except DecodeError as exc:
            self._telemetry.codec_error(request.map_name, exc)
            message = (
                f"map '{request.map_name}', entry #{index} (key {_key_repr(entry.key)}): "
                f"cannot be decoded: {exc}"
            )
            return poison.add(request.map_name, index, entry.key, entry.value, message)
        return (key.stored.text, key.stored.format), route.store_entry(key, decoded)

    def _write_task(
        self,
        context: grpc.aio.ServicerContext,
        request: pb.StoreRequest,
        route: Route,
        batch: dict[tuple[str, str], StoreEntry],
    ) -> asyncio.Task[None]:
        """Start writing one chunk of a large Store call."""
        rows = list(batch.values())
        return asyncio.create_task(
            self._deadline(context, self._writer.store(request.map_name, route.kind, rows))
        )

    @staticmethod
    def _chunk_failures(
        map_name: str,
        results: list[pb.EntryResult | None],
        writes: list[tuple[asyncio.Task[None], list[int]]],
        outcomes: list[BaseException | None],
    ) -> None:
        """Report the chunks of a large call that failed, entry by entry.

        When every chunk failed, nothing was written and the call fails as a
        whole (as a call written at once would). Otherwise the entries of the
        failed chunks are FAILED with the error's status, and the member retries
        just those.
        """
        failed = [
            (outcome, chunk)
            for outcome, (_, chunk) in zip(outcomes, writes, strict=True)
            if isinstance(outcome, BaseException)
        ]
        if not failed:
            return
        if len(failed) == len(writes):
            raise failed[0][0]
        for exc, chunk in failed:
            status = exc.status if isinstance(exc, SidecarError) else grpc.StatusCode.INTERNAL
            log.warning(
                "Store on map '%s': %d of its entries were not written: %s (%s)",
                map_name,
                len(chunk),
                exc,
                status.name,
            )
            failure = pb.EntryResult(
                status=pb.ENTRY_STATUS_FAILED,
                code=status.value[0],
                message=f"not written: {exc}",
            )
            for index in chunk:
                results[index] = failure

    # -- Delete --------------------------------------------------------------------

    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        try:
            with self._admission.admit(request, "Delete", request.map_name):
                route = self._route(request.map_name)
                check_cluster_size(type(self._provider), context.invocation_metadata() or ())
                self._limits.check_count(len(request.keys), "keys", request.map_name)
                requested = await self._lookup_keys(route, request.keys)
                keys = [key for key, _ in requested.values()]
                deleted = 0
                if keys:
                    deleted = await self._deadline(
                        context, self._writer.delete(request.map_name, route.kind, keys)
                    )
                return pb.DeleteResponse(deleted=deleted)
        except Exception as exc:
            await self._fail(context, f"Delete on map '{request.map_name}'", exc)

    # -- Load ----------------------------------------------------------------------

    async def Load(
        self, request: pb.LoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        try:
            with self._admission.admit(request, "Load", request.map_name):
                return await self._load(request, context)
        except Exception as exc:
            await self._fail(context, f"Load on map '{request.map_name}'", exc)

    async def _load(
        self, request: pb.LoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        route = self._route(request.map_name)
        self._limits.check_count(len(request.keys), "keys", request.map_name)
        requested = await self._lookup_keys(route, request.keys)
        keys = [key for key, _ in requested.values()]
        if not keys:
            return pb.LoadResponse()
        found = await self._deadline(
            context, self._provider.load(request.map_name, route.kind, keys)
        )
        self._telemetry.begin_phase("encode")
        response = pb.LoadResponse()
        schema_ids: set[int] = set()
        for stored in found:
            asked = requested.get((stored.key.text, stored.key.format))
            if asked is None:
                # Providers answer by text and format: a row of another key type
                # (String "1" for Integer 1) is never one asked for.
                continue
            key_bytes = asked[1]
            encoded = await self._encode_stored(request.map_name, stored)
            if encoded is None:
                continue
            schema_ids |= encoded.schema_ids
            response.entries.add(key=key_bytes, value=encoded.data)
        log.debug(
            "Load map=%s keys=%d found=%d", request.map_name, len(keys), len(response.entries)
        )
        response.schemas.extend(self._schema_messages(schema_ids))
        return self._fit_load_answer(request.map_name, response, context)

    def _fit_load_answer(
        self, map_name: str, response: pb.LoadResponse, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        """The answer, within ``listen.max-message-bytes``: what does not fit is deferred.

        gRPC refuses to send a larger message, and would refuse the same Load again
        every time. So the answer keeps the longest run of its entries that fits
        together with the keys of the others, which it lists in ``deferred_keys`` for
        the shim to ask again. Sizes are the protobuf encoding's, from field lengths.

        Raises:
            EntryTooLargeError: the first entry does not fit in an answer, so asking
                again cannot help (marked with a trailer for the shim).
        """
        limit = self._limits.max_response_bytes
        size = sum(self._field_size(schema.ByteSize()) for schema in response.schemas)
        entry_sizes = [
            self._field_size(self._field_size(len(e.key)) + self._field_size(len(e.value)))
            for e in response.entries
        ]
        if size + sum(entry_sizes) <= limit:
            return response
        key_sizes = [self._field_size(len(e.key)) for e in response.entries]
        size += sum(key_sizes)
        kept = 0
        # An entry always costs more than its key: keep entries while the answer fits.
        while kept < len(entry_sizes) and size - key_sizes[kept] + entry_sizes[kept] <= limit:
            size += entry_sizes[kept] - key_sizes[kept]
            kept += 1
        if kept == 0:
            first = response.entries[0]
            needed = size - key_sizes[0] + entry_sizes[0]
            context.set_trailing_metadata(((EntryTooLargeError.TRAILER, str(needed)),))
            deferring = (
                f" and the {len(key_sizes) - 1} keys it defers" if len(key_sizes) > 1 else ""
            )
            raise EntryTooLargeError(
                f"key {_key_repr(first.key)}: its value is {len(first.value)} bytes and an "
                f"answer with it{deferring} {needed} bytes, more than listen.max-message-bytes "
                f"({limit}) allows; raise listen.max-message-bytes to load it",
                map_name=map_name,
            )
        response.deferred_keys.extend(e.key for e in response.entries[kept:])
        del response.entries[kept:]
        log.warning(
            "Load on map '%s': the answer would exceed listen.max-message-bytes (%d): "
            "%d entries answered (%d bytes), %d deferred to a further call",
            map_name,
            limit,
            kept,
            size,
            len(response.deferred_keys),
        )
        return response

    @staticmethod
    def _field_size(length: int) -> int:
        """Bytes of a length-delimited protobuf field of ``length`` bytes (field number < 16)."""
        return 1 + (max(length.bit_length(), 1) + 6) // 7 + length

    async def _encode_stored(self, map_name: str, stored: StoreEntry) -> EncodedValue | None:
        """A stored value's bytes, or None (reported) when the row cannot be read.

        One unreadable row never fails the call: the member gets every other entry.
        """
        try:
            return await self._with_schemas(lambda: self._codec.encode_value(stored.value))
        except SidecarError as exc:
            await self._unreadable.report(map_name, stored.key, exc)
            return None

    def _schema_messages(self, schema_ids: set[int] | frozenset[int]) -> list[pb.Schema]:
        messages = []
        for schema_id in sorted(schema_ids):
            # A schema id is its layout's fingerprint: the message never changes.
            message = self._schema_cache.get(schema_id)
            if message is None:
                record = self._registry.to_record(self._registry.get(schema_id))
                message = self._schema_cache[schema_id] = pb.Schema(
                    schema_id=record.schema_id,
                    type_name=record.type_name,
                    fields=[pb.SchemaField(name=n, kind=k) for n, k in record.fields],
                )
            messages.append(message)
        return messages

    # -- LoadAllKeys -----------------------------------------------------------------

    async def _encode_stored_key(self, map_name: str, route: Route, key: StoredKey) -> bytes | None:
        """A stored key's bytes, or None (reported) when the row cannot be read."""
        try:
            resolved = self._codec.resolve_key(route.kind, key)
            return await self._with_schemas(lambda: self._codec.encode_key(resolved))
        except SidecarError as exc:
            await self._unreadable.report(map_name, key, exc)
            return None

    async def LoadAllKeys(
        self, request: pb.LoadAllKeysRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.KeyBatch]:
        try:
            route = self._route(request.map_name)
            if route.initial_load_mode is InitialLoadMode.LAZY:
                return
            size = request.batch_size or self._limits.default_key_batch
            if size > self._limits.max_key_batch:
                raise InvalidRequestError(
                    f"batch_size {size} exceeds the limit of {self._limits.max_key_batch}",
                    map_name=request.map_name,
                )
            sent: set[int] = set()
            total = 0
            batches = self._provider.load_all_keys(request.map_name, route.kind, size)
            try:
                async for keys in batches:
                    batch = pb.KeyBatch()
                    for key in keys:
                        data = await self._encode_stored_key(request.map_name, route, key)
                        if data is None:
                            continue
                        batch.keys.append(data)
                        if key.format.startswith("compact:"):
                            # The member may know none of them after a full restart.
                            schema_ids = self._codec.decode_value(data).schema_ids - sent
                            batch.schemas.extend(self._schema_messages(schema_ids))
                            sent |= schema_ids
                    total += len(batch.keys)
                    if batch.keys:
                        yield batch
            finally:
                # The provider's iterator is closed on every path, the member cancelling
                # the stream mid-way included, so nothing it holds outlives the stream.
                close = getattr(batches, "aclose", None)
                if close is not None:
                    await close()
            log.debug("LoadAllKeys map=%s keys=%d", request.map_name, total)
        except Exception as exc:
            await self._fail(context, f"LoadAllKeys on map '{request.map_name}'", exc)
