"""Metrics and traces: the reference persistence metrics in OpenTelemetry, spans joined to the shim.

Metrics keep the reference framework's names, types and attributes (its
``PersistenceMetrics``, see the persistence guide's "Monitoring" section), so
its dashboard and alerts carry over; the sidecar adds its own under
``hz_sidecar.*``. Exported through a Prometheus scrape endpoint and/or OTLP,
chosen by the ``telemetry`` block of the configuration.

Counting rules at the gRPC boundary (the shim forwards each MapStore call as one
RPC): a Store of one entry is a ``store`` (``persistence.store.count``,
``.store.duration``), of more a ``storeAll`` (``.store.batch.count``,
``.store.batch.entries``, ``.store.batch.duration``); a Load counts each
distinct key asked (``.load.count``) and each one not found (``.load.miss``);
a Delete counts its keys. A failed call, or a Store with an entry that failed,
counts one ``persistence.errors`` with the operation as the shim names it
(store, storeAll, load, loadAll, delete, deleteAll, loadAllKeys).

Traces: the shim sends a W3C ``traceparent``
(https://www.w3.org/TR/trace-context/#traceparent-header) with every call; the
call's server span is its child, and the phases of the call (``decode``,
``encode``) and each provider call (with an event per retry) are children of
that span.

Off (the default), none of this is installed: no interceptor, and the hot path
calls of :class:`Telemetry` return at their first line.

Labels: ``mapName`` is a routed map's name, else :data:`UNROUTED`, so that a
caller cannot create series by inventing names. Unauthenticated calls are
never seen here: the server puts the token check before this interceptor.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import threading
import time
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import grpc
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import MetricReader, PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.config import TelemetryConfig
from sidecar.deadletter import DEAD_LETTERED_METRIC
from sidecar.errors import (
    ConfigError,
    DecodeError,
    SchemaMismatchError,
    SidecarError,
    UnknownSchemaError,
    UnsupportedFieldKindError,
)

log = logging.getLogger(__name__)

SCOPE: Final = "hz-sidecar"
SERVICE: Final = pb.DESCRIPTOR.services_by_name["MapStore"].full_name

# -- Metric names: the reference's (attributes mapName, storeType, operation) ----------

STORE_COUNT: Final = "persistence.store.count"
STORE_BATCH_COUNT: Final = "persistence.store.batch.count"
STORE_BATCH_ENTRIES: Final = "persistence.store.batch.entries"
LOAD_COUNT: Final = "persistence.load.count"
LOAD_MISS: Final = "persistence.load.miss"
DELETE_COUNT: Final = "persistence.delete.count"
ERRORS: Final = "persistence.errors"
STORE_DURATION: Final = "persistence.store.duration"
STORE_BATCH_DURATION: Final = "persistence.store.batch.duration"
LOAD_DURATION: Final = "persistence.load.duration"

# -- ... and the sidecar's own ---------------------------------------------------------

#: Entries dead-lettered (attributes: mapName); the name is the dead-letter module's.
DEAD_LETTERED: Final = DEAD_LETTERED_METRIC
#: gRPC calls being served (attributes: method).
CALLS_IN_FLIGHT: Final = "hz_sidecar.calls.in_flight"
#: Attempts repeated after a transient store failure (attributes: operation, reason).
RETRIES: Final = "hz_sidecar.retries"
#: Duration of each provider call (attributes: operation, provider).
PROVIDER_DURATION: Final = "hz_sidecar.provider.duration"
#: Entries written per Store call (attributes: storeType); group commit may merge calls.
WRITE_ENTRIES: Final = "hz_sidecar.store.entries"
#: Values that cannot be decoded or encoded (attributes: mapName, kind).
CODEC_ERRORS: Final = "hz_sidecar.codec.errors"
#: Stored rows skipped by a load because they cannot be read (attributes: mapName).
UNREADABLE_ROWS: Final = "hz_sidecar.load.unreadable"
#: Connections of the provider's pool (attributes: state = open | idle); PostgreSQL only.
POOL_CONNECTIONS: Final = "hz_sidecar.pool.connections"
#: Requests waiting for a pooled connection; PostgreSQL only.
POOL_WAITING: Final = "hz_sidecar.pool.waiting"

#: Histogram buckets in seconds: fine below a millisecond, and a bound at 1 s for the p99 alert.
DURATION_BUCKETS: Final = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
ENTRY_BUCKETS: Final = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)

#: The codec's error classes and the ``kind`` they are counted under.
_CODEC_KINDS: Final[Mapping[type[SidecarError], str]] = {
    DecodeError: "decode",
    SchemaMismatchError: "schema_mismatch",
    UnsupportedFieldKindError: "unsupported_field_kind",
    UnknownSchemaError: "unknown_schema",
}

_PROPAGATOR: Final = TraceContextTextMapPropagator()

#: The ``mapName`` label of a call on a map that matches no route (the name is the caller's).
UNROUTED: Final = "(unrouted)"


@dataclass(frozen=True, slots=True)
class Instruments:
    """Every instrument, created once from one meter."""

    store_count: metrics.Counter
    store_batch_count: metrics.Counter
    store_batch_entries: metrics.Counter
    load_count: metrics.Counter
    load_miss: metrics.Counter
    delete_count: metrics.Counter
    errors: metrics.Counter
    store_duration: metrics.Histogram
    store_batch_duration: metrics.Histogram
    load_duration: metrics.Histogram
    dead_lettered: metrics.Counter
    in_flight: metrics.UpDownCounter
    retries: metrics.Counter
    provider_duration: metrics.Histogram
    write_entries: metrics.Histogram
    codec_errors: metrics.Counter
    unreadable_rows: metrics.Counter

    @classmethod
    def create(cls, meter: metrics.Meter) -> Instruments:
        def seconds(name: str, description: str) -> metrics.Histogram:
            return meter.create_histogram(
                name,
                unit="s",
                description=description,
                explicit_bucket_boundaries_advisory=DURATION_BUCKETS,
            )

        return cls(
            store_count=meter.create_counter(STORE_COUNT, description="Single write operations"),
            store_batch_count=meter.create_counter(
                STORE_BATCH_COUNT, description="Batch write operations"
            ),
            store_batch_entries=meter.create_counter(
                STORE_BATCH_ENTRIES, description="Total entries in batches"
            ),
            load_count=meter.create_counter(LOAD_COUNT, description="Load operations (keys)"),
            load_miss=meter.create_counter(LOAD_MISS, description="Load misses (not in the store)"),
            delete_count=meter.create_counter(DELETE_COUNT, description="Delete operations (keys)"),
            errors=meter.create_counter(ERRORS, description="Errors by operation"),
            store_duration=seconds(STORE_DURATION, "Single write latency"),
            store_batch_duration=seconds(STORE_BATCH_DURATION, "Batch write latency"),
            load_duration=seconds(LOAD_DURATION, "Load latency"),
            dead_lettered=meter.create_counter(
                DEAD_LETTERED, description="Entries kept in the dead-letter table"
            ),
            in_flight=meter.create_up_down_counter(
                CALLS_IN_FLIGHT, description="gRPC calls being served"
            ),
            retries=meter.create_counter(
                RETRIES, description="Store attempts repeated after a transient failure"
            ),
            provider_duration=seconds(PROVIDER_DURATION, "Duration of each provider call"),
            write_entries=meter.create_histogram(
                WRITE_ENTRIES,
                description="Entries written per Store call",
                explicit_bucket_boundaries_advisory=ENTRY_BUCKETS,
            ),
            codec_errors=meter.create_counter(
                CODEC_ERRORS, description="Values that cannot be decoded or encoded, by kind"
            ),
            unreadable_rows=meter.create_counter(
                UNREADABLE_ROWS, description="Stored rows skipped by loads: they cannot be read"
            ),
        )


@dataclass(slots=True)
class _Call:
    """The telemetry of the gRPC call being served (one per call, in a context variable)."""

    operation: str
    map_name: str
    span: trace.Span
    phase: trace.Span | None = None
    failure: BaseException | None = None

    def end_phase(self) -> None:
        if self.phase is not None:
            self.phase.end()
            self.phase = None


_current: contextvars.ContextVar[_Call | None] = contextvars.ContextVar(
    "hz_sidecar_telemetry_call", default=None
)
#: The telemetry of the running sidecar, for hooks called outside any gRPC call (retries).
_active: Telemetry | None = None


def record_retry(attempt: int, exc: BaseException | None) -> None:
    """Count one retry of a transient store failure and note it on the current span."""
    telemetry = _active
    call = _current.get()
    reason = type(exc).__name__ if exc is not None else "unknown"
    if telemetry is not None and telemetry.metering:
        operation = call.operation if call is not None else "background"
        telemetry.instruments.retries.add(1, {"operation": operation, "reason": reason})
    span = trace.get_current_span()
    if span.is_recording():
        span.add_event("retry", {"attempt": attempt, "exception.type": reason})


class Telemetry:
    """Instruments and tracer of one sidecar, and the exporters behind them.

    Build it with :meth:`from_config` (or inject providers, as tests do), then
    :meth:`start` it; :meth:`shutdown` flushes and stops the exporters.
    """

    def __init__(
        self,
        *,
        meter_provider: metrics.MeterProvider | None = None,
        tracer_provider: trace.TracerProvider | None = None,
        prometheus: tuple[str, int] | None = None,
        registry: Any = None,
    ) -> None:
        self.metering = meter_provider is not None
        self.tracing = tracer_provider is not None
        self.enabled = self.metering or self.tracing
        self._meter_provider = meter_provider or metrics.NoOpMeterProvider()
        self._tracer_provider = tracer_provider or trace.NoOpTracerProvider()
        self.meter = self._meter_provider.get_meter(SCOPE)
        self.tracer = self._tracer_provider.get_tracer(SCOPE)
        self.instruments = Instruments.create(self.meter)
        self._prometheus = prometheus
        self._registry = registry
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        self._log_filter: _TraceIds | None = None
        self._store_type: Callable[[str], str] | None = None
        self.metrics_address: str | None = None

    @classmethod
    def disabled(cls) -> Telemetry:
        return cls()

    @classmethod
    def from_config(cls, config: TelemetryConfig) -> Telemetry:
        """The exporters ``config`` selects (the OTLP ones are imported only when used)."""
        if not (config.metrics_enabled or config.tracing_enabled):
            return cls()
        resource = Resource.create({"service.name": config.service_name})
        meter_provider = None
        registry = None
        if config.metrics_enabled:
            readers: list[MetricReader] = []
            if config.prometheus.enabled:
                from opentelemetry.exporter.prometheus import PrometheusMetricReader
                from prometheus_client import CollectorRegistry

                # A registry of our own: the process-wide default would refuse a second sidecar.
                registry = CollectorRegistry(auto_describe=False)
                readers.append(PrometheusMetricReader(registry=registry))
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
        prometheus = None
        if config.prometheus.enabled:
            prometheus = (config.prometheus.host, config.prometheus.port)
        return cls(
            meter_provider=meter_provider,
            tracer_provider=tracer_provider,
            prometheus=prometheus,
            registry=registry,
        )

    # -- lifecycle ------------------------------------------------------------------

    def start(self, provider: object | None = None) -> None:
        """Serve the Prometheus endpoint, observe the provider's pool, tag logs with trace ids."""
        global _active
        if not self.enabled:
            return
        _active = self
        if self._prometheus is not None and self._http is None:
            from prometheus_client import start_http_server

            host, port = self._prometheus
            try:
                self._http, self._http_thread = start_http_server(
                    port, addr=host, registry=self._registry
                )
            except OSError as exc:
                raise ConfigError(
                    f"telemetry.prometheus: cannot listen on {host}:{port}: {exc}"
                ) from exc
            self.metrics_address = f"{host}:{self._http.server_port}"
            log.info("Prometheus metrics on http://%s/metrics", self.metrics_address)
        pool_stats = getattr(provider, "pool_stats", None)
        if self.metering and callable(pool_stats):
            self._observe_pool(pool_stats)
        if self.tracing and self._log_filter is None:
            self._log_filter = _TraceIds()
            for handler in logging.getLogger().handlers:
                handler.addFilter(self._log_filter)

    def shutdown(self) -> None:
        """Flush and stop the exporters (blocking: call it off the event loop). Idempotent."""
        global _active
        if _active is self:
            _active = None
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            if self._http_thread is not None:
                self._http_thread.join(timeout=5)
            self._http = None
        if self._log_filter is not None:
            for handler in logging.getLogger().handlers:
                handler.removeFilter(self._log_filter)
            self._log_filter = None
        for provider in (self._meter_provider, self._tracer_provider):
            shutdown = getattr(provider, "shutdown", None)
            if callable(shutdown):
                shutdown()
        self._meter_provider = metrics.NoOpMeterProvider()
        self._tracer_provider = trace.NoOpTracerProvider()

    def _observe_pool(self, pool_stats: Callable[[], Mapping[str, int]]) -> None:
        def connections(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            stats = pool_stats()
            if "pool_size" in stats:
                yield metrics.Observation(stats["pool_size"], {"state": "open"})
                yield metrics.Observation(stats.get("pool_available", 0), {"state": "idle"})

        def waiting(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
            stats = pool_stats()
            if "pool_size" in stats:
                yield metrics.Observation(stats.get("requests_waiting", 0))

        self.meter.create_observable_gauge(
            POOL_CONNECTIONS, [connections], description="Connections of the provider's pool"
        )
        self.meter.create_observable_gauge(
            POOL_WAITING, [waiting], description="Requests waiting for a pooled connection"
        )

    # -- the gRPC boundary ------------------------------------------------------------

    def server_interceptors(self, store_type: Callable[[str], str]) -> list[Any]:
        """The interceptors the gRPC server needs (none when telemetry is off).

        ``store_type`` maps a map name to its store kind (``event``, ``view``) and
        raises :class:`SidecarError` for a map that matches no route; metrics label
        such a map :data:`UNROUTED`.
        """
        if not self.enabled:
            return []
        self._store_type = store_type
        return [_ServerTelemetry(self, store_type)]

    def map_label(self, map_name: str) -> str:
        """The ``mapName`` label of ``map_name``: itself when routed, else :data:`UNROUTED`."""
        if self._store_type is None:
            return map_name
        try:
            self._store_type(map_name)
        except SidecarError:
            return UNROUTED
        return map_name

    @contextlib.contextmanager
    def _serve(self, method: str, request: Any, metadata: Any) -> Iterator[_Call]:
        requested = getattr(request, "map_name", "")
        map_name = self.map_label(requested)
        operation = _operation(method, request)
        parent: Context | None = None
        if self.tracing:
            carrier = {key: value for key, value in metadata or () if key == "traceparent"}
            parent = _PROPAGATOR.extract(carrier)
        attributes = {
            "rpc.system": "grpc",
            "rpc.service": SERVICE,
            "rpc.method": method,
            "hazelcast.map.name": requested,
            "hazelcast.operation": operation,
        }
        in_flight = {"method": method}
        self.instruments.in_flight.add(1, in_flight)
        span = self.tracer.start_span(
            f"{SERVICE}/{method}", context=parent, kind=SpanKind.SERVER, attributes=attributes
        )
        call = _Call(operation=operation, map_name=map_name, span=span)
        token = _current.set(call)
        try:
            with trace.use_span(span, end_on_exit=False, record_exception=False):
                yield call
        except BaseException as exc:
            self.instruments.errors.add(1, {"mapName": map_name, "operation": operation})
            if span.is_recording() and call.failure is None:
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))
            raise
        finally:
            _current.reset(token)
            call.end_phase()
            span.end()
            self.instruments.in_flight.add(-1, in_flight)

    def _record(
        self,
        call: _Call,
        method: str,
        request: Any,
        response: Any,
        seconds: float,
        store_type: Callable[[str], str],
    ) -> None:
        instruments = self.instruments
        map_name = call.map_name
        if method == "Store":
            entries = len(request.entries)
            attributes = {"mapName": map_name, "storeType": store_type(map_name)}
            if entries == 1:
                instruments.store_count.add(1, attributes)
                instruments.store_duration.record(seconds, attributes)
            elif entries > 1:
                instruments.store_batch_count.add(1, attributes)
                instruments.store_batch_entries.add(entries, attributes)
                instruments.store_batch_duration.record(seconds, attributes)
            statuses = [result.status for result in response.results]
            written = statuses.count(pb.ENTRY_STATUS_WRITTEN)
            if written:
                instruments.write_entries.record(written, {"storeType": attributes["storeType"]})
            failed = statuses.count(pb.ENTRY_STATUS_FAILED)
            if failed:
                instruments.errors.add(1, {"mapName": map_name, "operation": call.operation})
                call.span.set_status(Status(StatusCode.ERROR, f"{failed} entries failed"))
            call.span.set_attributes({"hazelcast.entries": entries, "hazelcast.written": written})
            _log_call(call, seconds, entries=entries, written=written, failed=failed)
        elif method == "Load":
            asked = len(set(request.keys))
            found = len(response.entries)
            attributes = {"mapName": map_name}
            instruments.load_count.add(asked, attributes)
            instruments.load_miss.add(max(asked - found, 0), attributes)
            instruments.load_duration.record(seconds, attributes)
            call.span.set_attributes({"hazelcast.keys": asked, "hazelcast.found": found})
            _log_call(call, seconds, keys=asked, found=found)
        elif method == "Delete":
            keys = len(request.keys)
            instruments.delete_count.add(keys, {"mapName": map_name})
            call.span.set_attributes(
                {"hazelcast.keys": keys, "hazelcast.deleted": response.deleted}
            )
            _log_call(call, seconds, keys=keys, deleted=response.deleted)

    # -- hooks for the service's hot path -------------------------------------------

    def begin_phase(self, name: str) -> None:
        """Start the span of a phase of the current call (ending the previous phase)."""
        if not self.tracing:
            return
        call = _current.get()
        if call is None:
            return
        call.end_phase()
        call.phase = self.tracer.start_span(
            name, context=trace.set_span_in_context(call.span), attributes={"phase": name}
        )

    @contextlib.contextmanager
    def provider_call(self, awaitable: object) -> Iterator[None]:
        """Time one provider call and give it a span (a child of the call's span)."""
        if not self.enabled:
            yield
            return
        call = _current.get()
        if call is not None:
            call.end_phase()
        operation = getattr(awaitable, "__name__", "call")
        attributes = {
            "operation": operation,
            "code.function": getattr(awaitable, "__qualname__", ""),
        }
        started = time.perf_counter()
        with self.tracer.start_as_current_span(f"provider.{operation}", attributes=attributes):
            try:
                yield
            finally:
                self.instruments.provider_duration.record(
                    time.perf_counter() - started, {"operation": operation}
                )

    def call_failed(self, exc: BaseException) -> None:
        """Note why the current call fails: on its span, and in the codec errors by kind."""
        if not self.enabled:
            return
        call = _current.get()
        if isinstance(exc, SidecarError):
            self.codec_error(exc.map_name or (call.map_name if call else ""), exc)
        if call is not None:
            call.failure = exc
            if call.span.is_recording():
                call.span.record_exception(exc)
                call.span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))

    def codec_error(self, map_name: str, exc: BaseException) -> None:
        """Count ``exc`` under its kind if the codec raised it (others are not codec errors)."""
        if not self.metering:
            return
        for error_type, kind in _CODEC_KINDS.items():
            if isinstance(exc, error_type):
                self.instruments.codec_errors.add(
                    1, {"mapName": self.map_label(map_name), "kind": kind}
                )
                return

    def unreadable_row(self, map_name: str) -> None:
        """The unreadable-row hook (:data:`sidecar.unreadable.UnreadableCounter`)."""
        if self.metering:
            self.instruments.unreadable_rows.add(1, {"mapName": self.map_label(map_name)})

    def dead_lettered(self, map_name: str) -> None:
        """The dead-letter hook (:data:`sidecar.deadletter.DeadLetterCounter`)."""
        if self.metering:
            self.instruments.dead_lettered.add(1, {"mapName": self.map_label(map_name)})


