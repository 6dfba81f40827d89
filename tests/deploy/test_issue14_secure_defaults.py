"""Secure defaults (issue 14, item 17): the compose trial listens on a Unix socket shared with
the member only, publishes nothing beyond the host's loopback, takes its secrets from the
environment; the Prometheus endpoint listens on loopback unless told otherwise."""

from __future__ import annotations

import re
import signal
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config import load_config, parse_config
from sidecar.member_config import render_member_config
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_SIDECAR = DEPLOY / "compose" / "sidecar.yaml"
#: Compose's "required variable" form: ${VAR:?message} (or ${VAR?message}).
REQUIRED_VARIABLE = re.compile(r"\$\{[A-Z0-9_]+:?\?[^}]+\}")


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return document


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        env = dict(item.partition("=")[::2] for item in env)
    return {str(k): str(v) for k, v in env.items()}


def test_compose_publishes_ports_on_the_hosts_loopback_only_and_never_postgres() -> None:
    services = compose()["services"]
    assert "ports" not in services["postgres"]
    assert "ports" not in services["sidecar"]
    published = {
        name: port for name, service in services.items() for port in service.get("ports", [])
    }
    assert published, "the trial publishes the member, Prometheus and Grafana"
    for name, port in published.items():
        spec = port if isinstance(port, str) else f"{port.get('host_ip')}:{port.get('published')}"
        assert spec.startswith("127.0.0.1:"), f"{name} publishes {spec} beyond loopback"


def test_compose_sidecar_listens_on_a_unix_socket_shared_with_the_member_only() -> None:
    services = compose()["services"]
    sidecar_env = environment(services["sidecar"])
    address = sidecar_env["HZ_SIDECAR_LISTEN__ADDRESS"]
    assert address.startswith("unix:///"), address
    # The file says the same (member-config renders the shim's address from it), and the
    # configuration the container runs with is valid.
    file_config = load_config(COMPOSE_SIDECAR, environ={})
    assert file_config.listen.address == address
    assert file_config.listen.socket_mode == "0660"
    running = load_config(
        COMPOSE_SIDECAR,
        environ={k: v for k, v in sidecar_env.items() if k.startswith("HZ_SIDECAR_")},
    )
    assert running.provider.name == "postgres"
    assert running.listen.address == address
    member_maps = render_member_config(file_config)["hazelcast"]["map"]
    assert {m["map-store"]["properties"]["sidecar.address"] for m in member_maps.values()} == {
        address
    }
    assert "--address" not in " ".join(services["member-config"]["command"])
    # The socket's directory is a volume that only the sidecar and the member mount.
    socket_dir = str(Path(address.removeprefix("unix://")).parent)
    mounting = {
        name
        for name, service in services.items()
        for volume in service.get("volumes", [])
        if volume.split(":")[1] == socket_dir
    }
    assert mounting == {"sidecar", "member"}
    [volume] = {
        v.split(":")[0]
        for name in mounting
        for v in services[name]["volumes"]
        if v.split(":")[1] == socket_dir
    }
    assert volume in compose()["volumes"]  # a named volume, not a host directory
    assert "10001" in [str(g) for g in services["member"].get("group_add", [])]


def test_compose_takes_every_secret_from_the_environment() -> None:
    services = compose()["services"]
    for name, service in services.items():
        for key, value in environment(service).items():
            assert "password=" not in value.lower(), f"{name}.{key}: a password in a DSN"
            if "PASSWORD" in key or "TOKEN" in key or "SECRET" in key:
                assert REQUIRED_VARIABLE.fullmatch(value), f"{name}.{key} = {value!r}"
    postgres = environment(services["postgres"])
    sidecar = environment(services["sidecar"])
    assert postgres["POSTGRES_PASSWORD"].startswith("${POSTGRES_PASSWORD")
    assert sidecar["PGPASSWORD"].startswith("${POSTGRES_PASSWORD")


def test_compose_metrics_listen_on_the_network_only_for_prometheus() -> None:
    """0.0.0.0 in the sidecar's container is the compose network (Prometheus scrapes it there);
    the port is not published on the host."""
    config = load_config(COMPOSE_SIDECAR, environ={})
    assert config.telemetry.prometheus.host == "0.0.0.0"
    prometheus = yaml.safe_load((DEPLOY / "compose" / "prometheus.yml").read_text())
    targets = [
        target
        for job in prometheus["scrape_configs"]
        for static in job["static_configs"]
        for target in static["targets"]
    ]
    assert f"sidecar:{config.telemetry.prometheus.port}" in targets
    assert "ports" not in compose()["services"]["sidecar"]


def test_prometheus_endpoint_defaults_to_loopback(tmp_path: Path) -> None:
    assert parse_config({}, environ={}).telemetry.prometheus.host == "127.0.0.1"
    port = free_port()
    config = sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")
    config["telemetry"] = {"prometheus": {"enabled": True, "port": port}}  # no host
    sidecar = SidecarProcess(tmp_path, config)
    sidecar.start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
            assert answer.status == 200
        assert f"Prometheus metrics on http://127.0.0.1:{port}/metrics" in sidecar.log()
    finally:
        sidecar.stop(signal.SIGKILL)


@pytest.mark.parametrize("path", [COMPOSE_SIDECAR, DEPLOY / "k8s" / "base" / "sidecar.yaml"])
def test_shipped_sidecar_configurations_listen_on_a_unix_socket(path: Path) -> None:
    assert load_config(path, environ={}).listen.unix_path is not None
