"""`make bench`: the sidecar against the database's own ceiling and against the alternatives.

Starts a private PostgreSQL server, two ``hz-sidecar run`` processes (group commit
on and off) and one Hazelcast member with the shim and the Java baselines
(``bench/java``), then measures every case of issue 5, the cases of issue 16 (an event
map without write-coalescing, write-through and the sidecar's CPU per call, each
against the in-JVM JDBC MapStore or the bare gRPC call), the peer case of issue 17
(Hazelcast's GenericMapStore and ours, each on the same all-5.6.0 member started for
it), the cluster case of ``bench/cluster.py`` (1 and 3 members, CPU time per
entry), and last the MariaDB case of issue 18 (storeAll through the mysql provider
against MariaDB's own multi-row INSERT, on a private MariaDB server), and prints one
table, with the ratios taken between figures of this same run.
The table goes to ``bench/results/latest.md``, which ends with one ``target ...`` line
per target.

Environment: ``BENCH_SCALE`` (default 1.0) scales the entry counts (200,000 at 1.0;
a quarter of that for the event map without coalescing, whose entries are stored one
call each; 10,000 for GenericMapStore, which runs one SQL statement per entry; 5,000 calls
each for the CPU per call); ``BENCH_SECONDS`` (default 5) is
the length of each write-through run.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import hazelcast
import psycopg
from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import records  # noqa: E402
from bench.chart import Comparison, Target, write_chart  # noqa: E402
from bench.cluster import cpu_seconds  # noqa: E402
from hzsidecar.v1 import mapstore_pb2 as pb  # noqa: E402
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc  # noqa: E402
from tests.e2e.conftest import FACTORY, HAZELCAST_JAR, MEMBER_MAIN, SHIM_JAR  # noqa: E402
from tests.hzclient import ClientSerialization  # noqa: E402
from tests.pgserver import PostgresServer, _find_bin_dir, _free_port, private_server  # noqa: E402
from tests.system.conftest import SidecarProcess  # noqa: E402

BENCH_JAVA = ROOT / "bench" / "java"
BENCH_JAR = BENCH_JAVA / "target" / "hz-sidecar-bench-0.1.0-SNAPSHOT.jar"
RESULTS = ROOT / "bench" / "results" / "latest.md"
#: The chart of the same run: each case, ours beside its baseline, and the targets.
CHART = RESULTS.with_suffix(".svg")
SCALE = float(os.environ.get("BENCH_SCALE", "1"))
N = max(1000, int(200_000 * SCALE))
#: Entries of the event map without coalescing: Hazelcast stores them one call each.
ES_N = max(1000, N // 4)
#: Sequential calls of each kind for the sidecar's CPU per call.
CPU_CALLS = max(1000, int(5000 * SCALE))
WT_SECONDS = float(os.environ.get("BENCH_SECONDS", "5"))
JDBC_STORE = "io.github.hzsidecar.bench.JdbcMapStore"
GENERIC_TABLE = "bench_generic"
#: The peer case's member: every Hazelcast jar at the newest version hazelcast-mapstore
#: has on Maven Central, with slf4j-api and the PostgreSQL driver (bench/java/pom.xml).
PEER_VERSION = "5.6.0"
PEER_LIB = BENCH_JAVA / "target" / f"peer-{PEER_VERSION}"
PEER_JARS = (
    f"hazelcast-{PEER_VERSION}.jar",
    f"hazelcast-sql-{PEER_VERSION}.jar",
    f"hazelcast-mapstore-{PEER_VERSION}.jar",
    "slf4j-api-2.0.17.jar",
    "postgresql-42.7.4.jar",
)
#: Entries GenericMapStore is given: its storeAll stores one entry at a time (~350/s).
GENERIC_N = min(N, max(1000, int(10_000 * SCALE)))


def stored_by_generic(j: int) -> int:
    """The ``j``-th record GenericMapStore is given: 1, 2, 4, 5, 7, ... (those whose nullable
    ``discount`` holds a value: it cannot store a null one, see :func:`peer_case`)."""
    return 3 * (j // 2) + 1 + j % 2


# -- report ---------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[tuple[str, str, str]] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: What bench/chart.py draws: ours beside each baseline, a panel per case.
    charts: list[Comparison] = field(default_factory=list)

    def row(self, case: str, figure: str, ratio: str = "") -> None:
        self.rows.append((case, figure, ratio))
        print(f"  {case:<58} {figure:>24} {ratio}", flush=True)

    def target(self, name: str, measured: float | None, goal: str, met: bool | None) -> None:
        value = "n/a" if measured is None else f"{measured:.2f}"
        verdict = "n/a" if met is None else ("met" if met else "missed")
        self.targets.append(f"target {name} {value} {goal} {verdict}")

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}", flush=True)

    def markdown(self, header: str) -> str:
        lines = [header, "", "| Case | Figure | Ratio (same run) |", "|---|---|---|"]
        lines += [f"| {c} | {f} | {r} |" for c, f, r in self.rows]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        lines += ["", "```", *self.targets, "```", ""]
        return "\n".join(lines)


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:,.0f} entries/s"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# -- processes ------------------------------------------------------------------------


@contextlib.contextmanager
def postgres() -> Iterator[PostgresServer]:
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found (apt-get install postgresql)")
    run_as = "postgres" if os.geteuid() == 0 else None
    with private_server(bin_dir, run_as, "hz-bench-pg-") as server:
        yield server


def sidecar_config(address: str, dsn: str, *, batching: bool) -> dict[str, Any]:
    return {
        "listen": {"address": address, "graceful-shutdown-seconds": 5},
        # One connection per concurrent MapStore call of the member (case 5).
        "provider": {"name": "postgres", "settings": {"dsn": dsn, "pool-max-size": 32}},
        "maps": [{"pattern": "*_ES", "kind": "event"}, {"pattern": "*_VIEW", "kind": "view"}],
        "framework": {"persistence": {"enabled": True}},
        "logging": {"level": "WARNING"},
        "batching": {"enabled": batching},
    }


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def _children(parent: int) -> list[int]:
    """Processes whose parent is ``parent`` (a postmaster's backends)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rpartition(")")[2].split()[1]) == parent:
                found.append(int(stat.parent.name))
    return found


class CpuMeter:
    """CPU seconds (utime + stime) that each process of the run spends over a stretch of it.

    ``postgres`` sums the postmaster's children: a backend that lived through the stretch
    counts its difference, one that started within it counts in full (the pools' backends
    outlive the stretches; short-lived ones, such as the bench's row counts, end before
    it is read and are not counted).
    """

    def __init__(self, pids: dict[str, int], postmaster: int | None = None) -> None:
        self.pids = pids
        self.postmaster = postmaster
        self.start = self._sample()

    def _sample(self) -> dict[str, dict[int, float]]:
        groups = {name: [pid] for name, pid in self.pids.items()}
        if self.postmaster is not None:
            groups["postgres"] = _children(self.postmaster)
        sample: dict[str, dict[int, float]] = {}
        for name, pids in groups.items():
            sample[name] = {}
            for pid in pids:
                with contextlib.suppress(OSError):
                    sample[name][pid] = cpu_seconds(pid)
        return sample

    def per(self, count: int, unit: str) -> str:
        """CPU per ``unit`` of each process since this meter started, in µs."""
        end = self._sample()
        parts = []
        for name, cpus in end.items():
            used = sum(cpu - self.start[name].get(pid, 0.0) for pid, cpu in cpus.items())
            parts.append(f"{name} {used / count * 1e6:,.0f}")
        return f"CPU/{unit} µs: " + ", ".join(parts)


def default_classpath() -> list[Path]:
    """The 5.7.0 member's: Hazelcast, the shim, the bench jar and its libraries."""
    libs = sorted((BENCH_JAVA / "target" / "lib").glob("*.jar"))
    return [HAZELCAST_JAR, SHIM_JAR, BENCH_JAR, *libs]


def peer_classpath() -> list[Path]:
    """The all-5.6.0 member's: its Hazelcast jars and libraries, and the shim."""
    jars = [PEER_LIB / name for name in PEER_JARS]
    absent = [str(j) for j in jars if not j.exists()]
    if absent:
        raise RuntimeError(f"peer jars missing (mvn package in bench/java): {absent}")
    return [*jars, SHIM_JAR]


class BenchMember:
    """A Hazelcast member with the shim, the bench jar and its libraries on the classpath.

    ``classpath`` replaces that (:func:`default_classpath`) as a whole: the Hazelcast jar
    on it is the member's version.
    """

    def __init__(
        self, workdir: Path, maps: dict[str, Any], jdbc_url: str,
        classpath: Sequence[Path] | None = None,
    ) -> None:  # fmt: skip
        self.classpath = list(classpath) if classpath is not None else None
        self.port = _free_port()
        self.cluster = f"bench-{uuid.uuid4().hex[:8]}"
        self.config_path = workdir / f"member-{self.port}.yaml"
        self.log_path = workdir / f"member-{self.port}.log"
        import yaml

        config = {
            "hazelcast": {
                "cluster-name": self.cluster,
                "network": {
                    "port": {"port": self.port, "auto-increment": False},
                    "join": {
                        "auto-detection": {"enabled": False},
                        "multicast": {"enabled": False},
                        "tcp-ip": {"enabled": True, "member-list": [f"127.0.0.1:{self.port}"]},
                    },
                    "interfaces": {"enabled": True, "interfaces": ["127.0.0.1"]},
                },
                "jet": {"enabled": True},
                "data-connection": {
                    "pg": {
                        "type": "JDBC",
                        "shared": True,
                        "properties": {"jdbcUrl": jdbc_url},
                    }
                },
                # MapStore calls run on this executor (offloaded; 16 threads by
                # default): as many as the write-through case has putters.
                "executor-service": {"hz:map-store-offloadable": {"pool-size": 32}},
                "properties": {
                    "hazelcast.phone.home.enabled": False,
                    "hazelcast.logging.type": "jdk",
                    "hazelcast.map.write.behind.queue.capacity": 2_000_000,
                },
                "map": maps,
            }
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 120) -> None:
        jars = self.classpath if self.classpath is not None else default_classpath()
        classpath = os.pathsep.join(str(p) for p in jars)
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    "java",
                    "-Xms1g",
                    "-Xmx1500m",
                    "-XX:+UseParallelGC",
                    f"-Dhazelcast.config={self.config_path}",
                    "-Dhazelcast.shutdownhook.policy=GRACEFUL",
                    "-Djava.net.preferIPv4Stack=true",
                    "--add-opens=java.base/java.lang=ALL-UNNAMED",
                    "-cp",
                    classpath,
                    MEMBER_MAIN,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"member exited:\n{self.log()[-4000:]}")
            if "is STARTED" in self.log():
                return
            time.sleep(0.2)
        raise RuntimeError(f"member did not start:\n{self.log()[-4000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def client(self) -> hazelcast.HazelcastClient:
        _fix_client_waker()
        return hazelcast.HazelcastClient(
            cluster_name=self.cluster,
            cluster_members=[f"127.0.0.1:{self.port}"],
            compact_serializers=[records.BenchEventSerializer()],
            cluster_connect_timeout=30,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(120)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


def _fix_client_waker() -> None:
    """Work around a lost wake-up in hazelcast-python-client 5.7.0's reactor.

    ``_PipedWaker.wake`` writes to its pipe only when its ``awake`` flag is clear,
    and ``handle_read`` clears the flag before draining the pipe: a wake-up that
    lands in between is drained with the flag left set, and from then on every
    request waits out the reactor's 10 ms poll timeout. Two threads (a caller and
    the client's own) are enough to trigger it, after which a put on an idle map
    takes 10.5 ms instead of 0.15-0.3 ms, which would measure the client, not the
    sidecar. Writing on every wake-up is one cheap system call.
    """
    from hazelcast import reactor

    def wake(self: Any) -> None:
        self.awake = True
        with contextlib.suppress(OSError, ValueError):
            os.write(self._write_fd, b"x")

    reactor._PipedWaker.wake = wake  # type: ignore[method-assign]


def build_java() -> None:
    if not (SHIM_JAR.exists() and HAZELCAST_JAR.exists()):
        subprocess.run(["make", "-C", str(ROOT), "shim"], check=True)
    subprocess.run(["mvn", "-B", "-q", "-f", str(BENCH_JAVA / "pom.xml"), "package"], check=True)


def store_block(
    address: str, *, write_delay: int, initial: str = "LAZY", coalescing: bool = True
) -> dict[str, Any]:
    """The shim as a map's MapStore."""
    return {
        "enabled": True,
        "factory-class-name": FACTORY,
        "write-delay-seconds": write_delay,
        "write-batch-size": 1000,
        "write-coalescing": coalescing,
        "initial-mode": initial,
        "properties": {"sidecar.address": address, "sidecar.deadline-ms": 60000},
    }


def jdbc_block(
    jdbc_url: str, *, write_delay: int, initial: str = "LAZY", coalescing: bool = True
) -> dict[str, Any]:
    """The in-JVM JDBC MapStore (bench/java) as a map's MapStore, configured as the shim is."""
    return {
        "enabled": True,
        "class-name": JDBC_STORE,
        "write-delay-seconds": write_delay,
        "write-batch-size": 1000,
        "write-coalescing": coalescing,
        "initial-mode": initial,
        "properties": {"jdbc.url": jdbc_url},
    }


# -- the data -----------------------------------------------------------------------


class Data:
    """The records, their Data bytes and schema as the member would send them."""

    def __init__(self, count: int) -> None:
        self.serialization = ClientSerialization([records.BenchEventSerializer()])
        self.count = count
        self.keys = [self.serialization.to_bytes(records.key(i)) for i in range(count)]
        self.values = [self.serialization.to_bytes(records.event(i)) for i in range(count)]
        self.schemas = self.serialization.schemas()
        self.documents = [records.document(i) for i in range(count)]
        self.value_bytes = sum(len(v) for v in self.values) / count

    def requests(self, map_name: str, batch: int) -> list[pb.StoreRequest]:
        out = []
        for start in range(0, self.count, batch):
            request = pb.StoreRequest(map_name=map_name, schemas=self.schemas)
            for i in range(start, min(start + batch, self.count)):
                request.entries.add(key=self.keys[i], value=self.values[i])
            out.append(request)
        return out


# -- cases ----------------------------------------------------------------------------


def ceiling(dsn: str, data: Data, report: Report) -> dict[str, float]:
    """(1) Raw psycopg: binary COPY and the provider's own unnest statement, same rows."""
    result: dict[str, float] = {}
    keys = [records.key(i) for i in range(data.count)]
    now = int(time.time() * 1000)  # last_updated_millis of the views
    with psycopg.connect(dsn, autocommit=True) as conn:
        for table, name_col, key_col, data_col in (
            ("domain_views", "view_name", "view_key", "view_data"),
            ("domain_events", "map_name", "map_key", "event_data"),
        ):
            kind = "view" if table == "domain_views" else "event"
            # The sidecar's key format of a String key: '' in a view map (the reference
            # framework's key form), 'string' in an event map.
            key_format = "" if kind == "view" else "string"
            extra_col = "last_updated_millis" if kind == "view" else "timestamp_millis"
            copy_map = f"ceiling_copy_{kind}"
            started = time.perf_counter()
            for start in range(0, data.count, 1000):
                with conn.transaction(), conn.cursor() as cur:
                    with cur.copy(
                        f"COPY {table} ({name_col}, {key_col}, key_format, value_format,"
                        f" type_name, {data_col}, {extra_col}) FROM STDIN (FORMAT BINARY)"
                    ) as copy:
                        copy.set_types(["text", "text", "text", "text", "text", "jsonb", "int8"])
                        for i in range(start, min(start + 1000, data.count)):
                            copy.write_row(
                                (copy_map, keys[i], key_format, "compact", "BenchEvent",
                                 data.documents[i], now)
                            )  # fmt: skip
            elapsed = time.perf_counter() - started
            result[f"copy_{kind}"] = data.count / elapsed
            report.row(f"(1) ceiling: COPY binary into {table}, 1000/tx", rate(data.count, elapsed))
            unnest_map = f"ceiling_unnest_{kind}"
            conflict = (
                f"ON CONFLICT ({name_col}, {key_col}, key_format)"
                f" DO UPDATE SET {data_col} = excluded.{data_col}"
                if kind == "view"
                else f"ON CONFLICT ({name_col}, {key_col}, key_format) DO NOTHING"
            )
            statement = (
                f"INSERT INTO {table} ({name_col}, {key_col}, key_format, value_format, type_name,"
                f" schema_id, {data_col}, {extra_col}) SELECT %b, k, '{key_format}', 'compact',"
                f" 'BenchEvent', 1, d::jsonb, {now} FROM unnest(%b::text[], %b::text[]) AS u(k, d)"
                f" {conflict}"
            )
            started = time.perf_counter()
            for start in range(0, data.count, 1000):
                stop = min(start + 1000, data.count)
                with conn.transaction():
                    conn.execute(
                        statement, (unnest_map, keys[start:stop], data.documents[start:stop])
                    )
            elapsed = time.perf_counter() - started
            result[f"unnest_{kind}"] = data.count / elapsed
            report.row(
                f"(1) ceiling: unnest %b INSERT into {table}, 1000/tx", rate(data.count, elapsed)
            )
    return result


def store_all(
    stub: Any, data: Data, report: Report, ceilings: dict[str, float]
) -> dict[str, float]:
    """(2) Store over gRPC, one call in flight, batches of 100 and 1000."""
    result = {}
    for kind, suffix in (("view", "VIEW"), ("event", "ES")):
        for batch in (100, 1000):
            map_name = f"grpc{batch}_{suffix}"
            requests = data.requests(map_name, batch)
            started = time.perf_counter()
            for request in requests:
                stub.Store(request, timeout=120)
            elapsed = time.perf_counter() - started
            figure = data.count / elapsed
            result[f"{kind}{batch}"] = figure
            ceiling_best = max(ceilings[f"copy_{kind}"], ceilings[f"unnest_{kind}"])
            report.row(
                f"(2) sidecar Store over gRPC, {kind} map, batch {batch}",
                rate(data.count, elapsed),
                f"{figure / ceilings[f'unnest_{kind}']:.2f}x unnest, "
                f"{figure / ceiling_best:.2f}x best ceiling",
            )
    return result


def mariadb_case(work: Path, data: Data, report: Report) -> None:
    """(11) storeAll into MariaDB (the mysql provider) against MariaDB's own multi-row INSERT.

    A private MariaDB server; the ceiling is asyncmy's multi-row ``INSERT ... ON DUPLICATE
    KEY UPDATE`` of the rows the provider writes (documents and key hashes made before the
    clock starts), 1000 rows a statement in autocommit; then a sidecar on the same server
    takes the same records as Store calls of 1000 over gRPC, one call in flight.
    """
    import asyncmy

    from sidecar.providers.mysql import key_hash
    from tests.mariadbserver import private_mariadb

    keys = [records.key(i) for i in range(data.count)]
    hashes = [key_hash(k) for k in keys]
    statements = {
        "view": (
            "INSERT INTO domain_views (view_name, view_key, key_hash, key_format, value_format,"
            " type_name, schema_id, view_data, last_updated_millis)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON DUPLICATE KEY UPDATE view_data = VALUES(view_data),"
            " last_updated_millis = VALUES(last_updated_millis), updated_at = UTC_TIMESTAMP(6)"
        ),
        "event": (
            "INSERT INTO domain_events (map_name, map_key, key_hash, key_format, value_format,"
            " type_name, schema_id, event_data, timestamp_millis)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON DUPLICATE KEY UPDATE map_name = map_name"
        ),
    }
    with private_mariadb("hz-bench-mariadb-") as server:
        server.create_database("hz_bench")
        settings = server.settings("hz_bench", **{"pool-max-size": 8})
        sidecar = SidecarProcess(
            _dir(work / "mariadb"),
            {**sidecar_config(f"unix://{work}/mariadb.sock", "", batching=True),
             "provider": {"name": "mysql", "settings": settings}},
        )  # fmt: skip
        sidecar.start()  # migrates the empty database
        try:
            # Every value a placeholder: asyncmy then sends one multi-row statement per
            # executemany (literals in VALUES would make it one statement per row).
            async def insert(statement: str, map_name: str, key_format: str) -> float:
                conn = await asyncmy.connect(
                    host="127.0.0.1", port=server.port, user="root", database="hz_bench",
                    charset="utf8mb4", autocommit=True, binary_prefix=True,
                )  # fmt: skip
                now = int(time.time() * 1000)
                try:
                    async with conn.cursor() as cur:
                        started = time.perf_counter()
                        for start in range(0, data.count, 1000):
                            stop = min(start + 1000, data.count)
                            await cur.executemany(statement, [
                                (map_name, keys[i], hashes[i], key_format, "compact",
                                 "BenchEvent", 1, data.documents[i], now)
                                for i in range(start, stop)
                            ])  # fmt: skip
                        return time.perf_counter() - started
                finally:
                    conn.close()

            for kind, suffix in (("view", "VIEW"), ("event", "ES")):
                # The sidecar's key format of a String key: '' in a view map, 'string' in
                # an event map (as in case 1).
                key_format = "" if kind == "view" else "string"
                ceiling_s = asyncio.run(
                    insert(statements[kind], f"mdb_ceiling_{suffix}", key_format)
                )
                report.row(
                    f"(11) ceiling: multi-row INSERT into MariaDB {kind}s, 1000/statement",
                    rate(data.count, ceiling_s),
                )
                started = time.perf_counter()
                for request in data.requests(f"mdb1000_{suffix}", 1000):
                    sidecar.stub.Store(request, timeout=120)
                ours_s = time.perf_counter() - started
                report.row(
                    f"(11) sidecar Store over gRPC into MariaDB, {kind} map, batch 1000",
                    rate(data.count, ours_s),
                    f"{ceiling_s / ours_s:.2f}x multi-row INSERT",
                )
                report.charts.append(Comparison(
                    "(11) storeAll into MariaDB, batch 1000, vs its multi-row INSERT",
                    data.count / ours_s, data.count / ceiling_s, "multi-row INSERT",
                    "entries/s", variant=f"{kind} map",
                ))  # fmt: skip
        finally:
            sidecar.stop()


def cold_start(
    work: Path, maps: dict[str, Any], jdbc_url: str, map_name: str,
    clients: list[hazelcast.HazelcastClient], pids: dict[str, int], postmaster: int,
) -> tuple[int, float, str]:  # fmt: skip
    """(6) A fresh member with ``map_name`` EAGER: (entries, seconds until its first size(),
    CPU per entry of the member, the processes of ``pids`` and PostgreSQL meanwhile)."""
    member = BenchMember(work, maps, jdbc_url)
    member.start()
    try:
        assert member.proc is not None
        client = member.client()
        clients.append(client)
        cpu = CpuMeter({**pids, "member": member.proc.pid}, postmaster)
        started = time.perf_counter()
        size = client.get_map(map_name).blocking().size()
        elapsed = time.perf_counter() - started
        spent = cpu.per(max(size, 1), "entry")
        client.shutdown()
        clients.remove(client)
    finally:
        member.stop()
    return size, elapsed, spent


def generic_block() -> dict[str, Any]:
    """Hazelcast's GenericMapStore over the member's JDBC data connection ``pg``, configured
    as the shim is in the ingest cases (write-behind, 1 s, batches of 1000, coalescing)."""
    return {
        "enabled": True,
        "class-name": "com.hazelcast.mapstore.GenericMapStore",
        "write-delay-seconds": 1,
        "write-batch-size": 1000,
        "write-coalescing": True,
        "properties": {
            "data-connection-ref": "pg",
            "external-name": GENERIC_TABLE,
            "id-column": "id",
            "type-name": records.TYPE_NAME,
        },
    }


def peer_case(
    work: Path, on: SidecarProcess, jdbc_url: str, dsn: str, postmaster: int, ours_570: float,
    report: Report, clients: list[hazelcast.HazelcastClient],
) -> float | None:  # fmt: skip
    """(4) The peer, measured (issue 17): GenericMapStore and ours on one all-5.6.0 member.

    A member of its own (its JVM started and stopped here) with hazelcast, hazelcast-sql
    and hazelcast-mapstore 5.6.0, slf4j-api and the PostgreSQL driver, and the shim; two
    maps, each measured as case (3) is (first put → last row committed, CPU per entry of
    each process): ours (shim + the sidecar ``on``) with ``N`` entries, GenericMapStore
    with ``GENERIC_N`` of the same records (those it can store). Returns ours ÷
    GenericMapStore in entries/s, or None when GenericMapStore could not be measured.
    Should ours not run on this member, ours on the 5.7.0 member of case (3) stands in,
    and a note says so.
    """
    assert on.proc is not None
    report.note(
        f"GenericMapStore runs on a member of hazelcast, hazelcast-sql and hazelcast-mapstore "
        f"{PEER_VERSION} (the newest hazelcast-mapstore on Maven Central; there is none for "
        f"5.7.0) with org.slf4j:slf4j-api 2.0.17 and the PostgreSQL driver 42.7.4 "
        f"(bench/java/target/peer-{PEER_VERSION}, fetched by mvn package): its JDBC data "
        "connection's pool (Hikari, repackaged in the Hazelcast jar) needs org.slf4j, which "
        "Hazelcast does not repackage; without slf4j-api GenericMapStore's init fails quietly "
        "and its first use ends in 'this.queries is null'. Its storeAll calls store once per "
        f"entry (one SQL statement each), hence {GENERIC_N:,} entries for it against {N:,} "
        f"for ours, compared in entries/s. Nor can it store a null in a nullable primitive "
        "field: it reads each field with the getter of its column's SQL type (getFloat64 for "
        "double precision), which throws on the records whose nullable float64 discount is "
        "null (every third), and Hazelcast retries those forever; so it is given the records "
        "whose discount holds a value (1, 2, 4, 5, ...), same shape and schema. Ours runs on "
        f"the same {PEER_VERSION} member (the shim, built against 5.7.0, on its classpath; the "
        "sidecar of case (3)) with records 0.. as in case (3). GenericMapStore writes each "
        f"record's fields as the columns of {GENERIC_TABLE}, ours the record as a JSON "
        "document in domain_views."
    )
    maps = {
        "peer_VIEW": {"map-store": store_block(on.address, write_delay=1)},
        "generic_VIEW": {"map-store": generic_block()},
    }
    ours = generic = 0.0
    member: BenchMember | None = None
    client: hazelcast.HazelcastClient | None = None
    try:
        member = BenchMember(work, maps, jdbc_url, peer_classpath())
        member.start()
        assert member.proc is not None
        if f"[{PEER_VERSION}]" not in member.log():
            raise RuntimeError(f"the member is not {PEER_VERSION}:\n{member.log()[-2000:]}")
        client = member.client()
        clients.append(client)
        pids = {"sidecar": on.proc.pid, "member": member.proc.pid, "client": os.getpid()}
        try:
            ours = ingest(
                client, "peer_VIEW",
                lambda: count_rows(dsn, "SELECT count(*) FROM domain_views WHERE view_name = %s",
                                   "peer_VIEW"),
                report,
                f"(4) ours on the all-{PEER_VERSION} member (shim + sidecar), {N:,} entries",
                lambda: CpuMeter(pids, postmaster),
            )  # fmt: skip
        except Exception as exc:
            report.note(f"ours on the {PEER_VERSION} member failed: {_first_line(exc)}")
        if ours:
            wrong = check_view_rows(dsn, "peer_VIEW", N)
            if wrong:
                report.note(f"ours on {PEER_VERSION}: {wrong}")
        generic_pids = {"member": member.proc.pid, "client": os.getpid()}
        try:
            generic = ingest(
                client, "generic_VIEW",
                lambda: count_rows(dsn, f"SELECT count(*) FROM {GENERIC_TABLE}"), report,
                f"(4) GenericMapStore over JDBC on the all-{PEER_VERSION} member, "
                f"{GENERIC_N:,} entries",
                lambda: CpuMeter(generic_pids, postmaster), GENERIC_N,
                lambda j: records.key(stored_by_generic(j)),
                lambda j: records.event(stored_by_generic(j)),
            )  # fmt: skip
        except Exception as exc:
            report.note(f"GenericMapStore on {PEER_VERSION} failed: {_first_line(exc)}")
        if generic:
            wrong = check_generic_rows(dsn, GENERIC_N)
            report.note(
                f"GenericMapStore's rows: {wrong}"
                if wrong
                else f"GenericMapStore's {GENERIC_N:,} rows of {GENERIC_TABLE} equal the "
                "records, field by field"
            )
    except Exception as exc:  # the member itself: say why, the other cases go on
        report.note(f"the {PEER_VERSION} member failed: {_first_line(exc)}")
    finally:
        if client is not None:
            with contextlib.suppress(Exception):
                client.shutdown()
            clients.remove(client)
        if member is not None:
            member.stop()
    if not generic:
        return None
    if ours:
        label = f"(4) ours / GenericMapStore, both on the all-{PEER_VERSION} member"
    else:
        ours = ours_570
        report.note(
            f"ours did not run on the {PEER_VERSION} member: GenericMapStore is compared with "
            "ours on the 5.7.0 member of case (3), measured in this run"
        )
        label = f"(4) ours on 5.7.0 (case 3) / GenericMapStore on {PEER_VERSION}"
    report.row(label, f"{N:,} / {GENERIC_N:,} entries", f"{ours / generic:.2f}x (entries/s)")
    report.charts.append(Comparison(
        "(3)(4) write-behind ingest, member+shim+sidecar", ours, generic,
        "GenericMapStore", "entries/s",
        variant=f"{PEER_VERSION} member" if label.startswith("(4) ours /") else
        f"ours 5.7.0, it {PEER_VERSION}",
    ))  # fmt: skip
    return ours / generic


def check_generic_rows(dsn: str, count: int) -> str:
    """What differs between GenericMapStore's table and the ``count`` records it was given
    (:func:`stored_by_generic`); '' if nothing."""
    names = ", ".join(f'"{name}"' for name, _ in records.SQL_COLUMNS)
    with psycopg.connect(dsn) as conn:
        rows = {
            row[0]: row[1:]
            for row in conn.execute(f"SELECT id, {names} FROM {GENERIC_TABLE}").fetchall()
        }
    indexes = [stored_by_generic(j) for j in range(count)]
    wrong = [
        i for i in indexes if rows.get(records.key(i)) != dataclasses.astuple(records.event(i))
    ]
    if not wrong and len(rows) == count:
        return ""
    example = ""
    if wrong:
        i = wrong[0]
        example = f"; {records.key(i)}: {rows.get(records.key(i))} != {records.event(i)}"
    return f"{len(wrong):,} of {count:,} differ from the records, {len(rows):,} rows{example}"


def check_view_rows(dsn: str, map_name: str, count: int) -> str:
    """What differs between ``map_name``'s documents and records 0..count-1 ('' if nothing)."""
    with psycopg.connect(dsn) as conn:
        rows = dict(
            conn.execute(
                "SELECT view_key, view_data::text FROM domain_views WHERE view_name = %s",
                (map_name,),
            ).fetchall()
        )

    def fields(document: str) -> dict[str, Any]:
        parsed = json.loads(document)
        parsed.pop("@order", None)  # the sidecar's note of the record's field order
        return parsed

    wrong = [
        i
        for i in range(count)
        if records.key(i) not in rows
        or fields(rows[records.key(i)]) != json.loads(records.document(i))
    ]
    if not wrong and len(rows) == count:
        return ""
    example = f"; {records.key(wrong[0])}: {rows.get(records.key(wrong[0]))}" if wrong else ""
    return f"{len(wrong):,} of {count:,} differ from the records, {len(rows):,} rows{example}"


def _first_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}".splitlines()[0][:300]


def count_rows(dsn: str, statement: str, *params: Any) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(statement, params).fetchone()
        return int(row[0]) if row else 0


def ingest(
    client: hazelcast.HazelcastClient, map_name: str, count: Callable[[], int], report: Report,
    label: str, meter: Callable[[], CpuMeter], entries: int = N,
    key: Callable[[int], str] = records.key, value: Callable[[int], Any] = records.event,
) -> float:  # fmt: skip
    """(3)/(4)/(9) Write-behind ingest of ``entries``: first put → last row committed."""
    imap = client.get_map(map_name).blocking()
    cpu = meter()
    started = time.perf_counter()
    chunk: dict[str, Any] = {}
    for i in range(entries):
        chunk[key(i)] = value(i)
        if len(chunk) == 1000:
            imap.put_all(chunk)
            chunk = {}
    if chunk:
        imap.put_all(chunk)
    put_done = time.perf_counter() - started
    rows, last_rows, last_progress = 0, -1, time.monotonic()
    while time.monotonic() - last_progress < 60:  # give up after a minute without progress
        rows = count()
        if rows >= entries:
            break
        if rows != last_rows:
            last_rows, last_progress = rows, time.monotonic()
        time.sleep(0.2)
    elapsed = time.perf_counter() - started
    if rows < entries:
        report.note(f"{label}: only {rows} of {entries} rows after {elapsed:.0f} s")
        return 0.0
    report.row(
        label,
        rate(entries, elapsed),
        f"(puts done after {put_done:.1f} s; {cpu.per(entries, 'entry')})",
    )
    imap.evict_all()
    return entries / elapsed


def write_through(
    client: hazelcast.HazelcastClient, map_name: str, putters: int, offset: int,
    seconds: float = WT_SECONDS,
) -> tuple[float, int]:  # fmt: skip
    imap = client.get_map(map_name).blocking()
    stop = time.monotonic() + seconds
    counts = [0] * putters

    def run(t: int) -> None:
        i = offset + t * 10_000_000
        while time.monotonic() < stop:
            # set, not put: put would first load the old value (one Load call more).
            imap.set(records.key(i), records.event(i))
            counts[t] += 1
            i += 1

    threads = [threading.Thread(target=run, args=(t,)) for t in range(putters)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.perf_counter() - started
    total = sum(counts)
    return total / elapsed, total


class CallStream:
    """The shim's transport, from Python: one ``Calls`` stream, one call at a time.

    grpc.aio on a loop of its own, so that no client thread hop is measured.
    """

    def __init__(self, address: str) -> None:
        self._loop = asyncio.new_event_loop()
        self._channel, self._stream = self._run(self._open(address))
        self._next_id = 0

    @staticmethod
    async def _open(address: str) -> tuple[Any, Any]:
        # A grpc.aio channel belongs to the loop it is created on.
        channel = grpc.aio.insecure_channel(address)
        return channel, pb_grpc.MapStoreStub(channel).Calls()

    def _run(self, coro: Any) -> Any:
        return self._loop.run_until_complete(coro)

    async def _call(self, call: pb.Call, kind: str) -> Any:
        await self._stream.write(call)
        reply = await self._stream.read()
        if reply.WhichOneof("result") != kind:
            raise RuntimeError(f"call {call.id} failed: {reply}")
        return getattr(reply, kind)

    def call(self, kind: str, request: Any, deadline_ms: int = 10_000) -> Any:
        self._next_id += 1
        call = pb.Call(id=self._next_id, deadline_ms=deadline_ms, **{kind: request})
        return self._run(self._call(call, kind))

    def close(self) -> None:
        self._run(self._close())
        self._loop.close()

    async def _close(self) -> None:
        await self._stream.done_writing()
        await self._stream.code()  # the sidecar ended the stream: nothing left in flight
        await self._channel.close()


def loads(
    stub: Any, health: Any, address: str, dsn: str, data: Data, report: Report
) -> tuple[float, float, float]:
    """(6) Point loads through the sidecar (on the shim's Calls stream) vs a direct SELECT
    plus a gRPC round trip; the same loads as unary RPCs for comparison."""
    map_name = "grpc1000_VIEW"
    samples = min(5000, data.count)
    stream = CallStream(address)
    sidecar_lat = []
    unary_lat = []
    try:
        for i in range(samples):
            request = pb.LoadRequest(map_name=map_name, keys=[data.keys[i]])
            started = time.perf_counter()
            stream.call("load", request)
            sidecar_lat.append(time.perf_counter() - started)
            started = time.perf_counter()
            stub.Load(request, timeout=10)
            unary_lat.append(time.perf_counter() - started)
    finally:
        stream.close()
    rtt = []
    request = health_pb2.HealthCheckRequest(service="")
    for _ in range(samples):
        started = time.perf_counter()
        health.Check(request, timeout=10)
        rtt.append(time.perf_counter() - started)
    select = []
    with psycopg.connect(dsn, autocommit=True) as conn:
        for i in range(samples):
            started = time.perf_counter()
            conn.execute(
                "SELECT view_key, key_format, value_format, view_data::text, type_name, schema_id"
                " FROM domain_views WHERE view_name = %b AND view_key = ANY(%b::text[])",
                (map_name, [records.key(i)]),
            ).fetchall()
            select.append(time.perf_counter() - started)
        keys = [records.key(i) for i in range(1000)]
        started = time.perf_counter()
        for _ in range(20):
            conn.execute(
                "SELECT view_key, view_data::text FROM domain_views"
                " WHERE view_name = %b AND view_key = ANY(%b::text[])",
                (map_name, keys),
            ).fetchall()
        select_1000 = (time.perf_counter() - started) / 20
    p99 = pct(sidecar_lat, 0.99)
    baseline_p99 = pct(select, 0.99) + pct(rtt, 0.99)
    report.row(
        "(6) point Load through the sidecar (Calls stream) p50 / p99",
        f"{pct(sidecar_lat, 0.5) * 1e6:,.0f} / {p99 * 1e6:,.0f} µs",
        f"{p99 / baseline_p99:.2f}x (SELECT p99 + gRPC p99)",
    )
    report.charts.append(Comparison(
        "(6) point Load p99 on the Calls stream", p99 * 1e6, baseline_p99 * 1e6,
        "SELECT p99 + gRPC health p99", "µs", higher_is_better=False,
    ))  # fmt: skip
    report.row(
        "(6) point Load as a unary RPC p50 / p99",
        f"{pct(unary_lat, 0.5) * 1e6:,.0f} / {pct(unary_lat, 0.99) * 1e6:,.0f} µs",
        f"{pct(unary_lat, 0.99) / baseline_p99:.2f}x (SELECT p99 + gRPC p99)",
    )
    report.row(
        "(6) direct SELECT p50 / p99; gRPC health round trip p50 / p99",
        f"{pct(select, 0.5) * 1e6:,.0f} / {pct(select, 0.99) * 1e6:,.0f}; "
        f"{pct(rtt, 0.5) * 1e6:,.0f} / {pct(rtt, 0.99) * 1e6:,.0f} µs",
    )
    request_1000 = pb.LoadRequest(map_name=map_name, keys=data.keys[:1000])
    started = time.perf_counter()
    for _ in range(20):
        stub.Load(request_1000, timeout=30)
    load_1000 = (time.perf_counter() - started) / 20
    report.row(
        "(6) loadAll of 1,000 keys through the sidecar",
        f"{load_1000 * 1000:,.1f} ms",
        f"{load_1000 / select_1000:.2f}x direct SELECT ({select_1000 * 1000:,.1f} ms)",
    )
    report.charts.append(Comparison(
        "(6) loadAll of 1,000 keys", load_1000 * 1000, select_1000 * 1000, "direct SELECT",
        "ms", higher_is_better=False,
    ))  # fmt: skip
    return p99 / baseline_p99, load_1000, select_1000


def cpu_per_call(sidecar: SidecarProcess, data: Data, report: Report) -> float:
    """(10) The sidecar's CPU per single-entry Store call ÷ its CPU per bare health Check.

    One client, sequential calls, the same number of each, in alternating rounds so that
    drift of the shared machine hits both alike; CPU is the sidecar process's utime +
    stime (all its threads: grpc's C core included) from /proc/<pid>/stat. The Store
    calls are what the shim sends for one ``store()``: one entry of an event map, with
    the value's schema, on the shim's ``Calls`` stream; the same Store as a unary RPC
    is measured beside it.
    """
    assert sidecar.proc is not None and sidecar.channel is not None
    pid = sidecar.proc.pid
    stub = sidecar.stub
    health = health_pb2_grpc.HealthStub(sidecar.channel)
    check = health_pb2.HealthCheckRequest(service="")
    calls = min(CPU_CALLS, data.count)
    stream = CallStream(sidecar.address)

    def store_request(map_name: str, i: int) -> pb.StoreRequest:
        entry = pb.Entry(key=data.keys[i], value=data.values[i])
        return pb.StoreRequest(map_name=map_name, entries=[entry], schemas=data.schemas)

    kinds = ("health", "store", "unary")
    try:
        for i in range(200):  # warm every path (pool connections, prepared statements)
            stream.call("store", store_request("cpuwarm_ES", i))
            stub.Store(store_request("cpuwarm_ES", 1000 + i), timeout=10)
            health.Check(check, timeout=10)
        stores = [store_request("cpu_ES", i) for i in range(calls)]
        unary = [store_request("cpuunary_ES", i) for i in range(calls)]
        rounds = 5
        cpu = dict.fromkeys(kinds, 0.0)
        latency: dict[str, list[float]] = {k: [] for k in kinds}
        for r in range(rounds):
            for kind in kinds:
                before = cpu_seconds(pid)
                for i in range(r * calls // rounds, (r + 1) * calls // rounds):
                    started = time.perf_counter()
                    if kind == "store":
                        stream.call("store", stores[i])
                    elif kind == "unary":
                        stub.Store(unary[i], timeout=10)
                    else:
                        health.Check(check, timeout=10)
                    latency[kind].append(time.perf_counter() - started)
                cpu[kind] += cpu_seconds(pid) - before
    finally:
        stream.close()
    health_us, store_us, unary_us = (cpu[k] / calls * 1e6 for k in kinds)
    report.row(
        f"(10) sidecar CPU per call, {calls:,} sequential calls each: 1-entry Store on the "
        "Calls stream / health Check",
        f"{store_us:,.0f} / {health_us:,.0f} µs",
        f"{store_us / health_us:.2f}x (client p50 {pct(latency['store'], 0.5) * 1e6:,.0f} / "
        f"{pct(latency['health'], 0.5) * 1e6:,.0f} µs)",
    )
    report.charts.append(Comparison(
        "(10) sidecar CPU per call", store_us, health_us, "health Check", "µs",
        higher_is_better=False, ours_name="1-entry Store (Calls stream)",
    ))  # fmt: skip
    report.row(
        "(10) the same 1-entry Store as a unary RPC",
        f"{unary_us:,.0f} µs",
        f"{unary_us / health_us:.2f}x health (client p50 "
        f"{pct(latency['unary'], 0.5) * 1e6:,.0f} µs)",
    )
    return store_us / health_us


# -- main -----------------------------------------------------------------------------


def main() -> int:
    report = Report()
    load_before = os.getloadavg()
    print(f"make bench: N={N:,} (BENCH_SCALE={SCALE}), load average {load_before}", flush=True)
    build_java()
    data = Data(N)
    report.note(
        f"{N:,} records of {data.value_bytes:.0f} B (Compact BenchEvent: strings, int64, int32, "
        "float64, decimal, boolean, nullable float64, date); JSON documents "
        f"{statistics.mean(len(d) for d in data.documents[:1000]):.0f} B"
    )
    work = Path(tempfile.mkdtemp(prefix="hz-bench-"))
    sidecars: list[SidecarProcess] = []
    member: BenchMember | None = None
    clients: list[hazelcast.HazelcastClient] = []
    targets: dict[str, tuple[float | None, str, bool | None]] = {}
    try:
        with postgres() as server:
            dsn = server.create_database("hz_bench")
            jdbc_url = (
                f"jdbc:postgresql://127.0.0.1:{server.port}/hz_bench?user=postgres"
                "&reWriteBatchedInserts=true"
            )
            on = SidecarProcess(
                _dir(work / "on"),
                sidecar_config(f"unix://{work}/on.sock", dsn, batching=True),
            )
            off = SidecarProcess(
                _dir(work / "off"),
                sidecar_config(f"unix://{work}/off.sock", dsn, batching=False),
            )
            for sidecar in (on, off):
                sidecar.start()
                sidecars.append(sidecar)
            assert on.proc is not None
            with psycopg.connect(dsn, autocommit=True) as conn:
                columns = ", ".join(f'"{name}" {kind}' for name, kind in records.SQL_COLUMNS)
                conn.execute(f"CREATE TABLE {GENERIC_TABLE} (id text PRIMARY KEY, {columns})")

            print("(1) ceiling", flush=True)
            ceilings = ceiling(dsn, data, report)
            print("(2) storeAll over gRPC", flush=True)
            grpc_rates = store_all(on.stub, data, report, ceilings)
            best = {
                kind: max(ceilings[f"copy_{kind}"], ceilings[f"unnest_{kind}"])
                for kind in ("view", "event")
            }
            ratio = min(grpc_rates[f"{k}1000"] / best[k] for k in ("view", "event"))
            targets["storeall-vs-ceiling"] = (ratio, ">=0.70", ratio >= 0.7)
            for kind in ("view", "event"):
                report.charts.append(Comparison(
                    "(2) storeAll over gRPC, batch 1000, vs the raw ceiling",
                    grpc_rates[f"{kind}1000"], best[kind], "raw ceiling (best of COPY, unnest)",
                    "entries/s", variant=f"{kind} map",
                ))  # fmt: skip

            print("(6) loads", flush=True)
            health = health_pb2_grpc.HealthStub(on.channel)
            point_ratio, _, _ = loads(on.stub, health, on.address, dsn, data, report)
            targets["point-load-p99"] = (point_ratio, "<=1.50", point_ratio <= 1.5)

            print("(10) sidecar CPU per call", flush=True)
            cpu_ratio = cpu_per_call(on, data, report)
            targets["sidecar-cpu-per-call"] = (cpu_ratio, "<=1.00", cpu_ratio <= 1.0)

            maps = {
                "ing_VIEW": {"map-store": store_block(on.address, write_delay=1)},
                "wton_VIEW": {"map-store": store_block(on.address, write_delay=0)},
                "wtoff_VIEW": {"map-store": store_block(off.address, write_delay=0)},
                "jdbc_VIEW": {"map-store": jdbc_block(jdbc_url, write_delay=1)},
                "jdbcwt_VIEW": {"map-store": jdbc_block(jdbc_url, write_delay=0)},
                # Event maps as the reference configures them: write-behind without
                # coalescing, so Hazelcast calls store() once per entry, one after another.
                "nc_ES": {"map-store": store_block(on.address, write_delay=1, coalescing=False)},
                "jdbcnc_ES": {"map-store": jdbc_block(jdbc_url, write_delay=1, coalescing=False)},
            }
            print("member", flush=True)
            member = BenchMember(work, maps, jdbc_url)
            member.start()
            client = member.client()
            clients.append(client)
            assert member.proc is not None
            postmaster = int((server.data_dir / "postmaster.pid").read_text().split()[0])
            pids = {"sidecar": on.proc.pid, "member": member.proc.pid, "client": os.getpid()}

            def meter() -> CpuMeter:
                return CpuMeter(pids, postmaster)

            print("(3) write-behind ingest", flush=True)
            view_count = "SELECT count(*) FROM domain_views WHERE view_name = %s"
            ours = ingest(
                client, "ing_VIEW", lambda: count_rows(dsn, view_count, "ing_VIEW"), report,
                "(3) e2e write-behind ingest, member+shim+sidecar", meter,
            )  # fmt: skip
            rss_after_ingest = rss_mb(on.proc.pid)
            print("(4) alternatives", flush=True)
            jdbc = ingest(
                client, "jdbc_VIEW", lambda: count_rows(dsn, view_count, "jdbc_VIEW"), report,
                "(4) in-JVM JDBC MapStore (hand-rolled; storeAll: one JDBC batch)", meter,
            )  # fmt: skip
            if jdbc:
                report.row("(4) ours / in-JVM JDBC MapStore", "", f"{ours / jdbc:.2f}x")
                targets["e2e-vs-jdbc-mapstore"] = (ours / jdbc, ">=1.25", ours / jdbc >= 1.25)
                report.charts.append(Comparison(
                    "(3)(4) write-behind ingest, member+shim+sidecar", ours, jdbc,
                    "in-JVM JDBC MapStore", "entries/s", variant="5.7.0 member",
                ))  # fmt: skip
            # GenericMapStore is measured below (the peer case), on a member of its own.
            targets["e2e-vs-generic-mapstore"] = (None, ">=1.50", None)

            print("(9) event map without coalescing", flush=True)
            event_count = "SELECT count(*) FROM domain_events WHERE map_name = %s"
            ours_nc = ingest(
                client, "nc_ES", lambda: count_rows(dsn, event_count, "nc_ES"), report,
                "(9) event map, write-coalescing off (store() per entry): member+shim+sidecar",
                meter, ES_N, records.event_key,
            )  # fmt: skip
            jdbc_nc = ingest(
                client, "jdbcnc_ES", lambda: count_rows(dsn, event_count, "jdbcnc_ES"), report,
                "(9) event map, write-coalescing off: in-JVM JDBC MapStore (1 INSERT per store())",
                meter, ES_N, records.event_key,
            )  # fmt: skip
            nc_ratio = ours_nc / jdbc_nc if jdbc_nc else None
            if nc_ratio is not None:
                report.row("(9) ours / in-JVM JDBC MapStore, event map without coalescing",
                           "", f"{nc_ratio:.2f}x")  # fmt: skip
                report.charts.append(Comparison(
                    "(9) event map without write-coalescing (store() per entry)", ours_nc,
                    jdbc_nc, "in-JVM JDBC MapStore", "entries/s",
                ))  # fmt: skip
            targets["es-nocoalesce-vs-jdbc-store"] = (
                nc_ratio,
                ">=1.00",
                None if nc_ratio is None else nc_ratio >= 1.0,
            )

            print("(5) write-through", flush=True)
            vs_jdbc: list[float] = []
            # Warm every path first (JIT, pools, prepared statements, the JDBC store's
            # connection of each executor thread): the first measured run would
            # otherwise pay for it alone.
            for name in ("wton_VIEW", "wtoff_VIEW", "jdbcwt_VIEW"):
                write_through(client, name, 32, 900_000_000, seconds=2)
            for putters in (1, 8, 32):
                cpu = meter()
                on_rate, on_puts = write_through(client, "wton_VIEW", putters, putters * 1000)
                on_cpu = cpu.per(on_puts, "put")
                off_rate, _ = write_through(client, "wtoff_VIEW", putters, putters * 1000)
                cpu = meter()
                jdbc_rate, jdbc_puts = write_through(client, "jdbcwt_VIEW", putters, putters * 1000)
                jdbc_cpu = cpu.per(jdbc_puts, "put")
                report.row(
                    f"(5) write-through, {putters} putters: group commit on / off",
                    f"{on_rate:,.0f} / {off_rate:,.0f} puts/s",
                    f"{on_rate / off_rate:.2f}x",
                )
                report.row(
                    f"(5) write-through, {putters} putters: ours / in-JVM JDBC store()",
                    f"{on_rate:,.0f} / {jdbc_rate:,.0f} puts/s",
                    f"{on_rate / jdbc_rate:.2f}x (ours {on_cpu}; JDBC {jdbc_cpu})",
                )
                report.charts.append(Comparison(
                    "(5) write-through puts", on_rate, jdbc_rate, "in-JVM JDBC store()",
                    "puts/s", variant=f"{putters} putter{'s' if putters > 1 else ''}",
                ))  # fmt: skip
                if putters in (8, 32):
                    vs_jdbc.append(on_rate / jdbc_rate)
            wt_ratio = min(vs_jdbc)
            targets["write-through-vs-jdbc"] = (wt_ratio, ">=1.00", wt_ratio >= 1.0)

            print("(6) cold start", flush=True)
            client.shutdown()
            clients.clear()
            member.stop()
            member = None
            eager = {
                "ing_VIEW": {"map-store": store_block(on.address, write_delay=1, initial="EAGER")}
            }
            cold_pids = {"sidecar": on.proc.pid}
            size, cold, cold_cpu = cold_start(
                work, eager, jdbc_url, "ing_VIEW", clients, cold_pids, postmaster
            )
            jdbc_eager = {
                "jdbc_VIEW": {"map-store": jdbc_block(jdbc_url, write_delay=1, initial="EAGER")}
            }
            jdbc_size, jdbc_cold, jdbc_cold_cpu = cold_start(
                work, jdbc_eager, jdbc_url, "jdbc_VIEW", clients, {}, postmaster
            )
            with psycopg.connect(dsn) as conn:
                started = time.perf_counter()
                with conn.cursor(name="cold") as cur:
                    cur.itersize = 10_000
                    cur.execute(
                        "SELECT view_key, view_data::text FROM domain_views WHERE view_name = %s",
                        ("ing_VIEW",),
                    )
                    raw_rows = sum(1 for _ in cur)
                raw = time.perf_counter() - started
            report.row(
                f"(6) cold start EAGER load of {size:,} view entries (member+shim+sidecar)",
                f"{cold:,.1f} s ({size / cold:,.0f} entries/s)",
                f"{cold / raw:.2f}x raw SELECT of {raw_rows:,} rows ({raw:.2f} s); {cold_cpu}",
            )
            report.row(
                f"(6) cold start EAGER load of {jdbc_size:,} view entries (in-JVM JDBC loader)",
                f"{jdbc_cold:,.1f} s ({jdbc_size / jdbc_cold:,.0f} entries/s)",
                f"ours / JDBC loader: {cold / jdbc_cold:.2f}x; {jdbc_cold_cpu}",
            )
            targets["cold-start-vs-jdbc-loader"] = (cold / jdbc_cold, "<=1.00", cold <= jdbc_cold)
            for baseline, name in (
                (jdbc_cold, "in-JVM JDBC loader"),
                (raw, f"raw SELECT of the {raw_rows:,} rows"),
            ):
                report.charts.append(Comparison(
                    f"(6) cold start: EAGER load of {size:,} view entries", cold, baseline,
                    name, "s", higher_is_better=False,
                ))  # fmt: skip

            peak = peak_rss_mb(on.proc.pid)
            report.row(
                "(7) sidecar RSS: peak / after the e2e ingest",
                f"{peak:,.0f} / {rss_after_ingest:,.0f} MB",
            )
            targets["sidecar-peak-rss-mb"] = (peak, "<200", peak < 200)
            report.charts.append(Comparison(
                "(7) sidecar peak RSS", peak, 200, "limit", "MB", higher_is_better=False
            ))  # fmt: skip

            print(f"(4) peer: GenericMapStore and ours on an all-{PEER_VERSION} member", flush=True)
            peer_ratio = peer_case(work, on, jdbc_url, dsn, postmaster, ours, report, clients)
            targets["e2e-vs-generic-mapstore"] = (
                peer_ratio,
                ">=1.50",
                None if peer_ratio is None else peer_ratio >= 1.5,
            )

            print("(8) clusters of 1 and 3 members", flush=True)
            from bench.cluster import cluster_bench

            for client in clients:
                client.shutdown()
            clients.clear()  # the cluster case has the machine to itself
            for row in cluster_bench(server, work, N):
                report.row(*row)

        print("(11) storeAll into MariaDB", flush=True)
        mariadb_case(work, data, report)
    finally:
        for client in clients:
            with contextlib.suppress(Exception):
                client.shutdown()
        if member is not None:
            member.stop()
        for sidecar in sidecars:
            sidecar.stop()
        shutil.rmtree(work, ignore_errors=True)

    for name, (measured, goal, met) in targets.items():
        report.target(name, measured, goal, met)
    load_after = os.getloadavg()
    stamp = datetime.datetime.now(datetime.UTC)
    header = (
        f"# make bench: {stamp:%Y-%m-%d %H:%M} UTC\n\n"
        f"{N:,} entries (BENCH_SCALE={SCALE}); {os.cpu_count()} cores, "
        f"Python {platform.python_version()}; "
        f"load average before {load_before[0]:.2f}, after {load_after[0]:.2f} "
        "(the machine is shared: figures are noisy, ratios are taken within this run)."
    )
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(report.markdown(header))
    write_chart(
        report.charts,
        [Target(name, *value) for name, value in targets.items()],
        CHART,
        title=f"make bench {stamp:%Y-%m-%d %H:%M} UTC: {N:,} entries (BENCH_SCALE={SCALE}), "
        f"{os.cpu_count()} cores; ratios taken within this run",
    )
    print("\n" + "\n".join(report.targets))
    print(f"written to {RESULTS.relative_to(ROOT)}")
    print(f"written to {CHART.relative_to(ROOT)}")
    return 0


def _dir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


if __name__ == "__main__":
    raise SystemExit(main())
