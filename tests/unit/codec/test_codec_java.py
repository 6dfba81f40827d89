"""The codec on Java-serialized keys and values, and on rows the reference framework wrote.

Vectors are the exact ``Data`` a Hazelcast 5.7.0 member-side serialization service writes
(``tests/unit/codec/java_serialization_vectors.json``, from the framework-shapes driver).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.codec.compact import encode_compact
from sidecar.codec.framework import rebuild_record
from sidecar.errors import DecodeError
from sidecar.providers.base import StoredKey, StoredValue, StoreKind

VECTORS: list[dict[str, Any]] = json.loads(
    (Path(__file__).with_name("java_serialization_vectors.json")).read_text(encoding="utf-8")
)
JAVA = [v for v in VECTORS if v["typeId"] in (-100, -101)]
PSK = [
    v
    for v in JAVA
    if v["name"].startswith("psk-string") and v["expect"]["fields"]["partitionKey"] != ""
] + [v for v in JAVA if v["name"] == "psk-string-zero-empty-key"]


def codec() -> DataCodec:
    return DataCodec(SchemaRegistry())


@pytest.mark.parametrize("vector", JAVA, ids=[v["name"] for v in JAVA])
def test_java_keys_are_readable_and_keep_the_member_bytes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["dataHex"])
    key = codec().decode_key_fields(data)
    assert key.stored.format == "java" and key.stored.data == data
    assert codec().encode_key(key.stored).data == data
    if vector["javaClass"].endswith("PartitionedSequenceKey"):
        fields = vector["expect"]["fields"]
        partition_key = fields["partitionKey"]
        if isinstance(partition_key, str):
            assert key.stored.text == f"seq:{fields['sequence']}|key:{partition_key}"
            assert key.fields == {"sequence": fields["sequence"], "partitionKey": partition_key}
    else:
        document = json.loads(key.stored.text)
        assert vector["javaClass"] in (document.get("@class"), document.get("@enum"))


@pytest.mark.parametrize("vector", JAVA, ids=[v["name"] for v in JAVA])
def test_java_values_are_documents_with_their_bytes(vector: dict[str, Any]) -> None:
    data = bytes.fromhex(vector["dataHex"])
    decoded = codec().decode_value(data)
    assert decoded.stored.format == "java"
    document = json.loads(decoded.stored.document)
    assert vector["javaClass"] in (document.get("@class"), document.get("@enum"))
    assert base64.b64decode(document["@serialized"]) == data
    assert codec().encode_value(decoded.stored).data == data
    assert decoded.fields is not None and not any(k.startswith("@") for k in decoded.fields)


@pytest.mark.parametrize("vector", PSK, ids=[v["name"] for v in PSK])
def test_a_framework_event_key_without_format_regenerates_the_member_bytes(
    vector: dict[str, Any],
) -> None:
    data = bytes.fromhex(vector["dataHex"])
    text = codec().decode_key(data).text
    resolved = DataCodec.resolve_key(StoreKind.EVENT, StoredKey(text, ""))
    assert resolved == StoredKey(text, "java", data)
    assert codec().encode_key(resolved).data == data


def test_keys_without_format_are_strings_in_views_and_reference_text_in_events() -> None:
    assert DataCodec.resolve_key(StoreKind.VIEW, StoredKey("seq:1|key:a", "")) == StoredKey(
        "seq:1|key:a", "string"
    )
    kept = StoredKey("x", "int32")
    assert DataCodec.resolve_key(StoreKind.EVENT, kept) is kept
    for text in ("evt-1", "seq:|key:a", "seq:99999999999999999999|key:a", "seq:1key:a"):
        with pytest.raises(DecodeError, match="no key format"):
            DataCodec.resolve_key(StoreKind.EVENT, StoredKey(text, ""))


def test_a_stored_java_key_without_its_bytes_is_an_error() -> None:
    with pytest.raises(DecodeError, match="without its bytes"):
        codec().encode_key(StoredKey('{"@class":"a.B"}', "java"))


def test_a_framework_document_encodes_to_the_record_the_framework_rebuilt() -> None:
    document = {
        "_schemaType": "CustomerCreatedEvent",
        "_fieldKinds": {"eventType": "STRING", "timestamp": "INT64", "price": "DECIMAL"},
        "_fields": {"eventType": "CustomerCreatedEvent", "timestamp": 7, "price": None},
    }
    text = json.dumps(document)
    encoded = codec().encode_value(StoredValue("", text))
    registry = SchemaRegistry()
    record, _ = rebuild_record(document, registry)
    payload, ids = encode_compact(record)
    assert encoded.data == b"\x00\x00\x00\x00\xff\xff\xff\xc9" + payload
    assert encoded.schema_ids == ids
    assert sorted(record.fields) == ["eventType", "timestamp"]  # DECIMAL was not carried


@pytest.mark.parametrize(
    "text",
    [
        '{"amount": 1}',
        "[1, 2]",
        '{"_schemaType": "T", "_fieldKinds": {"a": "NOPE"}, "_fields": {}}',
    ],
)
def test_a_document_without_format_that_is_not_the_framework_s_is_refused(text: str) -> None:
    with pytest.raises(DecodeError):
        codec().encode_value(StoredValue("", text))


@pytest.mark.parametrize("vector", JAVA, ids=[v["name"] for v in JAVA])
def test_an_event_map_stores_the_reference_key_in_the_framework_s_form(
    vector: dict[str, Any],
) -> None:
    data = bytes.fromhex(vector["dataHex"])
    stored = codec().decode_key(data, kind=StoreKind.EVENT)
    fields = vector["expect"].get("fields", {})
    if vector in PSK:
        assert stored == StoredKey(f"seq:{fields['sequence']}|key:{fields['partitionKey']}", "")
        assert codec().encode_key(DataCodec.resolve_key(StoreKind.EVENT, stored)).data == data
    else:  # a Long partition key, another class: its own bytes are kept
        assert stored.format == "java" and stored.data == data
    # In a view map, only String keys take the framework's form.
    assert codec().decode_key(data, kind=StoreKind.VIEW).format == "java"


def test_a_view_map_stores_string_keys_in_the_framework_s_form() -> None:
    data = codec().encode_key(StoredKey("c-1", "string")).data
    assert codec().decode_key(data, kind=StoreKind.VIEW) == StoredKey("c-1", "")
    assert codec().decode_key(data, kind=StoreKind.EVENT) == StoredKey("c-1", "string")
    assert (
        codec().encode_key(DataCodec.resolve_key(StoreKind.VIEW, StoredKey("c-1", ""))).data == data
    )
