"""The real `hz-sidecar run` process against hostile operators and callers (issue 14):
the Unix socket path (3), health of a store that does not answer (7), configuration errors
(13), and metrics that unauthenticated or unrouted calls cannot inflate (16)."""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import sqlite3
import stat
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from tests.hzclient import ClientSerialization, Customer, Order
from tests.prerequisites import require_openssl
from tests.system.conftest import (
    SidecarProcess,
    free_port,
    sidecar_command,
    sqlite_config,
    stop_process,
)

CLIENT = ClientSerialization()
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
SECRET = "Sup3r-S3cret-7f2a"


def order(i: int) -> Order:
    return Order(f"o{i}", 2.5 + i, i, ["x"], Customer(f"c{i}", True))


def store_request(map_name: str, key: str, i: int = 1) -> pb.StoreRequest:
    return pb.StoreRequest(
        map_name=map_name,
        entries=[pb.Entry(key=CLIENT.to_bytes(key), value=CLIENT.to_bytes(order(i)))],
        schemas=CLIENT.schemas(),
    )


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    env.update(extra)
    return env


def run_to_exit(
    workdir: Path,
    config: dict[str, Any] | str,
    *,
    env: dict[str, str] | None = None,
    timeout: float = 20,
) -> subprocess.CompletedProcess[str]:
    """`hz-sidecar run` with ``config`` (a mapping, or YAML text as is) that must exit by itself."""
    path = workdir / "sidecar.yaml"
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    try:
        return subprocess.run(
            [*sidecar_command(), "run", "--config", str(path)],
            cwd=workdir,
            env=env or clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as exc:
        output = exc.stderr.decode(errors="replace") if isinstance(exc.stderr, bytes) else ""
        raise AssertionError(f"hz-sidecar kept running instead of refusing:\n{output}") from None


def assert_config_error(done: subprocess.CompletedProcess[str], *named: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output, output
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("hz-sidecar: configuration error:"), output
    for text in named:
        assert text in last, output


def health(channel: grpc.Channel, timeout: float = 5) -> int:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=timeout
    )
    return int(answer.status)


def wait_for_health(channel: grpc.Channel, status: int, within: float) -> float:
    """Seconds until health answers ``status``; fails after ``within`` seconds."""
    started = time.monotonic()
    seen = None
    while time.monotonic() - started < within:
        seen = health(channel)
        if seen == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"health stayed {seen} for {within} s, expected {status}")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~107 bytes: keep it short.
    directory = Path(f"/tmp/hz14-{secrets.token_hex(4)}")
    directory.mkdir()
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


# -- 3. the Unix socket path ---------------------------------------------------------------------


def test_a_regular_file_at_the_socket_path_is_refused_and_left_intact(
    tmp_path: Path, sock_dir: Path
) -> None:
    path = sock_dir / "sidecar.sock"
    path.write_text("precious\n")
    done = run_to_exit(tmp_path, sqlite_config(tmp_path, f"unix://{path}"))
    assert_config_error(done, "listen.address", str(path), "not a socket")
    assert path.read_text() == "precious\n"


def test_the_sidecars_own_database_at_the_socket_path_keeps_its_data(
    tmp_path: Path, sock_dir: Path
) -> None:
    database = sock_dir / "store.db"
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["provider"]["settings"]["path"] = str(database)
    first = SidecarProcess(tmp_path, config)
    first.start()
    first.stub.Store(store_request("Orders_VIEW", "k1"), timeout=10)
    assert first.stop() == 0

    config["listen"]["address"] = f"unix://{database}"  # a slip: the database's path
    done = run_to_exit(tmp_path, config)
    assert_config_error(done, "listen.address", "not a socket")
    with sqlite3.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM domain_views").fetchone() == (1,)


def test_a_second_sidecar_on_a_live_socket_is_refused_and_the_first_keeps_it(
    tmp_path: Path, sock_dir: Path
) -> None:
    address = f"unix://{sock_dir}/sidecar.sock"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = SidecarProcess(tmp_path / "first", sqlite_config(tmp_path / "first", address))
    first.start()
    try:
        inode = os.stat(sock_dir / "sidecar.sock").st_ino
        done = run_to_exit(tmp_path / "second", sqlite_config(tmp_path / "second", address))
        assert_config_error(done, "listen.address", "another process listens on", address)
        assert os.stat(sock_dir / "sidecar.sock").st_ino == inode
        assert first.channel is not None
        assert health(first.channel) == SERVING
        first.stub.Store(store_request("Orders_VIEW", "k1"), timeout=10)
    finally:
        assert first.stop() == 0
    assert not (sock_dir / "sidecar.sock").exists()  # its own socket: removed on shutdown


