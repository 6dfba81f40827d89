"""Metric names, histogram buckets, and the instruments: created once from one meter.

The reference framework's names, types and attributes (its ``PersistenceMetrics``,
see the persistence guide's "Monitoring" section) are kept, so its dashboard and
alerts carry over; the sidecar adds its own under ``hz_sidecar.*``. The hot path
holds an :class:`Instruments` and only calls ``.add`` and ``.record`` on it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from opentelemetry import metrics

#: The instrumentation scope of every meter and tracer of the sidecar.
SCOPE: Final = "hz-sidecar"

# -- The reference's (attributes mapName, storeType, operation) -------------------------

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

#: Entries kept in the dead-letter table (attributes: mapName).
DEAD_LETTERED: Final = "persistence.store.dead_lettered"
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
#: Values the compiled codec handed to the generic one (attributes: typeName).
CODEC_FALLBACKS: Final = "hz_sidecar.codec.fallbacks"
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

#: What a provider's ``pool_stats()`` answers (psycopg_pool ``get_stats()`` keys); empty
#: while the pool is closed.
PoolStats = Callable[[], Mapping[str, int]]


@dataclass(frozen=True, slots=True)
class Instruments:
    """Every synchronous instrument, created once from one meter."""

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
    codec_fallbacks: metrics.Counter
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
            codec_fallbacks=meter.create_counter(
                CODEC_FALLBACKS,
                description="Values the compiled codec handed to the generic one, by type",
            ),
            unreadable_rows=meter.create_counter(
                UNREADABLE_ROWS, description="Stored rows skipped by loads: they cannot be read"
            ),
        )


def observe_pool(meter: metrics.Meter, pool_stats: PoolStats) -> None:
    """Gauges of the provider's connection pool, read from ``pool_stats`` at each collection."""

    def connections(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        stats = pool_stats()
        if "pool_size" in stats:
            yield metrics.Observation(stats["pool_size"], {"state": "open"})
            yield metrics.Observation(stats.get("pool_available", 0), {"state": "idle"})

    def waiting(_: metrics.CallbackOptions) -> Iterable[metrics.Observation]:
        stats = pool_stats()
        if "pool_size" in stats:
            yield metrics.Observation(stats.get("requests_waiting", 0))

    meter.create_observable_gauge(
        POOL_CONNECTIONS, [connections], description="Connections of the provider's pool"
    )
    meter.create_observable_gauge(
        POOL_WAITING, [waiting], description="Requests waiting for a pooled connection"
    )
