"""The real `hz-sidecar run` with its Prometheus endpoint: every metric, its labels and values,
and every PromQL expression of the shipped dashboard and alert rules against a real scrape."""

from __future__ import annotations

import json
import re
import signal
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.hzclient import ClientSerialization, Customer, Order
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "deploy" / "grafana" / "persistence-dashboard.json"
ALERTS = ROOT / "deploy" / "prometheus" / "alerts.yaml"


@dataclass(frozen=True)
class Sample:
    name: str
    labels: dict[str, str]
    value: float


def order(i: int) -> Order:
    return Order(f"o{i}", 10.5 + i, i, ["a"], Customer(f"c{i}", True))


def scrape(address: str) -> list[Sample]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        Sample(s.name, dict(s.labels), s.value)
        for family in text_string_to_metric_families(text)
        for s in family.samples
    ]


def value(samples: list[Sample], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    found = [
        s
        for s in samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    ]
    assert len(found) == 1, f"{name}{labels}: {found or 'absent'}"
    return found[0].value


@pytest.fixture(scope="module")
def scraped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Sample]]:
    """A sidecar with the Prometheus exporter after a known workload, and its scrape."""
    workdir = tmp_path_factory.mktemp("metrics")
    config = sqlite_config(workdir, f"127.0.0.1:{free_port()}")
    metrics_address = f"127.0.0.1:{free_port()}"
    host, port = metrics_address.split(":")
    config["telemetry"] = {"prometheus": {"enabled": True, "host": host, "port": int(port)}}
    sidecar = SidecarProcess(workdir, config)
    sidecar.start()
    try:
        client = ClientSerialization()
        stub = sidecar.stub

        def entry(key: object, data: bytes | None = None) -> pb.Entry:
            return pb.Entry(key=client.to_bytes(key), value=data or client.to_bytes(order(1)))

        def store(map_name: str, entries: list[pb.Entry]) -> pb.StoreResponse:
            request = pb.StoreRequest(map_name=map_name, entries=entries, schemas=client.schemas())
            return stub.Store(request, timeout=10)

        store("Customer_VIEW", [entry("k0")])  # store
        store("Orders_ES", [entry(f"e{i}") for i in range(3)])  # storeAll of 3
        corrupt = client.to_bytes(order(2))[:20]  # a truncated Compact value: dead-lettered
        store("Customer_VIEW", [entry("a"), entry("poison", corrupt), entry("b")])
        keys = [client.to_bytes(k) for k in ("k0", "a", "missing")]
        stub.Load(pb.LoadRequest(map_name="Customer_VIEW", keys=keys), timeout=10)
        stub.Load(pb.LoadRequest(map_name="Orders_ES", keys=[client.to_bytes("e1")]), timeout=10)
        delete = [client.to_bytes("a"), client.to_bytes("b")]
        stub.Delete(pb.DeleteRequest(map_name="Customer_VIEW", keys=delete), timeout=10)
        with pytest.raises(grpc.RpcError):  # an unrouted map: one error, operation store
            store("orders", [entry("x")])
        with pytest.raises(grpc.RpcError):  # an undecodable key: one error, operation loadAll
            stub.Load(pb.LoadRequest(map_name="Orders_ES", keys=[b"\x00\x01", b"\x02"]), timeout=5)
        yield scrape(metrics_address)
    finally:
        sidecar.stop(signal.SIGTERM)


def test_reference_counters_have_their_labels_and_values(scraped: list[Sample]) -> None:
    view = {"mapName": "Customer_VIEW", "storeType": "view"}
    event = {"mapName": "Orders_ES", "storeType": "event"}
    assert value(scraped, "persistence_store_count_total", **view) == 1
    assert value(scraped, "persistence_store_batch_count_total", **view) == 1
    assert value(scraped, "persistence_store_batch_entries_total", **view) == 3
    assert value(scraped, "persistence_store_batch_count_total", **event) == 1
    assert value(scraped, "persistence_store_batch_entries_total", **event) == 3
    assert value(scraped, "persistence_load_count_total", mapName="Customer_VIEW") == 3
    assert value(scraped, "persistence_load_miss_total", mapName="Customer_VIEW") == 1
    assert value(scraped, "persistence_load_count_total", mapName="Orders_ES") == 1
    assert value(scraped, "persistence_load_miss_total", mapName="Orders_ES") == 0
    assert value(scraped, "persistence_delete_count_total", mapName="Customer_VIEW") == 2
    # An unrouted map name is never a label of its own (anyone could make up names).
    assert value(scraped, "persistence_errors_total", mapName="(unrouted)", operation="store") == 1
    assert value(scraped, "persistence_errors_total", mapName="Orders_ES", operation="loadAll") == 1
    assert {s.labels["operation"] for s in scraped if s.name == "persistence_errors_total"} == {
        "store",
        "loadAll",
    }


