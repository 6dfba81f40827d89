"""Group commit in the real process: concurrent Store calls give what one-by-one calls give."""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization, Customer, Order
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

CALLERS = 32
KEYS_PER_CALLER = 5


def _run(workdir: Path, batching: bool, client: ClientSerialization) -> dict[bytes, bytes]:
    config = sqlite_config(workdir, f"127.0.0.1:{free_port()}")
    config["batching"] = {"enabled": batching}
    sidecar = SidecarProcess(workdir, config)
    sidecar.start()
    try:
        stub = sidecar.stub

        def caller(c: int) -> None:
            # Each caller owns its keys and writes them twice: the second value must win,
            # and the view and event maps must hold exactly what sequential calls leave.
            keys = [client.to_bytes(f"c{c}-k{k}") for k in range(KEYS_PER_CALLER)]
            for version in (1, 2):
                for map_name in ("orders_VIEW", "orders_ES"):
                    entries = [
                        pb.Entry(
                            key=key,
                            value=client.to_bytes(
                                Order(f"{c}-{k}", version + 0.5, version, None, Customer("x", True))
                            ),
                        )
                        for k, key in enumerate(keys)
                    ]
                    stub.Store(
                        pb.StoreRequest(
                            map_name=map_name, entries=entries, schemas=client.schemas()
                        ),
                        timeout=30,
                    )

        with ThreadPoolExecutor(CALLERS) as pool:
            list(pool.map(caller, range(CALLERS)))
        all_keys = [
            client.to_bytes(f"c{c}-k{k}") for c in range(CALLERS) for k in range(KEYS_PER_CALLER)
        ]
        loaded: dict[bytes, bytes] = {}
        for map_name in ("orders_VIEW", "orders_ES"):
            answer = stub.Load(pb.LoadRequest(map_name=map_name, keys=all_keys), timeout=30)
            for entry in answer.entries:
                loaded[map_name.encode() + entry.key] = entry.value
        return loaded
    finally:
        sidecar.stop(signal.SIGKILL)


def test_concurrent_stores_leave_the_same_data_with_and_without_group_commit(
    tmp_path: Path,
) -> None:
    (tmp_path / "on").mkdir()
    (tmp_path / "off").mkdir()
    client = ClientSerialization()
    grouped = _run(tmp_path / "on", True, client)
    alone = _run(tmp_path / "off", False, client)
    assert len(grouped) == 2 * CALLERS * KEYS_PER_CALLER
    assert grouped == alone
    view = client.to_object(grouped[b"orders_VIEW" + client.to_bytes("c0-k0")])
    event = client.to_object(grouped[b"orders_ES" + client.to_bytes("c0-k0")])
    assert view.quantity == 2  # latest wins
    assert event.quantity == 1  # first kept
