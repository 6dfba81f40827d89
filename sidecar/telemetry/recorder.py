"""The telemetry of each MapStore call: the service reports it to a recorder, which counts.

The service knows what each call is and how it went; it tells a
:class:`CallRecorder` (one per call, from :meth:`Telemetry.call`), which turns
that into the reference's metrics and the call's spans. Nothing here reads a
request or a response.

Counting rules (the shim forwards each MapStore call as one RPC): a Store of
one entry is a ``store`` (``persistence.store.count``, ``.store.duration``), of
more a ``storeAll`` (``.store.batch.count``, ``.store.batch.entries``,
``.store.batch.duration``); a Load counts each distinct key asked
(``.load.count``) and each one not found (``.load.miss``); a Delete counts its
keys. A failed call, or a Store with an entry that failed, counts one
``persistence.errors`` with the operation as the shim names it (store,
storeAll, load, loadAll, delete, deleteAll, loadAllKeys). A failed call counts
nothing else; durations run from the recorder's start to its end.

Labels: ``mapName`` is a routed map's name, else :data:`UNROUTED`, so that a
caller cannot create series by inventing names. Unauthenticated calls never
reach the service (the server checks the token first), so they are not seen here.

Traces: the shim sends a W3C ``traceparent``
(https://www.w3.org/TR/trace-context/#traceparent-header) with every call; the
call's server span is its child, and the phases of the call and each provider
call (with an event per retry) are children of that span.

Off (the default), :meth:`Telemetry.call` hands out one shared recorder whose
methods return at their first line, and nothing is exported.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable, Mapping
from contextlib import AbstractContextManager
from contextvars import Token
from types import TracebackType
from typing import Final, Self

import grpc
from opentelemetry import context as otel_context
from opentelemetry import metrics, trace
from opentelemetry.context import Context
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from sidecar.config import TelemetryConfig
from sidecar.errors import (
    DecodeError,
    SchemaMismatchError,
    SidecarError,
    UnknownSchemaError,
    UnsupportedFieldKindError,
)
from sidecar.telemetry.exporters import Exporters
from sidecar.telemetry.instruments import SCOPE, Instruments, PoolStats, observe_pool

log = logging.getLogger(__name__)

#: The gRPC service whose calls are recorded (``hzsidecar.v1`` in protos/).
SERVICE: Final = "hzsidecar.v1.MapStore"
#: The ``mapName`` label of a call on a map that matches no route (the name is the caller's).
UNROUTED: Final = "(unrouted)"

#: The MapStore operation of each method, as the shim names it: (one item, several).
_OPERATIONS: Final[Mapping[str, tuple[str, str]]] = {
    "Store": ("store", "storeAll"),
    "Load": ("load", "loadAll"),
    "Delete": ("delete", "deleteAll"),
    "LoadAllKeys": ("loadAllKeys", "loadAllKeys"),
}

#: The codec's error classes and the ``kind`` they are counted under.
_CODEC_KINDS: Final[Mapping[type[SidecarError], str]] = {
    DecodeError: "decode",
    SchemaMismatchError: "schema_mismatch",
    UnsupportedFieldKindError: "unsupported_field_kind",
    UnknownSchemaError: "unknown_schema",
}

_PROPAGATOR: Final = TraceContextTextMapPropagator()
_TRACE_HEADERS: Final = frozenset(("traceparent", "tracestate"))
#: What :meth:`CallRecorder.phase` and :meth:`CallRecorder.provider_call` give when off.
_NOTHING: Final[AbstractContextManager[None]] = contextlib.nullcontext()

#: gRPC invocation metadata: (key, value) pairs.
Metadata = Iterable[tuple[str, str | bytes]]


def operation_name(method: str, size: int | None) -> str:
    """The MapStore operation of a call of ``method`` carrying ``size`` entries or keys.

    ``None`` (not known) names the single-item operation.
    """
    names = _OPERATIONS.get(method)
    if names is None:
        return method[:1].lower() + method[1:]
    return names[0] if size is None or size == 1 else names[1]


def grpc_status(exc: BaseException) -> grpc.StatusCode:
    """The status a call failing with ``exc`` is answered with (the service's one mapping)."""
    if isinstance(exc, SidecarError):
        return exc.status
    if isinstance(exc, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.INTERNAL


def _codec_kind(exc: BaseException) -> str | None:
    for error_type, kind in _CODEC_KINDS.items():
        if isinstance(exc, error_type):
            return kind
    return None


def _caused_by(exc: BaseException, cause: BaseException) -> bool:
    """Whether ``cause`` is ``exc`` or in its chain (``raise from``, or raised while handling)."""
    link: BaseException | None = exc
    for _ in range(16):  # a chain can be made circular by hand
        if link is None:
            return False
        if link is cause:
            return True
        link = link.__cause__ or link.__context__
    return False


def _detach(token: Token[Context]) -> None:
    """Restore the context from before ``token``'s attach, if this is the context it was in.

    A stream's generator abandoned by gRPC is closed later by the event loop, in a
    context of its own where there is nothing to restore (OpenTelemetry's ``detach``
    would log an error for it).
    """
    with contextlib.suppress(ValueError):
        token.var.reset(token)


class CallRecorder:
    """What the service reports about one call; a context manager around the call.

    This class is also what telemetry that is off hands out: every method returns
    at once. Use it as ``with telemetry.call(...) as rec:``; report the outcome with
    exactly one of :meth:`stored`, :meth:`loaded`, :meth:`deleted`,
    :meth:`keys_streamed` (LoadAllKeys may report each batch), or :meth:`failed`.
    An exception leaving the ``with`` block fails the call too.
    """

    __slots__ = ()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def phase(self, name: str) -> AbstractContextManager[None]:
        """A phase of the call (``decode``, ``encode``): a child span of the call's span.

        Use it as ``with rec.phase("decode"):``. The phase is not made the current
        span: provider calls inside it are children of the call's span all the same.
        """
        return _NOTHING

    def provider_call(self, operation: str) -> AbstractContextManager[None]:
        """One provider call (``store``, ``load``, ``delete``, ``load_all_keys``...).

        ``with rec.provider_call("store"): await ...``: a child span of the call's span
        named ``provider.<operation>``, made current for the block (retries add their
        events to it), and ``hz_sidecar.provider.duration`` (attributes operation,
        provider).
        """
        return _NOTHING

    def stored(self, *, entries: int, failed: int = 0) -> None:
        """A Store call answered: ``entries`` in the request, ``failed`` of them FAILED.

        Entries neither failed nor reported to :meth:`dead_lettered` were written.
        One entry: ``persistence.store.count`` and ``.store.duration``; more:
        ``.store.batch.count``, ``.store.batch.entries`` and ``.store.batch.duration``
        (attributes mapName, storeType); the entries written into
        ``hz_sidecar.store.entries`` (storeType); any failed entry: one
        ``persistence.errors`` (operation store or storeAll).
        """

    def loaded(self, *, asked: int, found: int) -> None:
        """A Load call answered: ``asked`` distinct keys, ``found`` of them in the store.

        ``persistence.load.count`` += asked, ``.load.miss`` += asked - found,
        ``.load.duration`` (attribute mapName).
        """

    def deleted(self, *, keys: int) -> None:
        """A Delete call answered for ``keys`` keys: ``persistence.delete.count`` += keys."""

    def keys_streamed(self, count: int) -> None:
        """LoadAllKeys sent ``count`` more keys (no metric of the reference's; a span attribute)."""

    def failed(self, exc: BaseException) -> None:
        """The call fails with ``exc``: one ``persistence.errors``, error status on its span.

        The span's status names the gRPC status the call is answered with
        (``exc.status`` for a :class:`SidecarError`, else INTERNAL). An error of the
        codec is also counted in ``hz_sidecar.codec.errors`` (unless
        :meth:`codec_error` counted it already). The first failure reported wins.
        """

    def codec_error(self, exc: BaseException) -> None:
        """A value of this call cannot be decoded or encoded (a poison entry, say).

        Counted in ``hz_sidecar.codec.errors`` (attributes mapName, kind) if the codec
        raised it; other exceptions are not codec errors and are ignored.
        """

    def unreadable_row(self) -> None:
        """A stored row this call skips: it cannot be read (``hz_sidecar.load.unreadable``)."""

    def dead_lettered(self, count: int = 1) -> None:
        """``count`` entries of this call kept as dead letters.

        Counted in ``persistence.store.dead_lettered`` (attribute mapName); they are
        not written entries (see :meth:`stored`).
        """


class _Recording(CallRecorder):
    """The recorder of one call while telemetry is on."""

    __slots__ = (
        "_asked",
        "_codec_counted",
        "_context",
        "_dead",
        "_entries",
        "_failed_entries",
        "_failure",
        "_found",
        "_in_flight",
        "_instruments",
        "_keys",
        "_map",
        "_metadata",
        "_method",
        "_outcome",
        "_provider",
        "_size",
        "_span",
        "_started",
        "_store_type",
        "_token",
        "_tracer",
    )

    def __init__(
        self,
        telemetry: Telemetry,
        method: str,
        map_name: str | None,
        store_type: str | None,
        metadata: Metadata | None,
        size: int | None,
    ) -> None:
        self._instruments = telemetry.instruments
        self._tracer = telemetry.tracer
        self._provider = telemetry.provider_name
        self._method = method
        self._map = map_name or UNROUTED
        self._store_type = store_type or "none"
        self._metadata = metadata
        self._size = size
        self._in_flight = {"method": method}
        self._started = 0.0
        self._span: trace.Span | None = None
        self._context: Context | None = None
        self._token: Token[Context] | None = None
        self._outcome: str | None = None  # which of stored/loaded/deleted/keys_streamed
        self._entries = self._failed_entries = self._dead = 0
        self._asked = self._found = self._keys = 0
        self._failure: BaseException | None = None
        self._codec_counted: BaseException | None = None

    # -- the call's extent --------------------------------------------------------------

    def __enter__(self) -> Self:
        self._instruments.in_flight.add(1, self._in_flight)
        if self._tracer is not None:
            carrier = {k: v for k, v in self._metadata or () if k in _TRACE_HEADERS}
            attributes = {
                "rpc.system": "grpc",
                "rpc.service": SERVICE,
                "rpc.method": self._method,
                "hazelcast.map.name": self._map,
                "hazelcast.store.type": self._store_type,
            }
            if self._size is not None:
                attributes["hazelcast.operation"] = operation_name(self._method, self._size)
            self._span = self._tracer.start_span(
                f"{SERVICE}/{self._method}",
                context=_PROPAGATOR.extract(carrier),
                kind=SpanKind.SERVER,
                attributes=attributes,
            )
            # Current for the call, so that log records made during it carry its trace id.
            self._context = trace.set_span_in_context(self._span)
            self._token = otel_context.attach(self._context)
        self._started = time.perf_counter()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        seconds = time.perf_counter() - self._started
        if self._token is not None:
            _detach(self._token)
            self._token = None
        if exc is not None:
            self.failed(exc)
        operation = self._operation()
        if self._failure is not None or self._failed_entries:
            self._instruments.errors.add(1, {"mapName": self._map, "operation": operation})
        if self._failure is None:
            self._count(seconds)
        span = self._span
        if span is not None:
            if self._size is None:  # not named when the span started
                span.set_attribute("hazelcast.operation", operation)
            span.end()
        self._instruments.in_flight.add(-1, self._in_flight)
        if log.isEnabledFor(logging.DEBUG):
            self._log(operation, seconds)

    def _operation(self) -> str:
        size = self._size
        if size is None and self._outcome is not None:
            size = {"stored": self._entries, "loaded": self._asked, "deleted": self._keys}.get(
                self._outcome
            )
        return operation_name(self._method, size)

    def _count(self, seconds: float) -> None:
        """The metrics of a call that did not fail, from what the service reported."""
        instruments = self._instruments
        span = self._span
        if self._outcome == "stored":
            attributes = {"mapName": self._map, "storeType": self._store_type}
            if self._entries == 1:
                instruments.store_count.add(1, attributes)
                instruments.store_duration.record(seconds, attributes)
            elif self._entries > 1:
                instruments.store_batch_count.add(1, attributes)
                instruments.store_batch_entries.add(self._entries, attributes)
                instruments.store_batch_duration.record(seconds, attributes)
            written = self._entries - self._failed_entries - self._dead
            if written > 0:
                instruments.write_entries.record(written, {"storeType": self._store_type})
            if span is not None:
                span.set_attributes(
                    {"hazelcast.entries": self._entries, "hazelcast.written": written}
                )
                if self._failed_entries:
                    span.set_status(
                        Status(StatusCode.ERROR, f"{self._failed_entries} entries failed")
                    )
        elif self._outcome == "loaded":
            attributes = {"mapName": self._map}
            instruments.load_count.add(self._asked, attributes)
            instruments.load_miss.add(max(self._asked - self._found, 0), attributes)
            instruments.load_duration.record(seconds, attributes)
            if span is not None:
                span.set_attributes({"hazelcast.keys": self._asked, "hazelcast.found": self._found})
        elif self._outcome == "deleted":
            instruments.delete_count.add(self._keys, {"mapName": self._map})
            if span is not None:
                span.set_attribute("hazelcast.keys", self._keys)
        elif self._outcome == "keys_streamed" and span is not None:
            span.set_attribute("hazelcast.keys", self._keys)

    def _log(self, operation: str, seconds: float) -> None:
        counts = {
            "stored": {"entries": self._entries, "failed": self._failed_entries},
            "loaded": {"keys": self._asked, "found": self._found},
            "deleted": {"keys": self._keys},
            "keys_streamed": {"keys": self._keys},
        }.get(self._outcome or "", {})
        log.debug(
            "%s map=%s %s%s in %.1f ms",
            operation,
            self._map,
            " ".join(f"{k}={v}" for k, v in counts.items()),
            f" failed: {self._failure!r}" if self._failure is not None else "",
            seconds * 1000,
            extra={
                "mapName": self._map,
                "operation": operation,
                "durationMs": round(seconds * 1000, 3),
                **counts,
            },
        )

    # -- children of the call's span ------------------------------------------------------

    def phase(self, name: str) -> AbstractContextManager[None]:
        if self._tracer is None:
            return _NOTHING
        return _Phase(self._tracer, name, self._context)

    def provider_call(self, operation: str) -> AbstractContextManager[None]:
        return _ProviderCall(self, operation)

    # -- outcomes -------------------------------------------------------------------------

    def stored(self, *, entries: int, failed: int = 0) -> None:
        self._outcome = "stored"
        self._entries = entries
        self._failed_entries = failed

    def loaded(self, *, asked: int, found: int) -> None:
        self._outcome = "loaded"
        self._asked = asked
        self._found = found

    def deleted(self, *, keys: int) -> None:
        self._outcome = "deleted"
        self._keys = keys

    def keys_streamed(self, count: int) -> None:
        self._outcome = "keys_streamed"
        self._keys += count

    def failed(self, exc: BaseException) -> None:
        if self._failure is not None:
            return
        self._failure = exc
        counted = self._codec_counted
        if counted is None or not _caused_by(exc, counted):
            self.codec_error(exc)
        span = self._span
        if span is not None and span.is_recording():
            status = grpc_status(exc)
            span.record_exception(exc)
            span.set_attribute("rpc.grpc.status_code", status.value[0])
            span.set_status(Status(StatusCode.ERROR, status.name))

    def codec_error(self, exc: BaseException) -> None:
        kind = _codec_kind(exc)
        if kind is None:
            return
        self._codec_counted = exc
        self._instruments.codec_errors.add(1, {"mapName": self._map, "kind": kind})

    def unreadable_row(self) -> None:
        self._instruments.unreadable_rows.add(1, {"mapName": self._map})

    def dead_lettered(self, count: int = 1) -> None:
        self._dead += count
        self._instruments.dead_lettered.add(count, {"mapName": self._map})


class _Phase:
    """The span of one phase of a call, from ``__enter__`` to ``__exit__`` (not made current)."""

    __slots__ = ("_context", "_name", "_span", "_tracer")

    def __init__(self, tracer: trace.Tracer, name: str, context: Context | None) -> None:
        self._tracer = tracer
        self._name = name
        self._context = context
        self._span: trace.Span | None = None

    def __enter__(self) -> None:
        self._span = self._tracer.start_span(
            self._name, context=self._context, attributes={"phase": self._name}
        )

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._span is None:
            return
        if exc_type is not None:
            self._span.set_status(Status(StatusCode.ERROR, exc_type.__name__))
        self._span.end()


class _ProviderCall:
    """One provider call: its span (current for the block) and its duration."""

    __slots__ = ("_operation", "_recording", "_span", "_started", "_token")

    def __init__(self, recording: _Recording, operation: str) -> None:
        self._recording = recording
        self._operation = operation
        self._span: trace.Span | None = None
        self._token: Token[Context] | None = None
        self._started = 0.0

    def __enter__(self) -> None:
        recording = self._recording
        if recording._tracer is not None:
            self._span = recording._tracer.start_span(
                f"provider.{self._operation}",
                context=recording._context,
                attributes={"operation": self._operation, "provider": recording._provider},
            )
            self._token = otel_context.attach(trace.set_span_in_context(self._span))
        self._started = time.perf_counter()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        recording = self._recording
        recording._instruments.provider_duration.record(
            time.perf_counter() - self._started,
            {"operation": self._operation, "provider": recording._provider},
        )
        if self._token is not None:
            _detach(self._token)
        span = self._span
        if span is not None:
            if exc is not None and span.is_recording():
                span.record_exception(exc)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            span.end()


#: The recorder of every call while telemetry is off.
_OFF: Final = CallRecorder()


class Telemetry:
    """Instruments and tracer of one sidecar, and the exporters behind them.

    Build it with :meth:`from_config` (or from :class:`Exporters` with injected
    providers, as tests do), :meth:`start` it once the provider is open, and
    :meth:`shutdown` it last. The service reports each call through :meth:`call`;
    :meth:`retry` and :meth:`codec_fallback` are hooks handed to lower layers as values.
    """

    def __init__(self, exporters: Exporters | None = None) -> None:
        self._exporters = exporters or Exporters()
        meter_provider = self._exporters.meter_provider
        tracer_provider = self._exporters.tracer_provider
        self.metering = meter_provider is not None
        self.tracing = tracer_provider is not None
        self.enabled = self.metering or self.tracing
        self.meter = (meter_provider or metrics.NoOpMeterProvider()).get_meter(SCOPE)
        self.instruments = Instruments.create(self.meter)
        self.tracer = tracer_provider.get_tracer(SCOPE) if tracer_provider is not None else None
        #: The ``provider`` attribute of provider calls (set by :meth:`start`).
        self.provider_name = "unknown"
        self._started = False

    @classmethod
    def disabled(cls) -> Telemetry:
        """Telemetry that records nothing: every hot-path method returns at once."""
        return cls()

    @classmethod
    def from_config(cls, config: TelemetryConfig) -> Telemetry:
        """The exporters ``config`` selects (none: :meth:`disabled`)."""
        return cls(Exporters.from_config(config))

    @property
    def metrics_address(self) -> str | None:
        """``host:port`` of the Prometheus endpoint once it serves."""
        prometheus = self._exporters.prometheus
        return prometheus.address if prometheus is not None else None

    # -- lifecycle ----------------------------------------------------------------------

    def start(self, provider_name: str, pool_stats: PoolStats | None = None) -> None:
        """Serve the Prometheus endpoint, observe the provider's pool, tag logs with trace ids.

        ``provider_name`` is the ``provider`` attribute of provider calls; ``pool_stats``
        (PostgreSQL's) feeds ``hz_sidecar.pool.*``. Idempotent.

        Raises:
            ConfigError: the Prometheus endpoint cannot listen on its address.
        """
        if not self.enabled or self._started:
            return
        self.provider_name = provider_name
        self._exporters.start()
        if self.metering and pool_stats is not None:
            observe_pool(self.meter, pool_stats)
        self._started = True

    def shutdown(self) -> None:
        """Flush and stop the exporters (blocking: call it off the event loop). Idempotent.

        Calls reported afterwards are not recorded.
        """
        self.enabled = self.metering = self.tracing = False
        self._exporters.shutdown()

    # -- the hot path -------------------------------------------------------------------

    def call(
        self,
        method: str,
        map_name: str | None,
        store_type: str | None,
        metadata: Metadata | None,
        *,
        size: int | None = None,
    ) -> CallRecorder:
        """The recorder of one MapStore call; use it as ``with telemetry.call(...) as rec:``.

        Args:
            method: the gRPC method: ``Store``, ``Load``, ``Delete`` or ``LoadAllKeys``.
            map_name: the routed map's name; None when the map matches no route or
                the name is invalid (labelled :data:`UNROUTED`).
            store_type: the route's store kind (``event``, ``view``...), None when unrouted.
            metadata: the call's invocation metadata: its ``traceparent`` is the
                parent of the call's span.
            size: the entries (Store) or keys (Load, Delete) the request carries, as
                sent; it names the operation (``store`` or ``storeAll``...) of a call
                that fails before reporting its outcome. Without it, the count the
                outcome reports names it, and a failed call is named for one item.
        """
        if not self.enabled:
            return _OFF
        return _Recording(self, method, map_name, store_type, metadata, size)

    def retry(self, operation: str, attempt: int, exc: BaseException | None) -> None:
        """Count one retry of a transient store failure and note it on the current span.

        The ``on_retry`` hook the writer is given: ``hz_sidecar.retries`` (attributes
        operation, reason = the exception's class name) and a ``retry`` event.
        """
        if not self.enabled:
            return
        reason = type(exc).__name__ if exc is not None else "unknown"
        self.instruments.retries.add(1, {"operation": operation, "reason": reason})
        if self.tracing:
            span = trace.get_current_span()
            if span.is_recording():
                span.add_event("retry", {"attempt": attempt, "exception.type": reason})

    def codec_fallback(self, type_name: str) -> None:
        """The compiled codec handed a value of ``type_name`` to the generic one."""
        if self.metering:
            self.instruments.codec_fallbacks.add(1, {"typeName": type_name})
