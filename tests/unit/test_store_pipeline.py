"""Large Store calls: written in chunks while the next entries are decoded.

The service is driven directly (no gRPC server) over the memory provider, whose
``store`` is wrapped to record, delay or fail chosen chunks.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any, NoReturn

import grpc
import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec import SchemaRegistry
from sidecar.config import MapRoute, PersistenceConfig
from sidecar.errors import StoreUnavailableError
from sidecar.providers.base import StoredKey, StoreEntry, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.routing import Router
from sidecar.service import MapStoreService
from sidecar.writer import Writer
from tests.hzclient import ClientSerialization

SERIALIZATION = ClientSerialization()


class Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(code, details)
        self.code = code


class Context:
    """The parts of grpc.aio.ServicerContext the service uses."""

    def time_remaining(self) -> float:
        return 30.0

    def invocation_metadata(self) -> tuple[()]:
        return ()

    async def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise Aborted(code, details)


class Recording(MemoryProvider):
    """Records each store (start, end, size); sleeps, and fails the chunks named."""

    def __init__(self, *, fail: Sequence[int] = (), delay: float = 0.0) -> None:
        super().__init__({})
        self.calls: list[tuple[float, float, int]] = []
        self.fail = set(fail)
        self.delay = delay

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        number = len(self.calls)
        started = time.perf_counter()
        self.calls.append((started, float("inf"), len(entries)))
        await asyncio.sleep(self.delay)
        if number in self.fail:
            self.calls[number] = (started, time.perf_counter(), len(entries))
            raise StoreUnavailableError("database is down", map_name=map_name)
        await super().store(map_name, kind, entries)
        self.calls[number] = (started, time.perf_counter(), len(entries))


def service(provider: Recording, *, group_commit: bool = False, rows: int = 100) -> MapStoreService:
    router = Router((MapRoute(pattern="*_VIEW", kind=StoreKind.VIEW),), PersistenceConfig())
    return MapStoreService(
        provider=provider,
        router=router,
        registry=SchemaRegistry(),
        writer=Writer(provider, group_commit=group_commit, chunk_rows=rows),
    )


def request(count: int, *, value: str = "v", keys: Sequence[int] | None = None) -> pb.StoreRequest:
    message = pb.StoreRequest(map_name="A_VIEW")
    for i in keys if keys is not None else range(count):
        message.entries.add(
            key=SERIALIZATION.to_bytes(f"k{i}"), value=SERIALIZATION.to_bytes(f"{value}{i}")
        )
    return message


async def stored(provider: Recording, count: int) -> dict[str, Any]:
    # A String key of a view map is stored in the reference framework's form: format "".
    keys = [StoredKey(f"k{i}", "") for i in range(count)]
    rows = await provider.load("A_VIEW", StoreKind.VIEW, keys)
    return {row.key.text: row.value.document for row in rows}


@pytest.mark.parametrize("group_commit", [False, True])
async def test_a_large_call_is_written_in_chunks_each_while_the_next_is_decoded(
    group_commit: bool,
) -> None:
    provider = Recording(delay=0.05)
    response = await service(provider, group_commit=group_commit).Store(request(250), Context())
    assert [r.status for r in response.results] == [pb.ENTRY_STATUS_WRITTEN] * 250
    assert sum(size for _, _, size in provider.calls) == 250
    assert len(provider.calls) >= 2
    if not group_commit:
        # The second chunk was handed over before the first one's write ended.
        assert provider.calls[0][2] == 100
        assert provider.calls[1][0] < provider.calls[0][1]
    # (Group commit writes a map's batches one after another, merging the
    # chunks that queued meanwhile.)
    assert len(await stored(provider, 250)) == 250


async def test_a_small_call_is_one_write() -> None:
    provider = Recording()
    await service(provider).Store(request(100), Context())
    assert [size for _, _, size in provider.calls] == [100]


async def test_a_failed_chunk_fails_exactly_its_entries() -> None:
    provider = Recording(fail=[1])
    response = await service(provider).Store(request(250), Context())
    statuses = [r.status for r in response.results]
    assert (
        statuses
        == [pb.ENTRY_STATUS_WRITTEN] * 100
        + [pb.ENTRY_STATUS_FAILED] * 100
        + [pb.ENTRY_STATUS_WRITTEN] * 50
    )
    failed = response.results[150]
    assert failed.code == grpc.StatusCode.UNAVAILABLE.value[0]
    assert "database is down" in failed.message
    assert sorted(await stored(provider, 250)) == sorted(
        f"k{i}" for i in [*range(100), *range(200, 250)]
    )


async def test_when_every_chunk_fails_the_call_fails_as_a_whole() -> None:
    provider = Recording(fail=[0, 1, 2])
    with pytest.raises(Aborted) as raised:
        await service(provider).Store(request(250), Context())
    assert raised.value.code is grpc.StatusCode.UNAVAILABLE
    assert await stored(provider, 250) == {}


async def test_a_key_repeated_in_a_later_chunk_is_written_after_the_earlier_one() -> None:
    provider = Recording(delay=0.02)
    keys = [*range(150), 5, *range(150, 200)]
    message = request(0, keys=keys)
    # The repeated key carries a new value: the latest entry of a view wins.
    message.entries[150].value = SERIALIZATION.to_bytes("latest")
    await service(provider).Store(message, Context())
    starts = sorted(provider.calls)
    assert starts[1][0] >= starts[0][1]  # the second write began after the first ended
    assert (await stored(provider, 200))["k5"] == '"latest"'
