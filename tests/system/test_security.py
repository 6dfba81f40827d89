"""Security of the real sidecar process: bearer token, TLS and mutual TLS (with certificate
reload), Unix socket permissions, secrets kept out of logs, SQL only through bound parameters.

Certificates are made per test session with the ``openssl`` command line tool.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import stat
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import psycopg
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from hzsidecar.v1 import mapstore_pb2 as pb
from hzsidecar.v1 import mapstore_pb2_grpc as pb_grpc
from tests.hzclient import ClientSerialization, Customer, Order
from tests.prerequisites import require_openssl
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

TOKEN = "s3cr3t-T0ken-4f1c9a7e"
CLIENT = ClientSerialization()
HOSTILE_MAPS = [
    "x'); DROP TABLE domain_views; --_VIEW",
    'Robert"; DELETE FROM hz_sidecar_schemas; --_ES',
    "100%_\\_VIEW",
    "ünï\u2028côdé ' \" ; --_VIEW",
]
HOSTILE_KEYS = ["' OR '1'='1", "'; DROP TABLE domain_events; --", "%", "_", "\\", "$1", "?", ""]


def order(i: int) -> Order:
    return Order(f"o{i}", 1.5 + i, i, ["x"], Customer(f"c{i}", True))


def store_request(map_name: str, items: dict[str, Order]) -> pb.StoreRequest:
    return pb.StoreRequest(
        map_name=map_name,
        entries=[
            pb.Entry(key=CLIENT.to_bytes(k), value=CLIENT.to_bytes(v)) for k, v in items.items()
        ],
        schemas=CLIENT.schemas(),
    )


def health_status(channel: grpc.Channel) -> int:
    answer = health_pb2_grpc.HealthStub(channel).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return int(answer.status)


# -- bearer token ------------------------------------------------------------------------------


@pytest.fixture(params=["token", "token-file"])
def token_sidecar(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SidecarProcess]:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["logging"] = {"level": "DEBUG"}
    if request.param == "token":
        config["security"] = {"token": TOKEN}
    else:
        secret = tmp_path / "token"
        secret.write_text(TOKEN + "\n")
        config["security"] = {"token-file": str(secret)}
    process = SidecarProcess(tmp_path, config)
    process.start()  # health answers without a token
    yield process
    process.stop(signal.SIGKILL)


def calls(stub: pb_grpc.MapStoreStub, metadata: list[tuple[str, str]]) -> list[grpc.StatusCode]:
    """Every MapStore method once; the status code each answered."""
    attempts = [
        lambda: stub.Store(store_request("A_VIEW", {"k": order(1)}), metadata=metadata, timeout=5),
        lambda: stub.Load(
            pb.LoadRequest(map_name="A_VIEW", keys=[CLIENT.to_bytes("k")]),
            metadata=metadata,
            timeout=5,
        ),
        lambda: list(
            stub.LoadAllKeys(pb.LoadAllKeysRequest(map_name="A_VIEW"), metadata=metadata, timeout=5)
        ),
        lambda: stub.Delete(
            pb.DeleteRequest(map_name="A_VIEW", keys=[CLIENT.to_bytes("gone")]),
            metadata=metadata,
            timeout=5,
        ),
    ]
    codes = []
    for attempt in attempts:
        try:
            attempt()
            codes.append(grpc.StatusCode.OK)
        except grpc.RpcError as exc:
            codes.append(exc.code())
    return codes


def test_token_is_required_on_every_call_but_health_and_never_logged(
    token_sidecar: SidecarProcess,
) -> None:
    stub = token_sidecar.stub
    unauthenticated = [grpc.StatusCode.UNAUTHENTICATED] * 4
    assert calls(stub, []) == unauthenticated
    assert calls(stub, [("authorization", "Bearer wrong")]) == unauthenticated
    assert calls(stub, [("authorization", TOKEN)]) == unauthenticated  # no "Bearer " scheme
    assert calls(stub, [("authorization", f"Bearer {TOKEN}x")]) == unauthenticated
    assert calls(stub, [("authorization", f"Bearer {TOKEN}")]) == [grpc.StatusCode.OK] * 4
    assert token_sidecar.channel is not None
    assert health_status(token_sidecar.channel) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.RpcError) as info:
        stub.Load(pb.LoadRequest(map_name="A_VIEW", keys=[CLIENT.to_bytes("k")]), timeout=5)
    assert "bearer token" in (info.value.details() or "")
    assert TOKEN not in (info.value.details() or "")
    assert token_sidecar.stop(signal.SIGTERM) == 0
    log = token_sidecar.log()
    assert "refused a call to /hzsidecar.v1.MapStore/Store: missing bearer token" in log
    assert TOKEN not in log


# -- TLS and mutual TLS --------------------------------------------------------------------------


@dataclass
class Pki:
    """A CA, a server certificate for localhost/127.0.0.1 and a client certificate."""

    directory: Path

    def path(self, name: str) -> Path:
        return self.directory / name

    def read(self, name: str) -> bytes:
        return self.path(name).read_bytes()


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=30)


def make_pki(directory: Path, ca: str = "ca") -> Pki:
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", f"{ca}.key", "-out", f"{ca}.pem",
            "-days", "2", "-subj", f"/CN=hz-sidecar test {ca}", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "client"):
        openssl("req", *ec, "-keyout", f"{name}.key", "-out", f"{name}.csr",
                "-subj", f"/CN={name}", cwd=directory)  # fmt: skip
        openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.pem", "-CAkey", f"{ca}.key",
                "-CAcreateserial", "-out", f"{name}.pem", "-days", "2",
                "-extfile", "san.ext", cwd=directory)  # fmt: skip
    return Pki(directory)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    require_openssl()
    return make_pki(tmp_path_factory.mktemp("pki"))


def replace_file(source: Path, target: Path) -> None:
    """Copy ``source`` over ``target`` so that the sidecar sees the change: it compares each
    file's (mtime, size), which a copy within the filesystem's timestamp tick could keep."""
    before = target.stat()
    shutil.copy(source, target)
    after = target.stat()
    if (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size):
        os.utime(target, ns=(after.st_atime_ns, before.st_mtime_ns + 1_000_000))


def tls_sidecar(workdir: Path, pki: Pki, *, mutual: bool) -> SidecarProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    config = sqlite_config(workdir, f"127.0.0.1:{free_port()}")
    # The sidecar reads copies, so that the test can rotate them.
    for name in ("server.pem", "server.key", "ca.pem"):
        shutil.copy(pki.path(name), workdir / name)
    tls = {"cert-file": str(workdir / "server.pem"), "key-file": str(workdir / "server.key")}
    if mutual:
        tls["client-ca-file"] = str(workdir / "ca.pem")
    config["security"] = {"tls": tls}
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.read("ca.pem"),
        private_key=pki.read("client.key") if mutual else None,
        certificate_chain=pki.read("client.pem") if mutual else None,
    )
    process = SidecarProcess(workdir, config, credentials)
    process.start()
    return process


def load_code(channel: grpc.Channel) -> grpc.StatusCode:
    try:
        pb_grpc.MapStoreStub(channel).Load(
            pb.LoadRequest(map_name="A_VIEW", keys=[CLIENT.to_bytes("k")]), timeout=5
        )
    except grpc.RpcError as exc:
        return exc.code()
    finally:
        channel.close()
    return grpc.StatusCode.OK


def test_tls_serves_trusting_clients_and_refuses_plaintext(tmp_path: Path, pki: Pki) -> None:
    sidecar = tls_sidecar(tmp_path, pki, mutual=False)
    try:
        assert sidecar.stub.Store(store_request("A_VIEW", {"k": order(1)}), timeout=5)
        assert load_code(sidecar.open_channel()) == grpc.StatusCode.OK
        assert load_code(grpc.insecure_channel(sidecar.address)) == grpc.StatusCode.UNAVAILABLE
        other = make_pki(tmp_path / "other", ca="other")
        untrusting = grpc.ssl_channel_credentials(root_certificates=other.read("other.pem"))
        assert load_code(sidecar.open_channel(untrusting)) == grpc.StatusCode.UNAVAILABLE
    finally:
        sidecar.stop(signal.SIGKILL)


def test_mutual_tls_needs_a_client_certificate_and_reloads_rotated_files(
    tmp_path: Path, pki: Pki
) -> None:
    sidecar = tls_sidecar(tmp_path / "run", pki, mutual=True)
    try:
        assert load_code(sidecar.open_channel()) == grpc.StatusCode.OK
        no_cert = grpc.ssl_channel_credentials(root_certificates=pki.read("ca.pem"))
        assert load_code(sidecar.open_channel(no_cert)) == grpc.StatusCode.UNAVAILABLE
        # Rotate every file to a new CA: new connections use them, without a restart.
        new = make_pki(tmp_path / "rotated", ca="ca")
        for name in ("server.pem", "server.key", "ca.pem"):
            replace_file(new.path(name), sidecar.workdir / name)
        rotated = grpc.ssl_channel_credentials(
            root_certificates=new.read("ca.pem"),
            private_key=new.read("client.key"),
            certificate_chain=new.read("client.pem"),
        )
        assert load_code(sidecar.open_channel(rotated)) == grpc.StatusCode.OK
        assert load_code(sidecar.open_channel()) == grpc.StatusCode.UNAVAILABLE
        assert "TLS certificate files changed" in sidecar.log()
    finally:
        sidecar.stop(signal.SIGKILL)


# -- Unix socket permissions --------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["0600", "0660"])
def test_unix_socket_is_created_with_the_configured_mode(tmp_path: Path, mode: str) -> None:
    sock_dir = Path(f"/tmp/hzs-sec-{os.getpid()}-{free_port()}")
    sock_dir.mkdir()
    try:
        config = sqlite_config(tmp_path, f"unix://{sock_dir}/sidecar.sock")
        config["listen"]["socket-mode"] = mode
        sidecar = SidecarProcess(tmp_path, config)
        sidecar.start()
        try:
            st = os.stat(sock_dir / "sidecar.sock")
            assert stat.S_ISSOCK(st.st_mode)
            assert stat.S_IMODE(st.st_mode) == int(mode, 8)
        finally:
            sidecar.stop(signal.SIGKILL)
    finally:
        shutil.rmtree(sock_dir, ignore_errors=True)


# -- SQL only through bound parameters ------------------------------------------------------------


def exercise_hostile_names(sidecar: SidecarProcess) -> None:
    stub = sidecar.stub
    for map_name in HOSTILE_MAPS:
        items = {key: order(i) for i, key in enumerate(HOSTILE_KEYS)}
        answer = stub.Store(store_request(map_name, items), timeout=10)
        assert {r.status for r in answer.results} == {pb.ENTRY_STATUS_WRITTEN}
        keys = [CLIENT.to_bytes(k) for k in HOSTILE_KEYS]
        loaded = stub.Load(pb.LoadRequest(map_name=map_name, keys=keys), timeout=10)
        assert {CLIENT.to_object(e.key): CLIENT.to_object(e.value) for e in loaded.entries} == items
        if map_name.endswith("_VIEW"):
            streamed = stub.LoadAllKeys(pb.LoadAllKeysRequest(map_name=map_name), timeout=10)
            assert sorted(CLIENT.to_object(k) for b in streamed for k in b.keys) == sorted(items)
            deleted = stub.Delete(pb.DeleteRequest(map_name=map_name, keys=keys[:2]), timeout=10)
            assert deleted.deleted == 2


def test_hostile_map_names_and_keys_are_data_on_sqlite(tmp_path: Path) -> None:
    sidecar = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"127.0.0.1:{free_port()}"))
    sidecar.start()
    try:
        exercise_hostile_names(sidecar)
    finally:
        sidecar.stop(signal.SIGKILL)
    with sqlite3.connect(tmp_path / "data" / "store.db") as conn:
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
        assert {"domain_views", "domain_events", "hz_sidecar_schemas"} <= tables
        views = conn.execute("SELECT count(*) FROM domain_views").fetchone()[0]
        events = conn.execute("SELECT count(*) FROM domain_events").fetchone()[0]
        assert conn.execute("SELECT count(*) FROM hz_sidecar_schemas").fetchone()[0] == 2
    assert (views, events) == (3 * (len(HOSTILE_KEYS) - 2), len(HOSTILE_KEYS))


@pytest.mark.postgres
def test_hostile_map_names_and_keys_are_data_on_postgres(
    tmp_path: Path, fresh_database: str
) -> None:
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["provider"] = {"name": "postgres", "settings": {"dsn": fresh_database}}
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    try:
        exercise_hostile_names(sidecar)
    finally:
        sidecar.stop(signal.SIGKILL)
    with psycopg.connect(fresh_database) as conn:
        views = conn.execute("SELECT count(*) FROM domain_views").fetchone()
        events = conn.execute("SELECT count(*) FROM domain_events").fetchone()
        schemas = conn.execute("SELECT count(*) FROM hz_sidecar_schemas").fetchone()
    assert (views, events, schemas) == (
        (3 * (len(HOSTILE_KEYS) - 2),),
        (len(HOSTILE_KEYS),),
        (2,),
    )
