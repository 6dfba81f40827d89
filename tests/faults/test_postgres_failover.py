"""PostgreSQL fails over in the middle of 5,000 write-behind puts.

A primary and a streaming standby (:func:`tests.pgserver.replicated_pair`); the sidecar
has both in its DSN with ``target_session_attrs=read-write``. While the member writes
behind, the standby is cut off (its WAL receiver stopped, as by a network partition), the
primary dies (``pg_ctl stop -m immediate``) and the standby is promoted. The sidecar,
never restarted, reports NOT_SERVING, logs the switch when it reaches the new primary
and reports SERVING again.

The scenario is the same for both tests; only the standby's kind differs:

* synchronous: the primary holds each commit until the standby has it, so nothing it
  committed after the standby was cut off was acknowledged. The sidecar answered those
  calls with an error, Hazelcast kept the entries, and wrote them again to the new
  primary: every put is there once.
* asynchronous: the primary acknowledges commits that the standby never receives. The
  sidecar answered them as written, Hazelcast dropped them from its write-behind queue,
  and the promoted standby has never seen them: they are lost, and nothing sends them
  again. The test reads the old primary's data directory (restarted aside after crash
  recovery) and asserts that every missing entry is one that the old primary committed
  and the standby did not receive, and that some are missing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.e2e.conftest import require_jars, wait_until
from tests.faults.conftest import FIGURES, FaultRig, Figures, event, event_maps, health_channel
from tests.pgserver import (
    DATABASE,
    ReplicatedPair,
    replicated_pair,
    require_postgres_binaries,
    server_user,
)

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

MAP = "Orders_ES"
TOTAL = 5_000
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class PacedPuts:
    """Puts ``total`` events from a background thread, ``per_put`` at a time; records the
    acknowledged puts (a write-behind put is acknowledged once the member queued it)."""

    def __init__(self, imap: Any, total: int, *, per_put: int = 50, interval: float = 0.1):
        self.imap = imap
        self.total = total
        self.per_put = per_put
        self.interval = interval
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="failover-writer", daemon=True)

    def _run(self) -> None:
        for start in range(0, self.total, self.per_put):
            batch = {f"fo-{i}": event(i) for i in range(start, start + self.per_put)}
            try:
                self.imap.put_all(batch)
            except Exception as exc:  # recorded: a put that failed is not acknowledged
                self.failures.append(exc)
            else:
                self.acknowledged.extend(batch)
            time.sleep(self.interval)

    def __enter__(self) -> PacedPuts:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(120)
        assert not self._thread.is_alive(), "the writer thread is stuck in a put"


@dataclass
class Failover:
    """What :func:`fail_over` saw."""

    acknowledged: list[str]
    #: Puts acknowledged when the primary was stopped (less than all: mid-stream).
    acknowledged_at_stop: int
    #: The keys the standby held when it was promoted.
    standby_keys: set[str]


def keys_on(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT map_key FROM domain_events WHERE map_name = %s", (MAP,))
        return {key for (key,) in rows}


def count_on(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM domain_events WHERE map_name = %s", (MAP,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def commits_waiting_for_standby(pair: ReplicatedPair) -> int:
    """The sidecar's sessions on the primary waiting for the synchronous standby."""
    with psycopg.connect(pair.primary.dsn()) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE application_name = 'hz-sidecar' AND wait_event = 'SyncRep'"
        ).fetchone()
    assert row is not None
    return int(row[0])


def health_status(stub: health_pb2_grpc.HealthStub) -> int | None:
    try:
        answer = stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=2)
    except grpc.RpcError:
        return None
    return int(answer.status)


def fail_over(pair: ReplicatedPair, rig: FaultRig) -> Failover:
    """Write ``TOTAL`` entries behind; in the middle, cut the standby off, let the primary
    commit without it, stop the primary ``-m immediate`` and promote the standby."""
    assert rig.sidecar.proc is not None
    sidecar_pid = rig.sidecar.proc.pid
    channel = health_channel(rig)
    health = health_pb2_grpc.HealthStub(channel)
    try:
        with PacedPuts(rig.imap(MAP), TOTAL) as writer:
            wait_until(lambda: rig.stored(MAP) >= 300, 60, "write-behind is not flowing")
            pair.disconnect_standby()
            if pair.synchronous:
                # Commits wait for the standby (and the member's calls with them) ...
                wait_until(
                    lambda: commits_waiting_for_standby(pair) > 0,
                    20,
                    "no commit of the sidecar waited for the synchronous standby",
                )
            else:
                # ... or are acknowledged without it.
                standby_rows = count_on(pair.standby.dsn())
                wait_until(
                    lambda: count_on(pair.primary.dsn()) >= standby_rows + 200,
                    20,
                    "the primary committed nothing after the standby was cut off",
                )
            time.sleep(1)  # well within the calls' 10 s deadline: none is cancelled
            acknowledged_at_stop = len(writer.acknowledged)
            pair.stop_primary_immediate()
            wait_until(
                lambda: health_status(health) == NOT_SERVING,
                30,
                "the sidecar stayed SERVING with its primary stopped",
            )
            standby_keys = keys_on(pair.standby.dsn())
            pair.promote_standby()
            wait_until(
                lambda: health_status(health) == SERVING,
                60,
                lambda: f"the sidecar did not serve again:\n{rig.sidecar.log()[-3000:]}",
            )
    finally:
        channel.close()
    assert not writer.failures, writer.failures[:3]
    assert len(writer.acknowledged) == TOTAL
    assert acknowledged_at_stop < TOTAL, "the writer was done before the primary stopped"
    assert rig.sidecar.proc is not None and rig.sidecar.proc.poll() is None
    assert rig.sidecar.proc.pid == sidecar_pid, "the sidecar was restarted"
    switch = (
        f"PostgreSQL primary changed from 127.0.0.1:{pair.primary.port}"
        f" to 127.0.0.1:{pair.standby.port}"
    )
    assert switch in rig.sidecar.log(), rig.sidecar.log()[-3000:]
    return Failover(writer.acknowledged, acknowledged_at_stop, standby_keys)


