"""A real MariaDB server for the MySQL provider's integration and end-to-end tests.

The session starts one server from the Debian ``mariadb-server`` binaries:
``mariadb-install-db`` into a fresh temporary directory, ``mariadbd`` on a free
port of 127.0.0.1 and a private Unix socket, ``root`` without a password over
both. It is always stopped at the end. Under root the server runs as the
``mysql`` OS user (``--user``; mariadbd refuses root unless told otherwise).

Without the binaries the tests are skipped, except under ``make test`` and CI,
where a missing server is a failure (``tests/prerequisites.py``).
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.prerequisites import missing

MARIADBD = Path("/usr/sbin/mariadbd")
INSTALL_DB = "mariadb-install-db"
SUPERUSER = "root"
#: Small, quick-to-create InnoDB files: a test server holds little.
_SERVER_OPTIONS = (
    "--innodb-buffer-pool-size=128M",
    "--innodb-log-file-size=32M",
    "--max-connections=300",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_nopad_bin",
    "--skip-name-resolve",
    "--skip-log-bin",
)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def find_binaries() -> tuple[Path, Path] | None:
    """``mariadbd`` and ``mariadb-install-db``, or None when MariaDB is not installed."""
    server = MARIADBD if MARIADBD.exists() else None
    if server is None and (found := shutil.which("mariadbd")):
        server = Path(found)
    install = shutil.which(INSTALL_DB)
    if server is None or install is None:
        return None
    return server, Path(install)


@dataclass
class MariaDBServer:
    """A MariaDB server private to the test session."""

    server_bin: Path
    install_bin: Path
    base_dir: Path
    port: int
    run_as: str | None  # OS user the server runs as (root: ``mysql``)
    proc: subprocess.Popen[bytes] | None = field(default=None)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_path(self) -> Path:
        return self.base_dir / "mysqld.sock"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "error.log"

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def settings(self, database: str, **extra: Any) -> dict[str, Any]:
        """The MySQL provider's settings for ``database`` on this server (over TCP)."""
        return {
            "host": "127.0.0.1",
            "port": self.port,
            "user": SUPERUSER,
            "database": database,
            **extra,
        }

    def dsn(self, database: str) -> str:
        return f"mysql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def install(self) -> None:
        command = [
            str(self.install_bin),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
        ]
        if self.run_as is not None:
            command.append(f"--user={self.run_as}")
        result = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
        if result.returncode != 0:
            raise RuntimeError(f"{INSTALL_DB} failed ({result.returncode}): {result.stdout}")

    def start(self, timeout: float = 60.0) -> None:
        """Start the server and wait until it accepts connections."""
        command = [
            str(self.server_bin),
            "--no-defaults",
            f"--datadir={self.data_dir}",
            f"--port={self.port}",
            "--bind-address=127.0.0.1",
            f"--socket={self.socket_path}",
            f"--pid-file={self.base_dir / 'mariadbd.pid'}",
            f"--log-error={self.log_file}",
            *_SERVER_OPTIONS,
        ]
        if self.run_as is not None:
            command.append(f"--user={self.run_as}")
        self.proc = subprocess.Popen(
            command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mariadbd exited ({self.proc.returncode}):\n{self.log()}")
            if self.socket_path.exists() and self._answers():
                return
            time.sleep(0.1)
        raise RuntimeError(f"mariadbd did not start within {timeout:.0f} s:\n{self.log()}")

    def _answers(self) -> bool:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.port), 1):
            return True
        return False

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM: a normal shutdown (open connections are closed, InnoDB flushed)."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-5000:] if self.log_file.exists() else ""

    def sql(self, statement: str, database: str | None = None) -> list[tuple[str, ...]]:
        """Run ``statement`` with the ``mariadb`` client over the private socket; its rows as
        text (tab-separated, no headers)."""
        command = [
            "mariadb",
            "--no-defaults",
            f"--socket={self.socket_path}",
            f"--user={SUPERUSER}",
            "--batch",
            "--skip-column-names",
            "--raw",
        ]
        if database is not None:
            command.append(f"--database={database}")
        result = subprocess.run(
            [*command, "-e", statement], capture_output=True, text=True, timeout=60, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"mariadb -e {statement!r} failed: {result.stderr}")
        return [tuple(line.split("\t")) for line in result.stdout.splitlines()]

    def create_database(self, name: str) -> str:
        """Create an empty database; return its name."""
        self.sql(f"CREATE DATABASE `{name}`")
        return name


def _server_user() -> str | None:
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("mysql")
    except KeyError:
        pytest.fail("running as root needs the 'mysql' OS user to run the MariaDB server")
    return "mysql"


@contextlib.contextmanager
def private_mariadb(prefix: str = "hz-sidecar-mariadb-") -> Iterator[MariaDBServer]:
    """A server installed and started in a new temporary directory, on a free port; stopped
    and removed afterwards. Raises RuntimeError when the binaries are not installed."""
    binaries = find_binaries()
    if binaries is None:
        raise RuntimeError("MariaDB server binaries (mariadbd, mariadb-install-db) not found")
    run_as = _server_user()
    # Not under pytest's tmp_path: its parents are private to the current user, and the
    # server may run as another one.
    base_dir = Path(tempfile.mkdtemp(prefix=prefix))
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        os.chown(base_dir, user.pw_uid, user.pw_gid)
    server = MariaDBServer(*binaries, base_dir=base_dir, port=_free_port(), run_as=run_as)
    try:
        server.install()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[MariaDBServer]:
    """A running MariaDB server (no database of the tests' yet: see ``mariadb_database``)."""
    if find_binaries() is None:
        missing(
            "MariaDB server binaries (mariadbd, mariadb-install-db) not found",
            "install them (Debian: apt-get install mariadb-server; .ci/run does)",
        )
    with private_mariadb() as server:
        yield server


@pytest.fixture
def mariadb_database(mariadb_server: MariaDBServer) -> str:
    """The name of a new, empty database on the session's server."""
    return mariadb_server.create_database(f"hz_{uuid.uuid4().hex[:12]}")
