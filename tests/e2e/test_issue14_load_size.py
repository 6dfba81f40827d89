"""A real member loading more than ``listen.max-message-bytes`` (issue 14, item 9).

The member has one partition, so its getAll of evicted keys is one loadAll. The
values are written under the default limit, then the sidecar restarts with a
limit of 64 KiB: the loadAll's answer is split (the shim asks again for the keys
the sidecar defers) and every value comes back; a value larger than any answer
fails the caller's get with a message naming the limit, once, instead of being
retried as if the sidecar were busy.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hazelcast.errors import HazelcastError

from tests.e2e.conftest import Deployment, map_store_block, require_jars

pytestmark = pytest.mark.e2e

LIMIT = 64 * 1024
COUNT = 20


def blob_maps(address: str) -> dict[str, Any]:
    block = map_store_block(address, write_delay=0, batch=1, coalescing=True, initial_mode="LAZY")
    return {"Blobs_VIEW": {"map-store": block}}


def value(i: int) -> str:
    return f"{i:04d}" * 2500  # 10 KB


@pytest.fixture
def one_partition(tmp_path: Path) -> Iterator[Deployment]:
    require_jars()
    deployment = Deployment(tmp_path, blob_maps)
    try:
        deployment.sidecar.start()
        deployment.start_member({"hazelcast.partition.count": 1})
        yield deployment
    finally:
        deployment.close()


def test_member_loads_more_than_the_message_limit_and_refuses_an_entry_too_large(
    one_partition: Deployment,
) -> None:
    deployment = one_partition
    blobs = deployment.client([]).get_map("Blobs_VIEW").blocking()
    wanted = {f"k{i}": value(i) for i in range(COUNT)}
    blobs.put_all(wanted)
    blobs.set("big", "B" * 100_000)

    config = yaml.safe_load(deployment.sidecar.config_path.read_text())
    config["listen"]["max-message-bytes"] = LIMIT
    deployment.sidecar.config_path.write_text(yaml.safe_dump(config))
    deployment.sidecar.stop()
    deployment.sidecar.start()
    blobs.evict_all()
    assert blobs.size() == 0

    assert blobs.get_all(list(wanted)) == wanted
    assert "deferred to a further call" in deployment.sidecar.log()

    with pytest.raises(HazelcastError, match=r"listen\.max-message-bytes"):
        blobs.get("big")
    assert deployment.member is not None
    member_log = deployment.member.log()
    assert "RESOURCE_EXHAUSTED" in member_log and "not retriable" in member_log
    # One refusal in the sidecar's log, naming the map and the sizes.
    refused = [line for line in deployment.sidecar.log().splitlines() if "100012 bytes" in line]
    assert len(refused) == 1 and "Blobs_VIEW" in refused[0], refused
