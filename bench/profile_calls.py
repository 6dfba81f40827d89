"""Where the sidecar's time goes per call: CPU per call, py-spy and perf over `hz-sidecar run`.

Starts a private PostgreSQL server and one sidecar configured as in ``make bench``, and for
each call kind drives it from this process with plain gRPC, then makes three passes of
``--calls`` calls each:

1. unprofiled: the sidecar's CPU per call (utime + stime of all its threads, from
   /proc/<pid>/stat) and the client's p50;
2. under ``py-spy record --gil`` (Python stacks, sampled while a thread holds the GIL):
   the functions holding the most samples, inclusive and self; Cython code of grpc that
   asyncio calls back shows as the self time of ``Handle._run``;
3. under ``perf record`` (every thread, the kernel included): the share of each thread
   and shared object (the interpreter, grpc's C core, libpq, libc, the kernel) and of
   the hottest symbols, each also as µs of the CPU per call of pass 1.

Kinds: ``health`` (the bare gRPC call), ``store`` (a single-entry Store of an event
map with its schema, as the shim sends for one ``store()``), ``load`` (a point Load of
a view map). Store and Load go on the shim's ``Calls`` stream, as the shim sends them
(``--transport unary``: one RPC each). ``--concurrency`` runs that many client threads,
each calling in sequence on a stream of its own (write-through with several putters).

    .venv/bin/python bench/profile_calls.py [--calls 5000] [--kinds health,store,load]
        [--concurrency 1] [--top 20] [--transport stream|unary]

Needs py-spy in the virtualenv (``pip install py-spy``) and perf; a missing one is
skipped with a note.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from grpc_health.v1 import health_pb2, health_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.cluster import cpu_seconds  # noqa: E402
from bench.run import CallStream, Data, pct, postgres, sidecar_config  # noqa: E402
from hzsidecar.v1 import mapstore_pb2 as pb  # noqa: E402
from tests.system.conftest import SidecarProcess  # noqa: E402

PY_SPY = Path(sys.executable).with_name("py-spy")
RATE = 997  # samples per second: not a multiple of any timer of the sidecar


class Driver:
    """Makes the calls of one kind against the sidecar, ``concurrency`` callers at once."""

    def __init__(
        self, sidecar: SidecarProcess, data: Data, concurrency: int, transport: str
    ) -> None:
        assert sidecar.channel is not None
        self.stub = sidecar.stub
        self.address = sidecar.address
        #: ``stream``: Store and Load on the Calls stream, as the shim sends them (one
        #: stream per caller thread); ``unary``: one RPC each.
        self.transport = transport
        self._streams = threading.local()
        self.health = health_pb2_grpc.HealthStub(sidecar.channel)
        self.data = data
        self.concurrency = concurrency
        self.passes = 0

    def prepare(self, kind: str) -> None:
        if kind == "load":
            for request in self.data.requests("profile_VIEW", 1000):
                self.stub.Store(request, timeout=60)
        self.run(kind, 200)  # warm: pool connections, prepared statements

    def call(self, kind: str) -> Callable[[int], object]:
        self.passes += 1
        data = self.data
        if kind == "health":
            check = health_pb2.HealthCheckRequest(service="")
            return lambda i: self.health.Check(check, timeout=10)
        if kind == "store":
            # A map per pass: every Store inserts a new row, as a stream of events does.
            map_name = f"profile{self.passes}_ES"

            def store(i: int) -> object:
                entry = pb.Entry(key=data.keys[i], value=data.values[i])
                request = pb.StoreRequest(map_name=map_name, entries=[entry], schemas=data.schemas)
                if self.transport == "stream":
                    return self.stream().call("store", request)
                return self.stub.Store(request, timeout=10)

            return store
        if kind == "load":

            def load(i: int) -> object:
                request = pb.LoadRequest(map_name="profile_VIEW", keys=[data.keys[i]])
                if self.transport == "stream":
                    return self.stream().call("load", request)
                return self.stub.Load(request, timeout=10)

            return load
        raise SystemExit(f"unknown call kind {kind!r}: health, store or load")

    def stream(self) -> CallStream:
        """The calling thread's Calls stream, opened on first use."""
        stream = getattr(self._streams, "stream", None)
        if stream is None:
            stream = self._streams.stream = CallStream(self.address)
        return stream

    def run(self, kind: str, calls: int) -> list[float]:
        """``calls`` calls in all, split between the callers; their latencies."""
        call = self.call(kind)
        latencies: list[float] = []
        lock = threading.Lock()

        def caller(first: int) -> None:
            mine = []
            for i in range(first, calls, self.concurrency):
                started = time.perf_counter()
                call(i % self.data.count)
                mine.append(time.perf_counter() - started)
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=caller, args=(t,)) for t in range(self.concurrency)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        return latencies


@contextlib.contextmanager
def attached(command: list[str], settle: float = 1.0) -> Iterator[None]:
    """A profiler attached for the duration of the block, stopped with SIGINT (it then writes)."""
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(settle)  # attached and sampling before the first call
    if proc.poll() is not None:
        raise RuntimeError(
            f"{command[0]} exited: {proc.stderr.read().decode() if proc.stderr else ''}"
        )
    try:
        yield
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


#: Frames every sample of a thread runs under (the event loop, the thread's start): they say
#: nothing about where a call's time goes.
_WRAPPERS = re.compile(
    r"^(<module>|main|run|Runner\.run|BaseEventLoop\.(run_forever|run_until_complete|_run_once)"
    r"|Thread\._bootstrap(_inner)?) "
)


