"""The error contract with a real member (issue 14, item 14): refused for good is not retried.

A poison entry (a Compact chain nested deeper than ``limits.max-nesting-depth``)
with ``on-poison: reject``: the sidecar fails it with INVALID_ARGUMENT. Under
write-behind the shim takes it off the map Hazelcast passed to storeAll and logs
it, so Hazelcast never calls the store with it again (it would otherwise retry
the batch, then the entry alone, then put it back on the queue, forever). Under
write-through the caller's put fails. A transient failure (UNAVAILABLE: the
sidecar stopped) stays on the queue and is retried until the sidecar is back,
then stored.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hazelcast.errors import HazelcastError

from tests.e2e.conftest import Deployment, map_store_block, require_jars, wait_until
from tests.e2e.test_poison import POISON_DEPTH, NodeSerializer, chain

pytestmark = pytest.mark.e2e

GOOD = 20


def contract_maps(address: str) -> dict[str, Any]:
    def store(delay: int) -> dict[str, Any]:
        return map_store_block(
            address, write_delay=delay, batch=50, coalescing=True, initial_mode="LAZY"
        )

    return {
        "Chains_VIEW": {"map-store": store(1)},  # write-behind: storeAll, then store()
        "Strict_VIEW": {"map-store": store(0)},  # write-through
    }


@pytest.fixture
def rejecting(tmp_path: Path) -> Iterator[Deployment]:
    """A member and a sidecar (SQLite) configured with ``on-poison: reject``."""
    require_jars()
    deployment = Deployment(tmp_path, contract_maps)
    try:
        config = yaml.safe_load(deployment.sidecar.config_path.read_text())
        config["on-poison"] = "reject"
        deployment.sidecar.config_path.write_text(yaml.safe_dump(config))
        deployment.sidecar.start()
        deployment.start_member()
        yield deployment
    finally:
        deployment.close()


def rejections(deployment: Deployment, map_name: str) -> int:
    return deployment.sidecar.log().count(f"Store rejected one entry: map '{map_name}'")


def unavailable(deployment: Deployment, map_name: str) -> int:
    """Store calls the shim saw fail with UNAVAILABLE (its warning in the member's log)."""
    assert deployment.member is not None
    return deployment.member.log().count(f"for map '{map_name}' failed with UNAVAILABLE")


def views(deployment: Deployment, map_name: str) -> int:
    rows = deployment.query("SELECT count(*) FROM domain_views WHERE view_name = ?", map_name)
    return int(rows[0][0])


def test_an_entry_refused_for_good_is_dropped_once_while_a_transient_failure_is_retried(
    rejecting: Deployment,
) -> None:
    deployment = rejecting
    client = deployment.client([NodeSerializer()])
    chains = client.get_map("Chains_VIEW").blocking()
    items = {f"good-{i}": chain(1 + i % 5) for i in range(GOOD)}
    items["poison"] = chain(POISON_DEPTH)
    chains.put_all(items)

    wait_until(
        lambda: views(deployment, "Chains_VIEW") == GOOD and rejections(deployment, "Chains_VIEW"),
        60,
        "write-behind did not flush",
    )

    # Write-through: the caller's put fails with the refusal, and nothing retries it.
    strict = client.get_map("Strict_VIEW").blocking()
    with pytest.raises(HazelcastError, match="INVALID_ARGUMENT"):
        strict.put("poison", chain(POISON_DEPTH))
    strict.put("good", chain(2))

    time.sleep(10)
    # Hazelcast retries a failing store three times, a second apart, then again from its
    # queue, forever: the refused entry was stored once and never again.
    assert rejections(deployment, "Chains_VIEW") == 1
    assert rejections(deployment, "Strict_VIEW") == 1
    assert views(deployment, "Chains_VIEW") == GOOD
    assert deployment.member is not None
    member_log = deployment.member.log()
    assert "dropped from the write-behind queue and not persisted" in member_log
    assert "Chains_VIEW" in member_log and "key poison" in member_log

    # A transient failure is retried until it passes: the sidecar stops, an entry waits.
    deployment.sidecar.stop()
    chains.set("later", chain(3))
    wait_until(lambda: unavailable(deployment, "Chains_VIEW") >= 3, 30, "no retry while down")
    deployment.sidecar.start()
    wait_until(
        lambda: views(deployment, "Chains_VIEW") == GOOD + 1, 60, "the retried entry was lost"
    )
    assert views(deployment, "Strict_VIEW") == 1
    assert rejections(deployment, "Chains_VIEW") == 1
