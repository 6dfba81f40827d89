"""Bad input, fuzzed: over 10,000 malformed requests straight to a running sidecar process.

Hypothesis builds requests from valid seeds (the Python client's bytes) and
breaks them: truncated ``Data``, wrong type ids, flipped bits, lying lengths
(huge, negative), invalid UTF-8, values nested past the depth limit, schemas
whose id lies about their fields or whose fields lie about the value, unknown
schema ids, bad field kinds, unrouted and empty map names, too many entries,
messages over ``listen.max-message-bytes``. Every answer must be one the wire
contract documents (INVALID_ARGUMENT, FAILED_PRECONDITION; RESOURCE_EXHAUSTED
from gRPC itself for an oversized message; on Store, per-entry WRITTEN or
DEAD_LETTERED), within its deadline; the process never dies, stays SERVING,
and the data stored before the storm loads back unchanged.
"""

from __future__ import annotations

import os
import signal
import struct
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec.schemas import build_schema
from tests.hzclient import ClientSerialization, Customer, Order, to_message
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

EXAMPLES = 10_500
MAX_MESSAGE_BYTES = 256 * 1024
MAX_ENTRIES = 500
BASELINE_MAP = "Baseline_VIEW"

STORE_OK = {pb.ENTRY_STATUS_WRITTEN, pb.ENTRY_STATUS_DEAD_LETTERED}
DOCUMENTED = {grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION}

CLIENT = ClientSerialization()


def order(i: int) -> Order:
    return Order(f"o{i}", 10.5 + i, i, ["a", f"t{i}", "é€😀"], Customer(f"c{i}", i % 2 == 0))


BASELINE = {f"base-{i}": order(i) for i in range(20)}
SEEDS: list[bytes] = [
    CLIENT.to_bytes(order(1)),
    CLIENT.to_bytes(Order("", 0.0, 0, None, None)),
    CLIENT.to_bytes("a string key"),
    CLIENT.to_bytes("é€😀"),
    CLIENT.to_bytes(123456789),
    struct.pack(">iiq", 0, -8, 2**40),  # a Java Long
    CLIENT.to_bytes(1.5),
    CLIENT.to_bytes(True),
    struct.pack(">ii", 0, 0),  # null
]
SCHEMAS = CLIENT.schemas()
# Schemas whose fingerprint is right but whose fields lie about the Order bytes.
LIARS = [
    build_schema("Order", [("id", 8)]),
    build_schema("Order", [("amount", 17), ("id", 17)]),
    build_schema("Order", [("customer", 29), ("x", 1)]),
]
LIAR_MESSAGES = [to_message(s) for s in LIARS]
# A record nested past the depth limit (64), built by hand from a one-field schema.
NODE = build_schema("Node", [("next", 29)])
NODE_MESSAGE = to_message(NODE)


def deep_chain(depth: int) -> bytes:
    """Compact Node{next: Node{...}} nested ``depth`` levels, as a member writes it."""
    record = struct.pack(">qi", NODE.schema_id, 0) + b"\xff"  # innermost: next = null
    for _ in range(depth - 1):
        inner = record
        # data length covers the nested record; the offset table (uint8 or uint16) follows.
        length = len(inner)
        table = struct.pack(">B", 0) if length < 255 else struct.pack(">H", 0)
        record = struct.pack(">qi", NODE.schema_id, length) + inner + table
    return struct.pack(">ii", 0, -55) + record


