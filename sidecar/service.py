"""The MapStore gRPC service: Hazelcast's MapStore/MapLoader calls, decoded and stored.

Each call: resolve the map's route, register the schemas it carries, decode
keys and values with the codec, call the provider under the call's deadline,
and answer. Errors become status codes in one place (:meth:`_fail`), from the
``status`` each :class:`sidecar.errors.SidecarError` declares.

An entry whose bytes cannot be decoded fails alone (its ``EntryResult`` says
why); the rest of its Store call is written. Everything else that goes wrong
fails the whole call, and nothing of it is written.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import NoReturn, TypeVar

import grpc

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.codec import DataCodec, DecodedValue, SchemaRegistry
from sidecar.config import InitialLoadMode
from sidecar.errors import (
    DecodeError,
    InvalidRequestError,
    PersistenceDisabledError,
    SidecarError,
    StoreTimeoutError,
    UnknownSchemaError,
)
from sidecar.providers.base import Provider, SchemaRecord, StoredKey, StoreEntry, StoreKind
from sidecar.retry import deadline_scope
from sidecar.routing import Route, Router

log = logging.getLogger(__name__)
T = TypeVar("T")

DEFAULT_KEY_BATCH = 1000
MAX_KEY_BATCH = 100_000


@dataclass(frozen=True, slots=True)
class ServiceLimits:
    """Bounds on what one call may ask for."""

    default_key_batch: int = DEFAULT_KEY_BATCH
    max_key_batch: int = MAX_KEY_BATCH


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
    ) -> None:
        self._provider = provider
        self._router = router
        self._registry = registry
        self._codec = DataCodec(registry)
        self._enabled = persistence_enabled
        self._limits = limits or ServiceLimits()

    # -- schemas -------------------------------------------------------------------

    async def load_schemas(self) -> int:
        """Register every schema the provider has persisted; return how many are known."""
        for record in await self._provider.get_schemas():
            if record.schema_id not in self._registry:
                self._registry.add(record)
        return len(self._registry.records())

    async def _register(self, schemas: Sequence[pb.Schema], map_name: str) -> None:
        new: list[SchemaRecord] = []
        for message in schemas:
            record = SchemaRecord(
                schema_id=message.schema_id,
                type_name=message.type_name,
                fields=tuple((f.name, f.kind) for f in message.fields),
            )
            known = record.schema_id in self._registry
            try:
                self._registry.add(record)
            except SidecarError as exc:
                exc.map_name = map_name
                raise
            if not known:
                new.append(record)
        if new:
            # Schemas are made durable before any value that uses them.
            await self._provider.put_schemas(new)

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
                    return await awaitable
        except TimeoutError as exc:
            raise StoreTimeoutError(
                f"the store did not answer within the call deadline ({remaining:.3f} s)"
            ) from exc

    async def _fail(
        self, context: grpc.aio.ServicerContext, op: str, exc: BaseException
    ) -> NoReturn:
        if isinstance(exc, SidecarError):
            log.warning("%s failed: %s (%s)", op, exc, exc.status.name)
            await context.abort(exc.status, str(exc))
        log.exception("%s failed unexpectedly", op)
        await context.abort(grpc.StatusCode.INTERNAL, f"{op}: internal error: {exc!r}")
        raise AssertionError("ServicerContext.abort returned")  # abort always raises

    def _decode_key(self, map_name: str, index: int, data: bytes) -> StoredKey:
        try:
            return self._codec.decode_key(data)
        except SidecarError as exc:
            raise type(exc)(
                f"key #{index} ({_key_repr(data)}) cannot be decoded: {exc}", map_name=map_name
            ) from exc

    # -- Store ---------------------------------------------------------------------

    async def Store(
        self, request: pb.StoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.StoreResponse:
        try:
            return await self._store(request, context)
        except Exception as exc:
            await self._fail(context, f"Store on map '{request.map_name}'", exc)

    async def _store(
        self, request: pb.StoreRequest, context: grpc.aio.ServicerContext
    ) -> pb.StoreResponse:
        route = self._route(request.map_name)
        await self._register(request.schemas, request.map_name)
        results: list[pb.EntryResult] = []
        batch: dict[str, StoreEntry] = {}
        written: list[pb.EntryResult] = []
        for index, entry in enumerate(request.entries):
            try:
                key = self._codec.decode_key(entry.key)
                decoded = await self._with_schemas(partial(self._codec.decode_value, entry.value))
            except UnknownSchemaError as exc:
                raise UnknownSchemaError(exc.schema_id, map_name=request.map_name) from exc
            except DecodeError as exc:
                message = (
                    f"map '{request.map_name}', entry #{index} (key {_key_repr(entry.key)}): "
                    f"cannot be decoded: {exc}"
                )
                log.warning("Store rejected one entry: %s", message)
                results.append(
                    pb.EntryResult(
                        status=pb.ENTRY_STATUS_FAILED,
                        code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                        message=message,
                    )
                )
                continue
            result = pb.EntryResult(status=pb.ENTRY_STATUS_WRITTEN)
            results.append(result)
            written.append(result)
            batch[key.text] = self._store_entry(route, key, decoded)
        if batch:
            await self._deadline(
                context, self._provider.store(request.map_name, route.kind, list(batch.values()))
            )
        log.debug(
            "Store map=%s kind=%s entries=%d written=%d",
            request.map_name,
            route.kind.value,
            len(request.entries),
            len(written),
        )
        return pb.StoreResponse(results=results)

    @staticmethod
    def _store_entry(route: Route, key: StoredKey, decoded: DecodedValue) -> StoreEntry:
        event = None
        if route.kind is StoreKind.EVENT:
            fields = decoded.record.fields if decoded.record is not None else None
            event = route.event_columns(key.text, fields)
        return StoreEntry(key=key, value=decoded.stored, event=event)

    # -- Delete --------------------------------------------------------------------

    async def Delete(
        self, request: pb.DeleteRequest, context: grpc.aio.ServicerContext
    ) -> pb.DeleteResponse:
        try:
            route = self._route(request.map_name)
            keys = [self._decode_key(request.map_name, i, k) for i, k in enumerate(request.keys)]
            deleted = 0
            if keys:
                deleted = await self._deadline(
                    context, self._provider.delete(request.map_name, route.kind, keys)
                )
            return pb.DeleteResponse(deleted=deleted)
        except Exception as exc:
            await self._fail(context, f"Delete on map '{request.map_name}'", exc)

    # -- Load ----------------------------------------------------------------------

    async def Load(
        self, request: pb.LoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        try:
            return await self._load(request, context)
        except Exception as exc:
            await self._fail(context, f"Load on map '{request.map_name}'", exc)

    async def _load(
        self, request: pb.LoadRequest, context: grpc.aio.ServicerContext
    ) -> pb.LoadResponse:
        route = self._route(request.map_name)
        requested: dict[str, tuple[StoredKey, bytes]] = {}
        for index, data in enumerate(request.keys):
            key = self._decode_key(request.map_name, index, data)
            requested.setdefault(key.text, (key, data))
        keys = [key for key, _ in requested.values()]
        if not keys:
            return pb.LoadResponse()
        found = await self._deadline(
            context, self._provider.load(request.map_name, route.kind, keys)
        )
        response = pb.LoadResponse()
        schema_ids: set[int] = set()
        for stored in found:
            asked, key_bytes = requested[stored.key.text]
            if stored.key.format != asked.format:
                # Same text, different key type (e.g. "1" and 1): not the requested key.
                continue
            try:
                encoded = await self._with_schemas(partial(self._codec.encode_value, stored.value))
            except SidecarError as exc:
                raise type(exc)(
                    f"stored value of key {stored.key.text!r} cannot be encoded: {exc}",
                    map_name=request.map_name,
                ) from exc
            schema_ids |= encoded.schema_ids
            response.entries.add(key=key_bytes, value=encoded.data)
        log.debug(
            "Load map=%s keys=%d found=%d", request.map_name, len(keys), len(response.entries)
        )
        for schema_id in sorted(schema_ids):
            record = self._registry.to_record(self._registry.get(schema_id))
            response.schemas.add(
                schema_id=record.schema_id,
                type_name=record.type_name,
                fields=[pb.SchemaField(name=n, kind=k) for n, k in record.fields],
            )
        return response

    # -- LoadAllKeys -----------------------------------------------------------------

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
            batches = self._provider.load_all_keys(request.map_name, route.kind, size)
            async for keys in batches:
                yield pb.KeyBatch(keys=[self._codec.encode_key(k) for k in keys])
        except Exception as exc:
            await self._fail(context, f"LoadAllKeys on map '{request.map_name}'", exc)
