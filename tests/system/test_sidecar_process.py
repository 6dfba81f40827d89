"""The real `hz-sidecar run` process, called over gRPC on TCP and on a Unix socket (SQLite)."""

from __future__ import annotations

import dataclasses
import os
import signal
import sqlite3
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization, Customer, Order
from tests.system.conftest import SidecarProcess

WRITTEN, FAILED = pb.ENTRY_STATUS_WRITTEN, pb.ENTRY_STATUS_FAILED
DEAD_LETTERED = pb.ENTRY_STATUS_DEAD_LETTERED


@dataclasses.dataclass
class Unseen:
    n: int


@pytest.fixture
def client() -> ClientSerialization:
    return ClientSerialization()


def order(i: int) -> Order:
    return Order(f"o{i}", 10.5 + i, i, ["a", f"t{i}"], Customer(f"c{i}", i % 2 == 0))


def store(
    sidecar: SidecarProcess, client: ClientSerialization, map_name: str, items: dict[object, object]
) -> pb.StoreResponse:
    entries = [pb.Entry(key=client.to_bytes(k), value=client.to_bytes(v)) for k, v in items.items()]
    request = pb.StoreRequest(map_name=map_name, entries=entries, schemas=client.schemas())
    return sidecar.stub.Store(request, timeout=10)


def load(
    sidecar: SidecarProcess, client: ClientSerialization, map_name: str, keys: list[object]
) -> dict[object, object]:
    answer = sidecar.stub.Load(
        pb.LoadRequest(map_name=map_name, keys=[client.to_bytes(k) for k in keys]), timeout=10
    )
    reader = ClientSerialization()  # knows nothing but what the answer carries
    reader.register(answer.schemas)
    return {reader.to_object(e.key): reader.to_object(e.value) for e in answer.entries}


def statuses(response: pb.StoreResponse) -> list[int]:
    return [r.status for r in response.results]


def test_health_is_serving_and_reflection_lists_the_services(sidecar: SidecarProcess) -> None:
    assert sidecar.channel is not None
    health = health_pb2_grpc.HealthStub(sidecar.channel)
    for service in ("", "hzsidecar.v1.MapStore"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    stub = reflection_pb2_grpc.ServerReflectionStub(sidecar.channel)
    [answer] = stub.ServerReflectionInfo(
        iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
    )
    names = {s.name for s in answer.list_services_response.service}
    assert {"hzsidecar.v1.MapStore", "grpc.health.v1.Health"} <= names


def test_view_map_store_load_delete(sidecar: SidecarProcess, client: ClientSerialization) -> None:
    orders = {f"k{i}": order(i) for i in range(3)}
    assert statuses(store(sidecar, client, "Customer_VIEW", orders)) == [WRITTEN] * 3
    assert load(sidecar, client, "Customer_VIEW", ["k0", "k1", "k2", "missing"]) == orders
    updated = order(99)
    store(sidecar, client, "Customer_VIEW", {"k1": updated})
    assert load(sidecar, client, "Customer_VIEW", ["k1"]) == {"k1": updated}
    deleted = sidecar.stub.Delete(
        pb.DeleteRequest(
            map_name="Customer_VIEW", keys=[client.to_bytes("k0"), client.to_bytes("nope")]
        ),
        timeout=10,
    )
    assert deleted.deleted == 1
    assert load(sidecar, client, "Customer_VIEW", ["k0", "k1", "k2"]) == {
        "k1": updated,
        "k2": orders["k2"],
    }


def test_event_map_is_append_only_and_lazy(
    sidecar: SidecarProcess, client: ClientSerialization
) -> None:
    first = {f"e{i}": order(i) for i in range(5)}
    assert statuses(store(sidecar, client, "Orders_ES", first)) == [WRITTEN] * 5
    # A retried or repeated event is accepted and the first write is kept.
    assert statuses(store(sidecar, client, "Orders_ES", {"e0": order(42)})) == [WRITTEN]
    assert load(sidecar, client, "Orders_ES", list(first)) == first
    batches = list(
        sidecar.stub.LoadAllKeys(pb.LoadAllKeysRequest(map_name="Orders_ES"), timeout=10)
    )
    assert batches == []


def test_view_map_load_all_keys_streams_every_key_and_load_all_is_one_call(
    sidecar: SidecarProcess, client: ClientSerialization
) -> None:
    items = {f"view-{i:04d}": f"value {i}" for i in range(2500)}
    assert set(statuses(store(sidecar, client, "Big_VIEW", items))) == {WRITTEN}
    batches = list(
        sidecar.stub.LoadAllKeys(
            pb.LoadAllKeysRequest(map_name="Big_VIEW", batch_size=1000), timeout=30
        )
    )
    assert [len(b.keys) for b in batches] == [1000, 1000, 500]
    keys = [client.to_object(k) for b in batches for k in b.keys]
    assert sorted(keys) == sorted(items)
    thousand = list(items)[:1000]
    assert load(sidecar, client, "Big_VIEW", thousand) == {k: items[k] for k in thousand}


def test_ordinary_keys_and_values(sidecar: SidecarProcess, client: ClientSerialization) -> None:
    import uuid

    items: dict[object, object] = {
        1: "one",
        2**30: 3.25,
        uuid.UUID(int=7): True,
        "s": -(2**31),
    }
    assert statuses(store(sidecar, client, "Mixed_VIEW", items)) == [WRITTEN] * 4
    assert load(sidecar, client, "Mixed_VIEW", list(items)) == items


def test_data_and_schemas_survive_a_restart(tmp_path: Path, client: ClientSerialization) -> None:
    from tests.system.conftest import free_port, sqlite_config

    process = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"127.0.0.1:{free_port()}"))
    process.start()
    try:
        orders = {f"k{i}": order(i) for i in range(10)}
        store(process, client, "Customer_VIEW", orders)
        assert process.stop(signal.SIGTERM) == 0
        process.start()
        # A fresh client that never sent a schema gets them with the values.
        assert load(process, ClientSerialization(), "Customer_VIEW", list(orders)) == orders
        assert "Persistence enabled for Customer_VIEW" in process.log()
    finally:
        process.stop(signal.SIGKILL)


