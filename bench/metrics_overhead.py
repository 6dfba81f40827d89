"""storeAll throughput of `hz-sidecar run` with telemetry off, metrics on, metrics and traces on.

Three sidecar processes (one per mode) on the same provider serve the same storeAll calls
(Compact records with their schemas, as the shim sends them); rounds alternate between the modes
so that drift of the machine hits all three alike. Prints entries/s per mode (median of the rounds)
and the ratio to telemetry off (median of the per-round ratios: each round compares runs made
seconds apart). Then the in-process cost of the telemetry hot path for one such call, which is
what the ratio measures through the noise of three processes on a shared machine.

    .venv/bin/python bench/metrics_overhead.py [--provider memory|sqlite] [--rounds 7]
"""

from __future__ import annotations

import argparse
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization, Customer, Order
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

MODES = ("off", "metrics", "metrics+traces")


def telemetry(mode: str, workdir: Path) -> dict[str, Any]:
    if mode == "off":
        return {}
    block: dict[str, Any] = {
        "prometheus": {"enabled": True, "host": "127.0.0.1", "port": free_port()}
    }
    if mode == "metrics+traces":
        block["span-file"] = str(workdir / "spans.jsonl")
    return block


def start(mode: str, provider: str, root: Path) -> SidecarProcess:
    workdir = root / mode.replace("+", "-")
    workdir.mkdir()
    config = sqlite_config(workdir, f"127.0.0.1:{free_port()}")
    if provider == "memory":
        config["provider"] = {"name": "memory", "settings": {}}
    config["telemetry"] = telemetry(mode, workdir)
    config["logging"] = {"level": "WARNING"}
    process = SidecarProcess(workdir, config)
    process.start()
    return process


def requests(calls: int, batch: int) -> list[pb.StoreRequest]:
    client = ClientSerialization()
    made = []
    for call in range(calls):
        entries = []
        for i in range(batch):
            n = call * batch + i
            order = Order(f"o{n}", 10.5 + n, n, ["a", "b"], Customer(f"c{n % 100}", n % 2 == 0))
            entries.append(pb.Entry(key=client.to_bytes(f"k{n}"), value=client.to_bytes(order)))
        made.append(
            pb.StoreRequest(map_name="Bench_VIEW", entries=entries, schemas=client.schemas())
        )
    return made


def run(process: SidecarProcess, batch: list[pb.StoreRequest]) -> float:
    """Entries per second of the calls, one after the other (as one member's write-behind)."""
    stub = process.stub
    started = time.perf_counter()
    for request in batch:
        stub.Store(request, timeout=60)
    return sum(len(r.entries) for r in batch) / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", choices=("memory", "sqlite"), default="memory")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=40, help="storeAll calls per round")
    parser.add_argument("--batch", type=int, default=500, help="entries per storeAll")
    args = parser.parse_args()
    batch = requests(args.calls, args.batch)
    with tempfile.TemporaryDirectory(prefix="hzs-bench-") as tmp:
        processes = {mode: start(mode, args.provider, Path(tmp)) for mode in MODES}
        try:
            for process in processes.values():
                run(process, batch[:5])  # warm up: routes, schemas, connections
            figures: dict[str, list[float]] = {mode: [] for mode in MODES}
            for round_ in range(args.rounds):
                order = MODES if round_ % 2 == 0 else tuple(reversed(MODES))
                for mode in order:
                    figures[mode].append(run(processes[mode], batch))
        finally:
            for process in processes.values():
                process.stop(signal.SIGTERM)
    print(
        f"storeAll, {args.provider} provider, {args.calls} calls x {args.batch} entries, "
        f"median of {args.rounds} rounds"
    )
    for mode in MODES:
        median = statistics.median(figures[mode])
        ratio = statistics.median(m / o for m, o in zip(figures[mode], figures["off"], strict=True))
        print(f"  telemetry {mode:<15} {median:>10,.0f} entries/s   ratio {ratio:.3f}")
    per_call = args.batch / statistics.median(figures["off"])
    cost = hot_path_seconds(batch[0])
    print(
        f"  hot path with metrics and traces: {cost * 1e6:.0f} us per call of {args.batch} entries "
        f"= {cost / per_call:.2%} of the call ({per_call * 1e3:.1f} ms with telemetry off)"
    )


def hot_path_seconds(request: pb.StoreRequest, repeat: int = 400) -> float:
    """What telemetry adds to one Store call: span, phases, provider span, metrics.

    ``repeat`` x 3 spans stay below the span processor's queue (2048), so none is dropped.
    """
    from sidecar.config import TelemetryConfig
    from sidecar.telemetry import Telemetry

    with tempfile.TemporaryDirectory(prefix="hzs-bench-") as tmp:
        telemetry = Telemetry.from_config(
            TelemetryConfig.model_validate(
                {
                    "prometheus": {"enabled": True, "host": "127.0.0.1", "port": 0},
                    "span-file": str(Path(tmp) / "spans.jsonl"),
                }
            )
        )
        telemetry.start("sqlite")
        size = len(request.entries)
        started = time.perf_counter()
        for _ in range(repeat):
            with telemetry.call("Store", request.map_name, "view", (), size=size) as rec:
                with rec.phase("decode"):
                    pass
                with rec.provider_call("store"):
                    pass
                rec.stored(entries=size)
        elapsed = (time.perf_counter() - started) / repeat
        telemetry.shutdown()
    return elapsed


if __name__ == "__main__":
    main()
