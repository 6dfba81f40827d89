"""The configuration check that refuses a per-sidecar store for a member that may form a cluster."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from sidecar.cli import EXIT_CONFIG, EXIT_OK, main
from sidecar.cluster_check import (
    CLUSTER_SIZE_HEADER,
    check_cluster_size,
    check_store_for_cluster,
    cluster_reasons,
)
from sidecar.errors import ConfigError
from sidecar.providers import provider_class


def member(join: dict[str, Any] | None = None, **network: Any) -> dict[str, Any]:
    """A member configuration; ``join`` None leaves Hazelcast's default join."""
    if join is not None:
        network["join"] = join
    return {"hazelcast": {"cluster-name": "dev", "network": network}}


SINGLE = {
    "auto-detection": {"enabled": False},
    "multicast": {"enabled": False},
    "tcp-ip": {"enabled": True, "member-list": ["127.0.0.1:5701"]},
}


def tcp(*members: str) -> dict[str, Any]:
    return {**SINGLE, "tcp-ip": {"enabled": True, "member-list": list(members)}}


def write(path: Path, document: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(document))
    return path


def test_a_single_member_with_every_discovery_disabled_is_no_cluster() -> None:
    assert cluster_reasons(member(SINGLE)) == []
    assert cluster_reasons(member({"auto-detection": {"enabled": False}})) == []


@pytest.mark.parametrize(
    "join, reason",
    [
        (tcp("10.0.0.1:5701", "10.0.0.2:5701"), "tcp-ip member-list names 2 members"),
        (tcp("10.0.0.1:5701-5703"), "tcp-ip member-list names 3 members"),
        (tcp("10.0.0.1-4"), "tcp-ip member-list names 4 members"),
        ({**SINGLE, "tcp-ip": {"enabled": True, "members": "a:1,b:1"}}, "names 2 members"),
        ({**SINGLE, "multicast": {"enabled": True}}, "multicast discovery is enabled"),
        (
            {"auto-detection": {"enabled": False}, "kubernetes": {"enabled": True}},
            "kubernetes discovery is enabled",
        ),
        (
            {
                "auto-detection": {"enabled": False},
                "discovery-strategies": {"discovery-strategies": [{"class": "com.x.Eureka"}]},
            },
            "discovery strategies are configured (com.x.Eureka)",
        ),
        ({"multicast": {"enabled": False}}, "auto-detection is enabled"),
        (None, "auto-detection is enabled"),
    ],
)
def test_a_member_that_may_join_others_is_reported_with_the_reason(
    join: dict[str, Any] | None, reason: str
) -> None:
    reasons = cluster_reasons(member(join))
    assert any(reason in r for r in reasons), reasons


def test_a_one_address_member_list_with_a_host_name_containing_dashes_is_one_member() -> None:
    assert cluster_reasons(member(tcp("hz-member-0:5701"))) == []


def test_the_advanced_network_join_is_the_one_read_when_enabled() -> None:
    document = member(SINGLE)
    document["hazelcast"]["advanced-network"] = {"enabled": True, "join": tcp("a:1", "b:1")}
    assert cluster_reasons(document) == ["tcp-ip member-list names 2 members (a:1, b:1)"]


@pytest.mark.parametrize("provider", ["sqlite", "memory"])
def test_a_per_sidecar_store_is_refused_for_a_cluster_with_the_reason_and_the_fix(
    tmp_path: Path, provider: str
) -> None:
    path = write(tmp_path / "hazelcast.yaml", member(tcp("a:5701", "b:5701", "c:5701")))
    with pytest.raises(ConfigError) as error:
        check_store_for_cluster(provider, path)
    message = str(error.value)
    assert f"'{provider}' keeps its data beside this one sidecar" in message
    assert "tcp-ip member-list names 3 members" in message
    assert "every sidecar must see the same store" in message
    assert "provider.name: postgres" in message


def test_a_shared_store_passes_for_a_cluster_and_a_per_sidecar_store_for_one_member(
    tmp_path: Path,
) -> None:
    cluster = write(tmp_path / "cluster.yaml", member(tcp("a:5701", "b:5701")))
    single = write(tmp_path / "single.yaml", member(SINGLE))
    check_store_for_cluster("postgres", cluster)
    check_store_for_cluster("sqlite", single)


def test_an_unreadable_or_xml_member_configuration_is_a_configuration_error(
    tmp_path: Path,
) -> None:
    xml = tmp_path / "hazelcast.xml"
    xml.write_text("<hazelcast/>")
    for path, text in ((tmp_path / "missing.yaml", "cannot read"), (xml, "looks like XML")):
        with pytest.raises(ConfigError, match=text):
            check_store_for_cluster("sqlite", path)


def sidecar_yaml(tmp_path: Path) -> Path:
    document = {
        "provider": {"name": "sqlite", "settings": {"path": str(tmp_path / "store.db")}},
        "maps": [{"pattern": "*_ES", "kind": "event"}],
    }
    return write(tmp_path / "sidecar.yaml", document)


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("HZ_SIDECAR_"):
            monkeypatch.delenv(name)


@pytest.mark.usefixtures("no_env")
@pytest.mark.parametrize("command", ["check", "run"])
def test_check_and_run_refuse_sqlite_with_a_cluster_member_config(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    members = write(tmp_path / "hazelcast.yaml", member(tcp("a:5701", "b:5701")))
    argv = [command, "--config", str(sidecar_yaml(tmp_path)), "--member-config", str(members)]
    assert main(argv) == EXIT_CONFIG
    assert "may form a cluster of several members" in capsys.readouterr().err
    assert not (tmp_path / "store.db").exists()  # refused before the store was opened


@pytest.mark.usefixtures("no_env")
def test_check_accepts_sqlite_with_a_single_member_config(tmp_path: Path) -> None:
    single = write(tmp_path / "hazelcast.yaml", member(SINGLE))
    argv = ["check", "--config", str(sidecar_yaml(tmp_path)), "--member-config", str(single)]
    assert main(argv) == EXIT_OK


def test_a_write_from_a_member_of_several_is_refused_by_a_per_sidecar_store() -> None:
    from sidecar.providers.sqlite import SQLiteProvider

    with pytest.raises(ConfigError, match="one of a cluster of 3 members") as error:
        check_cluster_size(SQLiteProvider, [("traceparent", "00-x"), (CLUSTER_SIZE_HEADER, "3")])
    assert error.value.status is grpc.StatusCode.FAILED_PRECONDITION
    assert "provider.name: postgres" in str(error.value)


@pytest.mark.parametrize(
    "provider, metadata",
    [
        ("sqlite", [(CLUSTER_SIZE_HEADER, "1")]),
        ("sqlite", []),  # an older shim or another client: no header
        ("sqlite", [(CLUSTER_SIZE_HEADER, "many")]),
        ("postgres", [(CLUSTER_SIZE_HEADER, "3")]),
    ],
)
def test_a_write_passes_from_a_single_member_or_to_a_shared_store(
    provider: str, metadata: list[tuple[str, str]]
) -> None:
    check_cluster_size(provider_class(provider), metadata)
