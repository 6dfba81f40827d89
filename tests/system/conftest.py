"""Fixtures that start the real `hz-sidecar run` process and talk to it over gRPC."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from tests.pgserver import SQLITE_AND_POSTGRES


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sidecar_command() -> list[str]:
    script = Path(sys.executable).with_name("hz-sidecar")
    return [str(script)] if script.exists() else [sys.executable, "-m", "sidecar.cli"]


class SidecarProcess:
    """A `hz-sidecar run` child process with its config, log and channel."""

    def __init__(
        self,
        workdir: Path,
        config: dict[str, Any],
        credentials: grpc.ChannelCredentials | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        self.credentials = credentials
        #: Environment variables for the process, on top of the test's (minus HZ_SIDECAR_*).
        self.env = env or {}
        self.config_path = workdir / "sidecar.yaml"
        self.config_path.write_text(yaml.safe_dump(config))
        self.address: str = config["listen"]["address"]
        self.log_path = workdir / "sidecar.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: grpc.Channel | None = None
        #: The PostgreSQL DSN of its store, when it has one (set by the fixtures).
        self.dsn: str | None = None

    def start(self, timeout: float = 30.0) -> None:
        log = self.log_path.open("ab")
        env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
        env.update(self.env)
        self.proc = subprocess.Popen(
            [*sidecar_command(), "run", "--config", str(self.config_path)],
            cwd=self.workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
        )
        log.close()
        self.channel = self.open_channel()
        health = health_pb2_grpc.HealthStub(self.channel)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"hz-sidecar exited early:\n{self.log()}")
            try:
                answer = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=1)
                if answer.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"hz-sidecar did not become SERVING:\n{self.log()}")

    def open_channel(self, credentials: grpc.ChannelCredentials | None = None) -> grpc.Channel:
        """A new channel to the sidecar (TLS when credentials are given or were configured)."""
        credentials = credentials or self.credentials
        if credentials is None:
            return grpc.insecure_channel(self.address)
        return grpc.secure_channel(self.address, credentials)

    @property
    def stub(self) -> pb_grpc.MapStoreStub:
        assert self.channel is not None
        return pb_grpc.MapStoreStub(self.channel)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        code = stop_process(self.proc, sig, timeout)
        self.proc = None
        return code


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int, timeout: float) -> int:
    """Send ``sig`` and wait; kill the process if it outlives ``timeout``. Its exit code."""
    if proc is None:
        return 0
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def sqlite_config(workdir: Path, address: str, **persistence: Any) -> dict[str, Any]:
    return {
        "listen": {"address": address, "graceful-shutdown-seconds": 5},
        "provider": {"name": "sqlite", "settings": {"path": str(workdir / "data" / "store.db")}},
        "maps": [
            {"pattern": "*_ES", "kind": "event"},
            {"pattern": "*_VIEW", "kind": "view"},
        ],
        "framework": {"persistence": {"enabled": True, **persistence}},
    }


@pytest.fixture(params=["tcp", "unix"])
def sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SidecarProcess]:
    """A sidecar on SQLite, listening on TCP or on a Unix socket."""
    if request.param == "tcp":
        address = f"127.0.0.1:{free_port()}"
    else:
        # Unix socket paths are limited to ~107 bytes: keep it short.
        sock_dir = Path(f"/tmp/hzs-{os.getpid()}-{free_port()}")
        sock_dir.mkdir()
        request.addfinalizer(lambda: shutil.rmtree(sock_dir, ignore_errors=True))
        address = f"unix://{sock_dir}/sidecar.sock"
    process = SidecarProcess(tmp_path, sqlite_config(tmp_path, address))
    process.start()
    yield process
    process.stop(signal.SIGKILL)


@pytest.fixture(params=SQLITE_AND_POSTGRES)
def sidecar_on_each_provider(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[SidecarProcess]:
    """A sidecar on TCP, on SQLite and on a real PostgreSQL server (a fresh database each);
    ``.dsn`` is the database's DSN, None on SQLite."""
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    dsn = None
    if request.param == "postgres":
        dsn = request.getfixturevalue("fresh_database")
        config["provider"] = {"name": "postgres", "settings": {"dsn": dsn}}
    process = SidecarProcess(tmp_path, config)
    process.dsn = dsn
    process.start()
    yield process
    process.stop(signal.SIGKILL)
