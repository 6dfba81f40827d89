"""Fault fixtures: a real member (shim) and a real `hz-sidecar run` on the session's PostgreSQL.

Every fault test ends with :meth:`FaultRig.assert_exactly_once`: the database holds
exactly the entries whose put was acknowledged, once each, with the value put.
The figures of every test (entries acknowledged, checked, lost) are printed in
the terminal summary.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import hazelcast
import psycopg
import pytest

from tests.e2e.conftest import Member, map_store_block, require_jars, wait_until
from tests.e2e.model import OrderEvent, serializers
from tests.system.conftest import SidecarProcess, free_port, sqlite_config


@dataclass(frozen=True)
class Figures:
    fault: str
    acknowledged: int
    stored: int
    lost: int
    duplicated: int
    note: str


FIGURES: list[Figures] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not FIGURES:
        return
    terminalreporter.section("fault tests: entries acknowledged vs. in the database")
    for f in FIGURES:
        terminalreporter.write_line(
            f"{f.fault}: {f.acknowledged} acknowledged, {f.stored} stored once, "
            f"{f.lost} lost, {f.duplicated} duplicated{f.note}"
        )
    survived = sum(1 for f in FIGURES if f.lost == 0 and f.duplicated == 0)
    terminalreporter.write_line(
        f"faults survived: {survived} of {len(FIGURES)}; entries checked: "
        f"{sum(f.acknowledged for f in FIGURES)}; entries lost: {sum(f.lost for f in FIGURES)}"
    )


def event(i: int) -> OrderEvent:
    return OrderEvent(f"order-{i % 31}", i, "OrderPlaced", 1_700_000_000_000 + i, f"c-{i}", i / 4)


def event_maps(address: str, **maps: dict[str, Any]) -> dict[str, Any]:
    """Hazelcast ``map`` blocks: each name → overrides of :func:`map_store_block`'s arguments."""
    blocks = {}
    for name, overrides in maps.items():
        arguments: dict[str, Any] = {
            "write_delay": 1,
            "batch": 100,
            "coalescing": False,  # an event map: every put is stored
            "initial_mode": "LAZY",
            **overrides,
        }
        blocks[name] = {"map-store": map_store_block(address, **arguments)}
    return blocks


class EventWriter:
    """Puts events from a background thread at a steady pace; records the acknowledged puts."""

    def __init__(self, imap: Any, prefix: str, *, per_put: int = 25, interval: float = 0.25):
        self.imap = imap
        self.prefix = prefix
        self.per_put = per_put
        self.interval = interval
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self._next = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"writer-{prefix}", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            batch = {
                f"{self.prefix}-{i}": event(i) for i in range(self._next, self._next + self.per_put)
            }
            self._next += self.per_put
            try:
                self.imap.put_all(batch)
            except Exception as exc:  # recorded: a put that failed is not acknowledged
                self.failures.append(exc)
            else:
                self.acknowledged.extend(batch)
            self._stop.wait(self.interval)

    def __enter__(self) -> EventWriter:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[str]:
        self._stop.set()
        self._thread.join(60)
        assert not self._thread.is_alive(), "the writer thread is stuck in a put"
        return self.acknowledged


class TableLock:
    """``LOCK TABLE`` held in an open transaction until released.

    ``ACCESS EXCLUSIVE`` blocks every statement on the table; ``EXCLUSIVE`` only writes.
    """

    def __init__(self, dsn: str, table: str, mode: str = "ACCESS EXCLUSIVE") -> None:
        self.conn = psycopg.connect(dsn, application_name="fault-test-lock")
        self.conn.execute(f"LOCK TABLE {table} IN {mode} MODE")

    def release(self) -> None:
        if not self.conn.closed:
            self.conn.rollback()
            self.conn.close()


