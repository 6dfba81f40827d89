"""End-to-end fixtures: a real Hazelcast member (Maven Central jar + the shim jar, a Java
process) whose maps are persisted through a real `hz-sidecar run` process, driven from
Python with hazelcast-python-client (Compact serializers registered on the client only).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hazelcast
import psycopg
import pytest
import yaml

from tests.pgserver import SQLITE_AND_POSTGRES
from tests.prerequisites import missing, require_command
from tests.system.conftest import SidecarProcess, free_port, sqlite_config, stop_process

ROOT = Path(__file__).resolve().parents[2]
SHIM_JAR = ROOT / "shim" / "target" / "hz-sidecar-shim.jar"
HAZELCAST_JAR = ROOT / "shim" / "target" / "lib" / "hazelcast-5.7.0.jar"
FACTORY = "io.github.hzsidecar.shim.SidecarMapStoreFactory"
MEMBER_MAIN = "com.hazelcast.core.server.HazelcastMemberStarter"


def require_jars(*extra: Path) -> None:
    """A JDK, and the Java side built (shim, Hazelcast, ``extra``): else skip, or fail when
    the session is strict (``make test``, CI; see ``tests/prerequisites.py``)."""
    require_command("java", "install a JDK 17 (Debian: apt-get install openjdk-17-jdk-headless)")
    absent = [p for p in (SHIM_JAR, HAZELCAST_JAR, *extra) if not p.exists()]
    if absent:
        missing(
            f"the Java side is not built: {', '.join(str(p) for p in absent)}",
            "run `make shim` (`make test` and `make test-e2e` build it)",
        )


def map_store_block(
    address: str,
    *,
    write_delay: int,
    batch: int,
    coalescing: bool,
    initial_mode: str,
    deadline_ms: int = 10000,
) -> dict[str, Any]:
    return {
        "enabled": True,
        "factory-class-name": FACTORY,
        "write-delay-seconds": write_delay,
        "write-batch-size": batch,
        "write-coalescing": coalescing,
        "initial-mode": initial_mode,
        "properties": {"sidecar.address": address, "sidecar.deadline-ms": deadline_ms},
    }


class Member:
    """A Hazelcast member JVM with the shim on its classpath."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        cluster_name: str,
        maps: dict[str, Any],
        properties: dict[str, Any] | None = None,
        jvm_args: list[str] | None = None,
        extra_classpath: list[Path] | None = None,
    ) -> None:
        self.workdir = workdir
        self.port = port
        self.jvm_args = list(jvm_args or [])
        self.classpath = [HAZELCAST_JAR, SHIM_JAR, *(extra_classpath or [])]
        self.cluster_name = cluster_name
        self.config_path = workdir / f"hazelcast-{port}.yaml"
        config = {
            "hazelcast": {
                "cluster-name": cluster_name,
                "network": {
                    "port": {"port": port, "auto-increment": False},
                    "join": {
                        "auto-detection": {"enabled": False},
                        "multicast": {"enabled": False},
                        "tcp-ip": {"enabled": True, "member-list": [f"127.0.0.1:{port}"]},
                    },
                    "interfaces": {"enabled": True, "interfaces": ["127.0.0.1"]},
                },
                "properties": {
                    "hazelcast.phone.home.enabled": False,
                    "hazelcast.logging.type": "jdk",
                    "hazelcast.map.write.behind.queue.capacity": 1_000_000,
                    **(properties or {}),
                },
                "map": maps,
            }
        }
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = workdir / f"member-{port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                "java",
                "-Xms256m",
                "-Xmx512m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                f"-Dhazelcast.config={self.config_path}",
                "-Dhazelcast.shutdownhook.policy=GRACEFUL",
                "-Djava.net.preferIPv4Stack=true",
                *self.jvm_args,
                "-cp",
                os.pathsep.join(str(p) for p in self.classpath),
                MEMBER_MAIN,
            ],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"member exited early:\n{self.log()[-5000:]}")
            if "is STARTED" in self.log():
                return
            time.sleep(0.2)
        raise AssertionError(f"member did not start:\n{self.log()[-5000:]}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, pattern: str, *, after: int = 0, timeout: float = 60.0) -> None:
        """Wait until the log matches the regular expression ``pattern`` past the offset
        ``after`` (``len(member.log())`` taken before what should make it log)."""
        wait_until(
            lambda: re.search(pattern, self.log()[after:]) is not None,
            timeout,
            lambda: f"the member did not log {pattern!r}:\n{self.log()[after:][-3000:]}",
        )

    def stop(self, timeout: float = 120.0) -> int:
        """SIGTERM: Hazelcast's graceful shutdown flushes write-behind queues first."""
        code = stop_process(self.proc, signal.SIGTERM, timeout)
        self.proc = None
        return code

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def client(self, serializers: list[Any]) -> hazelcast.HazelcastClient:
        return hazelcast.HazelcastClient(
            cluster_name=self.cluster_name,
            cluster_members=[f"127.0.0.1:{self.port}"],
            compact_serializers=serializers,
            cluster_connect_timeout=30,
        )


class Deployment:
    """One sidecar (on SQLite, or on PostgreSQL when ``dsn`` is given) and one member."""

    def __init__(
        self,
        workdir: Path,
        maps: Callable[[str], dict[str, Any]],
        dsn: str | None = None,
        extra_classpath: list[Path] | None = None,
    ) -> None:
        self.workdir = workdir
        self.extra_classpath = list(extra_classpath or [])
        sock_dir = Path(f"/tmp/hze-{uuid.uuid4().hex[:8]}")
        sock_dir.mkdir()
        self.sock_dir = sock_dir
        self.address = f"unix://{sock_dir}/sidecar.sock"
        self.dsn = dsn
        config = sqlite_config(workdir, self.address)
        config["logging"] = {"level": "DEBUG"}
        if dsn is not None:
            config["provider"] = {"name": "postgres", "settings": {"dsn": dsn}}
        self.sidecar = SidecarProcess(workdir, config)
        self.cluster_name = f"hzs-{uuid.uuid4().hex[:8]}"
        self.maps = maps
        self.member: Member | None = None
        self.clients: list[hazelcast.HazelcastClient] = []

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        """Run SQL on the store (rows, or [] for a statement that returns none); write it
        with ``?`` placeholders and ``json(col, 'field')``."""
        if self.dsn is None:
            statement = re.sub(r"json\((\w+), '(\w+)'\)", r"json_extract(\1, '$.\2')", statement)
            with sqlite3.connect(self.workdir / "data" / "store.db") as conn:
                return conn.execute(statement, params).fetchall()
        statement = re.sub(r"json\((\w+), '(\w+)'\)", r"(\1->'\2')", statement)
        with psycopg.connect(self.dsn) as conn:
            cur = conn.execute(statement.replace("?", "%s"), params)
            rows = cur.fetchall() if cur.description is not None else []
        return [tuple(row) for row in rows]

    def start_member(self, properties: dict[str, Any] | None = None) -> Member:
        self.member = Member(
            self.workdir,
            free_port(),
            self.cluster_name,
            self.maps(self.address),
            properties,
            extra_classpath=self.extra_classpath,
        )
        self.member.start()
        return self.member

    def client(self, serializers: list[Any]) -> hazelcast.HazelcastClient:
        assert self.member is not None
        client = self.member.client(serializers)
        self.clients.append(client)
        return client

    def close(self) -> None:
        for client in self.clients:
            try:
                client.shutdown()
            except Exception:  # a client of a killed member may fail to shut down
                pass
        if self.member is not None:
            self.member.kill()
        self.sidecar.stop(signal.SIGKILL)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def deployment_factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[..., Deployment]]:
    """Makes deployments on SQLite, and on a real PostgreSQL server (fresh database each)."""
    require_jars()
    made: list[Deployment] = []
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("fresh_database")

    def make(
        maps: Callable[[str], dict[str, Any]], extra_classpath: list[Path] | None = None
    ) -> Deployment:
        deployment = Deployment(tmp_path, maps, dsn, extra_classpath)
        made.append(deployment)
        deployment.sidecar.start()
        deployment.start_member()
        return deployment

    yield make
    for deployment in made:
        deployment.close()


def wait_until(
    predicate: Callable[[], bool], timeout: float, message: str | Callable[[], str]
) -> None:
    """Poll ``predicate`` until it holds; fail with ``message`` (a callable: evaluated then,
    to show the state at the deadline) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(message() if callable(message) else message)