def test_sigterm_stops_gracefully_and_removes_the_unix_socket(sidecar: SidecarProcess) -> None:
    path = sidecar.address.removeprefix("unix://")
    assert sidecar.stop(signal.SIGTERM) == 0
    assert "hz-sidecar stopped" in sidecar.log()
    if sidecar.address.startswith("unix://"):
        assert not os.path.exists(path)


# -- errors: each gets its status code, and stored data stays untouched ---------------------


@pytest.fixture
def stored(sidecar: SidecarProcess, client: ClientSerialization) -> dict[object, object]:
    items: dict[object, object] = {"keep": order(1)}
    store(sidecar, client, "Customer_VIEW", items)
    return items


def assert_untouched(
    sidecar: SidecarProcess, client: ClientSerialization, stored: dict[object, object]
) -> None:
    assert load(sidecar, client, "Customer_VIEW", list(stored)) == stored


def error_of(call: object) -> grpc.RpcError:
    assert isinstance(call, grpc.RpcError)
    return call


def test_malformed_request_is_invalid_argument(
    sidecar: SidecarProcess, client: ClientSerialization, stored: dict[object, object]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        sidecar.stub.Store(
            pb.StoreRequest(map_name="", entries=[pb.Entry(key=b"x", value=b"y")]), timeout=5
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "map_name is empty" in (info.value.details() or "")
    with pytest.raises(grpc.RpcError) as info:
        sidecar.stub.Load(pb.LoadRequest(map_name="Customer_VIEW", keys=[b"\x00\x01"]), timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "Customer_VIEW" in (info.value.details() or "")
    assert_untouched(sidecar, client, stored)


def test_fingerprint_mismatch_is_invalid_argument(
    sidecar: SidecarProcess, client: ClientSerialization, stored: dict[object, object]
) -> None:
    value = client.to_bytes(order(5))
    lying = [
        pb.Schema(type_name=s.type_name, schema_id=s.schema_id ^ 1, fields=s.fields)
        for s in client.schemas()
    ]
    request = pb.StoreRequest(
        map_name="Customer_VIEW",
        entries=[pb.Entry(key=client.to_bytes("keep"), value=value)],
        schemas=lying,
    )
    with pytest.raises(grpc.RpcError) as info:
        sidecar.stub.Store(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "fingerprint" in (info.value.details() or "").lower()
    assert_untouched(sidecar, client, stored)


class UnseenSerializer(CompactSerializer[Unseen]):
    def read(self, reader: CompactReader) -> Unseen:
        return Unseen(reader.read_int64("n"))

    def write(self, writer: CompactWriter, obj: Unseen) -> None:
        writer.write_int64("n", obj.n)

    def get_type_name(self) -> str:
        return "Unseen"

    def get_class(self) -> type[Unseen]:
        return Unseen


def test_unknown_schema_id_is_failed_precondition(
    sidecar: SidecarProcess, stored: dict[object, object]
) -> None:
    fresh = ClientSerialization([UnseenSerializer()])
    # A type this sidecar has never been sent, stored without its schema.
    value = fresh.to_bytes(Unseen(5))
    request = pb.StoreRequest(
        map_name="Customer_VIEW", entries=[pb.Entry(key=fresh.to_bytes("keep"), value=value)]
    )
    with pytest.raises(grpc.RpcError) as info:
        sidecar.stub.Store(request, timeout=5)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "schema id" in (info.value.details() or "")
    assert_untouched(sidecar, ClientSerialization(), stored)


def test_unrouted_map_is_failed_precondition(
    sidecar: SidecarProcess, client: ClientSerialization, stored: dict[object, object]
) -> None:
    with pytest.raises(grpc.RpcError) as info:
        store(sidecar, client, "orders", {"keep": order(3)})
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "'orders' matches no route" in (info.value.details() or "")
    assert_untouched(sidecar, client, stored)


def poisoned_request(client: ClientSerialization) -> tuple[pb.StoreRequest, bytes]:
    good = client.to_bytes(order(7))
    corrupt = good[:20]  # truncated compact payload
    request = pb.StoreRequest(
        map_name="Customer_VIEW",
        entries=[
            pb.Entry(key=client.to_bytes("a"), value=good),
            pb.Entry(key=client.to_bytes("keep"), value=corrupt),
            pb.Entry(key=client.to_bytes("b"), value=good),
        ],
        schemas=client.schemas(),
    )
    return request, corrupt


def test_an_undecodable_entry_is_dead_lettered_alone(
    sidecar: SidecarProcess, client: ClientSerialization, stored: dict[object, object]
) -> None:
    request, corrupt = poisoned_request(client)
    answer = sidecar.stub.Store(request, timeout=5)
    assert statuses(answer) == [WRITTEN, DEAD_LETTERED, WRITTEN]
    assert "entry #1" in answer.results[1].message
    assert load(sidecar, client, "Customer_VIEW", ["a", "b", "keep"]) == {
        "a": order(7),
        "b": order(7),
        **stored,
    }
    db = sidecar.workdir / "data" / "store.db"
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT map_name, key_data, value_data, error FROM hz_sidecar_dead_letters"
        ).fetchall()
    assert [row[:3] for row in rows] == [("Customer_VIEW", client.to_bytes("keep"), corrupt)]
    assert "cannot be decoded" in rows[0][3]
    assert "dead-lettered map=Customer_VIEW entry=#1" in sidecar.log()


def test_with_on_poison_reject_an_undecodable_entry_fails_alone(
    tmp_path: Path, client: ClientSerialization
) -> None:
    from tests.system.conftest import free_port, sqlite_config

    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["on-poison"] = "reject"
    process = SidecarProcess(tmp_path, config)
    process.start()
    try:
        request, _ = poisoned_request(client)
        answer = process.stub.Store(request, timeout=5)
        assert statuses(answer) == [WRITTEN, FAILED, WRITTEN]
        failed = answer.results[1]
        assert failed.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
        assert "entry #1" in failed.message and "Customer_VIEW" in failed.message
        assert load(process, client, "Customer_VIEW", ["a", "b", "keep"]) == {
            "a": order(7),
            "b": order(7),
        }
        with sqlite3.connect(tmp_path / "data" / "store.db") as conn:
            assert conn.execute("SELECT count(*) FROM hz_sidecar_dead_letters").fetchone() == (0,)
    finally:
        process.stop(signal.SIGKILL)


def test_rows_are_readable_in_the_database(
    sidecar: SidecarProcess, client: ClientSerialization
) -> None:
    store(sidecar, client, "Orders_ES", {"o-1": order(1)})
    db = sidecar.workdir / "data" / "store.db"
    with sqlite3.connect(db) as conn:
        amount, name = conn.execute(
            "SELECT json_extract(event_data, '$.amount'), "
            "json_extract(event_data, '$.customer.name') FROM domain_events "
            "WHERE map_name = 'Orders_ES' AND map_key = 'o-1'"
        ).fetchone()
    assert (amount, name) == (11.5, "c1")


def test_load_all_keys_sends_the_schemas_of_compact_keys_once(
    sidecar: SidecarProcess, client: ClientSerialization
) -> None:
    customers = [Customer(f"c{i}", i % 2 == 0) for i in range(30)]
    entries = [pb.Entry(key=client.to_bytes(c), value=client.to_bytes(c.name)) for c in customers]
    answer = sidecar.stub.Store(
        pb.StoreRequest(map_name="Keys_VIEW", entries=entries, schemas=client.schemas()),
        timeout=10,
    )
    assert set(statuses(answer)) == {WRITTEN}
    batches = list(
        sidecar.stub.LoadAllKeys(
            pb.LoadAllKeysRequest(map_name="Keys_VIEW", batch_size=7), timeout=10
        )
    )
    assert [s.type_name for b in batches for s in b.schemas] == ["Customer"]
    reader = ClientSerialization()
    reader.register(batches[0].schemas)
    keys = [reader.to_object(k) for b in batches for k in b.keys]
    assert sorted(keys, key=lambda c: c.name) == sorted(customers, key=lambda c: c.name)
