"""Byte-level cases the client cannot write: nanoseconds, Java's extended years, second offsets."""

from __future__ import annotations

import json
import struct
from decimal import Decimal

import pytest
from hazelcast.serialization.api import FieldKind

from sidecar.codec import (
    DataCodec,
    LocalDate,
    LocalDateTime,
    LocalTime,
    OffsetDateTime,
    SchemaRegistry,
)
from sidecar.codec.compact import decimal_parts
from sidecar.codec.schemas import build_schema, to_record
from sidecar.errors import DecodeError
from sidecar.providers.base import StoredValue

K = FieldKind


def one_field(kind: FieldKind, value_bytes: bytes | None) -> tuple[DataCodec, bytes]:
    """A Data holding one variable-size field ``value`` laid out by hand, as Java writes it."""
    schema = build_schema("One", [("value", kind)])
    registry = SchemaRegistry()
    registry.add(to_record(schema))
    body = value_bytes or b""
    entry = ">B" if len(body) < 255 else ">H" if len(body) < 65535 else ">i"
    table = struct.pack(entry, -1 & (0xFF if entry == ">B" else 0xFFFF if entry == ">H" else -1))
    if value_bytes is not None:
        table = struct.pack(entry, 0)
    payload = struct.pack(">qi", schema.schema_id, len(body)) + body + table
    return DataCodec(registry), struct.pack(">ii", 0, -55) + payload


def document_value(codec: DataCodec, data: bytes) -> object:
    decoded = codec.decode_value(data)
    assert codec.encode_value(decoded.stored).data == data
    return json.loads(decoded.stored.document)["value"]


@pytest.mark.parametrize(
    ("raw", "expected", "text"),
    [
        (
            struct.pack(">bbbi", 13, 45, 7, 123456789),
            LocalTime(13, 45, 7, 123456789),
            "13:45:07.123456789",
        ),
        (struct.pack(">bbbi", 0, 0, 0, 1), LocalTime(0, 0, 0, 1), "00:00:00.000000001"),
        (
            struct.pack(">bbbi", 23, 59, 59, 500000000),
            LocalTime(23, 59, 59, 500000000),
            "23:59:59.5",
        ),
        (struct.pack(">bbbi", 12, 0, 0, 0), LocalTime(12, 0, 0, 0), "12:00:00"),
    ],
)
def test_time_keeps_nanoseconds(raw: bytes, expected: LocalTime, text: str) -> None:
    codec, data = one_field(K.TIME, raw)
    assert codec.decode_value(data).record.fields["value"] == expected  # type: ignore[union-attr]
    assert document_value(codec, data) == text


@pytest.mark.parametrize(
    ("year", "text"),
    [
        (12345, "+12345-01-01"),
        (-1, "-0001-01-01"),
        (0, "0000-01-01"),
        (999_999_999, "+999999999-01-01"),
        (-999_999_999, "-999999999-01-01"),
    ],
)
def test_date_keeps_years_outside_python_range(year: int, text: str) -> None:
    codec, data = one_field(K.DATE, struct.pack(">ibb", year, 1, 1))
    assert codec.decode_value(data).record.fields["value"] == LocalDate(year, 1, 1)  # type: ignore[union-attr]
    assert document_value(codec, data) == text


def test_timestamp_keeps_nanoseconds_and_big_years() -> None:
    codec, data = one_field(K.TIMESTAMP, struct.pack(">ibbbbbi", 20000, 2, 29, 1, 2, 3, 4))
    assert codec.decode_value(data).record.fields["value"] == LocalDateTime(  # type: ignore[union-attr]
        LocalDate(20000, 2, 29), LocalTime(1, 2, 3, 4)
    )
    assert document_value(codec, data) == "+20000-02-29T01:02:03.000000004"


@pytest.mark.parametrize(
    ("offset", "suffix"),
    [
        (19800, "+05:30"),
        (-3600 * 18, "-18:00"),
        (3723, "+01:02:03"),
        (0, "+00:00"),
        (-1, "-00:00:01"),
    ],
)
def test_timestamp_with_timezone_keeps_second_offsets(offset: int, suffix: str) -> None:
    raw = struct.pack(">ibbbbbii", -44, 3, 15, 12, 0, 0, 999999999, offset)
    codec, data = one_field(K.TIMESTAMP_WITH_TIMEZONE, raw)
    expected = OffsetDateTime(
        LocalDateTime(LocalDate(-44, 3, 15), LocalTime(12, 0, 0, 999999999)), offset
    )
    assert codec.decode_value(data).record.fields["value"] == expected  # type: ignore[union-attr]
    assert document_value(codec, data) == "-0044-03-15T12:00:00.999999999" + suffix


