"""The MapStore gRPC service: Hazelcast's MapStore/MapLoader calls, decoded and stored.

Each call: resolve the map's route, register the schemas it carries, decode
keys and values with the codec, call the provider under the call's deadline,
and answer. Errors become status codes in one place (:meth:`_fail`), from the
``status`` each :class:`sidecar.errors.SidecarError` declares.

An entry whose bytes cannot be decoded is a poison entry: it is dead-lettered
(or, with ``on-poison: reject``, fails alone; see :mod:`sidecar.deadletter`)
and the rest of its Store call is written. Everything else that goes wrong
fails the whole call.

Every write goes through the one writer (:mod:`sidecar.writer`): the service
hands it a Store call's rows while it decodes them, and the writer chunks,
merges, retries and bounds them. If a chunk's write fails while another's
succeeded, the entries of the failed chunk are answered FAILED (with the
error's status) and the member retries them; if the call fails as a whole
after a chunk was written (an unknown schema further on, say), the member's
retry writes that chunk again, which the stores absorb (events keep their
first write, a view's row is overwritten with the same value).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import NoReturn, TypeVar

import grpc
from hazelcast.serialization.compact import Schema

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.admission import Admission, Request
from sidecar.callstream import CallContext, CallStreams
from sidecar.cluster_check import check_cluster_size
from sidecar.codec import DataCodec, EncodedValue, SchemaRegistry
from sidecar.codec.compact import DEFAULT_MAX_DEPTH
from sidecar.codec.schemas import settle_write_orders
from sidecar.config import InitialLoadMode, OnPoison
from sidecar.deadletter import PoisonEntries
from sidecar.deadline import deadline_scope
from sidecar.errors import (
    DecodeError,
    EntryTooLargeError,
    InvalidRequestError,
    PersistenceDisabledError,
    SidecarError,
    StoreTimeoutError,
    UnknownSchemaError,
    WriteOrderNeeded,
)
from sidecar.providers.base import Provider, SchemaRecord, StoredKey, StoreEntry
from sidecar.routing import Route, Router
from sidecar.telemetry import CallRecorder, Telemetry
from sidecar.unreadable import UnreadableRows
from sidecar.writer import StoreOutcome, Writer

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_KEY_BATCH = 1000
MAX_KEY_BATCH = 100_000
#: The writer's retries end this long before the call's gRPC deadline (see _retry_scope).
RETRY_MARGIN_SECONDS = 0.05
#: A Load encodes this many values between two turns of the event loop, so that a
#: large loadAll does not hold every other call back while it encodes.
ENCODE_SLICE = 256
#: What a Reply of the Calls stream adds around a Load answer: its id (at most 11
#: bytes) and the answer's tag and length (at most 6).
REPLY_OVERHEAD_BYTES = 17


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
        telemetry: Telemetry | None = None,
        writer: Writer | None = None,
        admission: Admission | None = None,
    ) -> None:
        self._provider = provider
        # Bounds on the calls, bytes and schemas taken on at once (sidecar.admission).
        self._admission = admission or Admission()
        self._router = router
        self._registry = registry
        self._enabled = persistence_enabled
        self._limits = limits or ServiceLimits()
        # Each call reports to a recorder of its own (sidecar.telemetry).
        self._telemetry = telemetry or Telemetry.disabled()
        self._codec = DataCodec(
            registry,
            max_depth=self._limits.max_nesting_depth,
            on_fallback=self._telemetry.codec_fallback,
        )
        self._on_poison = on_poison
        # Every provider call goes through the writer: stores and deletes grouped,
        # chunked and bounded, everything retried (sidecar.writer).
        self._writer = writer or Writer(provider)
        self._schema_cache: dict[int, pb.Schema] = {}
        self._unreadable = UnreadableRows(provider)
        # Store, Delete and Load calls of the shim's long-lived stream (sidecar.callstream).
        self.streams = CallStreams(
            {"store": self._serve_store, "delete": self._serve_delete, "load": self._serve_load},
            max_in_flight=self._admission.limits.max_calls_in_flight,
        )

    # -- schemas -------------------------------------------------------------------

    async def load_schemas(self) -> int:
        """Register every schema the provider has persisted; return how many are known."""
        # Known schemas too: a write order pending here may have been claimed since.
        for record in await self._writer.run("get_schemas", self._provider.get_schemas):
            self._registry.add(record)
        return len(self._registry.records())

    async def _register(self, schemas: Sequence[pb.Schema], map_name: str) -> None:
        self._admission.check_call_schemas(schemas, map_name)
        new: dict[int, tuple[SchemaRecord, Schema]] = {}
        # A new schema's write order is claimed by the first record decoded with it
        # (sidecar.codec.jsonmap); providers that keep none leave documents their "@order".
        order: tuple[str, ...] | None = () if self._provider.supports_write_order else None
        for message in schemas:
            record = SchemaRecord(
                schema_id=message.schema_id,
                type_name=message.type_name,
                fields=tuple((f.name, f.kind) for f in message.fields),
                write_order=order,
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
            records = [record for record, _ in new.values()]
            await self._writer.run("put_schemas", lambda: self._provider.put_schemas(records))
            for _, schema in new.values():
                self._registry.insert(schema, order)

    async def _with_schemas(self, fn: Callable[[], T]) -> T:
        """Run a codec step; what it lacks (a schema, a write order) is settled once."""
        try:
            return fn()
        except (UnknownSchemaError, WriteOrderNeeded):
            return await self._settle(fn)

    async def _settle(self, fn: Callable[[], T]) -> T:
        """Run a codec step again after it failed for want of a schema or a write order.

        An unknown schema id refreshes the registry from the provider once: another
        sidecar sharing this store may have persisted it. A write order is claimed
        (a record being decoded) or refreshed (a document being encoded) by
        :func:`settle_write_orders`.
        """
        try:
            return await settle_write_orders(fn, self._registry, self._provider)
        except UnknownSchemaError:
            await self.load_schemas()
            return await settle_write_orders(fn, self._registry, self._provider)

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

    @staticmethod
    def _retry_scope(context: CallContext) -> float | None:
        """Seconds the call's provider work may take: until a little before its gRPC deadline.

        The retry scope ends that much before, so that a provider that keeps failing
        answers UNAVAILABLE rather than being cancelled into DEADLINE_EXCEEDED.
        """
        remaining = context.time_remaining()
        return None if remaining is None else max(remaining - RETRY_MARGIN_SECONDS, 0.0)

    def _recorder(
        self, method: str, map_name: str, context: CallContext, size: int | None
    ) -> CallRecorder:
        """The call's recorder, labelled with its map only when the map is routed."""
        if not self._telemetry.enabled:
            return self._telemetry.call(method, None, None, None)  # records nothing
        try:
            kind: str | None = self._router.route(map_name).kind.value if map_name else None
        except SidecarError:
            kind = None
        return self._telemetry.call(
            method,
            map_name if kind is not None else None,
            kind,
            context.invocation_metadata(),
            size=size,
        )

    async def _deadline(
        self,
        context: CallContext,
        rec: CallRecorder,
        operation: str,
        awaitable: Awaitable[T],
    ) -> T:
        remaining = context.time_remaining()
        try:
            with deadline_scope(self._retry_scope(context)):
                async with asyncio.timeout(remaining):
                    with rec.provider_call(operation):
                        return await awaitable
        except TimeoutError as exc:
            raise StoreTimeoutError(
                f"the store did not answer within the call deadline ({remaining:.3f} s)"
            ) from exc

    async def _fail(
        self, context: CallContext, rec: CallRecorder, op: str, exc: BaseException
    ) -> NoReturn:
        rec.failed(exc)
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
        decode = self._codec.decode_key
        for index, data in enumerate(keys):
            try:
                try:
                    key = decode(data, route.java_key_text, route.kind)
                except (UnknownSchemaError, WriteOrderNeeded) as exc:
                    if isinstance(exc, UnknownSchemaError):
                        if refreshed:  # the store was asked once already in this call
                            continue
                        refreshed = True
                    key = await self._settle(
                        functools.partial(decode, data, route.java_key_text, route.kind)
                    )
            except UnknownSchemaError:
                continue
            except SidecarError as exc:
                context = f"key #{index} ({_key_repr(data)}) cannot be decoded"
                raise exc.with_context(context, map_name=map_name) from exc
            requested.setdefault((key.text, key.format), (key, data))
        return requested

    async def _serve(
        self,
        method: str,
        request: Request,
        size: int,
        context: CallContext,
        body: Callable[[CallRecorder], Awaitable[T]],
    ) -> T:
        """Serve one Store, Delete or Load, unary or on the Calls stream: recorded,
        admitted, and any failure answered with its status (:meth:`_fail`)."""
        with self._recorder(method, request.map_name, context, size) as rec:
            try:
                with self._admission.admit(request, method, request.map_name):
                    return await body(rec)
            except Exception as exc:
                await self._fail(context, rec, f"{method} on map '{request.map_name}'", exc)

    # -- Store ---------------------------------------------------------------------

    async def Store(
        self, request: pb.StoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.StoreResponse:
        return await self._serve_store(request, context, pb.StoreResponse())

    async def _serve_store(
        self, request: pb.StoreRequest, context: CallContext, response: pb.StoreResponse
    ) -> pb.StoreResponse:
        """Serve a Store (unary or on the Calls stream), answering into ``response``."""
        return await self._serve(
            "Store",
            request,
            len(request.entries),
            context,
            lambda rec: self._store(request, context, rec, response),
        )

    async def _store(
        self,
        request: pb.StoreRequest,
        context: CallContext,
        rec: CallRecorder,
        response: pb.StoreResponse,
    ) -> pb.StoreResponse:
        log.debug("Store received map=%s entries=%d", request.map_name, len(request.entries))
        route = self._route(request.map_name)
        check_cluster_size(type(self._provider), context.invocation_metadata() or ())
        self._limits.check_count(len(request.entries), "entries", request.map_name)
        await self._register(request.schemas, request.map_name)
        # One result per entry, in request order: None for written (filled in at the end).
        results: list[pb.EntryResult | None] = []
        poison = PoisonEntries(self._on_poison, lambda _map: rec.dead_lettered())
        with deadline_scope(self._retry_scope(context)), rec.phase("decode"):
            outcome = await self._hand_over(request, route, results, poison, rec)
        self._report_failures(request.map_name, results, outcome)
        if poison:
            await self._deadline(context, rec, "put_dead_letters", poison.keep(self._provider))
        failed = sum(r is not None and r.status == pb.ENTRY_STATUS_FAILED for r in results)
        rec.stored(entries=len(request.entries), failed=failed)
        log.debug(
            "Store map=%s kind=%s entries=%d written=%d",
            request.map_name,
            route.kind.value,
            len(request.entries),
            sum(r is None for r in results),
        )
        response.results.extend([_WRITTEN if r is None else r for r in results])
        return response

    async def _hand_over(
        self,
        request: pb.StoreRequest,
        route: Route,
        results: list[pb.EntryResult | None],
        poison: PoisonEntries,
        rec: CallRecorder,
    ) -> StoreOutcome:
        """Decode the call's entries and hand their rows to the writer as they come."""
        async with self._writer.session(request.map_name, route.kind) as session:
            for index, entry in enumerate(request.entries):
                try:
                    row = self._decode_entry(request, index, entry, route, poison, rec)
                except (UnknownSchemaError, WriteOrderNeeded):
                    step = functools.partial(
                        self._decode_entry, request, index, entry, route, poison, rec
                    )
                    try:
                        row = await self._settle(step)
                    except UnknownSchemaError as exc:
                        raise UnknownSchemaError(exc.schema_id, map_name=request.map_name) from exc
                if isinstance(row, pb.EntryResult):
                    results.append(row)
                    continue
                results.append(None)
                await session.add(index, row)
            with rec.provider_call("store"):
                return await session.finish()

    def _decode_entry(
        self,
        request: pb.StoreRequest,
        index: int,
        entry: pb.Entry,
        route: Route,
        poison: PoisonEntries,
        rec: CallRecorder,
    ) -> StoreEntry | pb.EntryResult:
        """One entry's row, or the result of a poison entry.

        Raises:
            UnknownSchemaError: the entry uses a schema this sidecar was never sent.
        """
        try:
            key = self._codec.decode_key_fields(entry.key, route.java_key_text, route.kind)
            decoded = self._codec.decode_for_store(entry.value)
        except DecodeError as exc:
            rec.codec_error(exc)
            message = (
                f"map '{request.map_name}', entry #{index} (key {_key_repr(entry.key)}): "
                f"cannot be decoded: {exc}"
            )
            return poison.add(request.map_name, index, entry.key, entry.value, message)
        return route.store_entry(key, decoded)

    @staticmethod
    def _report_failures(
        map_name: str, results: list[pb.EntryResult | None], outcome: StoreOutcome
    ) -> None:
        """Answer the entries the writer could not write FAILED, with their error's status.

        The writer raised already when nothing was written (the call then fails as a
        whole, as a call written at once would); here some chunks were written, and
        the member retries just the entries of the others.
        """
        failures: dict[int, pb.EntryResult] = {}
        for index, exc in sorted(outcome.failed.items()):
            failure = failures.get(id(exc))
            if failure is None:
                status = exc.status if isinstance(exc, SidecarError) else grpc.StatusCode.INTERNAL
                count = sum(1 for e in outcome.failed.values() if e is exc)
                log.warning(
                    "Store on map '%s': %d of its entries were not written: %s (%s)",
                    map_name,
                    count,
                    exc,
                    status.name,
                )
                failure = failures[id(exc)] = pb.EntryResult(
                    status=pb.ENTRY_STATUS_FAILED,
                    code=status.value[0],
                    message=f"not written: {exc}",
                )
            results[index] = failure

    # -- Delete --------------------------------------------------------------------

    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        return await self._serve_delete(request, context, pb.DeleteResponse())

    async def _serve_delete(
        self, request: pb.DeleteRequest, context: CallContext, response: pb.DeleteResponse
    ) -> pb.DeleteResponse:
        """Serve a Delete (unary or on the Calls stream), answering into ``response``."""
        return await self._serve(
            "Delete",
            request,
            len(request.keys),
            context,
            lambda rec: self._delete(request, context, rec, response),
        )

    async def _delete(
        self,
        request: pb.DeleteRequest,
        context: CallContext,
        rec: CallRecorder,
        response: pb.DeleteResponse,
    ) -> pb.DeleteResponse:
        route = self._route(request.map_name)
        check_cluster_size(type(self._provider), context.invocation_metadata() or ())
        self._limits.check_count(len(request.keys), "keys", request.map_name)
        requested = await self._lookup_keys(route, request.keys)
        keys = [key for key, _ in requested.values()]
        deleted = 0
        if keys:
            deleted = await self._deadline(
                context, rec, "delete", self._writer.delete(request.map_name, route.kind, keys)
            )
        rec.deleted(keys=len(request.keys))
        response.deleted = deleted
        return response

    # -- Load ----------------------------------------------------------------------

    async def Load(
        self, request: pb.LoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        return await self._serve_load(request, context, pb.LoadResponse())

    async def _serve_load(
        self, request: pb.LoadRequest, context: CallContext, response: pb.LoadResponse
    ) -> pb.LoadResponse:
        """Serve a Load (unary or on the Calls stream), answering into ``response``.

        The answer is built where it is sent from: a stream's reply holds it, so a
        large loadAll answer is never copied.
        """
        return await self._serve(
            "Load",
            request,
            len(request.keys),
            context,
            lambda rec: self._load(request, context, rec, response),
        )

    async def _load(
        self,
        request: pb.LoadRequest,
        context: CallContext,
        rec: CallRecorder,
        response: pb.LoadResponse,
    ) -> pb.LoadResponse:
        route = self._route(request.map_name)
        self._limits.check_count(len(request.keys), "keys", request.map_name)
        requested = await self._lookup_keys(route, request.keys)
        keys = [key for key, _ in requested.values()]
        # Every distinct key asked counts, those of an unknown schema as misses.
        asked = len(set(request.keys))
        if not keys:
            rec.loaded(asked=asked, found=0)
            return response
        provider, map_name, kind = self._provider, request.map_name, route.kind
        found = await self._deadline(
            context,
            rec,
            "load",
            self._writer.run("load", lambda: provider.load(map_name, kind, keys)),
        )
        with rec.phase("encode"):
            await self._encode_found(request, requested, found, rec, response)
        rec.loaded(asked=asked, found=len(response.entries))
        self._fit_load_answer(request.map_name, response, context)
        return response

    async def _encode_found(
        self,
        request: pb.LoadRequest,
        requested: dict[tuple[str, str], tuple[StoredKey, bytes]],
        found: Sequence[StoreEntry],
        rec: CallRecorder,
        response: pb.LoadResponse,
    ) -> None:
        """Fill the answer's entries: each found row's value as the member's bytes."""
        schema_ids: set[int] = set()
        encode_value = self._codec.encode_value
        add = response.entries.add
        for count, stored in enumerate(found, 1):
            if count % ENCODE_SLICE == 0:
                await asyncio.sleep(0)  # let the other calls in
            key = stored.key
            asked = requested.get((key.text, key.format))
            if asked is None:
                # Providers answer by text and format: a row of another key type
                # (String "1" for Integer 1) is never one asked for.
                continue
            try:
                encoded: EncodedValue | None = encode_value(stored.value)
            except SidecarError:
                # A schema or a write order to settle first, or a row that cannot be read:
                # the slow path settles, retries, or reports it.
                encoded = await self._encode_stored(request.map_name, stored, rec)
            if encoded is None:
                continue
            if encoded.schema_ids:
                schema_ids |= encoded.schema_ids
            add(key=asked[1], value=encoded.data)
        log.debug(
            "Load map=%s keys=%d found=%d", request.map_name, len(requested), len(response.entries)
        )
        response.schemas.extend(self._schema_messages(schema_ids))

    def _fit_load_answer(
        self, map_name: str, response: pb.LoadResponse, context: CallContext
    ) -> None:
        """The answer, within ``listen.max-message-bytes``: what does not fit is deferred.

        gRPC refuses to send a larger message, and would refuse the same Load again
        every time. So the answer keeps the longest run of its entries that fits
        together with the keys of the others, which it lists in ``deferred_keys`` for
        the shim to ask again. Sizes are the protobuf encoding's, from field lengths.

        Raises:
            EntryTooLargeError: the first entry does not fit in an answer, so asking
                again cannot help (marked with a trailer for the shim).
        """
        # On the Calls stream the answer travels inside a Reply: room for its id and tag.
        limit = self._limits.max_response_bytes - REPLY_OVERHEAD_BYTES
        if response.ByteSize() <= limit:  # the common case, measured by protobuf itself
            return
        size = sum(self._field_size(schema.ByteSize()) for schema in response.schemas)
        entry_sizes = [
            self._field_size(self._field_size(len(e.key)) + self._field_size(len(e.value)))
            for e in response.entries
        ]
        if size + sum(entry_sizes) <= limit:
            return
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
                f"({self._limits.max_response_bytes}) allows; raise listen.max-message-bytes "
                "to load it",
                map_name=map_name,
            )
        response.deferred_keys.extend(e.key for e in response.entries[kept:])
        del response.entries[kept:]
        log.warning(
            "Load on map '%s': the answer would exceed listen.max-message-bytes (%d): "
            "%d entries answered (%d bytes), %d deferred to a further call",
            map_name,
            self._limits.max_response_bytes,
            kept,
            size,
            len(response.deferred_keys),
        )

    @staticmethod
    def _field_size(length: int) -> int:
        """Bytes of a length-delimited protobuf field of ``length`` bytes (field number < 16)."""
        return 1 + (max(length.bit_length(), 1) + 6) // 7 + length

    async def _encode_stored(
        self, map_name: str, stored: StoreEntry, rec: CallRecorder
    ) -> EncodedValue | None:
        """A stored value's bytes, or None (reported) when the row cannot be read.

        One unreadable row never fails the call: the member gets every other entry.
        """
        try:
            return await self._with_schemas(lambda: self._codec.encode_value(stored.value))
        except SidecarError as exc:
            rec.unreadable_row()
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

    # -- Calls -----------------------------------------------------------------------

    async def Calls(  # type: ignore[override]
        self, request_iterator: AsyncIterator[pb.Call], context: grpc.aio.ServicerContext
    ) -> None:
        """Store, Delete and Load calls multiplexed on one stream (the shim's transport).

        A coroutine rather than the generator the generated stub declares: grpc.aio
        serves a stream that way too, its handler reading and writing through
        ``context`` (replies are written as calls complete, not in order).
        """
        await self.streams.serve(context)

    # -- LoadAllKeys -----------------------------------------------------------------

    async def _encode_stored_key(
        self, map_name: str, route: Route, key: StoredKey, rec: CallRecorder
    ) -> EncodedValue | None:
        """A stored key's bytes, or None (reported) when the row cannot be read."""
        try:
            resolved = self._codec.resolve_key(route.kind, key)
            return await self._with_schemas(lambda: self._codec.encode_key(resolved))
        except SidecarError as exc:
            rec.unreadable_row()
            await self._unreadable.report(map_name, key, exc)
            return None

    async def LoadAllKeys(
        self, request: pb.LoadAllKeysRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.KeyBatch]:
        with self._recorder("LoadAllKeys", request.map_name, context, None) as rec:
            try:
                async for batch in self._load_all_keys(request, rec):
                    yield batch
            except Exception as exc:
                await self._fail(context, rec, f"LoadAllKeys on map '{request.map_name}'", exc)

    async def _load_all_keys(
        self, request: pb.LoadAllKeysRequest, rec: CallRecorder
    ) -> AsyncIterator[pb.KeyBatch]:
        route = self._route(request.map_name)
        if route.initial_load_mode is InitialLoadMode.LAZY:
            rec.keys_streamed(0)
            return
        size = request.batch_size or self._limits.default_key_batch
        if size > self._limits.max_key_batch:
            raise InvalidRequestError(
                f"batch_size {size} exceeds the limit of {self._limits.max_key_batch}",
                map_name=request.map_name,
            )
        sent: set[int] = set()
        total = 0
        # The provider's iterator is closed on every path, the member cancelling the
        # stream mid-way included, so nothing it holds outlives the stream.
        batches = self._provider.load_all_keys(request.map_name, route.kind, size)
        async with contextlib.aclosing(batches):
            async for keys in batches:
                batch = pb.KeyBatch()
                for key in keys:
                    encoded = await self._encode_stored_key(request.map_name, route, key, rec)
                    if encoded is None:
                        continue
                    batch.keys.append(encoded.data)
                    # The member may know none of them after a full restart.
                    schema_ids = encoded.schema_ids - sent
                    if schema_ids:
                        batch.schemas.extend(self._schema_messages(schema_ids))
                        sent |= schema_ids
                total += len(batch.keys)
                rec.keys_streamed(len(batch.keys))
                if batch.keys:
                    yield batch
        log.debug("LoadAllKeys map=%s keys=%d", request.map_name, total)
