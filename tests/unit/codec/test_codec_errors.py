"""Schemas that lie, unknown ids and corrupt bytes fail with the codec's errors, never a crash."""

from __future__ import annotations

import struct

import pytest
from hazelcast.serialization.api import FieldKind

from sidecar.codec import CompactRecord, DataCodec, SchemaRegistry, encode_compact
from sidecar.codec.schemas import build_schema, to_record
from sidecar.errors import (
    DecodeError,
    SchemaMismatchError,
    UnknownSchemaError,
    UnsupportedFieldKindError,
)
from sidecar.providers.base import SchemaRecord, StoredKey, StoredValue

K = FieldKind
HEADER = struct.pack(">ii", 0, -55)


def registry_with(*schemas: object) -> SchemaRegistry:
    registry = SchemaRegistry()
    for schema in schemas:
        registry.add(to_record(schema))
    return registry


def test_fingerprint_mismatch_is_refused() -> None:
    record = to_record(build_schema("T", [("a", K.INT32.value)]))
    with pytest.raises(SchemaMismatchError, match="fingerprint"):
        SchemaRegistry().add(SchemaRecord(record.schema_id + 1, "T", record.fields))
    with pytest.raises(SchemaMismatchError):
        SchemaRegistry().add(SchemaRecord(record.schema_id, "T", (("a", K.INT64.value),)))


def test_registry_add_is_idempotent_and_lists_records() -> None:
    record = to_record(build_schema("T", [("b", K.STRING.value), ("a", K.INT32.value)]))
    registry = SchemaRegistry()
    first = registry.add(record)
    assert (
        registry.add(SchemaRecord(record.schema_id, "T", tuple(reversed(record.fields)))) is first
    )
    assert record.schema_id in registry and 42 not in registry
    assert registry.records() == [record]
    assert registry.get(record.schema_id) is first


@pytest.mark.parametrize("kind_id", [0, 5, 6, 31, 32, 47, -1, 1000])
def test_field_kinds_without_compact_encoding_are_refused(kind_id: int) -> None:
    with pytest.raises(UnsupportedFieldKindError, match="field 'x'"):
        SchemaRegistry().add(SchemaRecord(1, "T", (("x", kind_id),)))


def test_duplicate_field_names_are_refused() -> None:
    with pytest.raises(SchemaMismatchError, match="duplicate"):
        SchemaRegistry().add(SchemaRecord(1, "T", (("x", 9), ("x", 9))))


def test_unknown_schema_id_top_level_and_nested() -> None:
    child = build_schema("C", [("n", K.INT32.value)])
    parent = build_schema("P", [("c", K.COMPACT.value)])
    payload, _ = encode_compact(
        CompactRecord("P", parent, {"c": CompactRecord("C", child, {"n": 1})})
    )
    with pytest.raises(UnknownSchemaError) as caught:
        DataCodec(SchemaRegistry()).decode_value(HEADER + payload)
    assert caught.value.schema_id == parent.schema_id
    with pytest.raises(UnknownSchemaError) as caught:
        DataCodec(registry_with(parent)).decode_value(HEADER + payload)
    assert caught.value.schema_id == child.schema_id
    with pytest.raises(UnknownSchemaError):
        DataCodec(SchemaRegistry()).encode_value(StoredValue("compact", "{}", "P", 99))


def string_record() -> tuple[DataCodec, bytes]:
    schema = build_schema("S", [("s", K.STRING.value), ("n", K.INT32.value)])
    payload, _ = encode_compact(CompactRecord("S", schema, {"s": "hello", "n": 3}))
    return DataCodec(registry_with(schema)), HEADER + payload


def test_truncated_data_is_a_decode_error() -> None:
    codec, data = string_record()
    for cut in range(len(data)):
        with pytest.raises(DecodeError):
            codec.decode_value(data[:cut])


def test_invalid_utf8_is_a_decode_error() -> None:
    codec, data = string_record()
    broken = data.replace(b"hello", b"he\xffll")
    with pytest.raises(DecodeError, match="UTF-8"):
        codec.decode_value(broken)


def test_lying_lengths_are_decode_errors_without_giant_allocations() -> None:
    codec, data = string_record()
    at = data.index(b"hello") - 4
    for lie in (-1, 2**31 - 1, 6, -(2**31)):
        with pytest.raises(DecodeError):
            codec.decode_value(data[:at] + struct.pack(">i", lie) + data[at + 4 :])
    schema = build_schema("A", [("a", K.ARRAY_OF_INT64.value)])
    payload, _ = encode_compact(CompactRecord("A", schema, {"a": [1, 2]}))
    bad = bytearray(HEADER + payload)
    bad[8 + 8 + 4 : 8 + 8 + 8] = struct.pack(">i", 2**31 - 1)
    with pytest.raises(DecodeError, match="truncated"):
        DataCodec(registry_with(schema)).decode_value(bytes(bad))


