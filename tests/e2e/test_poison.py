"""A poison entry from a real member: dead-lettered once, the rest written, the queue drained.

The member produces the poison itself: a Compact record nested 100 levels deep
(a linked list) is valid Hazelcast data, but deeper than the sidecar's
``limits.max-nesting-depth`` (64 by default), so the sidecar cannot decode it
within its limits. No fake is involved: the member serializes the value, the
shim forwards it, and the sidecar refuses it exactly as it would refuse corrupt
bytes. Raising the limit and running ``hz-sidecar dlq replay`` then stores it.
"""

from __future__ import annotations

import subprocess
import time
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Deployment, map_store_block, wait_until
from tests.e2e.model import NodeSerializer, chain
from tests.e2e.test_member import Factory
from tests.system.conftest import sidecar_command

pytestmark = pytest.mark.e2e

GOOD = 200
POISON_DEPTH = 100


def poison_maps(address: str) -> dict[str, Any]:
    block = map_store_block(address, write_delay=1, batch=50, coalescing=True, initial_mode="LAZY")
    return {"Chains_VIEW": {"map-store": block}}


def store_calls(deployment: Deployment) -> int:
    return deployment.sidecar.log().count("Store map=Chains_VIEW")


def test_member_poison_entry_is_dead_lettered_once_and_replayable(
    deployment_factory: Factory,
) -> None:
    deployment = deployment_factory(poison_maps)
    chains = deployment.client([NodeSerializer()]).get_map("Chains_VIEW").blocking()
    items = {f"good-{i}": chain(1 + i % 5) for i in range(GOOD)}
    items["poison"] = chain(POISON_DEPTH)
    chains.put_all(items)

    def stored() -> int:
        return int(
            deployment.query(
                "SELECT count(*) FROM domain_views WHERE view_name = ?", "Chains_VIEW"
            )[0][0]
        )

    def dead() -> list[tuple[Any, ...]]:
        return deployment.query(
            "SELECT id, map_name, error FROM hz_sidecar_dead_letters WHERE map_name = ?",
            "Chains_VIEW",
        )

    wait_until(lambda: stored() == GOOD and len(dead()) == 1, 60, "write-behind did not flush")
    # The member's write-behind queue is drained: no further Store call arrives for
    # the poison entry (a queue stuck on it would retry it every second).
    calls = store_calls(deployment)
    time.sleep(5)
    assert store_calls(deployment) == calls
    [(letter_id, map_name, error)] = dead()
    assert map_name == "Chains_VIEW"
    assert "nested deeper than 64 levels" in error
    assert deployment.sidecar.log().count("dead-lettered map=Chains_VIEW") == 1
    assert deployment.query(
        "SELECT count(*) FROM domain_views WHERE view_name = ? AND view_key = ?",
        "Chains_VIEW",
        "poison",
    ) == [(0,)]
    assert deployment.member is not None
    assert "dead-lettered (see hz-sidecar dlq list)" in deployment.member.log()

    # The operator raises the limit and replays: the entry is stored, the letter removed.
    config = yaml.safe_load(deployment.sidecar.config_path.read_text())
    config["limits"] = {"max-nesting-depth": 128}
    raised = deployment.workdir / "raised.yaml"
    raised.write_text(yaml.safe_dump(config))
    listed = run_dlq(deployment, "list", "--config", str(raised), "--map", "Chains_VIEW")
    assert f"id={letter_id} map='Chains_VIEW'" in listed and "1 dead letter(s)" in listed
    # The letter's key was never stored: replay stores it only when told to (a key with no
    # row may also have been deleted since).
    replayed = run_dlq(
        deployment, "replay", "--config", str(raised), "--id", str(letter_id), "--include-missing"
    )
    assert f"id={letter_id} map='Chains_VIEW': stored" in replayed
    assert dead() == []
    assert stored() == GOOD + 1
    # (Loading it back through this sidecar needs the raised limit in its configuration too.)
    assert deployment.query(
        "SELECT json(view_data, 'depth') FROM domain_views WHERE view_name = ? AND view_key = ?",
        "Chains_VIEW",
        "poison",
    ) == [(POISON_DEPTH - 1,)]


def run_dlq(deployment: Deployment, *args: str) -> str:
    result = subprocess.run(
        [*sidecar_command(), "dlq", *args],
        cwd=deployment.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
