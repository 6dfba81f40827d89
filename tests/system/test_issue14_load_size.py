"""Load answers never exceed ``listen.max-message-bytes`` (issue 14, item 9).

The entries are written while the limit is the default, then the sidecar is
restarted with a limit of 64 KiB: a Load of more than that much answers the
entries that fit and defers the rest (asked again, they all come back), and an
entry too large for any answer is refused with RESOURCE_EXHAUSTED, a message
naming the map, the key and the sizes, and the same in the sidecar's log.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
import yaml

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

LIMIT = 64 * 1024
VALUE_CHARS = 10_000
SMALL = 20
MAP = "Blobs_VIEW"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[tuple[SidecarProcess, ClientSerialization]]:
    """A sidecar holding SMALL values of ~10 KB and one of ~100 KB, restarted with LIMIT."""
    client = ClientSerialization()
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    try:
        items: dict[object, object] = {
            f"k{i}": f"{i:04d}" * (VALUE_CHARS // 4) for i in range(SMALL)
        }
        items["big"] = "B" * (10 * VALUE_CHARS)
        entries = [
            pb.Entry(key=client.to_bytes(k), value=client.to_bytes(v)) for k, v in items.items()
        ]
        answer = sidecar.stub.Store(pb.StoreRequest(map_name=MAP, entries=entries), timeout=10)
        assert [r.status for r in answer.results] == [pb.ENTRY_STATUS_WRITTEN] * len(items)
        sidecar.stop()
        config["listen"]["max-message-bytes"] = LIMIT
        sidecar.config_path.write_text(yaml.safe_dump(config))
        sidecar.start()
        yield sidecar, client
    finally:
        sidecar.stop(signal.SIGKILL)


def test_load_larger_than_the_message_limit_defers_keys_that_a_further_call_loads(
    limited: tuple[SidecarProcess, ClientSerialization],
) -> None:
    sidecar, client = limited
    wanted = {client.to_bytes(f"k{i}"): f"{i:04d}" * (VALUE_CHARS // 4) for i in range(SMALL)}
    keys = [*wanted, client.to_bytes("missing")]
    loaded: dict[bytes, object] = {}
    calls = 0
    while keys:
        calls += 1
        answer = sidecar.stub.Load(pb.LoadRequest(map_name=MAP, keys=keys), timeout=10)
        assert answer.ByteSize() <= LIMIT
        assert answer.entries, "every answer makes progress"
        loaded.update({e.key: client.to_object(e.value) for e in answer.entries})
        assert not set(answer.deferred_keys) & {e.key for e in answer.entries}
        keys = list(answer.deferred_keys)
    assert loaded == wanted
    assert calls >= 4  # 20 values of ~10 KB in answers of at most 64 KiB
    log = sidecar.log()
    assert f"Load on map '{MAP}'" in log and "deferred" in log
    assert "WARNING" in next(line for line in log.splitlines() if "deferred" in line)


def test_entry_larger_than_the_message_limit_is_refused_naming_map_key_and_sizes(
    limited: tuple[SidecarProcess, ClientSerialization],
) -> None:
    sidecar, client = limited
    big = client.to_bytes("big")
    for keys in ([big], [client.to_bytes("k1"), big]):
        with pytest.raises(grpc.RpcError) as failure:
            while keys:  # the big entry may be deferred first, then refused alone
                answer = sidecar.stub.Load(pb.LoadRequest(map_name=MAP, keys=keys), timeout=10)
                keys = list(answer.deferred_keys)
        error: grpc.Call = failure.value  # type: ignore[assignment]
        assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
        message = error.details() or ""
        assert MAP in message and big[:8].hex() in message, message
        assert str(LIMIT) in message and "listen.max-message-bytes" in message, message
        # The shim tells this refusal (not retriable) from a transient one by this trailer.
        trailers = dict(error.trailing_metadata() or ())
        assert int(trailers["hz-sidecar-entry-too-large"]) > LIMIT
    assert sidecar.log().count(big[:8].hex()) >= 2
