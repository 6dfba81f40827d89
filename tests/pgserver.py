"""A real PostgreSQL server for the integration and end-to-end tests.

The session starts one server from the Debian ``postgresql`` binaries: initdb
into a fresh temporary directory, a free port on 127.0.0.1 and a private Unix
socket directory, trust authentication for local connections. It is always
stopped at the end. Under root the server runs as the ``postgres`` OS user
(PostgreSQL refuses to run as root).

For the failover tests, :func:`replicated_pair` starts a primary and a streaming
standby made from its base backup (``pg_basebackup -R``), synchronous or not.

Without PostgreSQL binaries the tests are skipped, except under ``make test``
and CI, where a missing server is a failure (``tests/prerequisites.py``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.prerequisites import missing

DATABASE = "hz_sidecar_test"
SUPERUSER = "postgres"

#: The parameters of a fixture that runs on SQLite and on this server; the PostgreSQL
#: one is marked ``postgres`` (``make test-fast`` leaves it out).
SQLITE_AND_POSTGRES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def _find_bin_dir() -> Path | None:
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"),
        key=lambda p: (
            int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0
        ),
        reverse=True,
    )
    for initdb in candidates:
        if Path(initdb).with_name("pg_ctl").exists():
            return Path(initdb).parent
    initdb_on_path = shutil.which("initdb")
    if initdb_on_path and shutil.which("pg_ctl"):
        return Path(initdb_on_path).parent
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PostgresServer:
    """A PostgreSQL server private to the test session."""

    bin_dir: Path
    base_dir: Path
    port: int
    run_as: str | None  # OS user to run the server as (root cannot)
    running: bool = field(default=False)
    #: Server settings given on its command line at start (``-c name=value``), which
    #: override its configuration files.
    settings: dict[str, str] = field(default_factory=dict)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir / "socket"

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def dsn(self, dbname: str = DATABASE) -> str:
        return f"host=127.0.0.1 port={self.port} user={SUPERUSER} dbname={dbname}"

    @property
    def admin_dsn(self) -> str:
        return self.dsn("postgres")

    def _command(self, *args: str) -> list[str]:
        if self.run_as is None:
            return list(args)
        return ["runuser", "-u", self.run_as, "--", *args]

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run(
            self._command(*args), capture_output=True, text=True, timeout=timeout, check=False
        )
        if result.returncode != 0:
            log = self.log_file.read_text() if self.log_file.exists() else ""
            raise RuntimeError(
                f"{args[0]} failed ({result.returncode}): {result.stdout}{result.stderr}\n{log}"
            )

    def initdb(self) -> None:
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = (
            f"-p {self.port} -k {self.socket_dir} -c listen_addresses=127.0.0.1"
            " -c max_connections=200"
        )
        for name, value in self.settings.items():
            options += f" -c {name}={shlex.quote(value)}"
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.data_dir),
            "-l",
            str(self.log_file),
            "-o",
            options,
        )
        self.running = True

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (``fast``: roll back open transactions, close connections)."""
        self._run(str(self.bin_dir / "pg_ctl"), "stop", "-w", "-D", str(self.data_dir), "-m", mode)
        self.running = False

    def create_database(self, name: str) -> str:
        """Create an empty database; return its DSN."""
        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        return self.dsn(name)