def java_decimal(unscaled: int, scale: int) -> bytes:
    width = (8 + (unscaled + (unscaled < 0)).bit_length()) // 8  # BigInteger.toByteArray length
    return (
        struct.pack(">i", width)
        + unscaled.to_bytes(width, "big", signed=True)
        + struct.pack(">i", scale)
    )


@pytest.mark.parametrize(
    ("unscaled", "scale", "text"),
    [
        (1250, 2, "12.50"),
        (0, 10, "0.0000000000"),
        (-5, 0, "-5"),
        (12, -3, "1.2E+4"),
        (-(2**200), 7, None),
        (255, 2**31 - 1, None),
        (-128, -(2**31), None),
    ],
)
def test_decimal_keeps_unscaled_value_and_scale(
    unscaled: int, scale: int, text: str | None
) -> None:
    codec, data = one_field(K.DECIMAL, java_decimal(unscaled, scale))
    value = codec.decode_value(data).record.fields["value"]  # type: ignore[union-attr]
    assert isinstance(value, Decimal)
    assert decimal_parts(value) == (unscaled, scale)
    stored = document_value(codec, data)
    if text is not None:
        assert stored == text


def test_decimal_with_more_digits_than_int_str_limit() -> None:
    codec, data = one_field(K.DECIMAL, java_decimal(7**6000, 3))
    document_value(codec, data)


@pytest.mark.parametrize(
    ("kind", "raw", "text"),
    [
        (K.NULLABLE_FLOAT64, struct.pack(">d", float("nan")), "NaN"),
        (K.NULLABLE_FLOAT64, struct.pack(">d", float("-inf")), "-Infinity"),
        (K.NULLABLE_FLOAT64, struct.pack(">d", -0.0), "-0.0"),
        (K.NULLABLE_FLOAT32, struct.pack(">f", float("inf")), "Infinity"),
        (K.NULLABLE_FLOAT32, struct.pack(">f", 0.1), 0.1),
        (K.NULLABLE_FLOAT32, struct.pack(">f", 3.4028234663852886e38), 3.4028235e38),
        (K.NULLABLE_FLOAT32, b"\x00\x00\x00\x01", 1e-45),
        (K.NULLABLE_FLOAT64, struct.pack(">d", 5e-324), 5e-324),
    ],
)
def test_float_specials_and_shortest_float32_text(
    kind: FieldKind, raw: bytes, text: object
) -> None:
    codec, data = one_field(kind, raw)
    assert document_value(codec, data) == text


def test_float_read_back_from_jsonb_style_integers() -> None:
    # PostgreSQL JSONB prints 3.4028235e38 as a plain integer; it must select the same float32.
    codec, data = one_field(K.NULLABLE_FLOAT32, struct.pack(">f", 3.4028234663852886e38))
    stored = codec.decode_value(data).stored
    document = '{"value": 340282350000000000000000000000000000000}'
    again = StoredValue(stored.format, document, stored.type_name, stored.schema_id)
    assert codec.encode_value(again).data == data


def test_non_canonical_nan_is_refused_not_silently_changed() -> None:
    codec, data = one_field(K.NULLABLE_FLOAT64, bytes.fromhex("fff8000000000001"))
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_value(data)


def test_non_minimal_big_integer_is_refused() -> None:
    codec, data = one_field(K.DECIMAL, struct.pack(">i", 2) + b"\x00\x05" + struct.pack(">i", 0))
    with pytest.raises(DecodeError, match="canonical"):
        codec.decode_value(data)


def test_compact_document_is_readable_json_in_schema_order() -> None:
    schema = build_schema(
        "Order",
        [("tags", K.ARRAY_OF_STRING.value), ("amount", K.FLOAT64.value), ("id", K.INT64.value)],
    )
    registry = SchemaRegistry()
    registry.add(to_record(schema))
    codec = DataCodec(registry)
    stored = StoredValue(
        "compact", '{"amount": 12.5, "id": 7, "tags": ["a"]}', "Order", schema.schema_id
    )
    encoded = codec.encode_value(stored)
    assert codec.decode_value(encoded.data).stored == stored
