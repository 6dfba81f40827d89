"""Metrics and traces: the reference persistence metrics in OpenTelemetry, spans joined to the shim.

* :mod:`~sidecar.telemetry.instruments`: metric names, buckets, and the instruments,
  created once from one meter;
* :mod:`~sidecar.telemetry.recorder`: :class:`Telemetry`, the facade the server
  builds from the ``telemetry`` configuration block, and the per-call
  :class:`CallRecorder` the service reports each call to (counting rules there);
* :mod:`~sidecar.telemetry.exporters`: the Prometheus endpoint, OTLP, the span
  file and the log filter, away from the hot path.

Lower layers never import this package: they are handed hooks as values
(:meth:`Telemetry.retry`, :meth:`Telemetry.codec_fallback`).
"""

from sidecar.telemetry.exporters import Exporters, JsonLinesSpanExporter, span_document
from sidecar.telemetry.instruments import Instruments
from sidecar.telemetry.recorder import SERVICE, UNROUTED, CallRecorder, Telemetry

__all__ = [
    "SERVICE",
    "UNROUTED",
    "CallRecorder",
    "Exporters",
    "Instruments",
    "JsonLinesSpanExporter",
    "Telemetry",
    "span_document",
]
