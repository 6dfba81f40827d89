"""Property: any record encodes, decodes, maps to JSON and back to identical bytes."""

from __future__ import annotations

import json
import struct
from typing import Any

from hypothesis import HealthCheck, given, settings

from sidecar.codec import CompactRecord, DataCodec, SchemaRegistry, encode_compact
from sidecar.codec.schemas import to_record
from sidecar.errors import DecodeError, UnknownSchemaError

from .strategies import mutate, nested_records

SETTINGS = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def codec_for(schemas: list[Any]) -> DataCodec:
    registry = SchemaRegistry()
    for schema in schemas:
        registry.add(to_record(schema))
    return DataCodec(registry)


@SETTINGS
@given(nested_records())
def test_record_bytes_json_bytes_round_trip_is_exact(case: tuple[CompactRecord, list[Any]]) -> None:
    record, schemas = case
    codec = codec_for(schemas)
    payload, ids = encode_compact(record)
    data = struct.pack(">ii", 0, -55) + payload
    decoded = codec.decode_value(data)
    assert decoded.schema_ids == ids
    assert decoded.record is not None
    assert decoded.record.write_order == record.write_order
    document = json.loads(decoded.stored.document)  # plain JSON: no NaN literals
    assert isinstance(document, dict)
    encoded = codec.encode_value(decoded.stored)
    assert encoded.data == data
    assert encoded.schema_ids == ids
    key = codec.decode_key(data)
    assert codec.encode_key(key).data == data


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(nested_records(), __import__("hypothesis").strategies.data())
def test_mutated_bytes_only_raise_decode_errors(
    case: tuple[CompactRecord, list[Any]], data: Any
) -> None:

    record, schemas = case
    codec = codec_for(schemas)
    original = bytearray(struct.pack(">ii", 0, -55) + encode_compact(record)[0])
    mutated = mutate(
        data, bytes(original), 8, [-1, 0, 1, 254, 255, 65534, 65535, 2**31 - 1, -(2**31)]
    )
    try:
        decoded = codec.decode_value(bytes(mutated))
    except (DecodeError, UnknownSchemaError):
        return
    assert codec.encode_value(decoded.stored).data == bytes(mutated)
