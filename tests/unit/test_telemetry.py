"""Telemetry in-process: off costs nothing, retries and pool usage are observed, config parses."""

from __future__ import annotations

from typing import Any

from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from sidecar import telemetry as telemetry_module
from sidecar.config import TelemetryConfig, parse_config
from sidecar.errors import DecodeError, StoreUnavailableError
from sidecar.telemetry import POOL_CONNECTIONS, POOL_WAITING, RETRIES, Telemetry


def points(reader: InMemoryMetricReader) -> dict[str, list[tuple[dict[str, Any], Any]]]:
    data = reader.get_metrics_data()
    found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    found.setdefault(metric.name, []).append(
                        (dict(point.attributes or {}), getattr(point, "value", None))
                    )
    return found


def test_telemetry_is_off_by_default_and_installs_nothing() -> None:
    config = parse_config({}, environ={})
    assert not config.telemetry.metrics_enabled and not config.telemetry.tracing_enabled
    telemetry = Telemetry.from_config(config.telemetry)
    assert not telemetry.enabled
    assert telemetry.server_interceptors(lambda name: "view") == []
    telemetry.start(object())
    # The hot path's hooks return at once.
    telemetry.begin_phase("decode")
    with telemetry.provider_call(object()):
        pass
    telemetry.call_failed(DecodeError("x"))
    telemetry.dead_lettered("m")
    telemetry.shutdown()


def test_telemetry_block_parses_with_environment_overrides() -> None:
    config = parse_config(
        {"telemetry": {"prometheus": {"enabled": True, "port": 9999}}},
        environ={"HZ_SIDECAR_TELEMETRY__SPAN_FILE": "/tmp/spans.jsonl"},
    )
    assert config.telemetry.prometheus.port == 9999
    assert config.telemetry.metrics_enabled and config.telemetry.tracing_enabled
    assert config.telemetry.span_file == "/tmp/spans.jsonl"
    assert TelemetryConfig().prometheus.port == 9464


def test_a_retry_is_counted_and_noted_on_the_current_span() -> None:
    reader = InMemoryMetricReader()
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    telemetry = Telemetry(
        meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
    )
    telemetry.start()
    try:
        with telemetry.tracer.start_as_current_span("SQLiteProvider.store"):
            telemetry_module.record_retry(1, StoreUnavailableError("down"))
    finally:
        telemetry.shutdown()
    assert points(reader)[RETRIES] == [
        ({"operation": "background", "reason": "StoreUnavailableError"}, 1)
    ]
    [span] = exporter.get_finished_spans()
    assert [(e.name, dict(e.attributes or {})) for e in span.events] == [
        ("retry", {"attempt": 1, "exception.type": "StoreUnavailableError"})
    ]


def test_retries_outside_a_running_sidecar_are_not_counted() -> None:
    telemetry_module.record_retry(1, None)  # no active telemetry: nothing to count into


class PooledProvider:
    def pool_stats(self) -> dict[str, int]:
        return {"pool_size": 4, "pool_available": 3, "requests_waiting": 2}


def test_the_pool_of_a_provider_with_pool_stats_is_observed() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(meter_provider=MeterProvider(metric_readers=[reader]))
    telemetry.start(PooledProvider())
    try:
        found = points(reader)
    finally:
        telemetry.shutdown()
    assert sorted(found[POOL_CONNECTIONS], key=str) == [
        ({"state": "idle"}, 3),
        ({"state": "open"}, 4),
    ]
    assert found[POOL_WAITING] == [({}, 2)]