def test_a_stale_socket_is_replaced(tmp_path: Path, sock_dir: Path) -> None:
    path = sock_dir / "sidecar.sock"
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(path))  # bound, never listening, closed: what a killed process leaves
    stale.close()
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    sidecar = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"unix://{path}"))
    sidecar.start()
    try:
        sidecar.stub.Store(store_request("Orders_VIEW", "k1"), timeout=10)
        assert "removing the stale socket" in sidecar.log()
    finally:
        sidecar.stop(signal.SIGKILL)


def test_shutdown_leaves_a_socket_that_is_no_longer_its_own(tmp_path: Path, sock_dir: Path) -> None:
    path = sock_dir / "sidecar.sock"
    sidecar = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"unix://{path}"))
    sidecar.start()
    # Another process has since taken the path (say, an operator restarted a second one).
    path.unlink()
    other = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    other.bind(str(path))
    other.listen()
    try:
        inode = os.stat(path).st_ino
        assert sidecar.stop() == 0
        assert os.stat(path).st_ino == inode
        assert "no longer this sidecar's socket" in sidecar.log()
    finally:
        other.close()


# -- 7. health of a store that does not answer ---------------------------------------------------


def test_health_is_not_serving_while_sqlite_is_locked_by_another_process_and_serving_after(
    tmp_path: Path,
) -> None:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["provider"]["settings"]["busy-timeout-ms"] = 60_000  # the worker waits, hung
    config["listen"]["health-check-interval-seconds"] = 0.2  # timeout: the default, 2 s
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    assert sidecar.channel is not None
    channel = sidecar.channel
    try:
        sidecar.stub.Store(store_request("Orders_VIEW", "k0"), timeout=10)
        # Another process takes the write lock and keeps it: the sidecar's one SQLite
        # worker blocks in the next write, as it does on a frozen filesystem.
        holder = sqlite3.connect(config["provider"]["settings"]["path"], isolation_level=None)
        holder.execute("BEGIN EXCLUSIVE")
        outcome: list[object] = []

        def blocked_store() -> None:
            try:
                outcome.append(sidecar.stub.Store(store_request("Orders_VIEW", "k1"), timeout=60))
            except grpc.RpcError as exc:
                outcome.append(exc.code())

        writer = threading.Thread(target=blocked_store)
        writer.start()
        try:
            # Bound: one interval, plus the probe's timeout, plus scheduling slack.
            wait_for_health(channel, NOT_SERVING, within=5.0)
            time.sleep(1.0)
            assert health(channel) == NOT_SERVING  # and it stays so while the lock is held
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_for_health(channel, SERVING, within=5.0)
        writer.join(30)
        assert outcome and isinstance(outcome[0], pb.StoreResponse), outcome
    finally:
        sidecar.stop(signal.SIGKILL)
    assert "did not answer the health probe within 2.0 s" in sidecar.log()


def test_health_stays_serving_under_a_steady_write_load(tmp_path: Path) -> None:
    """A busy worker that keeps answering is healthy, however long its queue."""
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["listen"]["health-check-interval-seconds"] = 0.1
    config["listen"]["health-check-timeout-seconds"] = 0.5
    config["batching"] = {"enabled": False}
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    assert sidecar.channel is not None
    stop = threading.Event()

    def writer(n: int) -> None:
        channel = sidecar.open_channel()
        client = pb_grpc.MapStoreStub(channel)
        i = 0
        while not stop.is_set():
            client.Store(store_request("Orders_VIEW", f"w{n}-{i}", i), timeout=30)
            i += 1
        channel.close()

    writers = [threading.Thread(target=writer, args=(n,)) for n in range(8)]
    for thread in writers:
        thread.start()
    try:
        statuses = []
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            statuses.append(health(sidecar.channel))
            time.sleep(0.05)
        assert set(statuses) == {SERVING}
    finally:
        stop.set()
        for thread in writers:
            thread.join(30)
        sidecar.stop(signal.SIGKILL)


# -- 13. configuration errors: exit 2 naming the key, secrets never printed ----------------------


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield int(holder.getsockname()[1])


def test_a_port_in_use_is_a_configuration_error(tmp_path: Path, taken_port: int) -> None:
    done = run_to_exit(tmp_path, sqlite_config(tmp_path, f"127.0.0.1:{taken_port}"))
    assert_config_error(done, "listen.address", f"127.0.0.1:{taken_port}", "in use")