def _operation(method: str, request: Any) -> str:
    """The MapStore operation as the shim names it."""
    if method == "Store":
        return "store" if len(request.entries) == 1 else "storeAll"
    if method == "Load":
        return "load" if len(request.keys) == 1 else "loadAll"
    if method == "Delete":
        return "delete" if len(request.keys) == 1 else "deleteAll"
    return method[:1].lower() + method[1:]


def _log_call(call: _Call, seconds: float, **counts: int) -> None:
    if not log.isEnabledFor(logging.DEBUG):
        return
    context = call.span.get_span_context()
    log.debug(
        "%s map=%s %s in %.1f ms",
        call.operation,
        call.map_name,
        " ".join(f"{k}={v}" for k, v in counts.items()),
        seconds * 1000,
        extra={
            "mapName": call.map_name,
            "operation": call.operation,
            "durationMs": round(seconds * 1000, 3),
            **counts,
            **({"traceId": f"{context.trace_id:032x}"} if context.is_valid else {}),
        },
    )


class _ServerTelemetry(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Wraps the MapStore service's handlers: span, metrics and in-flight count per call."""

    def __init__(self, telemetry: Telemetry, store_type: Callable[[str], str]) -> None:
        self._telemetry = telemetry
        self._store_type_of = store_type

    def _store_type(self, map_name: str) -> str:
        try:
            return self._store_type_of(map_name)
        except SidecarError:
            return "none"

    async def intercept_service(
        self, continuation: Callable[[Any], Awaitable[Any]], details: Any
    ) -> Any:
        handler = await continuation(details)
        prefix = f"/{SERVICE}/"
        if handler is None or not details.method.startswith(prefix):
            return handler  # health and reflection are not MapStore calls
        method = details.method[len(prefix) :]
        metadata = details.invocation_metadata
        telemetry = self._telemetry
        if handler.unary_unary is not None:
            inner_unary = handler.unary_unary

            async def unary(request: Any, context: Any) -> Any:
                started = time.perf_counter()
                with telemetry._serve(method, request, metadata) as call:
                    response = await inner_unary(request, context)
                    elapsed = time.perf_counter() - started
                    telemetry._record(call, method, request, response, elapsed, self._store_type)
                    return response

            return grpc.unary_unary_rpc_method_handler(
                unary,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            inner_stream = handler.unary_stream

            async def stream(request: Any, context: Any) -> AsyncIterator[Any]:
                # No span made current across the yields: a generator may be closed
                # from another context, which a context token cannot be reset in.
                telemetry.instruments.in_flight.add(1, {"method": method})
                span = telemetry.tracer.start_span(
                    f"{SERVICE}/{method}",
                    context=_PROPAGATOR.extract(
                        {k: v for k, v in metadata or () if k == "traceparent"}
                    )
                    if telemetry.tracing
                    else None,
                    kind=SpanKind.SERVER,
                    attributes={"rpc.method": method, "hazelcast.map.name": request.map_name},
                )
                try:
                    async for item in inner_stream(request, context):
                        yield item
                except BaseException as exc:
                    telemetry.instruments.errors.add(
                        1,
                        {
                            "mapName": telemetry.map_label(request.map_name),
                            "operation": _operation(method, request),
                        },
                    )
                    span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
                    raise
                finally:
                    span.end()
                    telemetry.instruments.in_flight.add(-1, {"method": method})

            return grpc.unary_stream_rpc_method_handler(
                stream,
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


class _TraceIds(logging.Filter):
    """Adds ``traceId`` and ``spanId`` to log records made inside a span (JSON logs show them)."""

    def filter(self, record: logging.LogRecord) -> bool:
        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            record.traceId = f"{context.trace_id:032x}"
            record.spanId = f"{context.span_id:016x}"
        return True


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
