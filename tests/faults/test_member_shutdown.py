"""A member shut down gracefully with entries still waiting in its write-behind queue."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.faults.conftest import FaultRig, event, event_maps

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Queued_ES"
ENTRIES = 1500


def test_graceful_member_shutdown_flushes_queued_write_behind_before_the_sidecar_stops(
    rig_factory: Callable[..., FaultRig],
) -> None:
    # A write delay far longer than the test: nothing is flushed unless the shutdown does it.
    rig = rig_factory(partial(event_maps, Queued_ES={"write_delay": 600}))
    queued = rig.imap(MAP)
    keys = [f"queued-{i}" for i in range(ENTRIES)]
    for start in range(0, ENTRIES, 500):
        queued.put_all({key: event(start + j) for j, key in enumerate(keys[start : start + 500])})
    time.sleep(2)
    assert rig.stored(MAP) == 0, "the entries were written before the shutdown"
    for client in rig.clients:
        client.shutdown()
    rig.clients.clear()
    # SIGTERM: the member's graceful shutdown hook flushes its write-behind queues, then exits.
    assert rig.member.stop(timeout=120) in (0, 143), rig.member.log()[-3000:]
    assert rig.sidecar.proc is not None and rig.sidecar.proc.poll() is None
    # Everything is in the database while the sidecar still runs (it stops after the member).
    assert rig.stored(MAP) == ENTRIES
    assert rig.sidecar.stop(signal.SIGTERM) == 0
    rig.assert_exactly_once("member graceful shutdown, write-behind queued", MAP, keys, timeout=5)