class FaultRig:
    """One sidecar on PostgreSQL (Unix socket) and one member whose maps it persists."""

    def __init__(
        self,
        workdir: Path,
        dsn: str,
        maps: Callable[[str], dict[str, Any]],
        listen: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = workdir
        self.dsn = dsn
        self.sock_dir = Path(tempfile.mkdtemp(prefix="hzf-", dir="/tmp"))
        self.address = f"unix://{self.sock_dir}/sidecar.sock"
        config = sqlite_config(workdir, self.address)
        config["provider"] = {"name": "postgres", "settings": {"dsn": dsn}}
        config["logging"] = {"level": "DEBUG"}
        config["listen"].update(listen or {})
        self.sidecar = SidecarProcess(workdir, config)
        self.member = Member(
            workdir, free_port(), f"hzf-{uuid.uuid4().hex[:8]}", maps(self.address)
        )
        self.clients: list[hazelcast.HazelcastClient] = []
        self.locks: list[TableLock] = []

    def start(self) -> FaultRig:
        self.sidecar.start()
        self.member.start()
        return self

    def imap(self, name: str) -> Any:
        client = self.member.client(serializers())
        self.clients.append(client)
        return client.get_map(name).blocking()

    def lock(self, table: str, mode: str = "ACCESS EXCLUSIVE") -> TableLock:
        lock = TableLock(self.dsn, table, mode)
        self.locks.append(lock)
        return lock

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return [tuple(row) for row in conn.execute(statement, params).fetchall()]

    def stored(self, map_name: str) -> int:
        return int(
            self.query("SELECT count(*) FROM domain_events WHERE map_name = %s", map_name)[0][0]
        )

    def sidecar_waiting_on_lock(self, statement: str = "INSERT") -> list[float]:
        """Seconds each of the sidecar's ``statement`` s has been waiting on a lock."""
        rows = self.query(
            "SELECT extract(epoch FROM now() - query_start)::float8 FROM pg_stat_activity"
            " WHERE application_name = 'hz-sidecar' AND wait_event_type = 'Lock'"
            " AND query LIKE %s",
            f"{statement}%",
        )
        return [float(seconds) for (seconds,) in rows]

    def assert_exactly_once(
        self,
        fault: str,
        map_name: str,
        acknowledged: list[str],
        timeout: float = 120,
        note: str = "",
    ) -> None:
        """Wait for the acknowledged entries; then the table holds exactly them, once, as put."""
        assert acknowledged, "no put was acknowledged: the test wrote nothing"
        wanted = set(acknowledged)
        assert len(wanted) == len(acknowledged)

        def arrived() -> int:
            return self.stored(map_name)

        wait_until(
            lambda: arrived() >= len(wanted),
            timeout,
            f"{fault}: only {arrived()} of {len(wanted)} acknowledged entries reached the database",
        )
        time.sleep(2)  # a late duplicate or stray write would show up now
        rows = self.query(
            "SELECT map_key, count(*), min(sequence), min(correlation_id) FROM domain_events"
            " WHERE map_name = %s GROUP BY map_key",
            map_name,
        )
        keys = {key for key, *_ in rows}
        lost = wanted - keys
        strays = keys - wanted
        duplicated = [key for key, copies, *_ in rows if copies != 1]
        FIGURES.append(
            Figures(fault, len(wanted), len(keys & wanted), len(lost), len(duplicated), note)
        )
        assert not lost, f"{fault}: {len(lost)} acknowledged entries lost, e.g. {sorted(lost)[:5]}"
        assert not strays, f"{fault}: unexpected rows {sorted(strays)[:5]}"
        assert not duplicated, f"{fault}: duplicated rows {duplicated[:5]}"
        for key, _, sequence, correlation in rows:
            i = int(key.rpartition("-")[2])
            assert (sequence, correlation) == (i, f"c-{i}"), (
                f"{fault}: row {key} is not the value put"
            )

    def close(self) -> None:
        for lock in self.locks:
            lock.release()
        for client in self.clients:
            try:
                client.shutdown()
            except Exception:  # the member may be gone already
                pass
        self.member.kill()
        self.sidecar.stop(signal.SIGKILL)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


def health_channel(rig: FaultRig) -> grpc.Channel:
    return grpc.insecure_channel(rig.address)


def proc_threads(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/task"))


def proc_rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for process {pid}")


@pytest.fixture
def rig_factory(tmp_path: Path, fresh_database: str) -> Iterator[Callable[..., FaultRig]]:
    """Makes started rigs (sidecar, then member) on a fresh database; always tears them down."""
    require_jars()
    made: list[FaultRig] = []

    def make(maps: Callable[[str], dict[str, Any]], **kwargs: Any) -> FaultRig:
        rig = FaultRig(tmp_path, fresh_database, maps, **kwargs)
        made.append(rig)
        return rig.start()

    yield make
    for rig in made:
        rig.close()
