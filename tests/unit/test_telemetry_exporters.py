"""Exporters in-process: the Prometheus endpoint, the span file, the log filter; and layering."""

from __future__ import annotations

import ast
import json
import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from sidecar.config import TelemetryConfig
from sidecar.errors import ConfigError
from sidecar.telemetry import SERVICE, Exporters, Telemetry

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_SPAN_ID = "00f067aa0ba902b7"
TRACEPARENT = (("traceparent", f"00-{TRACE_ID}-{PARENT_SPAN_ID}-01"),)
PACKAGE = Path(__file__).resolve().parents[2] / "sidecar" / "telemetry"


def config(**block: object) -> TelemetryConfig:
    return TelemetryConfig.model_validate(block)


def scrape(address: str) -> list[tuple[str, dict[str, str], float]]:
    with urllib.request.urlopen(f"http://{address}/metrics", timeout=5) as answer:
        text = answer.read().decode()
    return [
        (sample.name, dict(sample.labels), sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def value(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    [found] = [v for n, have, v in samples if n == name and labels.items() <= have.items()]
    return found


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_nothing_configured_builds_no_provider_and_no_endpoint() -> None:
    exporters = Exporters.from_config(TelemetryConfig())
    assert exporters == Exporters()


def test_the_prometheus_endpoint_serves_the_reference_metrics_until_shutdown() -> None:
    telemetry = Telemetry.from_config(config(prometheus={"enabled": True, "port": 0}))
    assert telemetry.metering and not telemetry.tracing
    telemetry.start(provider_name="sqlite")
    try:
        address = telemetry.metrics_address
        assert address is not None and address.startswith("127.0.0.1:")
        with telemetry.call("Store", "Customer_VIEW", "view", (), size=3) as rec:
            rec.stored(entries=3)
        samples = scrape(address)
    finally:
        telemetry.shutdown()
    view = {"mapName": "Customer_VIEW", "storeType": "view"}
    assert value(samples, "persistence_store_batch_count_total", **view) == 1
    assert value(samples, "persistence_store_batch_entries_total", **view) == 3
    assert value(samples, "persistence_store_batch_duration_seconds_count", **view) == 1
    assert value(samples, "persistence_store_batch_duration_seconds_bucket", le="1.0", **view) == 1
    assert value(samples, "hz_sidecar_calls_in_flight", method="Store") == 0
    with pytest.raises(urllib.error.URLError):
        scrape(address)


def test_a_prometheus_port_in_use_is_a_configuration_error(busy_port: int) -> None:
    telemetry = Telemetry.from_config(config(prometheus={"enabled": True, "port": busy_port}))
    with pytest.raises(ConfigError, match=r"telemetry\.prometheus: cannot listen on 127\.0\.0\.1"):
        telemetry.start(provider_name="sqlite")
    telemetry.shutdown()


def test_the_span_file_has_one_json_document_per_span_joined_to_the_shims_trace(
    tmp_path: Path,
) -> None:
    span_file = tmp_path / "traces" / "spans.jsonl"
    telemetry = Telemetry.from_config(config(**{"span-file": str(span_file)}))
    assert telemetry.tracing and not telemetry.metering
    telemetry.start(provider_name="sqlite")
    with telemetry.call("Store", "Traced_VIEW", "view", TRACEPARENT, size=1) as rec:
        with rec.phase("decode"):
            pass
        with rec.provider_call("store"):
            telemetry.retry("store", 1, OSError("connection reset"))
        rec.stored(entries=1)
    telemetry.shutdown()  # flushes the batch processor
    documents = {d["name"]: d for d in map(json.loads, span_file.read_text().splitlines())}
    server = documents[f"{SERVICE}/Store"]
    assert server["trace_id"] == TRACE_ID and server["parent_span_id"] == PARENT_SPAN_ID
    assert server["kind"] == "SERVER" and server["status"] == "UNSET"
    assert server["attributes"]["hazelcast.map.name"] == "Traced_VIEW"
    assert server["attributes"]["hazelcast.operation"] == "store"
    assert server["attributes"]["hazelcast.written"] == 1
    for child in ("decode", "provider.store"):
        assert documents[child]["trace_id"] == TRACE_ID
        assert documents[child]["parent_span_id"] == server["span_id"]
    assert documents["provider.store"]["events"] == [
        {"name": "retry", "attributes": {"attempt": 1, "exception.type": "OSError"}}
    ]


def test_log_records_made_during_a_call_carry_its_trace_id_while_tracing_runs(
    tmp_path: Path,
) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = Keep()
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        telemetry = Telemetry.from_config(config(**{"span-file": str(tmp_path / "s.jsonl")}))
        telemetry.start(provider_name="sqlite")
        with telemetry.call("Load", "Traced_VIEW", "view", TRACEPARENT, size=1):
            logging.getLogger("sidecar.test").warning("inside the call")
        logging.getLogger("sidecar.test").warning("outside any call")
        telemetry.shutdown()
        assert handler.filters == []
    finally:
        root.removeHandler(handler)
    inside, outside = records
    assert inside.__dict__["traceId"] == TRACE_ID
    assert len(inside.__dict__["spanId"]) == 16
    assert "traceId" not in outside.__dict__


def test_the_telemetry_package_imports_no_layer_above_or_beside_it() -> None:
    """Telemetry is handed to the service; lower layers get its hooks as values."""
    allowed = {"sidecar.config", "sidecar.errors"}
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            for name in names:
                if name.startswith("sidecar.") and not name.startswith("sidecar.telemetry"):
                    assert name in allowed, f"{module.name} imports {name}"
