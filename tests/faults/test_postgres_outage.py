"""PostgreSQL stops for 30 s while a member keeps writing behind, then comes back."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from functools import partial

import pytest

from tests.e2e.conftest import wait_until
from tests.faults.conftest import EventWriter, FaultRig, event_maps
from tests.pgserver import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Orders_ES"
OUTAGE_SECONDS = 30


def test_postgres_down_for_30_seconds_loses_and_duplicates_no_acknowledged_put(
    rig_factory: Callable[..., FaultRig], postgres_control: PostgresServer
) -> None:
    # deadline-ms 5000: while the database is down each Store retries inside the sidecar
    # for 5 s, then answers UNAVAILABLE and Hazelcast re-queues the entries.
    rig = rig_factory(partial(event_maps, Orders_ES={"deadline_ms": 5000}))
    with EventWriter(rig.imap(MAP), "pg") as writer:
        wait_until(lambda: rig.stored(MAP) > 0, 30, "write-behind is not flowing before the fault")
        postgres_control.stop("fast")
        down_at = time.monotonic()
        time.sleep(OUTAGE_SECONDS)
        during = len(writer.acknowledged)
        postgres_control.start()
        outage = time.monotonic() - down_at
        time.sleep(3)
    acknowledged = writer.acknowledged
    assert not writer.failures, writer.failures[:3]
    assert outage >= OUTAGE_SECONDS
    assert len(acknowledged) > during > 0
    member_log = rig.member.log()
    assert re.search(r"for map 'Orders_ES' failed with UNAVAILABLE", member_log), member_log[-3000:]
    rig.assert_exactly_once("postgres stopped 30 s", MAP, acknowledged, timeout=150)