def test_reference_timers_are_histograms_in_seconds(scraped: list[Sample]) -> None:
    view = {"mapName": "Customer_VIEW", "storeType": "view"}
    for name, labels, calls in [
        ("persistence_store_duration_seconds", view, 1),
        ("persistence_store_batch_duration_seconds", view, 1),
        ("persistence_store_batch_duration_seconds", {"mapName": "Orders_ES"}, 1),
        ("persistence_load_duration_seconds", {"mapName": "Customer_VIEW"}, 1),
    ]:
        assert value(scraped, f"{name}_count", **labels) == calls
        assert 0 < value(scraped, f"{name}_sum", **labels) < 5
        assert value(scraped, f"{name}_bucket", le="1.0", **labels) == calls
        assert value(scraped, f"{name}_bucket", le="+Inf", **labels) == calls


def test_sidecar_metrics_count_codec_errors_dead_letters_and_calls(
    scraped: list[Sample],
) -> None:
    assert value(scraped, "hz_sidecar_codec_errors_total", mapName="Customer_VIEW", kind="decode")
    assert value(scraped, "persistence_store_dead_lettered_total", mapName="Customer_VIEW") == 1
    for method in ("Store", "Load", "Delete"):
        assert value(scraped, "hz_sidecar_calls_in_flight", method=method) == 0
    # 1 + 3 + 2 entries written, in three provider writes.
    assert value(scraped, "hz_sidecar_store_entries_count", storeType="view") == 2
    assert value(scraped, "hz_sidecar_store_entries_sum", storeType="view") == 3
    assert value(scraped, "hz_sidecar_store_entries_sum", storeType="event") == 3
    assert value(scraped, "hz_sidecar_provider_duration_seconds_count", operation="delete") == 1


# -- the dashboard and the alerts ---------------------------------------------------------

_METRIC = re.compile(r"\b((?:persistence|hz_sidecar)_[a-z_]+)\b(\{[^}]*\})?")
_BY = re.compile(r"\bby \(([^)]*)\)")
_MATCHER = re.compile(r"(\w+)\s*=~?")


def expressions() -> list[tuple[str, str]]:
    """(where, PromQL) of every query of the dashboard and every alert rule."""
    found: list[tuple[str, str]] = []
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            found.append((f"dashboard panel {panel['title']!r}", target["expr"]))
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found.append((f"alert {rule['alert']}", rule["expr"]))
    return found


def test_the_dashboard_and_alerts_have_the_reference_panels_and_rules() -> None:
    titles = {panel["title"] for panel in json.loads(DASHBOARD.read_text())["panels"]}
    assert {
        "Event writes / s",
        "View writes / s",
        "Errors (last 5 m)",
        "Average batch size",
        "Writes by map",
        "Store p95",
        "Batch store p95",
        "Load p95",
        "Errors by operation",
    } <= titles
    rules = {
        r["alert"]: r for g in yaml.safe_load(ALERTS.read_text())["groups"] for r in g["rules"]
    }
    assert rules["PersistenceErrors"]["for"] == "1m"
    assert "> 1" in rules["PersistenceStoreLatencyHigh"]["expr"]
    assert "persistence_load_miss_total" in rules["PersistenceLoadMissRatioHigh"]["expr"]


@pytest.mark.parametrize("where, expr", expressions())
def test_every_promql_expression_uses_scraped_metrics_and_labels(
    scraped: list[Sample], where: str, expr: str
) -> None:
    labels_of: dict[str, set[str]] = {}
    for sample in scraped:
        labels_of.setdefault(sample.name, set()).update(sample.labels)
    used = _METRIC.findall(expr)
    assert used, f"{where}: no hz-sidecar metric in {expr!r}"
    grouped = {label.strip() for group in _BY.findall(expr) for label in group.split(",")}
    for name, matchers in used:
        assert name in labels_of, f"{where}: {name} is not exposed by the sidecar"
        wanted = set(_MATCHER.findall(matchers)) | (grouped - {"le"})
        missing = wanted - labels_of[name]
        assert not missing, f"{where}: {name} has no label {sorted(missing)}"
