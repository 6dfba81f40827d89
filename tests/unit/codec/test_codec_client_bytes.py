"""Bytes the client writes decode to the expected values and re-encode identically."""

from __future__ import annotations

import datetime as dt
import struct
from decimal import Decimal
from typing import Any

import pytest
from hazelcast.serialization.api import FieldKind

from sidecar.codec import (
    CompactRecord,
    DataCodec,
    LocalDate,
    LocalDateTime,
    LocalTime,
    OffsetDateTime,
    SchemaRegistry,
)
from sidecar.codec.schemas import COMPACT_FIELD_KINDS, to_record

from .codec_client import ClientWorld

K = FieldKind


def f32(x: float) -> float:
    return float(struct.unpack(">f", struct.pack(">f", x))[0])


TZ = dt.timezone(dt.timedelta(hours=5, minutes=30))
NEG_TZ = dt.timezone(-dt.timedelta(hours=11))
PY_TIME = dt.time(13, 45, 7, 123456)
TIME = LocalTime(13, 45, 7, 123456000)
PY_TS = dt.datetime(2024, 2, 29, 23, 59, 59, 999999)
TS = LocalDateTime(LocalDate(2024, 2, 29), LocalTime(23, 59, 59, 999999000))
PY_TSTZ = dt.datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=TZ)
TSTZ = OffsetDateTime(LocalDateTime(LocalDate(1, 1, 1), LocalTime(0, 0, 0, 1000)), 19800)
DEC = Decimal("-12345678901234567890.0012300")

# kind -> (value as the client writes it, value as the codec decodes it)
CASES: dict[FieldKind, tuple[Any, Any]] = {
    K.BOOLEAN: (True, True),
    K.INT8: (-128, -128),
    K.INT16: (32767, 32767),
    K.INT32: (-(2**31), -(2**31)),
    K.INT64: (2**63 - 1, 2**63 - 1),
    K.FLOAT32: (0.1, f32(0.1)),
    K.FLOAT64: (-1e-300, -1e-300),
    K.NULLABLE_BOOLEAN: (False, False),
    K.NULLABLE_INT8: (127, 127),
    K.NULLABLE_INT16: (-32768, -32768),
    K.NULLABLE_INT32: (123456, 123456),
    K.NULLABLE_INT64: (-(2**63), -(2**63)),
    K.NULLABLE_FLOAT32: (3.5, 3.5),
    K.NULLABLE_FLOAT64: (2.5e300, 2.5e300),
    K.STRING: ("héllo ✓ 𝄞", "héllo ✓ 𝄞"),
    K.DECIMAL: (DEC, DEC),
    K.TIME: (PY_TIME, TIME),
    K.DATE: (dt.date(9999, 12, 31), LocalDate(9999, 12, 31)),
    K.TIMESTAMP: (PY_TS, TS),
    K.TIMESTAMP_WITH_TIMEZONE: (PY_TSTZ, TSTZ),
    K.ARRAY_OF_BOOLEAN: ([True, False] * 5 + [True], [True, False] * 5 + [True]),
    K.ARRAY_OF_INT8: ([-128, 0, 127], [-128, 0, 127]),
    K.ARRAY_OF_INT16: ([-32768, 1, 32767], [-32768, 1, 32767]),
    K.ARRAY_OF_INT32: ([1, -2, 3], [1, -2, 3]),
    K.ARRAY_OF_INT64: ([2**62, -1], [2**62, -1]),
    K.ARRAY_OF_FLOAT32: ([0.1, -2.0], [f32(0.1), -2.0]),
    K.ARRAY_OF_FLOAT64: ([0.1, -0.0], [0.1, -0.0]),
    K.ARRAY_OF_NULLABLE_BOOLEAN: ([True, None, False], [True, None, False]),
    K.ARRAY_OF_NULLABLE_INT8: ([1, None, -1], [1, None, -1]),
    K.ARRAY_OF_NULLABLE_INT16: ([None, 300], [None, 300]),
    K.ARRAY_OF_NULLABLE_INT32: ([None], [None]),
    K.ARRAY_OF_NULLABLE_INT64: ([5, None], [5, None]),
    K.ARRAY_OF_NULLABLE_FLOAT32: ([1.5, None], [1.5, None]),
    K.ARRAY_OF_NULLABLE_FLOAT64: ([None, 1e100], [None, 1e100]),
    K.ARRAY_OF_STRING: (["a", None, ""], ["a", None, ""]),
    K.ARRAY_OF_DECIMAL: (
        [Decimal("1.10"), None, Decimal("-0.5")],
        [Decimal("1.10"), None, Decimal("-0.5")],
    ),
    K.ARRAY_OF_TIME: ([PY_TIME, None], [TIME, None]),
    K.ARRAY_OF_DATE: ([dt.date(1, 1, 1), None], [LocalDate(1, 1, 1), None]),
    K.ARRAY_OF_TIMESTAMP: ([None, PY_TS], [None, TS]),
    K.ARRAY_OF_TIMESTAMP_WITH_TIMEZONE: (
        [PY_TSTZ, dt.datetime(2020, 6, 1, 12, tzinfo=NEG_TZ)],
        [TSTZ, OffsetDateTime(LocalDateTime(LocalDate(2020, 6, 1), LocalTime(12, 0, 0)), -39600)],
    ),
}

