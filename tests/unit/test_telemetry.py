"""The per-call recorder: what each reported call counts, its spans; the hooks given as values."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import (
    HistogramDataPoint,
    InMemoryMetricReader,
    NumberDataPoint,
)
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.config import TelemetryConfig, parse_config
from sidecar.errors import DecodeError, StoreUnavailableError, UnroutedMapError
from sidecar.telemetry import SERVICE, UNROUTED, CallRecorder, Exporters, Telemetry
from sidecar.telemetry.instruments import (
    CALLS_IN_FLIGHT,
    CODEC_ERRORS,
    CODEC_FALLBACKS,
    DEAD_LETTERED,
    DELETE_COUNT,
    ERRORS,
    LOAD_COUNT,
    LOAD_DURATION,
    LOAD_MISS,
    POOL_CONNECTIONS,
    POOL_WAITING,
    PROVIDER_DURATION,
    RETRIES,
    STORE_BATCH_COUNT,
    STORE_BATCH_DURATION,
    STORE_BATCH_ENTRIES,
    STORE_COUNT,
    STORE_DURATION,
    UNREADABLE_ROWS,
    WRITE_ENTRIES,
)
from sidecar.telemetry.recorder import operation_name

VIEW = {"mapName": "Customer_VIEW", "storeType": "view"}
#: A W3C traceparent as the shim sends it (version, trace id, parent span id, sampled).
TRACE_ID = 0x4BF92F3577B34DA6A3CE929D0E0E4736
PARENT_SPAN_ID = 0x00F067AA0BA902B7
TRACEPARENT = (("traceparent", f"00-{TRACE_ID:032x}-{PARENT_SPAN_ID:016x}-01"),)


@dataclass
class Recorded:
    """A telemetry whose metrics and spans are kept in memory."""

    telemetry: Telemetry
    reader: InMemoryMetricReader
    spans: InMemorySpanExporter

    def metrics(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Each metric's points: (attributes, value), a histogram's value (count, sum)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        if data is None:  # nothing recorded at all
            return found
        for resource in data.resource_metrics:
            for scope in resource.scope_metrics:
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        if isinstance(point, HistogramDataPoint):
                            value: Any = (point.count, point.sum)
                        else:
                            assert isinstance(point, NumberDataPoint)
                            value = point.value
                        found.setdefault(metric.name, []).append(
                            (dict(point.attributes or {}), value)
                        )
        return found

    def finished(self) -> dict[str, ReadableSpan]:
        return {span.name: span for span in self.spans.get_finished_spans()}


def recorded_telemetry() -> Recorded:
    reader = InMemoryMetricReader()
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    telemetry = Telemetry(
        Exporters(
            meter_provider=MeterProvider(metric_readers=[reader]), tracer_provider=tracer_provider
        )
    )
    telemetry.start(provider_name="sqlite")
    return Recorded(telemetry, reader, spans)


@pytest.fixture
def recorded() -> Iterator[Recorded]:
    found = recorded_telemetry()
    yield found
    found.telemetry.shutdown()


def seconds_of(value: tuple[int, float]) -> float:
    count, total = value
    assert count == 1
    return total


# -- Store --------------------------------------------------------------------------------


def test_a_store_of_one_entry_counts_a_store_its_duration_and_the_entry_written(
    recorded: Recorded,
) -> None:
    telemetry = recorded.telemetry
    with telemetry.call("Store", "Customer_VIEW", "view", TRACEPARENT, size=1) as rec:
        with rec.phase("decode"):
            pass
        with rec.provider_call("store"):
            pass
        rec.stored(entries=1)
    found = recorded.metrics()
    assert found[STORE_COUNT] == [(VIEW, 1)]
    [(attributes, duration)] = found[STORE_DURATION]
    assert attributes == VIEW and 0 < seconds_of(duration) < 1
    assert found[WRITE_ENTRIES] == [({"storeType": "view"}, (1, 1))]
    [(attributes, _)] = found[PROVIDER_DURATION]
    assert attributes == {"operation": "store", "provider": "sqlite"}
    assert found[CALLS_IN_FLIGHT] == [({"method": "Store"}, 0)]
    for absent in (STORE_BATCH_COUNT, STORE_BATCH_ENTRIES, STORE_BATCH_DURATION, ERRORS):
        assert absent not in found


def test_a_store_of_several_entries_is_a_store_all_and_a_failed_entry_one_error(
    recorded: Recorded,
) -> None:
    with recorded.telemetry.call("Store", "Customer_VIEW", "view", (), size=4) as rec:
        rec.dead_lettered(count=1)
        rec.stored(entries=4, failed=1)
    found = recorded.metrics()
    assert found[STORE_BATCH_COUNT] == [(VIEW, 1)]
    assert found[STORE_BATCH_ENTRIES] == [(VIEW, 4)]
    [(attributes, duration)] = found[STORE_BATCH_DURATION]
    assert attributes == VIEW and seconds_of(duration) > 0
    # Neither the failed entry nor the dead-lettered one was written.
    assert found[WRITE_ENTRIES] == [({"storeType": "view"}, (1, 2))]
    assert found[DEAD_LETTERED] == [({"mapName": "Customer_VIEW"}, 1)]
    assert found[ERRORS] == [({"mapName": "Customer_VIEW", "operation": "storeAll"}, 1)]
    assert STORE_COUNT not in found
    server = recorded.finished()[f"{SERVICE}/Store"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "1 entries failed"
    assert server.attributes is not None
    assert server.attributes["hazelcast.entries"] == 4
    assert server.attributes["hazelcast.written"] == 2
    assert server.attributes["hazelcast.operation"] == "storeAll"


# -- Load, Delete, LoadAllKeys -------------------------------------------------------------


def test_a_load_counts_the_keys_asked_and_those_not_found(recorded: Recorded) -> None:
    with recorded.telemetry.call("Load", "Customer_VIEW", "view", (), size=3) as rec:
        rec.loaded(asked=3, found=2)
    with recorded.telemetry.call("Load", "Orders_ES", "event", (), size=1) as rec:
        rec.loaded(asked=1, found=1)
    found = recorded.metrics()
    assert sorted(found[LOAD_COUNT], key=str) == [
        ({"mapName": "Customer_VIEW"}, 3),
        ({"mapName": "Orders_ES"}, 1),
    ]
    # A load that found everything still has its series, at zero.
    assert sorted(found[LOAD_MISS], key=str) == [
        ({"mapName": "Customer_VIEW"}, 1),
        ({"mapName": "Orders_ES"}, 0),
    ]
    assert sorted(attributes["mapName"] for attributes, _ in found[LOAD_DURATION]) == [
        "Customer_VIEW",
        "Orders_ES",
    ]
    assert ERRORS not in found


def test_a_delete_counts_its_keys(recorded: Recorded) -> None:
    with recorded.telemetry.call("Delete", "Customer_VIEW", "view", (), size=2) as rec:
        with rec.provider_call("delete"):
            pass
        rec.deleted(keys=2)
    found = recorded.metrics()
    assert found[DELETE_COUNT] == [({"mapName": "Customer_VIEW"}, 2)]
    assert found[PROVIDER_DURATION][0][0] == {"operation": "delete", "provider": "sqlite"}
    assert recorded.finished()[f"{SERVICE}/Delete"].attributes == {
        "rpc.system": "grpc",
        "rpc.service": SERVICE,
        "rpc.method": "Delete",
        "hazelcast.map.name": "Customer_VIEW",
        "hazelcast.store.type": "view",
        "hazelcast.operation": "deleteAll",
        "hazelcast.keys": 2,
    }


def test_load_all_keys_counts_no_reference_metric_and_notes_the_keys_sent(
    recorded: Recorded,
) -> None:
    with recorded.telemetry.call("LoadAllKeys", "Customer_VIEW", "view", ()) as rec:
        rec.keys_streamed(3)
        rec.keys_streamed(2)
    found = recorded.metrics()
    assert set(found) == {CALLS_IN_FLIGHT}
    server = recorded.finished()[f"{SERVICE}/LoadAllKeys"]
    assert server.attributes is not None
    assert server.attributes["hazelcast.keys"] == 5
    assert server.attributes["hazelcast.operation"] == "loadAllKeys"


# -- failures ---------------------------------------------------------------------------


def test_a_failed_call_on_an_unrouted_map_counts_one_error_under_its_operation_only(
    recorded: Recorded,
) -> None:
    error = UnroutedMapError("no route matches", map_name="orders")
    with recorded.telemetry.call("Store", None, None, TRACEPARENT, size=1) as rec:
        rec.failed(error)
        rec.failed(DecodeError("a later report does not count again"))
    found = recorded.metrics()
    assert found[ERRORS] == [({"mapName": UNROUTED, "operation": "store"}, 1)]
    assert set(found) == {ERRORS, CALLS_IN_FLIGHT}  # no codec error: the first failure won
    server = recorded.finished()[f"{SERVICE}/Store"]
    assert server.status.status_code is StatusCode.ERROR
    assert server.status.description == "FAILED_PRECONDITION"
    assert server.attributes is not None
    assert server.attributes["rpc.grpc.status_code"] == 9
    assert server.attributes["hazelcast.map.name"] == UNROUTED
    assert [event.name for event in server.events] == ["exception"]


def test_an_exception_leaving_the_call_fails_it_and_a_codec_error_is_counted_by_kind(
    recorded: Recorded,
) -> None:
    with (
        pytest.raises(DecodeError),
        recorded.telemetry.call("Load", "Orders_ES", "event", (), size=2) as rec,
    ):
        with rec.phase("decode"):
            raise DecodeError("key #0 cannot be decoded", map_name="Orders_ES")
    found = recorded.metrics()
    assert found[ERRORS] == [({"mapName": "Orders_ES", "operation": "loadAll"}, 1)]
    assert found[CODEC_ERRORS] == [({"mapName": "Orders_ES", "kind": "decode"}, 1)]
    assert LOAD_COUNT not in found and LOAD_DURATION not in found
    spans = recorded.finished()
    assert spans[f"{SERVICE}/Load"].status.description == "INVALID_ARGUMENT"
    assert spans["decode"].status.status_code is StatusCode.ERROR


def test_a_codec_error_reported_for_an_entry_is_not_counted_again_when_it_fails_the_call(
    recorded: Recorded,
) -> None:
    with recorded.telemetry.call("Store", "Customer_VIEW", "view", (), size=1) as rec:
        poison = DecodeError("truncated Compact value")
        rec.codec_error(poison)
        rec.codec_error(StoreUnavailableError("not a codec error: ignored"))
        try:
            raise poison.with_context("entry #0", map_name="Customer_VIEW") from poison
        except DecodeError as exc:
            rec.failed(exc)
    found = recorded.metrics()
    assert found[CODEC_ERRORS] == [({"mapName": "Customer_VIEW", "kind": "decode"}, 1)]
    assert found[ERRORS] == [({"mapName": "Customer_VIEW", "operation": "store"}, 1)]


def test_without_a_size_the_outcome_names_the_operation_and_a_failure_names_one_item() -> None:
    assert operation_name("Store", 1) == "store"
    assert operation_name("Store", 0) == "storeAll"
    assert operation_name("Load", 5) == "loadAll"
    assert operation_name("Delete", None) == "delete"
    assert operation_name("LoadAllKeys", 7) == "loadAllKeys"
    recorded = recorded_telemetry()
    try:
        with recorded.telemetry.call("Delete", "Customer_VIEW", "view", ()) as rec:
            rec.deleted(keys=3)
        with pytest.raises(RuntimeError), recorded.telemetry.call("Load", "Orders_ES", "event", ()):
            raise RuntimeError("the provider broke")
        found = recorded.metrics()
    finally:
        recorded.telemetry.shutdown()
    assert found[ERRORS] == [({"mapName": "Orders_ES", "operation": "load"}, 1)]
    spans = recorded.finished()
    delete = spans[f"{SERVICE}/Delete"].attributes
    assert delete is not None and delete["hazelcast.operation"] == "deleteAll"
    assert spans[f"{SERVICE}/Load"].status.description == "INTERNAL"


def test_unreadable_rows_and_dead_letters_are_counted_under_the_calls_map(
    recorded: Recorded,
) -> None:
    with recorded.telemetry.call("Load", "Customer_VIEW", "view", (), size=2) as rec:
        rec.unreadable_row()
        rec.unreadable_row()
        rec.loaded(asked=2, found=0)
    with recorded.telemetry.call("Store", None, None, (), size=2) as rec:
        rec.dead_lettered(count=2)
    found = recorded.metrics()
    assert found[UNREADABLE_ROWS] == [({"mapName": "Customer_VIEW"}, 2)]
    assert found[DEAD_LETTERED] == [({"mapName": UNROUTED}, 2)]


# -- in flight, spans ------------------------------------------------------------------------


def test_a_call_is_in_flight_from_its_start_to_its_end(recorded: Recorded) -> None:
    with recorded.telemetry.call("Store", "Customer_VIEW", "view", ()):
        assert recorded.metrics()[CALLS_IN_FLIGHT] == [({"method": "Store"}, 1)]
    assert recorded.metrics()[CALLS_IN_FLIGHT] == [({"method": "Store"}, 0)]


def test_the_calls_span_is_a_child_of_the_shims_and_parents_its_phases_and_provider_calls(
    recorded: Recorded,
) -> None:
    telemetry = recorded.telemetry
    with telemetry.call("Store", "Customer_VIEW", "view", TRACEPARENT, size=1) as rec:
        current = trace.get_current_span()
        with rec.phase("decode"):
            # A phase is not current: a provider call in it is a child of the call's span.
            with rec.provider_call("put_schemas"):
                pass
        with rec.provider_call("store"):
            provider_span = trace.get_current_span()
            telemetry.retry("store", 1, StoreUnavailableError("down"))
        rec.stored(entries=1)
    assert not trace.get_current_span().get_span_context().is_valid
    spans = recorded.finished()
    server = spans[f"{SERVICE}/Store"]
    assert current.get_span_context() == server.get_span_context()
    assert server.kind is SpanKind.SERVER
    assert server.context is not None and server.context.trace_id == TRACE_ID
    assert server.parent is not None and server.parent.span_id == PARENT_SPAN_ID
    assert server.attributes is not None
    assert server.attributes["hazelcast.operation"] == "store"
    assert server.attributes["hazelcast.written"] == 1
    for child in ("decode", "provider.put_schemas", "provider.store"):
        parent = spans[child].parent
        assert parent is not None and parent.span_id == server.context.span_id, child
    store = spans["provider.store"]
    assert provider_span.get_span_context() == store.get_span_context()
    assert store.attributes == {"operation": "store", "provider": "sqlite"}
    assert [(e.name, dict(e.attributes or {})) for e in store.events] == [
        ("retry", {"attempt": 1, "exception.type": "StoreUnavailableError"})
    ]


def test_a_stream_closed_from_another_context_ends_its_call_as_cancelled(
    recorded: Recorded, caplog: pytest.LogCaptureFixture
) -> None:
    """gRPC may abandon a stream's generator; the loop then closes it in a context of its own."""
    telemetry = recorded.telemetry

    async def load_all_keys() -> AsyncGenerator[int, None]:
        with telemetry.call("LoadAllKeys", "Customer_VIEW", "view", TRACEPARENT) as rec:
            with rec.provider_call("load_all_keys"):
                for batch in range(3):
                    rec.keys_streamed(1)
                    yield batch

    async def scenario() -> None:
        stream = load_all_keys()

        async def first_batch() -> int:
            return await anext(stream)

        # Each task runs in a copy of the context: the first batch in one, the close in another.
        assert await asyncio.create_task(first_batch()) == 0
        await asyncio.create_task(stream.aclose())

    with caplog.at_level(logging.DEBUG):
        asyncio.run(scenario())
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    found = recorded.metrics()
    assert found[ERRORS] == [({"mapName": "Customer_VIEW", "operation": "loadAllKeys"}, 1)]
    assert found[CALLS_IN_FLIGHT] == [({"method": "LoadAllKeys"}, 0)]
    spans = recorded.finished()
    assert spans[f"{SERVICE}/LoadAllKeys"].status.description == "CANCELLED"
    assert spans["provider.load_all_keys"].status.status_code is StatusCode.ERROR


