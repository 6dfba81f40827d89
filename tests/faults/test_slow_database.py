"""The database answers slowly: another session holds a lock on the events table.

The shim's deadline (``sidecar.deadline-ms``: 2000) ends every Store with
DEADLINE_EXCEEDED, write-behind keeps the entries and tries again; neither side
accumulates anything while it lasts: the member's thread count and the sidecar's
memory stay bounded, and no statement of the sidecar outlives the deadline of
the calls it serves. When the lock goes, everything arrives once.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.e2e.conftest import wait_until
from tests.faults.conftest import EventWriter, FaultRig, event_maps, proc_rss_bytes, proc_threads

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Slow_ES"
DEADLINE_MS = 2000
LOCK_SECONDS = 20


def test_a_locked_table_gives_deadline_exceeded_and_retries_with_bounded_threads_and_memory(
    rig_factory: Callable[..., FaultRig],
) -> None:
    rig = rig_factory(partial(event_maps, Slow_ES={"deadline_ms": DEADLINE_MS}))
    assert rig.member.proc is not None and rig.sidecar.proc is not None
    member_pid, sidecar_pid = rig.member.proc.pid, rig.sidecar.proc.pid
    with EventWriter(rig.imap(MAP), "slow", per_put=20) as writer:
        wait_until(lambda: rig.stored(MAP) > 0, 30, "write-behind is not flowing")
        time.sleep(2)
        threads_before, rss_before = proc_threads(member_pid), proc_rss_bytes(sidecar_pid)
        lock = rig.lock("domain_events")
        threads, rss, waits = [], [], []
        locked_at = time.monotonic()
        while time.monotonic() - locked_at < LOCK_SECONDS:
            threads.append(proc_threads(member_pid))
            rss.append(proc_rss_bytes(sidecar_pid))
            waits.extend(rig.sidecar_waiting_on_lock())
            time.sleep(0.5)
        lock.release()
        time.sleep(3)
    assert not writer.failures, writer.failures[:3]
    member_log = rig.member.log()
    timeouts = re.findall(r"for map 'Slow_ES' failed with DEADLINE_EXCEEDED", member_log)
    assert len(timeouts) >= 3, member_log[-3000:]  # write-behind tried again, and again
    assert waits, "no Store of the sidecar ever waited on the lock"
    # Each statement is cancelled when the deadline of its calls passes (plus slack for
    # the cancel round trip and the sampling period).
    assert max(waits) < DEADLINE_MS / 1000 + 2.5, sorted(waits)[-5:]
    assert max(threads) <= threads_before + 10, (threads_before, threads)
    assert max(rss) <= rss_before + 64 * 2**20, (rss_before, rss)
    note = (
        f" ({len(timeouts)} DEADLINE_EXCEEDED; member threads {threads_before} -> max"
        f" {max(threads)}; sidecar RSS {rss_before >> 20} -> max {max(rss) >> 20} MiB;"
        f" longest lock wait {max(waits):.1f} s)"
    )
    rig.assert_exactly_once("database locked 20 s", MAP, writer.acknowledged, note=note)
