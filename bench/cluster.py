"""`make bench`, cluster case: end-to-end write-behind with 1 and 3 members, one sidecar each.

Each member (with the shim) flushes its partitions through its own sidecar into one shared
PostgreSQL database. On a small machine every process competes for the same cores, so the
throughput says little about scaling; the CPU time each process spends per entry (utime +
stime from ``/proc/<pid>/stat``, summed over the sidecars and over the members) is the figure
that scales: it is what each added member and sidecar must bring with it.

Run alone with ``python bench/cluster.py`` (own PostgreSQL server; ``BENCH_SCALE`` as for
``bench/run.py``), or as the last case of ``make bench``.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench import records  # noqa: E402
from tests.e2e.cluster import Cluster  # noqa: E402
from tests.e2e.conftest import FACTORY  # noqa: E402
from tests.pgserver import PostgresServer  # noqa: E402

MAP = "cluster_VIEW"
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, in seconds (fields 14 and 15 of /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def maps(address: str) -> dict[str, Any]:
    return {
        MAP: {
            "backup-count": 1,
            "map-store": {
                "enabled": True,
                "factory-class-name": FACTORY,
                "write-delay-seconds": 1,
                "write-batch-size": 1000,
                "write-coalescing": True,
                "initial-mode": "LAZY",
                "properties": {"sidecar.address": address, "sidecar.deadline-ms": 60000},
            },
        }
    }


def run_case(server: PostgresServer, workdir: Path, members: int, count: int) -> dict[str, float]:
    """Write-behind ingest of ``count`` entries into a cluster of ``members``; its figures."""
    dsn = server.create_database(f"hz_cluster_{members}_{uuid.uuid4().hex[:6]}")
    cluster = Cluster(
        workdir / f"members{members}",
        dsn,
        maps,
        size=members,
        sidecar_overrides={"logging": {"level": "WARNING"}},
        jvm_args=["-Xms256m", "-Xmx1g"],
    )
    try:
        cluster.start()
        pids = {
            "sidecars": [n.sidecar.proc.pid for n in cluster.nodes if n.sidecar.proc],
            "members": [n.member.proc.pid for n in cluster.nodes if n.member and n.member.proc],
        }
        client = cluster.client([records.BenchEventSerializer()])
        imap = client.get_map(MAP).blocking()
        before = {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}
        started = time.perf_counter()
        for start in range(0, count, 1000):
            stop = min(start + 1000, count)
            imap.put_all({records.key(i): records.event(i) for i in range(start, stop)})
        statement = "SELECT count(*) FROM domain_views WHERE view_name = %s"
        deadline = time.monotonic() + 600
        while cluster.query(statement, MAP)[0][0] < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{members} members: the rows did not all arrive")
            time.sleep(0.2)
        elapsed = time.perf_counter() - started
        after = {role: sum(cpu_seconds(p) for p in ps) for role, ps in pids.items()}
        shares = [node.stored(MAP) for node in cluster.nodes]
        return {
            "rate": count / elapsed,
            "sidecar_us": (after["sidecars"] - before["sidecars"]) / count * 1e6,
            "member_us": (after["members"] - before["members"]) / count * 1e6,
            "min_share": min(shares) / count,
        }
    finally:
        cluster.close()


def cluster_bench(server: PostgresServer, workdir: Path, count: int) -> list[tuple[str, str, str]]:
    """(case, figure, ratio) rows for 1 and 3 members."""
    rows = []
    single: dict[str, float] | None = None
    for members in (1, 3):
        figures = run_case(server, workdir, members, count)
        single = single or figures
        rows.append(
            (
                f"(8) cluster write-behind, {members} member(s) + sidecar(s), PostgreSQL",
                f"{figures['rate']:,.0f} entries/s; CPU/entry sidecars "
                f"{figures['sidecar_us']:,.0f} µs, members {figures['member_us']:,.0f} µs",
                f"{figures['rate'] / single['rate']:.2f}x 1 member; smallest sidecar share "
                f"{figures['min_share']:.0%}",
            )
        )
    return rows


def main() -> int:
    from bench.run import N, postgres

    with postgres() as server, tempfile.TemporaryDirectory(prefix="hz-bench-cluster-") as work:
        print(f"cluster bench: {N:,} entries, {os.cpu_count()} cores", flush=True)
        for case, figure, ratio in cluster_bench(server, Path(work), N):
            print(f"  {case:<62} {figure}  {ratio}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