def py_spy_top(raw: Path, top: int, calls: int) -> list[str]:
    """Top functions of a py-spy raw (collapsed) file, inclusive and self, in µs per call."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        frames = stack.split(";")
        frames = [f for f in frames if not f.startswith(("process ", "thread "))]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for frame in set(frames):
            if not _WRAPPERS.match(frame):
                inclusive[frame] += count
    if not total:
        return ["  (no samples)"]

    def row(frame: str, samples: int) -> str:
        return f"  {samples / total:6.1%} {samples / RATE / calls * 1e6:7.1f} µs  {frame}"

    lines = [
        f"  {total:,} samples holding the GIL ({total / RATE / calls * 1e6:,.0f} µs per call of"
        " wall time, the sampling pauses included); inclusive:"
    ]
    lines += [row(f, n) for f, n in inclusive.most_common(top)]
    lines += ["  self:"]
    lines += [row(f, n) for f, n in own.most_common(top)]
    return lines


def perf_report(data: Path, sort: str, top: int, cpu_us: float) -> list[str]:
    """The top rows of ``perf report --no-children --sort <sort>`` (self time), each with its
    share of the measured CPU per call."""
    out = subprocess.run(
        ["perf", "report", "-i", str(data), "--stdio", "--no-children", "-g", "none",
         "--percent-limit", "0.3", "--sort", sort],
        capture_output=True,
        text=True,
        check=False,
    ).stdout  # fmt: skip
    lines = []
    for line in out.splitlines():
        match = re.match(r"\s*([\d.]+)%\s+(.*)", line)
        if match:
            share = float(match.group(1))
            what = " ".join(match.group(2).split())
            lines.append(f"  {share:5.1f}% {share / 100 * cpu_us:6.1f} µs  {what}")
    return lines[:top] or ["  (no samples)"]


def context_switches(pid: int) -> int:
    """Voluntary and involuntary context switches of every thread of ``pid`` so far."""
    total = 0
    for status in Path(f"/proc/{pid}/task").glob("*/status"):
        with contextlib.suppress(OSError):
            for line in status.read_text().splitlines():
                if "ctxt_switches:" in line:
                    total += int(line.split()[1])
    return total


def profile(kind: str, driver: Driver, pid: int, calls: int, top: int, work: Path) -> list[str]:
    lines = [f"## {kind}: {calls:,} calls, {driver.concurrency} caller(s)"]
    driver.prepare(kind)
    before, switches = cpu_seconds(pid), context_switches(pid)
    started = time.perf_counter()
    latencies = driver.run(kind, calls)
    elapsed = time.perf_counter() - started
    cpu = cpu_seconds(pid) - before
    cpu_us = cpu / calls * 1e6
    switches = context_switches(pid) - switches
    lines.append(
        f"  sidecar CPU {cpu_us:,.0f} µs per call ({cpu / elapsed:.0%} of a core), "
        f"{switches / calls:.1f} context switches per call; {calls / elapsed:,.0f} calls/s; "
        f"client p50 / p99 {pct(latencies, 0.5) * 1e6:,.0f} / "
        f"{pct(latencies, 0.99) * 1e6:,.0f} µs"
    )
    if PY_SPY.exists():
        raw = work / f"{kind}.pyspy.txt"
        # --gil: only samples of a thread running Python. Not --nonblocking: stacks read
        # from a running process come out torn, and land on the outermost frames.
        options = ["--rate", str(RATE), "--gil", "--format", "raw", "--nolineno"]
        command = [str(PY_SPY), "record", "--pid", str(pid), *options, "--output", str(raw)]
        with attached(command):
            driver.run(kind, calls)
        lines.append(f"  $ {' '.join(command[:-2])} <file> (while the calls run)")
        lines += py_spy_top(raw, top, calls)
    else:
        lines.append(f"  py-spy not installed ({PY_SPY}): pip install py-spy")
    if shutil.which("perf"):
        data = work / f"{kind}.perf.data"
        command = ["perf", "record", "-F", str(RATE), "-g", "-p", str(pid), "-o", str(data)]
        with attached(command):
            driver.run(kind, calls)
        lines.append(
            f"  $ perf record -F {RATE} -g -p <pid>; perf report --no-children --sort comm,dso"
            " (share of all the sidecar's samples, µs of the CPU per call above)"
        )
        lines += perf_report(data, "comm,dso", top, cpu_us)
        lines.append("  perf report --no-children --sort dso,sym:")
        lines += perf_report(data, "dso,sym", top, cpu_us)
    else:
        lines.append("  perf not installed")
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--kinds", default="health,store,load")
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument(
        "--transport",
        choices=("stream", "unary"),
        default="stream",
        help="Store and Load on the shim's Calls stream (default) or as unary RPCs",
    )
    args = parser.parse_args()
    kinds = [k.strip() for k in args.kinds.split(",") if k.strip()]
    data = Data(args.calls)
    work = Path(tempfile.mkdtemp(prefix="hz-profile-"))
    try:
        with postgres() as server:
            dsn = server.create_database("hz_profile")
            sidecar = SidecarProcess(
                work, sidecar_config(f"unix://{work}/sidecar.sock", dsn, batching=True)
            )
            sidecar.start()
            try:
                assert sidecar.proc is not None
                driver = Driver(sidecar, data, args.concurrency, args.transport)
                for kind in kinds:
                    lines = profile(kind, driver, sidecar.proc.pid, args.calls, args.top, work)
                    print("\n".join(lines), flush=True)
            finally:
                sidecar.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