def test_the_service_name_is_the_protos() -> None:
    assert pb.DESCRIPTOR.services_by_name["MapStore"].full_name == SERVICE


# -- hooks handed to lower layers as values ------------------------------------------------

#: The shape of the writer's ``on_retry`` hook.
OnRetry = Callable[[str, int, BaseException | None], None]


def write_with_two_retries(on_retry: OnRetry) -> None:
    """A writer's retry loop, as far as the hook is concerned."""
    for attempt in (1, 2):
        on_retry("store", attempt, StoreUnavailableError("connection lost"))


def test_a_retry_is_counted_by_the_telemetry_whose_hook_the_writer_was_given() -> None:
    given, other = recorded_telemetry(), recorded_telemetry()
    try:
        write_with_two_retries(given.telemetry.retry)
        assert given.metrics()[RETRIES] == [
            ({"operation": "store", "reason": "StoreUnavailableError"}, 2)
        ]
        # No module-wide "current sidecar": another telemetry in the process sees nothing.
        assert RETRIES not in other.metrics()
    finally:
        given.telemetry.shutdown()
        other.telemetry.shutdown()


def test_a_retry_without_an_exception_is_counted_with_an_unknown_reason(
    recorded: Recorded,
) -> None:
    recorded.telemetry.retry("delete", 3, None)
    assert recorded.metrics()[RETRIES] == [({"operation": "delete", "reason": "unknown"}, 1)]


