"""Cluster fixtures: N Hazelcast members on loopback, one `hz-sidecar run` beside each, one
PostgreSQL database shared by every sidecar (DESIGN.md, "Clusters").

The members find each other through a TCP-IP member list naming every member's port; each
member's shim dials its own sidecar over a Unix socket, and each sidecar exports Prometheus
metrics on its own port, so a test can tell which sidecar served what. The client is
hazelcast-python-client with smart routing (the default): it sends each key's operation to
the key's partition owner.

JVMs are kept small (256 MB heap, C1 only): three members and three sidecars share two cores.
"""

from __future__ import annotations

import re
import shutil
import signal
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import hazelcast
import psycopg
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import Member, require_jars
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

Maps = Callable[[str], dict[str, Any]]

JVM_ARGS = ["-Xms64m", "-Xmx256m", "-XX:TieredStopAtLevel=1"]

#: Faster joins and failure detection than Hazelcast's defaults (5 s join wait, 60 s without
#: heartbeat), and every member waits for the whole cluster before it reports STARTED, so a
#: cold start loads the EAGER maps with all members present.
PROPERTIES: dict[str, Any] = {
    "hazelcast.wait.seconds.before.join": 1,
    "hazelcast.heartbeat.interval.seconds": 1,
    "hazelcast.max.no.heartbeat.seconds": 10,
    "hazelcast.graceful.shutdown.max.wait": 120,
}

_MEMBERS = re.compile(r"Members \{size:(\d+)")


class ClusterMember(Member):
    """A member whose TCP-IP member list names every member of the cluster."""

    def __init__(
        self,
        workdir: Path,
        port: int,
        cluster_name: str,
        maps: dict[str, Any],
        member_ports: list[int],
        properties: dict[str, Any],
        jvm_args: list[str] = JVM_ARGS,
    ) -> None:
        super().__init__(workdir, port, cluster_name, maps, properties, jvm_args)
        config = yaml.safe_load(self.config_path.read_text())
        join = config["hazelcast"]["network"]["join"]
        join["tcp-ip"]["member-list"] = [f"127.0.0.1:{p}" for p in member_ports]
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False))

    def start(self, timeout: float = 120.0) -> None:
        # A new incarnation gets a new log: `start` waits for "is STARTED" in it.
        if self.log_path.exists():
            self.log_path.rename(self.log_path.with_suffix(f".{time.monotonic_ns()}.log"))
        super().start(timeout)

    def cluster_size(self) -> int:
        sizes = _MEMBERS.findall(self.log())
        return int(sizes[-1]) if sizes else 0


