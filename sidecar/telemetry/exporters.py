"""Where metrics and spans go: Prometheus endpoint, OTLP, a span file; set up and shut down.

Nothing here runs on a call's path: the SDK providers built here are handed to
:class:`sidecar.telemetry.Telemetry`, which creates its instruments and tracer
from them. The OTLP and Prometheus packages are imported only when configured.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from sidecar.config import TelemetryConfig
from sidecar.errors import ConfigError

log = logging.getLogger(__name__)


class PrometheusEndpoint:
    """The ``GET /metrics`` endpoint of one registry, served by a thread of its own.

    The registry is the sidecar's own, not prometheus_client's process-wide default,
    which would refuse the collectors of a second sidecar in the same process.
    """

    def __init__(self, host: str, port: int, registry: Any) -> None:
        self.host = host
        self.port = port
        self.registry = registry
        self._http: Any = None
        self._thread: threading.Thread | None = None
        #: ``host:port`` once serving (the port chosen by the system when 0 was asked).
        self.address: str | None = None

    def start(self) -> None:
        """Serve (idempotent).

        Raises:
            ConfigError: the address cannot be listened on (the message names the key).
        """
        if self._http is not None:
            return
        from prometheus_client import start_http_server

        try:
            self._http, self._thread = start_http_server(
                self.port, addr=self.host, registry=self.registry
            )
        except OSError as exc:
            raise ConfigError(
                f"telemetry.prometheus: cannot listen on {self.host}:{self.port}: {exc}"
            ) from exc
        self.address = f"{self.host}:{self._http.server_port}"
        log.info("Prometheus metrics on http://%s/metrics", self.address)

    def stop(self) -> None:
        """Stop serving and wait for the thread (at most 5 s). Idempotent."""
        if self._http is None:
            return
        self._http.shutdown()
        self._http.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._http = self._thread = None


class TraceIdLogFilter(logging.Filter):
    """Adds ``traceId`` and ``spanId`` to log records made inside a span (JSON logs show them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.traceId = f"{context.trace_id:032x}"
            record.spanId = f"{context.span_id:016x}"
        return True


@dataclass(slots=True)
class Exporters:
    """The SDK providers of one sidecar and what serves or exports their data.

    A provider left None is off: no instrument or span of that signal is recorded.
    Tests inject providers with in-memory readers and exporters.
    """

    meter_provider: MeterProvider | None = None
    tracer_provider: TracerProvider | None = None
    prometheus: PrometheusEndpoint | None = None
    _log_filter: TraceIdLogFilter | None = None

    @classmethod
    def from_config(cls, config: TelemetryConfig) -> Exporters:
        """The providers and exporters ``config`` selects (none at all when it selects none)."""
        if not (config.metrics_enabled or config.tracing_enabled):
            return cls()
        resource = Resource.create({"service.name": config.service_name})
        meter_provider = None
        prometheus = None
        if config.metrics_enabled:
            readers: list[MetricReader] = []
            if config.prometheus.enabled:
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
                from prometheus_client import CollectorRegistry

                registry = CollectorRegistry(auto_describe=False)
                readers.append(PrometheusMetricReader(registry=registry))
                prometheus = PrometheusEndpoint(
                    config.prometheus.host, config.prometheus.port, registry
                )
            if config.otlp.enabled and config.otlp.metrics:
                from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
                    OTLPMetricExporter,
                )

                readers.append(
                    PeriodicExportingMetricReader(
                        OTLPMetricExporter(
                            endpoint=config.otlp.endpoint, insecure=config.otlp.insecure
                        ),
                        export_interval_millis=config.otlp.export_interval_seconds * 1000,
                    )
                )
            meter_provider = MeterProvider(metric_readers=readers, resource=resource)
        tracer_provider = None
        if config.tracing_enabled:
            tracer_provider = TracerProvider(resource=resource)
            if config.span_file is not None:
                tracer_provider.add_span_processor(
                    BatchSpanProcessor(JsonLinesSpanExporter(config.span_file))
                )
            if config.otlp.enabled and config.otlp.traces:
                from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
                    OTLPSpanExporter,
                )

                tracer_provider.add_span_processor(
                    BatchSpanProcessor(
                        OTLPSpanExporter(
                            endpoint=config.otlp.endpoint, insecure=config.otlp.insecure
                        )
                    )
                )
        return cls(meter_provider, tracer_provider, prometheus)

    def start(self) -> None:
        """Serve the Prometheus endpoint; tag log records made inside spans with their ids.

        Raises:
            ConfigError: the Prometheus endpoint cannot listen on its address.
        """
        if self.prometheus is not None:
            self.prometheus.start()
        if self.tracer_provider is not None and self._log_filter is None:
            self._log_filter = TraceIdLogFilter()
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._log_filter)

    def shutdown(self) -> None:
        """Stop the endpoint, flush and stop the providers (blocking: call it off the loop).

        Idempotent; the providers are dropped, so nothing is exported after it.
        """
        if self.prometheus is not None:
            self.prometheus.stop()
        if self._log_filter is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._log_filter)
            self._log_filter = None
        if self.meter_provider is not None:
            self.meter_provider.shutdown()
            self.meter_provider = None
        if self.tracer_provider is not None:
            self.tracer_provider.shutdown()
            self.tracer_provider = None


class JsonLinesSpanExporter(SpanExporter):
    """Finished spans, one JSON object per line, appended to a file (``telemetry.span-file``).

    For a look at traces without a collector, and for tests; ids are lowercase hex
    as in ``traceparent``.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        Path(path).parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_document(span), default=str) + "\n" for span in spans]
        with self._lock, open(self.path, "a", encoding="utf-8") as out:
            out.writelines(lines)
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return True


def span_document(span: ReadableSpan) -> dict[str, Any]:
    """A span as a plain JSON-ready dict."""
    context = span.get_span_context()
    parent = span.parent
    return {
        "name": span.name,
        "trace_id": f"{context.trace_id:032x}" if context else None,
        "span_id": f"{context.span_id:016x}" if context else None,
        "parent_span_id": f"{parent.span_id:016x}" if parent else None,
        "kind": span.kind.name,
        "start_unix_nano": span.start_time,
        "end_unix_nano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "events": [
            {"name": event.name, "attributes": dict(event.attributes or {})}
            for event in span.events
        ],
    }