def test_codec_fallbacks_are_counted_by_type_name(recorded: Recorded) -> None:
    recorded.telemetry.codec_fallback("com.example.Order")
    recorded.telemetry.codec_fallback("com.example.Order")
    recorded.telemetry.codec_fallback("com.example.Customer")
    assert sorted(recorded.metrics()[CODEC_FALLBACKS], key=str) == [
        ({"typeName": "com.example.Customer"}, 1),
        ({"typeName": "com.example.Order"}, 2),
    ]


def test_the_pool_given_to_start_is_observed() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(Exporters(meter_provider=MeterProvider(metric_readers=[reader])))
    stats = {"pool_size": 4, "pool_available": 3, "requests_waiting": 2}
    telemetry.start(provider_name="postgres", pool_stats=lambda: stats)
    try:
        found = Recorded(telemetry, reader, InMemorySpanExporter()).metrics()
        stats.clear()  # a closed pool: no observation
        closed = Recorded(telemetry, reader, InMemorySpanExporter()).metrics()
    finally:
        telemetry.shutdown()
    assert sorted(found[POOL_CONNECTIONS], key=str) == [
        ({"state": "idle"}, 3),
        ({"state": "open"}, 4),
    ]
    assert found[POOL_WAITING] == [({}, 2)]
    assert POOL_CONNECTIONS not in closed and POOL_WAITING not in closed


