"""The sidecar dies (SIGKILL) in the middle of a batch, or is asked to stop (SIGTERM)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import wait_until
from tests.faults.conftest import EventWriter, FaultRig, event, event_maps, health_channel

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Orders_ES"


def wait_for_a_store_blocked_on_the_lock(rig: FaultRig) -> None:
    wait_until(
        lambda: bool(rig.sidecar_waiting_on_lock()),
        20,
        "no Store of the sidecar is waiting on the table lock",
    )


def store_calls(rig: FaultRig) -> int:
    return rig.sidecar.log().count(f"Store map={MAP}")


def wait_for_a_failed_store(rig: FaultRig, after: int) -> None:
    """The member met the dead sidecar: a store failed after the log offset ``after``."""
    rig.member.wait_for_log(f"for map '{MAP}' failed with UNAVAILABLE", after=after)


def test_sidecar_killed_mid_batch_and_restarted_loses_and_duplicates_nothing(
    rig_factory: Callable[..., FaultRig],
) -> None:
    rig = rig_factory(partial(event_maps, Orders_ES={"deadline_ms": 5000}))
    assert rig.sidecar.proc is not None
    with EventWriter(rig.imap(MAP), "kill", per_put=50) as writer:
        wait_until(lambda: rig.stored(MAP) > 0, 30, "write-behind is not flowing")
        # 1. Killed with a Store transaction open in PostgreSQL: its INSERT waits on a
        # lock, so the kill lands before it commits, deterministically.
        lock = rig.lock("domain_events")
        wait_for_a_store_blocked_on_the_lock(rig)
        killed_at = len(rig.member.log())
        rig.sidecar.stop(signal.SIGKILL)
        lock.release()
        wait_for_a_failed_store(rig, killed_at)
        stores_before = store_calls(rig)
        rig.sidecar.start()
        # 2. Killed at whatever point of the flow it has reached: a batch may have
        # committed without its answer reaching the member, which then stores it again.
        wait_until(
            lambda: store_calls(rig) > stores_before + 20,
            30,
            "write-behind did not resume after the restart",
        )
        killed_at = len(rig.member.log())
        rig.sidecar.stop(signal.SIGKILL)
        wait_for_a_failed_store(rig, killed_at)
        stores_before = store_calls(rig)
        rig.sidecar.start()
        wait_until(
            lambda: store_calls(rig) > stores_before,
            30,
            "write-behind did not resume after the second restart",
        )
    assert not writer.failures, writer.failures[:3]
    rig.assert_exactly_once("sidecar SIGKILL mid-batch (x2)", MAP, writer.acknowledged)


def test_sigterm_turns_health_not_serving_first_finishes_in_flight_stores_and_exits_0(
    rig_factory: Callable[..., FaultRig],
) -> None:
    # A write-through map: each put returns only once the sidecar answered its Store.
    rig = rig_factory(
        partial(event_maps, Orders_ES={"write_delay": 0, "batch": 1, "deadline_ms": 30000}),
        listen={"graceful-shutdown-seconds": 20},
    )
    orders = rig.imap(MAP)
    orders.set("term-0", event(0))  # the channel and the schema are in place
    channel = health_channel(rig)
    statuses: list[Any] = []
    watch = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))

    def follow() -> None:
        try:
            for answer in watch:
                statuses.append((answer.status, time.monotonic()))
        except Exception:  # the stream ends when the server goes away
            pass

    follower = threading.Thread(target=follow, daemon=True)
    follower.start()
    wait_until(lambda: bool(statuses), 10, "no health status streamed")
    assert statuses[0][0] == health_pb2.HealthCheckResponse.SERVING

    # Writes wait on the lock, reads do not; set() stores without loading the old value first.
    lock = rig.lock("domain_events", "EXCLUSIVE")
    answers: dict[str, BaseException | None] = {}

    def put(key: str, i: int) -> None:
        try:
            orders.set(key, event(i))
            answers[key] = None
        except BaseException as exc:
            answers[key] = exc

    in_flight = [threading.Thread(target=put, args=(f"term-{i}", i)) for i in range(1, 6)]
    for thread in in_flight:
        thread.start()
    wait_for_a_store_blocked_on_the_lock(rig)
    # Every put's Store must have reached the sidecar before SIGTERM: one that arrives
    # after it is refused (UNAVAILABLE, and write-behind would retry it), which is not
    # what this test is about. term-0 made the first "received" line.
    received = f"Store received map={MAP}"
    wait_until(
        lambda: rig.sidecar.log().count(received) >= 6,
        20,
        "not every in-flight put reached the sidecar",
    )
    proc = rig.sidecar.proc
    assert proc is not None
    proc.send_signal(signal.SIGTERM)
    wait_until(
        lambda: any(s == health_pb2.HealthCheckResponse.NOT_SERVING for s, _ in statuses),
        10,
        f"health did not turn NOT_SERVING after SIGTERM: {statuses}",
    )
    watch.cancel()  # an open stream would hold the server for its whole grace period
    time.sleep(1)
    # NOT_SERVING came first: the stores are still in flight, the process still up.
    assert not answers, answers
    assert proc.poll() is None
    lock.release()
    for thread in in_flight:
        thread.join(30)
    assert answers == {f"term-{i}": None for i in range(1, 6)}, answers
    assert proc.wait(30) == 0, rig.sidecar.log()[-3000:]
    channel.close()
    log = rig.sidecar.log()
    assert "hz-sidecar stopped" in log
    rig.sidecar.proc = None
    rig.assert_exactly_once(
        "sidecar SIGTERM with stores in flight", MAP, [f"term-{i}" for i in range(6)], timeout=10
    )
