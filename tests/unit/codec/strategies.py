"""Hypothesis strategies: random Compact schemas and records in the codec's value types."""

from __future__ import annotations

import math
import struct
from decimal import Decimal
from typing import Any

from hazelcast.serialization.api import FieldKind
from hypothesis import strategies as st

from sidecar.codec import CompactRecord, LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.codec.kinds import KINDS
from sidecar.codec.schemas import COMPACT_FIELD_KINDS, build_schema

K = FieldKind
NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,7}", fullmatch=True)


def _canonical_nan(x: float) -> float:
    return math.nan if math.isnan(x) else x


def _date() -> st.SearchStrategy[LocalDate]:
    year = st.one_of(st.integers(1, 9999), st.integers(-999_999_999, 999_999_999))
    return st.builds(
        lambda y, m, d: LocalDate(y, m, min(d, 28) if m == 2 else min(d, 30)),
        year,
        st.integers(1, 12),
        st.integers(1, 31),
    )


TIME = st.builds(
    LocalTime,
    st.integers(0, 23),
    st.integers(0, 59),
    st.integers(0, 59),
    st.integers(0, 999_999_999),
)
TIMESTAMP = st.builds(LocalDateTime, _date(), TIME)
ITEMS: dict[str, st.SearchStrategy[Any]] = {
    "bool": st.booleans(),
    "int8": st.integers(-(2**7), 2**7 - 1),
    "int16": st.integers(-(2**15), 2**15 - 1),
    "int32": st.integers(-(2**31), 2**31 - 1),
    "int64": st.integers(-(2**63), 2**63 - 1),
    "float32": st.floats(width=32).map(_canonical_nan),
    "float64": st.floats().map(_canonical_nan),
    "string": st.one_of(st.text(max_size=12), st.sampled_from(["é" * 200, "z" * 66000])),
    "decimal": st.builds(
        lambda unscaled, scale: Decimal(
            (0 if unscaled >= 0 else 1, Decimal(abs(unscaled)).as_tuple().digits, -scale)
        ),
        st.integers(-(10**30), 10**30),
        st.one_of(st.integers(-20, 20), st.sampled_from([2**31 - 1, -(2**31)])),
    ),
    "time": TIME,
    "date": _date(),
    "timestamp": TIMESTAMP,
    "timestamp_tz": st.builds(OffsetDateTime, TIMESTAMP, st.integers(-64800, 64800)),
}
LEAF_KINDS = sorted(
    (k for k in COMPACT_FIELD_KINDS if k not in (K.COMPACT, K.ARRAY_OF_COMPACT)), key=int
)


@st.composite
def schemas(draw: st.DrawFn, kinds: list[FieldKind], type_name: str) -> Any:
    names = draw(st.lists(NAMES, max_size=8, unique=True))
    fields = [(name, int(draw(st.sampled_from(kinds)))) for name in names]
    return build_schema(type_name, fields)


def _value(draw: st.DrawFn, kind: FieldKind, child: Any | None) -> object:
    encoding, is_array, items_nullable = (
        KINDS[kind].item,
        KINDS[kind].array,
        KINDS[kind].items_nullable,
    )
    if encoding == "compact":
        assert child is not None
        item: st.SearchStrategy[Any] = st.just(None).flatmap(lambda _: records(child))
    else:
        item = ITEMS[encoding]
    nullable = KINDS[kind].nullable
    if is_array:
        if items_nullable:
            item = st.none() | item
        strategy: st.SearchStrategy[Any] = st.lists(item, max_size=4)
    else:
        strategy = item
    if nullable:
        strategy = st.none() | strategy
    return draw(strategy)


@st.composite
def records(
    draw: st.DrawFn, schema: Any, child: Any | None = None, shuffle: bool = True
) -> CompactRecord:
    fields = {f.name: _value(draw, f.kind, child) for f in schema.fields}
    write_order = None
    if shuffle:
        present = [f.name for f in schema.fields if f.index >= 0 and fields[f.name] is not None]
        order = tuple(draw(st.permutations(present)))
        write_order = None if list(order) == present else order
    return CompactRecord(schema.type_name, schema, fields, write_order)


@st.composite
def nested_records(draw: st.DrawFn) -> tuple[CompactRecord, list[Any]]:
    """A record whose schema may have COMPACT / ARRAY_OF_COMPACT fields of a child schema."""
    child = draw(schemas(LEAF_KINDS, "Child"))
    parent = draw(schemas([*LEAF_KINDS, K.COMPACT, K.ARRAY_OF_COMPACT], "Parent"))
    return draw(records(parent, child)), [child, parent]


def mutate(data: st.DataObject, original: bytes, start: int, lengths: list[int]) -> bytes:
    """``original`` with 1-3 damages after byte ``start``: a byte, an int32 from ``lengths``
    (or the total length), a cut, or inserted bytes."""
    mutated = bytearray(original)
    for _ in range(data.draw(st.integers(1, 3))):
        how = data.draw(st.sampled_from(["byte", "int", "cut", "insert"]))
        at = data.draw(st.integers(start, max(start, len(mutated) - 1)))
        if how == "byte" and at < len(mutated):
            mutated[at] = data.draw(st.integers(0, 255))
        elif how == "int":
            value = data.draw(st.sampled_from([*lengths, len(mutated)]))
            mutated[at : at + 4] = struct.pack(">i", value)
        elif how == "cut":
            del mutated[at:]
        else:
            mutated[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    return bytes(mutated)