def test_a_second_sidecar_on_the_same_tcp_port_is_refused(tmp_path: Path) -> None:
    address = f"127.0.0.1:{free_port()}"
    (tmp_path / "first").mkdir()
    (tmp_path / "second").mkdir()
    first = SidecarProcess(tmp_path / "first", sqlite_config(tmp_path / "first", address))
    first.start()
    try:
        done = run_to_exit(tmp_path / "second", sqlite_config(tmp_path / "second", address))
        assert_config_error(done, "listen.address", address, "in use")
    finally:
        first.stop(signal.SIGKILL)


def test_an_address_not_on_this_host_is_a_configuration_error(tmp_path: Path) -> None:
    address = f"192.0.2.1:{free_port()}"  # TEST-NET-1 (RFC 5737): no host has it
    done = run_to_exit(tmp_path, sqlite_config(tmp_path, address))
    assert_config_error(done, "listen.address", address, "not one of this host's")


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    require_openssl()
    directory = tmp_path_factory.mktemp("cert")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "server.key", "-out", "server.pem", "-days", "2",
         "-subj", "/CN=localhost"],
        cwd=directory, check=True, capture_output=True, timeout=30,
    )  # fmt: skip
    return directory / "server.pem", directory / "server.key"


@pytest.mark.parametrize(
    ("broken", "named"),
    [
        ("cert-file", "security.tls.cert-file"),
        ("key-file", "security.tls.key-file"),
        ("client-ca-file", "security.tls.client-ca-file"),
    ],
)
def test_a_tls_file_that_is_not_pem_is_a_configuration_error(
    tmp_path: Path, certificate: tuple[Path, Path], broken: str, named: str
) -> None:
    garbage = tmp_path / "garbage.pem"
    garbage.write_bytes(b"\x30\x82\x01\x0a not a PEM file\n")
    tls = {"cert-file": str(certificate[0]), "key-file": str(certificate[1])}
    tls[broken] = str(garbage)
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["security"] = {"tls": tls}
    done = run_to_exit(tmp_path, config)
    assert_config_error(done, named, str(garbage))


def test_a_sqlite_path_under_a_regular_file_is_a_configuration_error(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("a file, not a directory\n")
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")  # path: data/store.db
    done = run_to_exit(tmp_path, config)
    assert_config_error(done, "provider.settings.path", "data")


@pytest.mark.parametrize(
    ("maps", "named"),
    [
        ([], "no route"),
        (
            [
                {"pattern": "*_ES", "kind": "event"},
                {"pattern": "*_VIEW", "kind": "view"},
                {"pattern": "*_ES", "kind": "view"},
            ],
            "maps[2].pattern '*_ES' repeats maps[0]",
        ),
    ],
)
def test_no_route_or_a_repeated_pattern_is_refused_at_start(
    tmp_path: Path, maps: list[dict[str, str]], named: str
) -> None:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["maps"] = maps
    done = run_to_exit(tmp_path, config)
    assert_config_error(done, "maps", named)


def test_unquoted_synchronous_off_as_the_readme_writes_it_is_accepted(tmp_path: Path) -> None:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    text = yaml.safe_dump(config).replace(
        "provider:\n", "provider:\n  # unquoted, as in the README\n", 1
    )
    text = text.replace("settings:\n", "settings:\n    synchronous: OFF\n", 1)
    assert yaml.safe_load(text)["provider"]["settings"]["synchronous"] is False
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.config_path.write_text(text)
    sidecar.start()
    try:
        sidecar.stub.Store(store_request("Orders_VIEW", "k1"), timeout=10)
        assert "(synchronous=OFF)" in sidecar.log()
    finally:
        sidecar.stop(signal.SIGKILL)


def start_with_env(workdir: Path, config: dict[str, Any], env: dict[str, str]) -> SidecarProcess:
    """A SidecarProcess started with ``env`` on top of the cleaned environment."""
    sidecar = SidecarProcess(workdir, config)
    path = sidecar.config_path
    proc = subprocess.Popen(
        [*sidecar_command(), "run", "--config", str(path)],
        cwd=workdir,
        env=clean_env(**env),
        stdout=sidecar.log_path.open("ab"),
        stderr=subprocess.STDOUT,
    )
    sidecar.proc = proc
    sidecar.channel = sidecar.open_channel()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"hz-sidecar exited early:\n{sidecar.log()}")
        try:
            if health(sidecar.channel, timeout=1) == SERVING:
                return sidecar
        except grpc.RpcError:
            pass
        time.sleep(0.1)
    stop_process(proc, signal.SIGKILL, 5)
    raise AssertionError(f"hz-sidecar did not become SERVING:\n{sidecar.log()}")


