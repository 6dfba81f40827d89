"""The sidecar's CPU per entry on the cold-start path: LoadAllKeys, then Load calls of keys.

Starts a private PostgreSQL server and a ``hz-sidecar run`` configured as in ``make bench``,
stores ``--entries`` of ``make bench``'s records into a view map, then, as a member's EAGER
cold start does, streams every key with LoadAllKeys and loads them back on the shim's call
stream in calls of ``--per-call`` keys (Hazelcast's loadAll of one partition: about 184 keys
of 50,000 over 271 partitions), and prints the sidecar's CPU per key and per entry
(utime + stime from /proc).

``--sidecar-path DIR`` runs the sidecar from another checkout's ``sidecar`` package (its
PYTHONPATH), to compare two commits on the same machine in the same minutes:

    git worktree add /tmp/before <commit>
    .venv/bin/python bench/profile_loads.py --sidecar-path /tmp/before
    .venv/bin/python bench/profile_loads.py
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cluster import cpu_seconds  # noqa: E402
from bench.run import CallStream, Data, postgres, sidecar_config  # noqa: E402
from hzsidecar.v1 import mapstore_pb2 as pb  # noqa: E402
from tests.system.conftest import SidecarProcess, free_port  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=50_000)
    parser.add_argument("--per-call", type=int, action="append", default=None)
    parser.add_argument("--sidecar-path", type=Path, default=None)
    args = parser.parse_args()
    per_call = args.per_call or [184, 1000]
    data = Data(args.entries)
    env = {"PYTHONPATH": str(args.sidecar_path)} if args.sidecar_path else {}
    with postgres() as server, tempfile.TemporaryDirectory() as work:
        dsn = server.create_database("loads")
        address = f"127.0.0.1:{free_port()}"
        sidecar = SidecarProcess(Path(work), sidecar_config(address, dsn, batching=True), env=env)
        sidecar.start()
        try:
            assert sidecar.proc is not None
            pid = sidecar.proc.pid
            for request in data.requests("loads_VIEW", 1000):
                sidecar.stub.Store(request, timeout=120)
            started_cpu, started = cpu_seconds(pid), time.perf_counter()
            keys: list[bytes] = []
            answer = sidecar.stub.LoadAllKeys(pb.LoadAllKeysRequest(map_name="loads_VIEW"))
            for batch in answer:
                keys.extend(batch.keys)
            cpu = cpu_seconds(pid) - started_cpu
            print(
                f"LoadAllKeys of {len(keys):,} keys: sidecar CPU {1e6 * cpu / len(keys):.1f} µs "
                f"per key, {time.perf_counter() - started:.2f} s"
            )
            stream = CallStream(address)
            try:
                for size in per_call:
                    started_cpu, started = cpu_seconds(pid), time.perf_counter()
                    loaded = 0
                    for start in range(0, len(keys), size):
                        request = pb.LoadRequest(
                            map_name="loads_VIEW", keys=keys[start : start + size]
                        )
                        loaded += len(stream.call("load", request).entries)
                    cpu = cpu_seconds(pid) - started_cpu
                    elapsed = time.perf_counter() - started
                    print(
                        f"Load calls of {size:,} keys: {loaded:,} entries, sidecar CPU "
                        f"{1e6 * cpu / loaded:.1f} µs per entry, {elapsed:.2f} s"
                    )
            finally:
                stream.close()
        finally:
            sidecar.stop()


if __name__ == "__main__":
    main()
