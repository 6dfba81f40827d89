"""Where the sidecar's time goes per entry: the codec alone, then Store and Load in process.

Two parts, each run with the compiled helpers and without them, in this one process:

1. the codec on ``make bench``'s records: a value's Data bytes to its JSON document
   (Store) and a stored document's text back to the bytes (Load), µs per value, for
   the generated Python functions and for the compiled accelerator;
2. the service and the PostgreSQL provider in process (no gRPC), on a private
   PostgreSQL server: ``--entries`` records stored as Store calls of 1,000 into a view
   map, then loaded back as Load calls of 1,000 keys; CPU per entry of this process
   (``time.process_time``: the sidecar's share, PostgreSQL's backend excluded) and wall
   time per entry. ``--profile`` adds a cProfile listing of the accelerated run.

The accelerator is turned off as a user would, with ``codec.accelerator: disabled``
(:func:`sidecar.codec.accel.use`) and the provider's ``compiled-arrays: false``.

    .venv/bin/python bench/profile_entries.py [--entries 20000] [--profile]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import struct
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.run import Data, postgres  # noqa: E402
from hzsidecar.v1 import mapstore_pb2 as pb  # noqa: E402
from sidecar.codec import SchemaRegistry, accel, compiled  # noqa: E402
from sidecar.codec.plan import plan_of  # noqa: E402
from sidecar.config import MapRoute, PersistenceConfig  # noqa: E402
from sidecar.providers.base import SchemaRecord, StoreKind  # noqa: E402
from sidecar.providers.postgres import PostgresProvider  # noqa: E402
from sidecar.routing import Router  # noqa: E402
from sidecar.service import MapStoreService  # noqa: E402
from sidecar.writer import Writer  # noqa: E402

BATCH = 1000


class _Context:
    """What the service asks of a gRPC context, for calls made in process."""

    def time_remaining(self) -> float:
        return 120.0

    def invocation_metadata(self) -> tuple[()]:
        return ()

    def set_trailing_metadata(self, metadata: object) -> None:
        return None

    async def abort(self, code: object, details: str = "", trailing_metadata: object = ()) -> None:
        raise RuntimeError(code, details)


def best_of(runs: int, fn: Callable[[], object], count: int) -> float:
    """The fastest of ``runs`` runs of ``fn``, in µs per item."""
    best = float("inf")
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return 1e6 * best / count


def codec_figures(data: Data) -> None:
    """Part 1: one flat schema's decoder and encoder, Python and compiled."""
    registry = SchemaRegistry()
    for message in data.schemas:
        fields = tuple((f.name, f.kind) for f in message.fields)
        registry.insert(
            registry.check(SchemaRecord(message.schema_id, message.type_name, fields, None))
        )
    schema_id = struct.unpack_from(">q", data.values[0], 8)[0]
    plan = plan_of(registry.get(schema_id))
    python = compiled.python_decoder(plan)
    values = data.values
    # The write order the records' bytes follow, claimed as a provider keeps it.
    order = next(
        tuple(o)
        for o in (json.loads(python(v)[0]).get("@order", []) for v in values)
        if len(o) == len(plan.var_names)
    )
    rank, seq, pending = plan.order_numbers(order)
    documents = [python(v, rank, pending)[0] for v in values]
    encoder = compiled._compile_encoder(plan)
    n = len(values)
    print(f"codec, {n:,} records of {data.value_bytes:.0f} B (µs per value, best of 5):")
    store_python = best_of(5, lambda: [python(v, rank) for v in values], n)
    load_python = best_of(5, lambda: [encoder(json.loads(d), seq) for d in documents], n)
    if not accel.available():
        print(f"  Store, bytes -> document: Python {store_python:.2f}")
        print(f"  Load, document -> bytes: Python (json.loads + generated) {load_python:.2f}")
        print("  (the accelerator is not built)")
        return
    decoder = compiled._accelerated_decoder(plan)
    text_encoder = compiled._accelerated_text_encoder(plan)
    assert all(decoder(v, rank)[0] == python(v, rank)[0] for v in values)
    assert all(text_encoder(d, seq) == v for d, v in zip(documents, values, strict=True))
    store_fast = best_of(5, lambda: [decoder(v, rank) for v in values], n)
    load_fast = best_of(5, lambda: [text_encoder(d, seq) for d in documents], n)
    print(f"  Store, bytes -> document: Python {store_python:.2f}, compiled {store_fast:.2f}")
    print(
        f"  Load, document -> bytes: Python (json.loads + generated) {load_python:.2f}, "
        f"compiled {load_fast:.2f}"
    )


async def service_figures(dsn: str, data: Data, *, fast: bool, profile: bool) -> None:
    """Part 2: Store then Load through the service and the provider, in process."""
    accel.use("auto" if fast else "disabled")
    provider = PostgresProvider({"dsn": dsn, "compiled-arrays": fast})
    await provider.open()
    routes = (MapRoute(pattern="*_VIEW", kind=StoreKind.VIEW),)
    service = MapStoreService(
        provider=provider,
        router=Router(routes, PersistenceConfig()),
        registry=SchemaRegistry(),
        writer=Writer(provider),
    )
    name = f"entries_{'fast' if fast else 'python'}_VIEW"
    count = data.count
    stores = [
        pb.StoreRequest(
            map_name=name,
            entries=[
                pb.Entry(key=data.keys[i], value=data.values[i])
                for i in range(start, min(start + BATCH, count))
            ],
            schemas=data.schemas,
        )
        for start in range(0, count, BATCH)
    ]
    loads = [
        pb.LoadRequest(map_name=name, keys=data.keys[start : start + BATCH])
        for start in range(0, count, BATCH)
    ]
    context: Any = _Context()
    # The first call of each kind learns the schema and warms the statements up.
    await service.Store(stores[0], context)
    await service.Load(loads[0], context)
    gc.freeze()  # as the server does once started
    profiler = cProfile.Profile() if profile else None
    label = "compiled helpers" if fast else "pure Python"
    for kind, calls in (("Store", stores[1:]), ("Load", loads[1:])):
        entries = sum(len(c.entries) if kind == "Store" else len(c.keys) for c in calls)
        cpu, wall = time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        for call in calls:
            if kind == "Store":
                await service.Store(call, context)
            else:
                answer = await service.Load(call, context)
                assert len(answer.entries) == len(call.keys)
        if profiler is not None:
            profiler.disable()
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        print(
            f"  {kind} calls of {BATCH:,}, {label}: CPU {1e6 * cpu / entries:.1f} µs per entry, "
            f"wall {1e6 * wall / entries:.1f} µs per entry"
        )
    await provider.close()
    gc.unfreeze()
    accel.use("auto")
    if profiler is not None:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(25)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--entries", type=int, default=20_000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    data = Data(args.entries)
    codec_figures(data)
    print(f"service and PostgreSQL provider in process, {args.entries:,} entries:")
    with postgres() as server:
        for fast in (False, True):
            dsn = server.create_database(f"entries_{int(fast)}")
            asyncio.run(service_figures(dsn, data, fast=fast, profile=args.profile and fast))


if __name__ == "__main__":
    main()