def test_socket_mode_0600_from_the_environment_is_accepted(tmp_path: Path, sock_dir: Path) -> None:
    path = sock_dir / "sidecar.sock"
    sidecar = start_with_env(
        tmp_path,
        sqlite_config(tmp_path, f"unix://{path}"),
        {"HZ_SIDECAR_LISTEN__SOCKET_MODE": "0600"},
    )
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    finally:
        sidecar.stop(signal.SIGKILL)


@pytest.mark.parametrize(
    "document",
    [
        f"security:\n  token: @{SECRET}\n",  # '@' cannot start a plain scalar
        f"security:\n  token: {SECRET}: {SECRET}\n",  # a mapping where a value goes
        f'security:\n  token: "{SECRET}\\q"\n',  # an unknown escape
        f"security:\n  token: *{SECRET}\n",  # an alias that does not exist
        f"security:\n  token: [{SECRET}]\n",  # valid YAML, not a string
        f"security:\n  token: {{{SECRET}: 1}}\n",
    ],
)
def test_a_token_that_is_not_valid_yaml_is_never_printed(tmp_path: Path, document: str) -> None:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    text = yaml.safe_dump(config) + document
    done = run_to_exit(tmp_path, text)
    output = done.stdout + done.stderr
    assert_config_error(done)
    assert "security.token" in output or "line " in output, output
    for fragment in (SECRET, SECRET[:8], SECRET[-8:]):
        assert fragment not in output, output


def test_a_token_with_yaml_special_characters_from_the_environment_is_taken_as_it_is(
    tmp_path: Path,
) -> None:
    token = "{" + SECRET + ": [&*"
    sidecar = start_with_env(
        tmp_path,
        sqlite_config(tmp_path, f"127.0.0.1:{free_port()}"),
        {"HZ_SIDECAR_SECURITY__TOKEN": token},
    )
    try:
        request = pb.LoadRequest(map_name="Orders_VIEW", keys=[CLIENT.to_bytes("k")])
        with pytest.raises(grpc.RpcError) as refused:
            sidecar.stub.Load(request, timeout=5)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        sidecar.stub.Load(request, metadata=[("authorization", f"Bearer {token}")], timeout=5)
    finally:
        sidecar.stop(signal.SIGTERM)
    assert SECRET not in sidecar.log()


# -- 16. metrics: authentication first, only routed map names as labels --------------------------


def scrape(address: str) -> list[tuple[str, dict[str, str]]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        (sample.name, dict(sample.labels))
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def test_unauthenticated_calls_and_unrouted_names_create_no_series(tmp_path: Path) -> None:
    token = secrets.token_hex(16)
    metrics = f"127.0.0.1:{free_port()}"
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["security"] = {"token": token}
    config["telemetry"] = {
        "prometheus": {"enabled": True, "host": "127.0.0.1", "port": int(metrics.split(":")[1])}
    }
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    good = [("authorization", f"Bearer {token}")]
    invented = [f"attacker-{secrets.token_hex(6)}_VIEW" for _ in range(150)]
    try:
        stub = sidecar.stub
        stub.Store(store_request("Orders_VIEW", "k1"), metadata=good, timeout=10)
        for n, name in enumerate(invented):
            metadata = [] if n % 2 else [("authorization", "Bearer wrong")]
            with pytest.raises(grpc.RpcError) as refused:
                stub.Load(
                    pb.LoadRequest(map_name=name, keys=[CLIENT.to_bytes("k")]),
                    metadata=metadata,
                    timeout=5,
                )
            assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
        unrouted = [f"unrouted-{secrets.token_hex(6)}" for _ in range(20)]
        for name in unrouted:  # authenticated, but on maps that match no route
            with pytest.raises(grpc.RpcError) as failed:
                stub.Load(
                    pb.LoadRequest(map_name=name, keys=[CLIENT.to_bytes("k")]),
                    metadata=good,
                    timeout=5,
                )
            assert failed.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        samples = scrape(metrics)
    finally:
        sidecar.stop(signal.SIGKILL)
    names = {labels.get("mapName") for _, labels in samples} - {None}
    assert names == {"Orders_VIEW", "(unrouted)"}, sorted(n for n in names if n)[:10]
    for name in (*invented, *unrouted):
        assert all(name not in str(labels) for _, labels in samples)
    errors = {
        labels["operation"]: labels["mapName"]
        for sample_name, labels in samples
        if sample_name == "persistence_errors_total"
    }
    assert errors == {"load": "(unrouted)"}
