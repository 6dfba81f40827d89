"""The ``Calls`` stream: the shim's Store, Delete and Load calls on one long-lived stream.

A real sidecar (:class:`sidecar.server.Sidecar`, in this process, over TCP) and a
grpc.aio client. Each call on the stream must be answered exactly as the unary RPC
answers it (same responses, same statuses and messages, same trailers), with the
stream's own parts working: ids, concurrency, per-call deadlines, cancellation,
flow control, the token, and shutdown.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from sidecar.config import SidecarConfig
from sidecar.errors import EntryTooLargeError
from sidecar.providers.base import StoredKey, StoreEntry, StoreKind
from sidecar.providers.memory import MemoryProvider
from sidecar.server import Sidecar
from tests.hzclient import ClientSerialization

SER = ClientSerialization()
#: A Compact value (type id -55) cut off inside its schema id: cannot be decoded.
TRUNCATED_COMPACT = b"\x00\x00\x00\x00\xff\xff\xff\xc9\x01\x02"
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Gated(MemoryProvider):
    """A memory store whose loads of the map ``Gated_VIEW`` wait for ``gate``."""

    def __init__(self) -> None:
        super().__init__({})
        self.gate = asyncio.Event()
        self.loading = 0
        self.most_loading = 0
        self.stores = 0
        self._changed = asyncio.Condition()

    async def _count(self, attribute: str, delta: int) -> None:
        async with self._changed:
            setattr(self, attribute, getattr(self, attribute) + delta)
            self.most_loading = max(self.most_loading, self.loading)
            self._changed.notify_all()

    async def until(self, predicate: Callable[[], bool]) -> None:
        """Wait until ``predicate()`` holds (it is checked at each change of the counts)."""
        async with asyncio.timeout(10), self._changed:
            await self._changed.wait_for(predicate)

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        await self._count("stores", 1)
        if map_name == "Gated_VIEW":
            await self.gate.wait()
        await super().store(map_name, kind, entries)

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        if map_name == "Gated_VIEW":
            await self._count("loading", 1)
            try:
                await self.gate.wait()
            finally:
                await self._count("loading", -1)
        return await super().load(map_name, kind, keys)


def config(**overrides: Any) -> SidecarConfig:
    raw: dict[str, Any] = {
        "framework": {"persistence": {"enabled": True}},
        "listen": {"address": f"127.0.0.1:{free_port()}", "graceful-shutdown-seconds": 30},
        "provider": {"name": "memory"},
    }
    for section, values in overrides.items():
        raw.setdefault(section, {}).update(values)
    return SidecarConfig.model_validate(raw)


class Running:
    def __init__(self, sidecar: Sidecar, provider: Gated) -> None:
        self.sidecar = sidecar
        self.provider = provider
        assert sidecar.bound_address is not None
        self.channel = grpc.aio.insecure_channel(sidecar.bound_address)
        self.stub = pb_grpc.MapStoreStub(self.channel)


@pytest.fixture
async def running(request: pytest.FixtureRequest) -> AsyncIterator[Running]:
    marker = request.node.get_closest_marker("sidecar_config")
    provider = Gated()
    sidecar = Sidecar(config(**(marker.kwargs if marker else {})), provider=provider)
    await sidecar.start()
    world = Running(sidecar, provider)
    try:
        yield world
    finally:
        provider.gate.set()
        await world.channel.close()
        await sidecar.stop()


def entry(key: str, value: str) -> pb.Entry:
    return pb.Entry(key=SER.to_bytes(key), value=SER.to_bytes(value))


def store_call(call_id: int, map_name: str, *entries: pb.Entry, **fields: Any) -> pb.Call:
    fields.setdefault("deadline_ms", 10_000)
    return pb.Call(id=call_id, store=pb.StoreRequest(map_name=map_name, entries=entries), **fields)


def load_call(call_id: int, map_name: str, *keys: str, **fields: Any) -> pb.Call:
    fields.setdefault("deadline_ms", 10_000)
    request = pb.LoadRequest(map_name=map_name, keys=[SER.to_bytes(k) for k in keys])
    return pb.Call(id=call_id, load=request, **fields)


async def read_replies(stream: Any, count: int) -> dict[int, pb.Reply]:
    replies: dict[int, pb.Reply] = {}
    async with asyncio.timeout(10):
        while len(replies) < count:
            reply = await stream.read()
            assert reply is not grpc.aio.EOF, f"stream ended after {len(replies)} replies"
            assert reply.id not in replies, f"two replies for call {reply.id}"
            replies[reply.id] = reply
    return replies


async def test_calls_on_one_stream_are_answered_as_the_unary_rpcs_answer_them(
    running: Running,
) -> None:
    stream = running.stub.Calls()
    calls = [
        store_call(i, "Orders_VIEW", entry(f"k{i}", f"v{i}"), traceparent=TRACEPARENT)
        for i in range(1, 201)
    ]
    for call in calls:
        await stream.write(call)
    replies = await read_replies(stream, len(calls))
    assert {r.WhichOneof("result") for r in replies.values()} == {"store"}
    assert all(
        [e.status for e in r.store.results] == [pb.ENTRY_STATUS_WRITTEN] for r in replies.values()
    )
    await stream.write(load_call(500, "Orders_VIEW", "k7", "k8", "missing"))
    await stream.write(
        pb.Call(
            id=501,
            deadline_ms=10_000,
            delete=pb.DeleteRequest(map_name="Orders_VIEW", keys=[SER.to_bytes("k8")]),
        )
    )
    answered = await read_replies(stream, 2)
    on_stream = answered[500].load
    unary = await running.stub.Load(
        pb.LoadRequest(map_name="Orders_VIEW", keys=[SER.to_bytes(k) for k in ("k7", "missing")])
    )
    assert {SER.to_object(e.value) for e in on_stream.entries} >= {"v7"}
    assert [SER.to_object(e.value) for e in unary.entries] == ["v7"]
    assert answered[501].delete.deleted == 1
    await stream.done_writing()
    assert await stream.read() is grpc.aio.EOF
    assert await stream.code() == grpc.StatusCode.OK


async def test_calls_run_concurrently_and_are_answered_in_completion_order(
    running: Running,
) -> None:
    stream = running.stub.Calls()
    await stream.write(store_call(1, "Gated_VIEW", entry("slow", "s")))
    await stream.write(store_call(2, "Orders_VIEW", entry("fast", "f")))
    first = await read_replies(stream, 1)
    assert list(first) == [2]  # the slow store does not hold the fast one back
    running.provider.gate.set()
    assert list(await read_replies(stream, 1)) == [1]
    await stream.done_writing()


async def test_failures_carry_the_unary_status_message_and_trailers(running: Running) -> None:
    stream = running.stub.Calls()
    await stream.write(store_call(1, "", entry("k", "v")))
    await stream.write(
        store_call(2, "Orders_VIEW", pb.Entry(key=SER.to_bytes("k"), value=TRUNCATED_COMPACT))
    )
    replies = await read_replies(stream, 2)
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await running.stub.Store(pb.StoreRequest(map_name="", entries=[entry("k", "v")]))
    status = replies[1].status
    assert grpc.StatusCode(unary.value.code()).value[0] == status.code
    assert status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert status.message == unary.value.details()
    # A poison entry is a per-entry result (dead-lettered), exactly as unary.
    assert [r.status for r in replies[2].store.results] == [pb.ENTRY_STATUS_DEAD_LETTERED]
    await stream.done_writing()


@pytest.mark.sidecar_config(listen={"max-message-bytes": 4096})
async def test_an_entry_too_large_for_any_answer_carries_the_trailer(running: Running) -> None:
    stream = running.stub.Calls()
    # Fits a Store call (its request may be the limit plus the Call's fields) but no
    # Load answer (the limit less the Reply's).
    await stream.write(store_call(1, "Orders_VIEW", entry("big", "x" * 4050)))
    assert (await read_replies(stream, 1))[1].WhichOneof("result") == "store"
    await stream.write(load_call(2, "Orders_VIEW", "big"))
    status = (await read_replies(stream, 1))[2].status
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await running.stub.Load(pb.LoadRequest(map_name="Orders_VIEW", keys=[SER.to_bytes("big")]))
    assert unary.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    assert status.message == unary.value.details()
    trailers = dict(unary.value.trailing_metadata() or ())
    assert status.trailers[EntryTooLargeError.TRAILER] == trailers[EntryTooLargeError.TRAILER]
    await stream.done_writing()


async def test_a_call_past_its_deadline_is_answered_deadline_exceeded(running: Running) -> None:
    stream = running.stub.Calls()
    await stream.write(load_call(1, "Gated_VIEW", "k", deadline_ms=200))
    await stream.write(load_call(2, "Orders_VIEW", "k"))
    replies = await read_replies(stream, 2)
    assert replies[1].status.code == grpc.StatusCode.DEADLINE_EXCEEDED.value[0]
    assert "200 ms" in replies[1].status.message
    assert replies[2].WhichOneof("result") == "load"
    await stream.done_writing()


async def test_a_cancelled_call_gets_no_reply_and_the_stream_goes_on(running: Running) -> None:
    stream = running.stub.Calls()
    await stream.write(load_call(1, "Gated_VIEW", "k"))
    await running.provider.until(lambda: running.provider.loading == 1)
    await stream.write(pb.Call(id=1, cancel=pb.Cancel()))
    await running.provider.until(lambda: running.provider.loading == 0)  # cancelled
    await stream.write(load_call(2, "Orders_VIEW", "k"))
    assert list(await read_replies(stream, 1)) == [2]
    await stream.done_writing()
    assert await stream.read() is grpc.aio.EOF  # nothing for call 1, ever


async def test_an_id_already_in_flight_is_refused_and_the_first_call_answered(
    running: Running,
) -> None:
    stream = running.stub.Calls()
    await stream.write(load_call(7, "Gated_VIEW", "k"))
    await stream.write(load_call(7, "Orders_VIEW", "k"))
    refused = (await read_replies(stream, 1))[7]
    assert refused.status.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "already in flight" in refused.status.message
    running.provider.gate.set()
    assert (await read_replies(stream, 1))[7].WhichOneof("result") == "load"
    await stream.done_writing()


@pytest.mark.sidecar_config(limits={"max-calls-in-flight": 2})
async def test_flow_control_holds_calls_back_instead_of_refusing_them(running: Running) -> None:
    stream = running.stub.Calls()
    for call_id in range(1, 7):
        await stream.write(load_call(call_id, "Gated_VIEW", "k"))
    await running.provider.until(lambda: running.provider.loading == 2)
    await asyncio.sleep(0.3)  # time for a third call to start, were it read
    assert running.provider.most_loading == 2
    running.provider.gate.set()
    replies = await read_replies(stream, 6)
    # None refused with RESOURCE_EXHAUSTED: they waited in the stream.
    assert {r.WhichOneof("result") for r in replies.values()} == {"load"}
    await stream.done_writing()


async def test_the_cluster_size_of_each_call_is_checked_as_the_header_is(
    running: Running,
) -> None:
    stream = running.stub.Calls()
    await stream.write(store_call(1, "Orders_VIEW", entry("k", "v"), cluster_size=3))
    await stream.write(store_call(2, "Orders_VIEW", entry("k", "v"), cluster_size=1))
    replies = await read_replies(stream, 2)
    assert replies[1].status.code == grpc.StatusCode.FAILED_PRECONDITION.value[0]
    assert "cluster of 3 members" in replies[1].status.message
    assert replies[2].WhichOneof("result") == "store"
    await stream.done_writing()


@pytest.mark.sidecar_config(security={"token": "s3cret"})
async def test_the_stream_needs_the_token_in_its_metadata(running: Running) -> None:
    refused = running.stub.Calls()
    await refused.write(load_call(1, "Orders_VIEW", "k"))
    assert await refused.code() == grpc.StatusCode.UNAUTHENTICATED
    accepted = running.stub.Calls(metadata=(("authorization", "Bearer s3cret"),))
    await accepted.write(load_call(1, "Orders_VIEW", "k"))
    assert (await read_replies(accepted, 1))[1].WhichOneof("result") == "load"
    await accepted.done_writing()


async def test_shutdown_answers_the_calls_read_and_ends_the_stream_at_once(
    running: Running,
) -> None:
    stream = running.stub.Calls()
    await stream.write(store_call(1, "Gated_VIEW", entry("k", "v")))
    await running.provider.until(lambda: running.provider.stores == 1)
    idle = running.stub.Calls()
    await idle.write(load_call(1, "Orders_VIEW", "k"))
    await read_replies(idle, 1)
    stopping = asyncio.create_task(running.sidecar.stop())
    await asyncio.sleep(0.2)
    running.provider.gate.set()  # the store in flight completes during shutdown
    reply = (await read_replies(stream, 1))[1]
    assert [r.status for r in reply.store.results] == [pb.ENTRY_STATUS_WRITTEN]
    assert await stream.read() is grpc.aio.EOF
    assert await idle.read() is grpc.aio.EOF
    # Neither stream held the server for its 30 s of grace.
    async with asyncio.timeout(10):
        await stopping


async def test_an_empty_answer_is_still_an_answer_of_its_kind(running: Running) -> None:
    stream = running.stub.Calls()
    await stream.write(load_call(1, "Orders_VIEW", "absent"))
    delete = pb.DeleteRequest(map_name="Orders_VIEW", keys=[SER.to_bytes("absent")])
    await stream.write(pb.Call(id=2, deadline_ms=10_000, delete=delete))
    await stream.write(store_call(3, "Orders_VIEW"))
    replies = await read_replies(stream, 3)
    assert [replies[i].WhichOneof("result") for i in (1, 2, 3)] == ["load", "delete", "store"]
    assert not replies[1].load.entries and replies[2].delete.deleted == 0
    await stream.done_writing()
