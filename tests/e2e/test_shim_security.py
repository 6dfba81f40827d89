"""A real member whose shim reaches the sidecar over TCP with TLS or mTLS and a bearer token.

The shim's properties (``sidecar.tls.enabled``, ``sidecar.tls.ca-file``,
``sidecar.tls.cert-file``, ``sidecar.tls.key-file``, ``sidecar.token``) on one side;
the sidecar's ``security:`` block on the other. Certificates come from the
``openssl`` command line tool, as in tests/system/test_security.py.
"""

from __future__ import annotations

import signal
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import hazelcast
import pytest

from tests.e2e.conftest import Member, map_store_block, require_jars
from tests.e2e.model import AllKinds, serializers
from tests.prerequisites import require_openssl
from tests.system.conftest import SidecarProcess, free_port, sqlite_config
from tests.system.test_security import Pki, make_pki

pytestmark = pytest.mark.e2e

TOKEN = "shim-T0ken-9b2e7d41c0"
MAP = "Secure_VIEW"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    require_openssl()
    return make_pki(tmp_path_factory.mktemp("shim-pki"))


class SecureDeployment:
    """A sidecar on SQLite behind TLS (mutual when asked) and a token, and one member."""

    def __init__(self, workdir: Path, pki: Pki, *, mutual: bool, member_token: str) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        address = f"127.0.0.1:{free_port()}"
        config = sqlite_config(workdir, address)
        tls = {"cert-file": str(pki.path("server.pem")), "key-file": str(pki.path("server.key"))}
        if mutual:
            tls["client-ca-file"] = str(pki.path("ca.pem"))
        config["security"] = {"token": TOKEN, "tls": tls}
        config["logging"] = {"level": "DEBUG"}
        credentials = grpc.ssl_channel_credentials(
            root_certificates=pki.read("ca.pem"),
            private_key=pki.read("client.key") if mutual else None,
            certificate_chain=pki.read("client.pem") if mutual else None,
        )
        self.sidecar = SidecarProcess(workdir, config, credentials)
        block = map_store_block(
            address, write_delay=0, batch=1, coalescing=True, initial_mode="LAZY"
        )
        properties: dict[str, Any] = block["properties"]
        properties["sidecar.tls.enabled"] = "true"
        properties["sidecar.tls.ca-file"] = str(pki.path("ca.pem"))
        if mutual:
            properties["sidecar.tls.cert-file"] = str(pki.path("client.pem"))
            properties["sidecar.tls.key-file"] = str(pki.path("client.key"))
        properties["sidecar.token"] = member_token
        self.member = Member(
            workdir, free_port(), f"hzs-{uuid.uuid4().hex[:8]}", {MAP: {"map-store": block}}
        )
        self.clients: list[hazelcast.HazelcastClient] = []

    def start(self) -> SecureDeployment:
        self.sidecar.start()
        self.member.start()
        return self

    def imap(self) -> Any:
        client = self.member.client(serializers())
        self.clients.append(client)
        return client.get_map(MAP).blocking()

    def rows(self) -> int:
        with sqlite3.connect(self.workdir / "data" / "store.db") as conn:
            (count,) = conn.execute(
                "SELECT count(*) FROM domain_views WHERE view_name = ?", (MAP,)
            ).fetchone()
        return int(count)

    def close(self) -> None:
        for client in self.clients:
            try:
                client.shutdown()
            except Exception:  # the member may be gone already
                pass
        self.member.kill()
        self.sidecar.stop(signal.SIGKILL)


@pytest.fixture
def secure_deployment(tmp_path: Path, pki: Pki) -> Iterator[Any]:
    require_jars()
    made: list[SecureDeployment] = []

    def make(*, mutual: bool, member_token: str = TOKEN) -> SecureDeployment:
        deployment = SecureDeployment(
            tmp_path / f"d{len(made)}", pki, mutual=mutual, member_token=member_token
        )
        made.append(deployment)
        return deployment.start()

    yield make
    for deployment in made:
        deployment.close()


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_member_persists_and_loads_through_tls_with_a_bearer_token(
    secure_deployment: Any, mutual: bool
) -> None:
    deployment = secure_deployment(mutual=mutual)
    views = deployment.imap()
    items = {f"s{i}": AllKinds.sample(i) for i in range(20)}
    for key, value in items.items():
        views.put(key, value)  # write-through: the row exists when put returns
    assert deployment.rows() == 20
    views.evict_all()
    assert views.get_all(list(items)) == items  # loaded back over the same channel
    assert "refused a call" not in deployment.sidecar.log()
    assert TOKEN not in deployment.sidecar.log()
    assert TOKEN not in deployment.member.log()


def test_a_wrong_token_fails_the_members_put_with_unauthenticated(secure_deployment: Any) -> None:
    deployment = secure_deployment(mutual=True, member_token="not-the-token")
    views = deployment.imap()
    # Every call of the shim is refused; the put fails on the first one it needs (the
    # map's key loading, then the store), with the sidecar's reason and the shim's hint.
    with pytest.raises(Exception) as info:
        views.put("k", AllKinds.sample(1))
    message = str(info.value)
    assert "UNAUTHENTICATED" in message, message
    assert "wrong bearer token" in message, message
    assert "sidecar.token does not match the sidecar's token" in message, message
    assert deployment.rows() == 0
    assert "refused a call to /hzsidecar.v1.MapStore/" in deployment.sidecar.log()