class Node:
    """One member and its own sidecar (PostgreSQL provider, Prometheus exporter)."""

    def __init__(
        self,
        workdir: Path,
        index: int,
        dsn: str,
        sock_dir: Path,
        overrides: dict[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.workdir = workdir
        self.address = f"unix://{sock_dir}/sidecar-{index}.sock"
        self.metrics_address = f"127.0.0.1:{free_port()}"
        config = sqlite_config(workdir, self.address)
        config["provider"] = {"name": "postgres", "settings": {"dsn": dsn, "pool-max-size": 4}}
        config["logging"] = {"level": "DEBUG"}
        config["telemetry"] = {
            "prometheus": {"enabled": True, "host": "127.0.0.1", "port": self.port_of_metrics}
        }
        config.update(overrides or {})
        self.sidecar = SidecarProcess(workdir, config)
        self.member: ClusterMember | None = None
        self.port = free_port()

    @property
    def port_of_metrics(self) -> int:
        return int(self.metrics_address.rpartition(":")[2])

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 if none)."""
        url = f"http://{self.metrics_address}/metrics"
        with urllib.request.urlopen(url, timeout=5) as answer:
            text = answer.read().decode()
        return sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )

    def stored(self, map_name: str) -> int:
        """Entries this sidecar wrote for ``map_name``: store calls plus storeAll entries."""
        return int(
            self.metric("persistence_store_count_total", mapName=map_name)
            + self.metric("persistence_store_batch_entries_total", mapName=map_name)
        )


class Cluster:
    """``size`` members (TCP-IP member list on loopback), one sidecar each, one database."""

    def __init__(
        self,
        workdir: Path,
        dsn: str,
        maps: Maps,
        size: int = 3,
        properties: dict[str, Any] | None = None,
        sidecar_overrides: dict[str, Any] | None = None,
        jvm_args: list[str] = JVM_ARGS,
    ) -> None:
        """``sidecar_overrides`` replaces top-level blocks of every sidecar's configuration."""
        self.dsn = dsn
        self.maps = maps
        self.cluster_name = f"hzc-{uuid.uuid4().hex[:8]}"
        self.sock_dir = Path(f"/tmp/hzc-{uuid.uuid4().hex[:8]}")
        self.sock_dir.mkdir()
        self.nodes = [
            Node(self._dir(workdir / f"node{i}"), i, dsn, self.sock_dir, sidecar_overrides)
            for i in range(size)
        ]
        self.properties = {
            **PROPERTIES,
            "hazelcast.initial.min.cluster.size": size,
            **(properties or {}),
        }
        self.jvm_args = jvm_args
        self.clients: list[hazelcast.HazelcastClient] = []

    @staticmethod
    def _dir(path: Path) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes]

    def _new_member(self, node: Node) -> ClusterMember:
        return ClusterMember(
            node.workdir,
            node.port,
            self.cluster_name,
            self.maps(node.address),
            self.ports,
            self.properties,
            self.jvm_args,
        )

    def start(self) -> None:
        """Start every sidecar, then every member at once; return when the cluster is formed."""
        for node in self.nodes:
            node.sidecar.start()
        self.start_members(list(range(len(self.nodes))))

    def start_members(self, indexes: list[int]) -> None:
        errors: list[BaseException] = []

        def start(node: Node) -> None:
            try:
                node.member = self._new_member(node)
                node.member.start()
            except BaseException as exc:  # reported below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=start, args=(self.nodes[i],)) for i in indexes]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]
        self.wait_formed()

    def alive(self) -> list[Node]:
        return [n for n in self.nodes if n.member is not None and n.member.proc is not None]

    def wait_formed(self, timeout: float = 90.0) -> None:
        """Wait until every running member sees all running members."""
        alive = self.alive()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(n.member is not None and n.member.cluster_size() == len(alive) for n in alive):
                return
            time.sleep(0.2)
        sizes = {n.index: n.member.cluster_size() for n in alive if n.member is not None}
        raise AssertionError(f"cluster of {len(alive)} did not form: sizes seen {sizes}")

    def kill(self, index: int) -> None:
        """kill -9 a member, then its sidecar."""
        node = self.nodes[index]
        if node.member is not None:
            node.member.kill()
        node.sidecar.stop(signal.SIGKILL)

    def restart_member(self, index: int) -> None:
        """Graceful shutdown (SIGTERM) of one member, then a new one on the same port."""
        node = self.nodes[index]
        assert node.member is not None
        assert node.member.stop() in (0, 143)  # the JVM exits 143 after its shutdown hook
        node.member = None
        self.wait_formed()
        self.start_members([index])

    def client(self, serializers: list[Any], **options: Any) -> hazelcast.HazelcastClient:
        """A client of the whole cluster (smart routing unless ``smart_routing=False``)."""
        members = options.pop("cluster_members", [f"127.0.0.1:{p}" for p in self.ports])
        client = hazelcast.HazelcastClient(
            cluster_name=self.cluster_name,
            cluster_members=members,
            compact_serializers=serializers,
            cluster_connect_timeout=60,
            **options,
        )
        self.clients.append(client)
        return client

    def query(self, statement: str, *params: Any) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn) as conn:
            return [tuple(row) for row in conn.execute(statement, params).fetchall()]

    def close(self) -> None:
        for client in self.clients:
            try:
                client.shutdown()
            except Exception:  # a client of killed members may fail to shut down
                pass
        for node in self.nodes:
            if node.member is not None:
                node.member.kill()
        for node in self.nodes:
            node.sidecar.stop(signal.SIGKILL)
        shutil.rmtree(self.sock_dir, ignore_errors=True)


ClusterFactory = Callable[..., Cluster]


@pytest.fixture
def cluster_factory(tmp_path: Path, fresh_database: str) -> Iterator[ClusterFactory]:
    """Makes started clusters on one fresh PostgreSQL database; stops them all afterwards."""
    require_jars()
    made: list[Cluster] = []

    def make(maps: Maps, size: int = 3, **options: Any) -> Cluster:
        cluster = Cluster(tmp_path / f"cluster{len(made)}", fresh_database, maps, size, **options)
        made.append(cluster)
        cluster.start()
        return cluster

    yield make
    for cluster in made:
        cluster.close()