@pytest.fixture
def failover_rig(tmp_path: Path) -> Iterator[Callable[[bool], tuple[ReplicatedPair, FaultRig]]]:
    """Makes a replicated pair and a rig (sidecar, member) on it; always tears both down."""
    require_jars()
    bin_dir = require_postgres_binaries()
    with contextlib.ExitStack() as stack:

        def make(synchronous: bool) -> tuple[ReplicatedPair, FaultRig]:
            pair = stack.enter_context(
                replicated_pair(bin_dir, server_user(), synchronous=synchronous)
            )
            rig = FaultRig(
                tmp_path,
                pair.dsn(DATABASE),
                partial(event_maps, Orders_ES={}),
                listen={"health-check-interval-seconds": 0.5},
            )
            stack.callback(rig.close)
            return pair, rig.start()

        yield make


def test_failover_to_a_synchronous_standby_keeps_every_acknowledged_put_once(
    failover_rig: Callable[[bool], tuple[ReplicatedPair, FaultRig]],
) -> None:
    pair, rig = failover_rig(True)
    seen = fail_over(pair, rig)
    rig.assert_exactly_once(
        "primary stopped -m immediate, synchronous standby promoted",
        MAP,
        seen.acknowledged,
        timeout=120,
        note=f" ({seen.acknowledged_at_stop} put before the stop)",
    )


def test_failover_to_an_asynchronous_standby_loses_only_what_the_standby_never_received(
    failover_rig: Callable[[bool], tuple[ReplicatedPair, FaultRig]],
) -> None:
    pair, rig = failover_rig(False)
    seen = fail_over(pair, rig)
    acknowledged = set(seen.acknowledged)
    old_primary_keys = keys_on(pair.restart_old_primary_aside().dsn())
    # Committed by the old primary (so answered to the member as written, unless its
    # answer was in flight at the stop) and never received by the standby.
    never_replicated = old_primary_keys - seen.standby_keys
    assert old_primary_keys <= acknowledged
    assert never_replicated, "the old primary committed nothing the standby lacked"
    # Everything else reaches the new primary: Hazelcast still holds it.
    wait_until(
        lambda: acknowledged - never_replicated <= keys_on(rig.dsn),
        120,
        lambda: (
            f"{len(acknowledged - never_replicated - keys_on(rig.dsn))} entries that "
            "the old primary never committed did not reach the new one"
        ),
    )
    time.sleep(2)  # a late duplicate or stray write would show up now
    rows = rig.query(
        "SELECT map_key, count(*), min(sequence), min(correlation_id) FROM domain_events"
        " WHERE map_name = %s GROUP BY map_key",
        MAP,
    )
    stored = {key for key, *_ in rows}
    lost = acknowledged - stored
    duplicated = [key for key, copies, *_ in rows if copies != 1]
    FIGURES.append(
        Figures(
            "primary stopped -m immediate, asynchronous standby promoted",
            len(acknowledged),
            len(stored & acknowledged),
            len(lost),
            len(duplicated),
            f" ({len(never_replicated)} committed by the old primary after the standby"
            f" fell behind; the {len(never_replicated) - len(lost)} others were written"
            " again by Hazelcast)",
        )
    )
    assert not duplicated, f"duplicated rows {duplicated[:5]}"
    assert stored <= acknowledged, f"unexpected rows {sorted(stored - acknowledged)[:5]}"
    for key, _, sequence, correlation in rows:
        i = int(key.rpartition("-")[2])
        assert (sequence, correlation) == (i, f"c-{i}"), f"row {key} is not the value put"
    # What an asynchronous standby costs: acknowledged writes, and only those it never got.
    assert lost <= never_replicated, sorted(lost - never_replicated)[:5]
    assert lost, "no acknowledged put was lost: the standby was not behind after all"
