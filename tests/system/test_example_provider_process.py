"""The real `hz-sidecar run` process on the example third-party provider, named in its YAML.

The example is "installed" the way pip would leave it (its metadata and entry points on
the path, :mod:`tests.example_provider`), so the sidecar finds it by the name the
configuration gives, as it would any third-party provider.
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.example_provider import install_into
from tests.hzclient import ClientSerialization, Customer, Order
from tests.system.conftest import SidecarProcess, free_port, sqlite_config


@pytest.fixture
def jsonl_sidecar(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SidecarProcess]:
    site = tmp_path / "site"
    install_into(site)
    monkeypatch.setenv("PYTHONPATH", str(site))
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["provider"] = {"name": "jsonl", "settings": {"directory": str(tmp_path / "jsonl")}}
    process = SidecarProcess(tmp_path, config)
    process.start()
    yield process
    process.stop(signal.SIGKILL)


def order(i: int) -> Order:
    return Order(f"o{i}", 10.5 + i, i, ["a", f"t{i}"], Customer(f"c{i}", i % 2 == 0))


def store(sidecar: SidecarProcess, map_name: str, items: dict[str, Order]) -> list[int]:
    client = ClientSerialization()
    entries = [pb.Entry(key=client.to_bytes(k), value=client.to_bytes(v)) for k, v in items.items()]
    request = pb.StoreRequest(map_name=map_name, entries=entries, schemas=client.schemas())
    return [result.status for result in sidecar.stub.Store(request, timeout=10).results]


def load(sidecar: SidecarProcess, map_name: str, keys: list[str]) -> dict[object, object]:
    client = ClientSerialization()
    answer = sidecar.stub.Load(
        pb.LoadRequest(map_name=map_name, keys=[client.to_bytes(k) for k in keys]), timeout=10
    )
    reader = ClientSerialization()  # knows nothing but what the answer carries
    reader.register(answer.schemas)
    return {reader.to_object(e.key): reader.to_object(e.value) for e in answer.entries}


def test_a_sidecar_serves_maps_through_the_provider_its_config_names(
    jsonl_sidecar: SidecarProcess, tmp_path: Path
) -> None:
    orders = {f"k{i}": order(i) for i in range(600)}  # more than one chunk of the writer
    assert set(store(jsonl_sidecar, "Customer_VIEW", orders)) == {pb.ENTRY_STATUS_WRITTEN}
    assert store(jsonl_sidecar, "Customer_VIEW", {"k1": order(99)}) == [pb.ENTRY_STATUS_WRITTEN]
    deleted = jsonl_sidecar.stub.Delete(
        pb.DeleteRequest(map_name="Customer_VIEW", keys=[ClientSerialization().to_bytes("k0")]),
        timeout=10,
    )
    assert deleted.deleted == 1
    batches = jsonl_sidecar.stub.LoadAllKeys(
        pb.LoadAllKeysRequest(map_name="Customer_VIEW", batch_size=250), timeout=10
    )
    assert sum(len(batch.keys) for batch in batches) == 599
    assert jsonl_sidecar.stop(signal.SIGTERM) == 0

    jsonl_sidecar.start()  # a restart reads the maps and schemas back from the files
    expected = {"k1": order(99), "k2": orders["k2"], "k599": orders["k599"]}
    assert load(jsonl_sidecar, "Customer_VIEW", ["k0", "k1", "k2", "k599"]) == expected
    [log_file] = (tmp_path / "jsonl" / "view").iterdir()
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    assert lines[0] == {"map": "Customer_VIEW", "kind": "view"}
    assert lines[-1] == {"delete": [["k0", ""]]}  # a String key of a view: the framework's form