def test_nesting_deeper_than_the_limit_is_a_decode_error() -> None:
    node = build_schema("Node", [("next", K.COMPACT.value)])
    record = CompactRecord("Node", node, {"next": None})
    for _ in range(70):
        record = CompactRecord("Node", node, {"next": record})
    payload, _ = encode_compact(record, max_depth=100)
    codec = DataCodec(registry_with(node))
    with pytest.raises(DecodeError, match="nested deeper than 64"):
        codec.decode_value(HEADER + payload)
    with pytest.raises(DecodeError, match="nested deeper"):
        encode_compact(record)


def test_shared_offsets_cannot_multiply_work() -> None:
    # Every item of an array of compact pointing at the same nested record is not
    # something a member writes; the byte budget stops it before it explodes.
    child = build_schema("C", [("a", K.ARRAY_OF_COMPACT.value)])
    leaf = CompactRecord("C", child, {"a": []})
    payload, _ = encode_compact(CompactRecord("C", child, {"a": [leaf, leaf]}))
    data = bytearray(HEADER + payload)
    # point the second item's offset at the first item
    data[-2] = data[-3]
    with pytest.raises(DecodeError):
        DataCodec(registry_with(child)).decode_value(bytes(data))


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ('{"n": 128, "s": "x"}', "int8 range"),
        ('{"n": true, "s": "x"}', "expected an integer"),
        ('{"n": 1.5, "s": "x"}', "expected an integer"),
        ('{"n": 1, "s": 5}', "expected a string"),
        ('{"n": 1}', "missing"),
        ('{"n": 1, "s": "x", "extra": 1}', "unknown"),
        ('{"n": null, "s": "x"}', "cannot be null"),
        ('{"n": 1, "s": "x", "n": 2}', "repeats"),
        ('{"n": NaN, "s": "x"}', "NaN"),
        ("[1]", "JSON object"),
        ("{", "not valid JSON"),
    ],
)
def test_json_that_does_not_fit_the_schema_is_a_decode_error(document: str, message: str) -> None:
    schema = build_schema("J", [("n", K.INT8.value), ("s", K.STRING.value)])
    codec = DataCodec(registry_with(schema))
    with pytest.raises(DecodeError, match=message):
        codec.encode_value(StoredValue("compact", document, "J", schema.schema_id))


@pytest.mark.parametrize(
    ("kind", "value", "message"),
    [
        (K.DATE, '"2023-02-29"', "not valid"),
        (K.TIME, '"24:00:00"', "out of range"),
        (K.TIME, '"12:00"', "ISO time"),
        (K.TIMESTAMP_WITH_TIMEZONE, '"2024-01-01T00:00:00+19:00"', "18 hours"),
        (K.DECIMAL, '"1_000"', "not a decimal"),
        (K.DECIMAL, "1.5", "as a string"),
        (K.FLOAT32, "1e39", "float32 range"),
        (K.FLOAT64, "1e400", "float64 range"),
        (K.FLOAT64, '"nan"', "expected a number"),
        (K.ARRAY_OF_INT32, "[1, null]", "cannot be null"),
        (K.COMPACT, '{"@type": "X"}', "no @schemaId"),
    ],
)
def test_json_values_are_validated_by_kind(kind: FieldKind, value: str, message: str) -> None:
    schema = build_schema("V", [("v", kind.value)])
    codec = DataCodec(registry_with(schema))
    with pytest.raises(DecodeError, match=message):
        codec.encode_value(StoredValue("compact", f'{{"v": {value}}}', "V", schema.schema_id))


@pytest.mark.parametrize(
    ("key", "message"),
    [
        (StoredKey("12x", "int32"), "decimal integer"),
        (StoredKey("2147483648", "int32"), "range"),
        (StoredKey("yes", "boolean"), "true"),
        (StoredKey("not-a-uuid", "uuid"), "UUID"),
        (StoredKey("!!", "opaque"), "base64"),
        (StoredKey("x", "mystery"), "unknown stored key format"),
        (StoredKey("{}", "compact:abc"), "schema id"),
    ],
)
def test_bad_stored_keys_are_decode_errors(key: StoredKey, message: str) -> None:
    with pytest.raises(DecodeError, match=message):
        DataCodec(SchemaRegistry()).encode_key(key)


def test_short_data_is_a_decode_error() -> None:
    with pytest.raises(DecodeError, match="8-byte header"):
        DataCodec(SchemaRegistry()).decode_value(b"\x00\x00")
    with pytest.raises(DecodeError, match="payload"):
        DataCodec(SchemaRegistry()).decode_value(struct.pack(">iii", 0, -7, 1) + b"\x00")
