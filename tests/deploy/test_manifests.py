"""The deployment files: Kubernetes manifests (structure, Kubernetes schemas, kustomize), the
compose file, the image health check, and the configurations they carry."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.config import load_config
from sidecar.member_config import render_member_config
from tests.prerequisites import missing
from tests.system.conftest import SidecarProcess, sqlite_config

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S = DEPLOY / "k8s"
BASE = K8S / "base"
KUSTOMIZATIONS = [BASE, K8S / "overlays" / "postgres"]
KUBERNETES_VERSION = "1.33"  # native sidecars are GA (stable) since 1.33
HEALTHCHECK = DEPLOY / "docker" / "healthcheck.py"


def documents(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def kustomize_inputs(directory: Path) -> list[Path]:
    kustomization = documents(directory / "kustomization.yaml")[0]
    files = [directory / r for r in kustomization.get("resources", [])]
    for generator in kustomization.get("configMapGenerator", []):
        files += [directory / f.partition("=")[2] or directory / f for f in generator["files"]]
    files += [directory / p["path"] for p in kustomization.get("patches", []) if "path" in p]
    return files


def base_objects() -> list[dict[str, Any]]:
    kustomization = documents(BASE / "kustomization.yaml")[0]
    return [d for r in kustomization["resources"] for d in documents(BASE / r)]


def statefulset() -> dict[str, Any]:
    [sts] = [d for d in base_objects() if d["kind"] == "StatefulSet"]
    return sts


def configmap_files() -> set[str]:
    kustomization = documents(BASE / "kustomization.yaml")[0]
    [generator] = kustomization["configMapGenerator"]
    return {Path(f).name for f in generator["files"]}


def kustomize() -> list[str] | None:
    if shutil.which("kustomize"):
        return ["kustomize", "build"]
    if shutil.which("kubectl"):
        return ["kubectl", "kustomize"]
    return None


def rendered(directory: Path) -> list[dict[str, Any]]:
    command = kustomize()
    if command is None:
        missing(
            "neither kustomize nor kubectl (which embeds kustomize) is installed",
            "install one (Debian: apt-get install kubernetes-client; .ci/run does)",
        )
    done = subprocess.run([*command, str(directory)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [d for d in yaml.safe_load_all(done.stdout) if d is not None]


def test_every_deploy_yaml_file_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml")) + sorted(DEPLOY.rglob("*.yml"))
    assert files
    for path in files:
        documents(path)


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomization_lists_only_existing_files(directory: Path) -> None:
    for path in kustomize_inputs(directory):
        assert path.exists(), f"{directory / 'kustomization.yaml'} lists missing {path}"


def test_hz_sidecar_is_a_native_sidecar_with_probes_before_the_member() -> None:
    spec = statefulset()["spec"]["template"]["spec"]
    init = {c["name"]: c for c in spec["initContainers"]}
    names = [c["name"] for c in spec["initContainers"]]
    # The member configuration is rendered before the sidecar starts, and both before the member.
    assert names == ["member-config", "hz-sidecar"]
    sidecar = init["hz-sidecar"]
    assert sidecar["restartPolicy"] == "Always"
    assert "restartPolicy" not in init["member-config"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        command = sidecar[probe]["exec"]["command"]
        assert command[1] == "/opt/hz-sidecar/healthcheck.py"
        assert command[2] == "unix:///run/hz-sidecar/sidecar.sock"
    assert "preStop" in sidecar["lifecycle"]
    [member] = spec["containers"]
    assert member["readinessProbe"] and member["livenessProbe"]


def test_grace_period_covers_member_flush_and_sidecar_shutdown() -> None:
    spec = statefulset()["spec"]["template"]["spec"]
    hazelcast = documents(BASE / "hazelcast.yaml")[0]["hazelcast"]
    member_wait = int(hazelcast["properties"]["hazelcast.graceful.shutdown.max.wait"])
    sidecar = load_config(BASE / "sidecar.yaml", environ={})
    assert spec["terminationGracePeriodSeconds"] > (
        member_wait + sidecar.listen.graceful_shutdown_seconds
    )


def test_socket_address_agrees_across_sidecar_member_and_probes() -> None:
    spec = statefulset()["spec"]["template"]["spec"]
    sidecar = load_config(BASE / "sidecar.yaml", environ={})
    address = sidecar.listen.address
    assert address == "unix:///run/hz-sidecar/sidecar.sock"
    maps = render_member_config(sidecar)["hazelcast"]["map"]
    assert {m["map-store"]["properties"]["sidecar.address"] for m in maps.values()} == {address}
    socket_dir = str(Path(sidecar.listen.unix_path or "").parent)
    for container in [*spec["initContainers"][1:], *spec["containers"]]:
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts["socket"] == socket_dir, container["name"]


def test_member_imports_the_file_the_init_container_renders() -> None:
    spec = statefulset()["spec"]["template"]["spec"]
    hazelcast = documents(BASE / "hazelcast.yaml")[0]["hazelcast"]
    [imported] = hazelcast["import"]
    init = spec["initContainers"][0]
    assert f"--out={imported}" in init["args"]
    [member] = spec["containers"]
    mounts = {m["name"]: m["mountPath"] for m in member["volumeMounts"]}
    assert imported.startswith(mounts["member-maps"] + "/")
    assert f"-Dhazelcast.config={mounts['config']}" in member["env"][0]["value"]


def test_configmap_keys_and_volumes_referenced_exist() -> None:
    sts = statefulset()
    spec = sts["spec"]["template"]["spec"]
    keys = configmap_files()
    volumes = {v["name"] for v in spec["volumes"]}
    volumes |= {c["metadata"]["name"] for c in sts["spec"].get("volumeClaimTemplates", [])}
    generated = documents(BASE / "kustomization.yaml")[0]["configMapGenerator"][0]["name"]
    assert {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v} == {generated}
    for container in [*spec["initContainers"], *spec["containers"]]:
        for mount in container["volumeMounts"]:
            assert mount["name"] in volumes, (container["name"], mount["name"])
            if mount["name"] == "config":
                assert mount["subPath"] in keys, (container["name"], mount["subPath"])


def test_sidecar_config_in_the_configmap_is_valid_and_renders() -> None:
    config = load_config(BASE / "sidecar.yaml", environ={})
    assert config.persistence.enabled
    assert set(render_member_config(config)["hazelcast"]["map"]) == {"*_ES", "*_VIEW"}


@pytest.mark.parametrize("directory", KUSTOMIZATIONS, ids=lambda p: p.name)
def test_kustomize_renders_and_objects_match_kubernetes_schemas(directory: Path) -> None:
    objects = rendered(directory)
    kinds = {o["kind"] for o in objects}
    assert {"StatefulSet", "Service", "ConfigMap"} <= kinds
    import kubernetes_validate  # a pinned dev dependency: its absence is a failure

    for obj in objects:
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_postgres_overlay_takes_the_dsn_from_the_secret() -> None:
    objects = rendered(K8S / "overlays" / "postgres")
    [sts] = [o for o in objects if o["kind"] == "StatefulSet"]
    [secret] = [o for o in objects if o["kind"] == "Secret"]
    assert sts["spec"]["replicas"] > 1
    assert "volumeClaimTemplates" not in sts["spec"]
    init = sts["spec"]["template"]["spec"]["initContainers"]
    assert [c["name"] for c in init] == ["member-config", "hz-sidecar"]
    sidecar = init[1]
    env = {e["name"]: e for e in sidecar["env"]}
    assert env["HZ_SIDECAR_PROVIDER__NAME"]["value"] == "postgres"
    ref = env["HZ_SIDECAR_PROVIDER__SETTINGS__DSN"]["valueFrom"]["secretKeyRef"]
    assert ref["name"] == secret["metadata"]["name"]
    assert ref["key"] in secret["stringData"]
    overrides = {k: v["value"] for k, v in env.items() if "value" in v}
    overrides["HZ_SIDECAR_PROVIDER__SETTINGS__DSN"] = "host=db"
    config = load_config(BASE / "sidecar.yaml", environ=overrides)
    assert config.provider.name == "postgres"
    assert config.provider.settings == {"dsn": "host=db"}


def test_compose_services_and_files_exist() -> None:
    compose = documents(DEPLOY / "compose.yaml")[0]
    services = compose["services"]
    assert {"member", "sidecar", "postgres", "prometheus", "grafana"} <= set(services)
    for service in services.values():
        build = service.get("build")
        if build:
            assert (DEPLOY / build["context"] / build["dockerfile"]).exists()
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), source


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    sock_dir = Path(f"/tmp/hzh-{uuid.uuid4().hex[:8]}")
    sock_dir.mkdir()
    process = SidecarProcess(tmp_path, sqlite_config(tmp_path, f"unix://{sock_dir}/s.sock"))
    process.start()
    yield process
    process.stop(signal.SIGKILL)
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_healthcheck_script_exits_zero_only_while_serving(sidecar: SidecarProcess) -> None:
    def check() -> int:
        done = subprocess.run(
            [sys.executable, str(HEALTHCHECK), sidecar.address], capture_output=True, timeout=30
        )
        return done.returncode

    assert check() == 0
    sidecar.stop()
    assert check() == 1