@dataclass
class ReplicatedPair:
    """A primary and a hot standby streaming from it, each a :class:`PostgresServer`.

    Synchronous (``synchronous_standby_names = '*'`` on the primary, with the default
    ``synchronous_commit = on``): a commit is acknowledged once the standby has flushed
    it (https://www.postgresql.org/docs/current/warm-standby.html#SYNCHRONOUS-REPLICATION).
    Asynchronous: once the primary has.
    """

    primary: PostgresServer
    standby: PostgresServer
    synchronous: bool

    def dsn(self, dbname: str = DATABASE) -> str:
        """Both servers, primary first; libpq keeps the first one that accepts writes."""
        return (
            f"host=127.0.0.1,127.0.0.1 port={self.primary.port},{self.standby.port}"
            f" user={SUPERUSER} dbname={dbname} target_session_attrs=read-write"
        )

    def wait_streaming(self, timeout: float = 30) -> None:
        """Wait until the primary streams to the standby (as a synchronous one if so set)."""
        wanted = "sync" if self.synchronous else "async"
        states: list[tuple[object, ...]] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with psycopg.connect(self.primary.admin_dsn, autocommit=True) as conn:
                states = [
                    tuple(row)
                    for row in conn.execute("SELECT state, sync_state FROM pg_stat_replication")
                ]
            if states == [("streaming", wanted)]:
                return
            time.sleep(0.1)
        raise RuntimeError(f"the standby is not streaming as {wanted!r}: {states}")

    def disconnect_standby(self, timeout: float = 30) -> None:
        """Stop the standby's WAL receiver (``primary_conninfo`` emptied and reloaded), as a
        network partition would: the standby keeps what it has and falls behind from now on.
        A synchronous primary then holds every commit until the standby is back."""
        with psycopg.connect(self.standby.admin_dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET primary_conninfo = ''")
            conn.execute("SELECT pg_reload_conf()")
            deadline = time.monotonic() + timeout
            while conn.execute("SELECT count(*) FROM pg_stat_wal_receiver").fetchone() != (0,):
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby's WAL receiver did not stop")
                time.sleep(0.1)
            # Replay what was received: the standby's data is then final until promotion.
            replayed = "SELECT pg_last_wal_replay_lsn() >= pg_last_wal_receive_lsn()"
            while conn.execute(replayed).fetchone() != (True,):
                if time.monotonic() > deadline:
                    raise RuntimeError("the standby did not replay the WAL it received")
                time.sleep(0.1)

    def stop_primary_immediate(self) -> None:
        """``pg_ctl stop -m immediate``: the primary dies as in a crash, without a checkpoint
        and without waiting for the standby."""
        self.primary.stop("immediate")

    def promote_standby(self, timeout: float = 60) -> None:
        """``pg_ctl promote`` the standby and wait until it accepts writes."""
        self.standby._run(
            str(self.standby.bin_dir / "pg_ctl"),
            "promote",
            "-w",
            "-t",
            f"{int(timeout)}",
            "-D",
            str(self.standby.data_dir),
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                with psycopg.connect(
                    self.standby.admin_dsn, autocommit=True, target_session_attrs="read-write"
                ):
                    return
            except psycopg.OperationalError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def restart_old_primary_aside(self) -> PostgresServer:
        """Start the stopped primary's data directory again on a new port, out of the DSN's
        reach (no client finds it), after crash recovery: what it had committed."""
        assert not self.primary.running, "the primary is still running"
        self.primary.port = _free_port()
        # Its command line overrides the synchronous standby it no longer has.
        self.primary.settings["synchronous_standby_names"] = ""
        self.primary.start()
        return self.primary


def server_user() -> str | None:
    """The OS user the servers run as: ``postgres`` under root (which PostgreSQL refuses)."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        pytest.fail("running as root needs the 'postgres' OS user to run the PostgreSQL server")
    return "postgres"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL server with an empty database ``hz_sidecar_test``."""
    bin_dir = require_postgres_binaries()
    # Not under pytest's tmp_path: its parents are private to the current user,
    # and the server may run as another one.
    with private_server(bin_dir, server_user(), "hz-sidecar-pg-") as server:
        server.create_database(DATABASE)
        yield server


@contextlib.contextmanager
def private_server(
    bin_dir: Path,
    run_as: str | None,
    prefix: str,
    *,
    initdb: bool = True,
) -> Iterator[PostgresServer]:
    """A server initialised and started in a new temporary directory (``prefix``), on a
    free port, run as the OS user ``run_as`` (None: the current one); stopped and
    removed afterwards. ``initdb=False``:
    neither initialised nor started (the caller fills ``data_dir``, with a base backup
    for example, and starts it)."""
    base_dir = Path(tempfile.mkdtemp(prefix=prefix))
    (base_dir / "socket").mkdir()
    if run_as is not None:
        user = pwd.getpwnam(run_as)
        for path in (base_dir, base_dir / "socket"):
            os.chown(path, user.pw_uid, user.pw_gid)
    server = PostgresServer(
        bin_dir=bin_dir,
        base_dir=base_dir,
        port=_free_port(),
        run_as=run_as,
    )
    try:
        if initdb:
            server.initdb()
            server.start()
        yield server
    finally:
        if server.running:
            with contextlib.suppress(Exception):
                server.stop("fast")
        shutil.rmtree(base_dir, ignore_errors=True)


@contextlib.contextmanager
def replicated_pair(
    bin_dir: Path, run_as: str | None, *, synchronous: bool, database: str = DATABASE
) -> Iterator[ReplicatedPair]:
    """A primary with database ``database`` and a standby streaming from it, each in its
    own temporary directory on a free port; both stopped and removed afterwards.

    The standby is the primary's base backup (``pg_basebackup -R``: ``standby.signal``
    and ``primary_conninfo``). ``synchronous_standby_names`` is set on the primary
    after the backup, so the standby does not inherit it: promoted, it waits for no
    standby of its own.
    """
    with contextlib.ExitStack() as stack:
        primary = stack.enter_context(private_server(bin_dir, run_as, "hz-sidecar-pg-primary-"))
        primary.create_database(database)
        standby = stack.enter_context(
            private_server(bin_dir, run_as, "hz-sidecar-pg-standby-", initdb=False)
        )
        standby._run(
            str(bin_dir / "pg_basebackup"),
            "-D",
            str(standby.data_dir),
            "-h",
            "127.0.0.1",
            "-p",
            str(primary.port),
            "-U",
            SUPERUSER,
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )
        standby.start()
        if synchronous:
            with psycopg.connect(primary.admin_dsn, autocommit=True) as conn:
                conn.execute("ALTER SYSTEM SET synchronous_standby_names = '*'")
                conn.execute("SELECT pg_reload_conf()")
        pair = ReplicatedPair(primary, standby, synchronous)
        pair.wait_streaming()
        yield pair


def require_postgres_binaries() -> Path:
    """The directory of the PostgreSQL server binaries; else skip, or fail when strict."""
    bin_dir = _find_bin_dir()
    if bin_dir is None:
        missing(
            "PostgreSQL server binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin "
            "or on PATH",
            "install them (Debian: apt-get install postgresql; .ci/run does)",
        )
    return bin_dir


@pytest.fixture
def postgres_control(postgres_server: PostgresServer) -> Iterator[PostgresServer]:
    """The session's server, for a test that stops and starts it; restarted afterwards."""
    yield postgres_server
    if not postgres_server.running:
        postgres_server.start()


@pytest.fixture
def fresh_database(postgres_server: PostgresServer) -> str:
    """The DSN of a new, empty database."""
    return postgres_server.create_database(f"hz_{uuid.uuid4().hex[:12]}")


@pytest.fixture
def fresh_schema() -> str:
    """A PostgreSQL schema name no other test uses (created by the provider's migrations)."""
    return f"t_{uuid.uuid4().hex[:12]}"
