"""Load answers within ``listen.max-message-bytes`` (issue 14, item 9), service driven directly.

The fitting counts sizes from field lengths; these tests hold it to protobuf's own
``ByteSize``: an answer never exceeds the limit, keeps as many entries as fit with
the keys it defers, and accounts for every key found.
"""

from __future__ import annotations

from typing import NoReturn

import grpc
import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec import SchemaRegistry
from sidecar.config import MapRoute, PersistenceConfig
from sidecar.errors import EntryTooLargeError
from sidecar.providers.base import StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.routing import Router
from sidecar.service import REPLY_OVERHEAD_BYTES, MapStoreService, ServiceLimits
from tests.hzclient import ClientSerialization

SERIALIZATION = ClientSerialization()


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code
        self.details = details


class Context:
    """The parts of grpc.aio.ServicerContext the service uses."""

    def __init__(self) -> None:
        self.trailers: tuple[tuple[str, str], ...] = ()

    def time_remaining(self) -> float:
        return 30.0

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailers = metadata

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


async def loaded_service(values: dict[str, str], limit: int) -> MapStoreService:
    """A service holding ``values`` (written unbounded) whose Load answers fit ``limit``."""
    provider = MemoryProvider({})
    router = Router((MapRoute(pattern="*_VIEW", kind=StoreKind.VIEW),), PersistenceConfig())
    writer = MapStoreService(provider=provider, router=router, registry=SchemaRegistry())
    entries = [
        pb.Entry(key=SERIALIZATION.to_bytes(k), value=SERIALIZATION.to_bytes(v))
        for k, v in values.items()
    ]
    await writer.Store(pb.StoreRequest(map_name="A_VIEW", entries=entries), Context())
    return MapStoreService(
        provider=provider,
        router=router,
        registry=SchemaRegistry(),
        limits=ServiceLimits(max_response_bytes=limit),
    )


@pytest.mark.parametrize("limit", [2048, 5000, 20_000])
async def test_answers_fit_the_limit_keep_what_fits_and_defer_the_rest(limit: int) -> None:
    # (The keys of a request take at most half the limit, as the shim sends them.)
    values = {f"k{i}": "x" * (37 * i % 900) for i in range(60)}
    service = await loaded_service(values, limit)
    keys = [SERIALIZATION.to_bytes(k) for k in [*values, "missing"]]
    found: dict[bytes, bytes] = {}
    while keys:
        answer = await service.Load(pb.LoadRequest(map_name="A_VIEW", keys=keys), Context())
        assert answer.ByteSize() <= limit
        # The same answer in a Reply of the Calls stream (the largest id) fits too.
        assert pb.Reply(id=2**64 - 1, load=answer).ByteSize() <= limit
        assert answer.entries
        if answer.deferred_keys:
            # Maximal: the next deferred entry would not have fitted in place of its key.
            entry = pb.Entry(key=answer.deferred_keys[0], value=SERIALIZATION.to_bytes("x"))
            grown = pb.LoadResponse()
            grown.CopyFrom(answer)
            grown.entries.append(entry)
            del grown.deferred_keys[0]
            value = values[SERIALIZATION.to_object(entry.key)]
            room = limit - REPLY_OVERHEAD_BYTES
            assert grown.ByteSize() - 3 + len(SERIALIZATION.to_bytes(value)) > room
        found.update({e.key: e.value for e in answer.entries})
        keys = list(answer.deferred_keys)
    assert {SERIALIZATION.to_object(k): SERIALIZATION.to_object(v) for k, v in found.items()} == (
        values
    )


async def test_an_answer_within_the_limit_is_left_alone() -> None:
    values = {f"k{i}": "v" * 100 for i in range(10)}
    service = await loaded_service(values, 64 * 1024)
    keys = [SERIALIZATION.to_bytes(k) for k in values]
    answer = await service.Load(pb.LoadRequest(map_name="A_VIEW", keys=keys), Context())
    assert len(answer.entries) == 10 and not answer.deferred_keys


async def test_an_entry_too_large_for_any_answer_is_refused_with_a_trailer() -> None:
    service = await loaded_service({"big": "B" * 5000}, 2048)
    context = Context()
    key = SERIALIZATION.to_bytes("big")
    with pytest.raises(Aborted) as refused:
        await service.Load(pb.LoadRequest(map_name="A_VIEW", keys=[key]), context)
    assert refused.value.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "A_VIEW" in refused.value.details and key.hex() in refused.value.details
    assert "2048" in refused.value.details
    [(name, needed)] = context.trailers
    assert name == EntryTooLargeError.TRAILER and int(needed) > 5000