DEEP = deep_chain(70)
OVERSIZED = pb.StoreRequest(
    map_name="Fuzz_VIEW",
    entries=[pb.Entry(key=SEEDS[2], value=b"\x00" * (MAX_MESSAGE_BYTES + 1024))],
)
INT_EXTREMES = [0x7FFFFFFF, -1, -0x80000000, 0xFFFF, 0x100, 255, 254, 65534]
INVALID_UTF8 = [b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xe2\x82"]


@st.composite
def broken_data(draw: st.DrawFn) -> bytes:
    """One ``Data`` that is wrong in some way (or, sometimes, accidentally right)."""
    seed = bytearray(draw(st.sampled_from([*SEEDS, DEEP])))
    how = draw(
        st.sampled_from(
            ["truncate", "flip", "int32", "type", "utf8", "insert", "random", "liar", "deep"]
        )
    )
    if how == "truncate":
        return bytes(seed[: draw(st.integers(0, max(len(seed) - 1, 0)))])
    if how == "flip":
        for _ in range(draw(st.integers(1, 4))):
            at = draw(st.integers(0, len(seed) - 1))
            seed[at] ^= 1 << draw(st.integers(0, 7))
        return bytes(seed)
    if how == "int32" and len(seed) >= 4:
        at = draw(st.integers(0, len(seed) - 4))
        seed[at : at + 4] = struct.pack(">I", draw(st.sampled_from(INT_EXTREMES)) & 0xFFFFFFFF)
        return bytes(seed)
    if how == "type" and len(seed) >= 8:
        seed[4:8] = struct.pack(">i", draw(st.integers(-200, 200)))
        return bytes(seed)
    if how == "utf8":
        text = draw(st.sampled_from(INVALID_UTF8)) * draw(st.integers(1, 3))
        return struct.pack(">iii", 0, -11, len(text)) + text
    if how == "insert":
        at = draw(st.integers(0, len(seed)))
        return bytes(seed[:at]) + draw(st.binary(min_size=1, max_size=16)) + bytes(seed[at:])
    if how == "liar":
        value = bytearray(SEEDS[0])
        value[8:16] = struct.pack(">q", draw(st.sampled_from(LIARS)).schema_id)
        return bytes(value)
    if how == "deep":
        return DEEP
    return draw(st.binary(max_size=64))


SCHEMA_LISTS = st.one_of(
    st.just(SCHEMAS),
    st.just([*SCHEMAS, *LIAR_MESSAGES, NODE_MESSAGE]),
    st.just([]),
    st.lists(
        st.builds(
            pb.Schema,
            type_name=st.text(max_size=12),
            schema_id=st.integers(-(2**63), 2**63 - 1),
            fields=st.lists(
                st.builds(pb.SchemaField, name=st.text(max_size=8), kind=st.integers(-5, 60)),
                max_size=5,
            ),
        ),
        max_size=3,
    ),
)
ROUTED = st.sampled_from(["Fuzz_VIEW", "Fuzz_ES"])
# Mostly routed maps, so that most requests reach the codec rather than stop at routing.
MAP_NAMES = st.one_of(
    ROUTED, ROUTED, ROUTED, st.sampled_from(["unrouted", ""]), st.text(max_size=20)
)
KEYS = st.one_of(broken_data(), st.sampled_from(SEEDS))


def store_requests() -> st.SearchStrategy[pb.StoreRequest]:
    entries = st.lists(
        st.builds(pb.Entry, key=KEYS, value=st.one_of(broken_data(), st.sampled_from(SEEDS))),
        max_size=8,
    )
    return st.builds(pb.StoreRequest, map_name=MAP_NAMES, entries=entries, schemas=SCHEMA_LISTS)


REQUESTS = st.one_of(
    store_requests(),
    store_requests(),
    st.builds(
        pb.LoadRequest, map_name=MAP_NAMES | st.just(BASELINE_MAP), keys=st.lists(KEYS, max_size=8)
    ),
    st.builds(pb.DeleteRequest, map_name=MAP_NAMES, keys=st.lists(KEYS, max_size=8)),
    st.builds(
        pb.LoadAllKeysRequest,
        map_name=MAP_NAMES | st.just(BASELINE_MAP),
        batch_size=st.sampled_from([0, 1, 100_000, 100_001, 2**32 - 1]),
    ),
    st.just(OVERSIZED),
    st.just(pb.LoadRequest(map_name=BASELINE_MAP, keys=[SEEDS[2]] * (MAX_ENTRIES + 1))),
)


@pytest.fixture(scope="module")
def fuzzed_sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SidecarProcess]:
    workdir: Path = tmp_path_factory.mktemp("fuzz")
    config = sqlite_config(workdir, f"127.0.0.1:{free_port()}")
    config["listen"]["max-message-bytes"] = MAX_MESSAGE_BYTES
    config["limits"] = {"max-entries-per-call": MAX_ENTRIES}
    config["logging"] = {"level": "ERROR"}  # thousands of expected warnings otherwise
    process = SidecarProcess(workdir, config)
    process.start()
    yield process
    process.stop(signal.SIGKILL)


TALLY: Counter[str] = Counter()
ENTRIES: Counter[str] = Counter()


def call(sidecar: SidecarProcess, request: object) -> str:
    stub = sidecar.stub
    try:
        if isinstance(request, pb.StoreRequest):
            answer = stub.Store(request, timeout=10)
            assert len(answer.results) == len(request.entries)
            assert {r.status for r in answer.results} <= STORE_OK, answer
            ENTRIES.update(pb.EntryStatus.Name(r.status) for r in answer.results)
            return "OK"
        if isinstance(request, pb.LoadRequest):
            stub.Load(request, timeout=10)
        elif isinstance(request, pb.DeleteRequest):
            stub.Delete(request, timeout=10)
        else:
            assert isinstance(request, pb.LoadAllKeysRequest)
            for _ in stub.LoadAllKeys(request, timeout=10):
                pass
        return "OK"
    except grpc.RpcError as exc:
        code = exc.code()
        if request is OVERSIZED:
            assert code == grpc.StatusCode.RESOURCE_EXHAUSTED, exc
        else:
            assert code in DOCUMENTED, (code, exc.details(), request)
        return code.name


def test_ten_thousand_malformed_requests_get_documented_answers_and_break_nothing(
    fuzzed_sidecar: SidecarProcess,
) -> None:
    sidecar = fuzzed_sidecar
    entries = [
        pb.Entry(key=CLIENT.to_bytes(k), value=CLIENT.to_bytes(v)) for k, v in BASELINE.items()
    ]
    sidecar.stub.Store(
        pb.StoreRequest(map_name=BASELINE_MAP, entries=entries, schemas=SCHEMAS), timeout=10
    )
    assert sidecar.proc is not None
    pid = sidecar.proc.pid

    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(REQUESTS)
    def fuzz(request: object) -> None:
        TALLY[call(sidecar, request)] += 1

    fuzz()
    total = sum(TALLY.values())
    print(f"\nfuzzed {total} requests: {dict(TALLY)}; Store entries: {dict(ENTRIES)}")
    assert total >= 10_000
    assert sidecar.proc.poll() is None and sidecar.proc.pid == pid
    assert os.path.exists(sidecar.log_path)
    assert sidecar.channel is not None
    health = health_pb2_grpc.HealthStub(sidecar.channel)
    status = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5).status
    assert status == health_pb2.HealthCheckResponse.SERVING
    answer = sidecar.stub.Load(
        pb.LoadRequest(map_name=BASELINE_MAP, keys=[CLIENT.to_bytes(k) for k in BASELINE]),
        timeout=10,
    )
    assert {CLIENT.to_object(e.key): CLIENT.to_object(e.value) for e in answer.entries} == BASELINE
    assert {e.value for e in answer.entries} == {CLIENT.to_bytes(v) for v in BASELINE.values()}