def test_metrics_without_tracing_record_durations_and_make_no_span() -> None:
    reader = InMemoryMetricReader()
    telemetry = Telemetry(Exporters(meter_provider=MeterProvider(metric_readers=[reader])))
    telemetry.start(provider_name="memory")
    try:
        with telemetry.call("Load", "Customer_VIEW", "view", TRACEPARENT, size=1) as rec:
            assert not trace.get_current_span().get_span_context().is_valid
            with rec.phase("decode"), rec.provider_call("load"):
                pass
            rec.loaded(asked=1, found=0)
        found = Recorded(telemetry, reader, InMemorySpanExporter()).metrics()
    finally:
        telemetry.shutdown()
    assert found[LOAD_MISS] == [({"mapName": "Customer_VIEW"}, 1)]
    assert found[PROVIDER_DURATION][0][0] == {"operation": "load", "provider": "memory"}


# -- off --------------------------------------------------------------------------------------


def test_telemetry_is_off_by_default_and_its_hot_path_returns_at_once() -> None:
    config = parse_config({}, environ={})
    assert not config.telemetry.metrics_enabled and not config.telemetry.tracing_enabled
    telemetry = Telemetry.from_config(config.telemetry)
    assert not telemetry.enabled and telemetry.tracer is None
    filters = [list(handler.filters) for handler in logging.getLogger().handlers]
    telemetry.start(provider_name="sqlite", pool_stats=dict)
    assert [list(handler.filters) for handler in logging.getLogger().handlers] == filters
    assert telemetry.metrics_address is None
    # One shared recorder of the base class, whose every method does nothing.
    rec = telemetry.call("Store", "Customer_VIEW", "view", TRACEPARENT, size=1)
    assert type(rec) is CallRecorder
    assert telemetry.call("Load", None, None, ()) is rec
    assert rec.phase("decode") is rec.provider_call("store")
    with rec as entered, rec.phase("decode"), rec.provider_call("store"):
        assert entered is rec
        assert not trace.get_current_span().get_span_context().is_valid
        rec.stored(entries=1, failed=1)
        rec.loaded(asked=1, found=0)
        rec.deleted(keys=1)
        rec.keys_streamed(1)
        rec.failed(DecodeError("x"))
        rec.codec_error(DecodeError("x"))
        rec.unreadable_row()
        rec.dead_lettered(count=1)
    telemetry.retry("store", 1, StoreUnavailableError("down"))
    telemetry.codec_fallback("com.example.Order")
    telemetry.shutdown()


def test_a_retry_reported_to_telemetry_that_is_off_leaves_the_current_span_alone() -> None:
    spans = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(spans))
    with tracer_provider.get_tracer("someone-else").start_as_current_span("theirs"):
        Telemetry.disabled().retry("store", 1, StoreUnavailableError("down"))
    [theirs] = spans.get_finished_spans()
    assert list(theirs.events) == []


def test_calls_after_shutdown_are_not_recorded() -> None:
    recorded = recorded_telemetry()
    recorded.telemetry.shutdown()
    assert type(recorded.telemetry.call("Store", "Customer_VIEW", "view", ())) is CallRecorder
    recorded.telemetry.shutdown()  # idempotent


def test_telemetry_block_parses_with_environment_overrides() -> None:
    config = parse_config(
        {"telemetry": {"prometheus": {"enabled": True, "port": 9999}}},
        environ={"HZ_SIDECAR_TELEMETRY__SPAN_FILE": "/tmp/spans.jsonl"},
    )
    assert config.telemetry.prometheus.port == 9999
    assert config.telemetry.metrics_enabled and config.telemetry.tracing_enabled
    assert config.telemetry.span_file == "/tmp/spans.jsonl"
    assert TelemetryConfig().prometheus.port == 9464
