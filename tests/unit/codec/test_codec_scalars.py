"""Keys and non-Compact values round-trip byte-exactly; unknown types stay opaque."""

from __future__ import annotations

import base64
import json
import struct
import uuid

import pytest
from hazelcast.config import Config, IntType
from hazelcast.core import HazelcastJsonValue
from hazelcast.serialization.service import SerializationServiceV1

from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.providers.base import StoredKey, StoredValue


def client_bytes(value: object, int_type: int = IntType.INT) -> bytes:
    config = Config()
    config.default_int_type = int_type
    return bytes(SerializationServiceV1(config).to_data(value).buffer)


CODEC = DataCodec(SchemaRegistry())
UUID = uuid.UUID("0f8fad5b-d9cb-469f-a165-70867728950e")

CASES = [
    (client_bytes("héllo ✓"), "string", "héllo ✓", '"héllo ✓"'),
    (client_bytes(""), "string", "", '""'),
    (client_bytes(-(2**31)), "int32", "-2147483648", "-2147483648"),
    (client_bytes(2**63 - 1, IntType.LONG), "int64", "9223372036854775807", "9223372036854775807"),
    (client_bytes(-32768, IntType.SHORT), "int16", "-32768", "-32768"),
    (client_bytes(127, IntType.BYTE), "int8", "127", "127"),
    # the client's ByteSerializer cannot write negative bytes; Java's Byte can
    (struct.pack(">iib", 0, -3, -128), "int8", "-128", "-128"),
    (client_bytes(True), "boolean", "true", "true"),
    (client_bytes(False), "boolean", "false", "false"),
    (client_bytes(1.5), "float64", "1.5", "1.5"),
    (client_bytes(-0.0), "float64", "-0.0", '"-0.0"'),
    (client_bytes(float("nan")), "float64", "NaN", '"NaN"'),
    (client_bytes(float("-inf")), "float64", "-Infinity", '"-Infinity"'),
    (struct.pack(">iif", 0, -9, 0.1), "float32", "0.1", "0.1"),
    (struct.pack(">iif", 0, -9, float("inf")), "float32", "Infinity", '"Infinity"'),
    (client_bytes(UUID), "uuid", str(UUID), f'"{UUID}"'),
    (client_bytes(HazelcastJsonValue('{"a": [1, 2]}')), "json", '{"a": [1, 2]}', '{"a": [1, 2]}'),
    (struct.pack(">ii", 0, 0), "null", "null", "null"),
]


@pytest.mark.parametrize(
    ("data", "fmt", "key_text", "document"), CASES, ids=[c[1] + ":" + c[2][:10] for c in CASES]
)
def test_scalar_keys_and_values_round_trip_byte_exactly(
    data: bytes, fmt: str, key_text: str, document: str
) -> None:
    key = CODEC.decode_key(data)
    assert key == StoredKey(key_text, fmt)
    assert CODEC.encode_key(key).data == data
    decoded = CODEC.decode_value(data)
    assert decoded.stored == StoredValue(fmt, document)
    assert decoded.schema_ids == frozenset() and decoded.record is None
    assert CODEC.encode_value(decoded.stored).data == data


OPAQUE = [
    struct.pack(">ii", 0, -100) + b"\xac\xed\x00\x05java-serialized",  # Java Serializable
    struct.pack(">ii", 0, -2)
    + b"\x01\x00\x00\x00\x07\x00\x00\x00\x01",  # IdentifiedDataSerializable
    struct.pack(">ii", 0, -1) + b"portable",
    client_bytes(bytearray(b"\x00\x01")),  # byte array, -12
    struct.pack(">ii", 0, 12345),  # custom serializer, empty payload
    struct.pack(">ii", 0, -56) + b"\x00" * 12,  # compact with inline schema
    struct.pack(">ii", 77, -11) + struct.pack(">i", 1) + b"k",  # PartitionAware key: hash kept
    struct.pack(">ii", 5, -55) + b"\x00" * 8,  # compact key with a partition hash
    client_bytes(HazelcastJsonValue("{not json")),
]


@pytest.mark.parametrize("data", OPAQUE, ids=range(len(OPAQUE)))
def test_uninterpretable_data_round_trips_opaque(data: bytes) -> None:
    key = CODEC.decode_key(data)
    assert key.format == "opaque"
    assert base64.b64decode(key.text) == data
    assert CODEC.encode_key(key).data == data
    decoded = CODEC.decode_value(data)
    assert decoded.stored.format == "opaque"
    document = json.loads(decoded.stored.document)
    assert document["@opaque"]["typeId"] == struct.unpack(">i", data[4:8])[0]
    assert CODEC.encode_value(decoded.stored).data == data


def test_boolean_byte_other_than_0_or_1_is_refused() -> None:
    from sidecar.errors import DecodeError

    with pytest.raises(DecodeError, match="byte-identical"):
        CODEC.decode_value(struct.pack(">ii", 0, -4) + b"\x02")
