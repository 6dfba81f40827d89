"""The reference event-sourcing framework's data shapes, put into a member and read back from
Java: the Java side (tests/java/framework-shapes, built by `make shim`) is a Hazelcast Java
client that writes `PartitionedSequenceKey` keys (Java-serialized, PartitionAware) with Compact
event records, and Compact view records under String keys, exactly as the framework would.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Any

from tests.e2e.conftest import HAZELCAST_JAR, ROOT, Member, require_jars

FRAMEWORK_JAR = ROOT / "tests" / "java" / "framework-shapes" / "target" / "framework-shapes.jar"
DRIVER_MAIN = "io.github.hzsidecar.framework.FrameworkDriver"
# The driver's key and value scheme (see Shapes.java): event i has sequence FIRST_SEQUENCE + i.
FIRST_SEQUENCE = 1_000_000
# Exit codes of the driver: a verification found differences; the command line was wrong.
MISMATCH = 1
USAGE = 2


def require_framework_jar() -> None:
    """Skip when the Java side is not built; under CI a missing jar is a failure instead."""
    require_jars(FRAMEWORK_JAR)


def event_key(i: int, aggregates: int = 10) -> dict[str, Any]:
    """The key of event ``i`` as `FrameworkDriver.dump` takes it (and as it echoes it back)."""
    return {"sequence": FIRST_SEQUENCE + i, "partitionKey": f"cust-{i % aggregates}"}


def view_key(i: int) -> str:
    return f"view-{i}"


class FrameworkDriver:
    """Runs the Java driver as a Hazelcast client of one member; each call is one JVM."""

    def __init__(self, cluster_name: str, address: str, timeout: float = 180.0) -> None:
        self.cluster_name = cluster_name
        self.address = address
        self.timeout = timeout

    @classmethod
    def of(cls, member: Member, timeout: float = 180.0) -> FrameworkDriver:
        return cls(member.cluster_name, f"127.0.0.1:{member.port}", timeout)

    def put_events(
        self,
        map_name: str,
        count: int,
        *,
        start: int = 0,
        aggregates: int = 10,
        timestamp_kind: str = "int64",
    ) -> dict[str, Any]:
        """Put events ``start`` .. ``start + count - 1``; returns ``{"put": count}``."""
        return self._single(
            "put-events",
            map=map_name,
            count=count,
            start=start,
            aggregates=aggregates,
            timestamp_kind=timestamp_kind,
        )

    def verify_events(
        self,
        map_name: str,
        count: int,
        *,
        start: int = 0,
        aggregates: int = 10,
        timestamp_kind: str = "int64",
        sample: int | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        """Read events back with ``map.get`` and compare them field by field.

        Returns ``{"checked": k, "mismatches": [...]}``; with ``check`` (the default) any
        mismatch raises AssertionError instead.
        """
        return self._single(
            "verify-events",
            allowed=(0,) if check else (0, MISMATCH),
            map=map_name,
            count=count,
            start=start,
            aggregates=aggregates,
            timestamp_kind=timestamp_kind,
            sample=sample,
        )

    def put_views(self, map_name: str, count: int, *, start: int = 0) -> dict[str, Any]:
        return self._single("put-views", map=map_name, count=count, start=start)

    def verify_views(
        self,
        map_name: str,
        count: int,
        *,
        start: int = 0,
        sample: int | None = None,
        check: bool = True,
    ) -> dict[str, Any]:
        return self._single(
            "verify-views",
            allowed=(0,) if check else (0, MISMATCH),
            map=map_name,
            count=count,
            start=start,
            sample=sample,
        )

    def put_ordered(
        self, map_name: str, kind: str, count: int, *, start: int = 0
    ) -> dict[str, Any]:
        """Put the write-order samples ``kind`` (``hand``: a hand-written CompactSerializer,
        registered on the client; ``zero``: zero-config) ``start`` .. ``start + count - 1``
        under the keys ``{kind}-{i}`` (see WriteOrders.java)."""
        return self._single("put-ordered", map=map_name, kind=kind, count=count, start=start)

    def verify_ordered(
        self, map_name: str, kind: str, count: int, *, start: int = 0, check: bool = True
    ) -> dict[str, Any]:
        """``map.get`` of each sample equals the original, and ``map.replace`` finds the
        member's bytes equal to the original's, not to its name-order GenericRecord twin.
        ``{"checked": n, "mismatches": [...]}``; with ``check`` a mismatch raises instead."""
        return self._single(
            "verify-ordered",
            allowed=(0,) if check else (0, MISMATCH),
            map=map_name,
            kind=kind,
            count=count,
            start=start,
        )

    def dump(self, map_name: str, keys: list[str | dict[str, Any]]) -> list[dict[str, Any]]:
        """``map.get`` of each key (a String key, or an `event_key` dict); one dict per key:
        ``{"key": key, "value": None | {"type": t, "fields": {name: {"kind", "value"}}}}``."""
        with tempfile.TemporaryDirectory(prefix="hz-framework-") as tmp:
            keys_file = Path(tmp) / "keys.json"
            keys_file.write_text(json.dumps(keys), encoding="utf-8")
            return self._run("dump", map=map_name, keys_json=keys_file)

    def size(self, map_name: str) -> int:
        return int(self._single("size", map=map_name)["size"])

    def _single(
        self, command: str, *, allowed: tuple[int, ...] = (0,), **options: Any
    ) -> dict[str, Any]:
        lines = self._run(command, allowed=allowed, **options)
        if len(lines) != 1:
            raise AssertionError(f"{command}: expected one JSON line, got {lines!r}")
        return lines[0]

    def _run(
        self, command: str, *, allowed: tuple[int, ...] = (0,), **options: Any
    ) -> list[dict[str, Any]]:
        args = ["--cluster", self.cluster_name, "--address", self.address]
        for name, value in options.items():
            if value is not None:
                args += [f"--{name.replace('_', '-')}", str(value)]
        return run_driver(command, args, self.timeout, allowed)


def write_vectors(out: Path, timeout: float = 120.0) -> None:
    """Regenerate the Java-serialization test vectors (no cluster needed)."""
    run_driver("vectors", ["--out", str(out)], timeout, (0,))


def run_driver(
    command: str, args: list[str], timeout: float, allowed: tuple[int, ...]
) -> list[dict[str, Any]]:
    argv = [
        "java",
        "-Xmx512m",
        "-XX:+UseSerialGC",
        "-XX:TieredStopAtLevel=1",
        "-Djava.net.preferIPv4Stack=true",
        "-cp",
        os.pathsep.join(str(p) for p in (HAZELCAST_JAR, FRAMEWORK_JAR)),
        DRIVER_MAIN,
        command,
        *args,
    ]
    try:
        done = subprocess.run(
            argv, capture_output=True, encoding="utf-8", errors="replace", timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise AssertionError(f"{command}: no answer within {timeout}s\n{exc.stderr!r}") from exc
    if done.returncode not in allowed:
        raise AssertionError(
            f"{command} exited {done.returncode}\n"
            f"stdout:\n{done.stdout[-5000:]}\nstderr:\n{done.stderr[-5000:]}"
        )
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]