NULLABLE_KINDS = [
    k
    for k in CASES
    if k not in {K.BOOLEAN, K.INT8, K.INT16, K.INT32, K.INT64, K.FLOAT32, K.FLOAT64}
]


def roundtrip(world: ClientWorld, obj: object) -> tuple[CompactRecord, bytes, DataCodec]:
    data, schemas = world.to_bytes(obj)
    registry = SchemaRegistry()
    for schema in schemas:
        registry.add(to_record(schema))
    codec = DataCodec(registry)
    decoded = codec.decode_value(data)
    assert decoded.record is not None
    assert codec.encode_value(decoded.stored).data == data
    assert decoded.schema_ids == frozenset(s.schema_id for s in schemas)
    key = codec.decode_key(data)
    assert codec.encode_key(key).data == data
    return decoded.record, data, codec


def test_every_compact_kind_except_compact_has_a_case() -> None:
    assert set(CASES) | {K.COMPACT, K.ARRAY_OF_COMPACT} == set(COMPACT_FIELD_KINDS)


@pytest.mark.parametrize("kind", list(CASES), ids=lambda k: k.name)
def test_client_bytes_of_each_kind_decode_and_reencode_identically(kind: FieldKind) -> None:
    world = ClientWorld()
    cls = world.define(f"One{kind.name}", [("value", kind)])
    written, expected = CASES[kind]
    record, _, _ = roundtrip(world, cls(value=written))
    assert record.fields == {"value": expected}


@pytest.mark.parametrize("kind", NULLABLE_KINDS, ids=lambda k: k.name)
def test_client_null_of_each_nullable_kind_round_trips(kind: FieldKind) -> None:
    world = ClientWorld()
    cls = world.define(f"Null{kind.name}", [("value", kind), ("n", K.INT32)])
    record, _, _ = roundtrip(world, cls(value=None, n=7))
    assert record.fields == {"n": 7, "value": None}


def test_client_nested_compact_and_array_of_compact_round_trip() -> None:
    world = ClientWorld()
    address = world.define("Address", [("city", K.STRING), ("zip", K.INT32)])
    person = world.define(
        "Person",
        [
            ("home", K.COMPACT),
            ("previous", K.ARRAY_OF_COMPACT),
            ("name", K.STRING),
            ("none", K.COMPACT),
        ],
    )
    obj = person(
        home=address(city="Oslo", zip=150),
        previous=[address(city="Bergen", zip=5003), None],
        name="Kari",
        none=None,
    )
    record, _, _ = roundtrip(world, obj)
    home = record.fields["home"]
    assert isinstance(home, CompactRecord)
    assert home.type_name == "Address"
    assert home.fields == {"city": "Oslo", "zip": 150}
    previous = record.fields["previous"]
    assert isinstance(previous, list) and previous[1] is None
    assert record.fields["none"] is None


def test_client_many_booleans_span_several_bytes() -> None:
    world = ClientWorld()
    fields = [(f"b{i:02d}", K.BOOLEAN) for i in range(19)]
    cls = world.define("Flags", fields)
    values = {name: i % 3 == 0 for i, (name, _) in enumerate(fields)}
    record, _, _ = roundtrip(world, cls(**values))
    assert record.fields == values


@pytest.mark.parametrize("size", [10, 200, 300, 70000])
def test_offset_table_entry_size_follows_data_length(size: int) -> None:
    # uint8 entries below 255 bytes of data, uint16 below 65535, int32 beyond.
    world = ClientWorld()
    cls = world.define("Text", [("a", K.STRING), ("b", K.STRING), ("c", K.ARRAY_OF_STRING)])
    record, _, _ = roundtrip(world, cls(a="x" * size, b=None, c=["y" * size, None]))
    assert record.fields["a"] == "x" * size
    assert record.fields["b"] is None


def test_client_serializer_writing_out_of_name_order_is_reproduced() -> None:
    # Java's reflective serializer writes fields in declaration order; only the offset
    # table is in name order. The codec keeps that order so the bytes come back.
    world = ClientWorld()
    cls = world.define(
        "Order", [("zeta", K.STRING), ("alpha", K.STRING), ("mid", K.ARRAY_OF_INT32)]
    )
    record, _, codec = roundtrip(world, cls(zeta="z", alpha="a", mid=[1]))
    assert record.write_order == ("zeta", "alpha", "mid")
    assert (
        '"@order": ["zeta", "alpha", "mid"]'
        in codec.decode_value(world.to_bytes(cls(zeta="z", alpha="a", mid=[1]))[0]).stored.document
    )


def test_client_reads_bytes_the_codec_wrote() -> None:
    world = ClientWorld()
    cls = world.define(
        "Back", [("when", K.TIMESTAMP), ("amount", K.DECIMAL), ("n", K.NULLABLE_INT64)]
    )
    _, data, codec = roundtrip(world, cls(when=PY_TS, amount=DEC, n=None))
    again = codec.encode_value(codec.decode_value(data).stored).data
    obj = world.to_object(again)
    assert obj.values == {"when": PY_TS, "amount": DEC, "n": None}
