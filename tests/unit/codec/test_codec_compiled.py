"""The compiled codecs of flat records agree with the generic codec, byte for byte.

The generic path (decode, re-encode check, JSON mapping) is the authority; a
compiled function may only return what it returns, or step aside (Fallback).
"""

from __future__ import annotations

import decimal
import json
import math
import struct
from typing import Any

import pytest
from hazelcast.serialization.api import FieldKind
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.codec import CompactRecord, DataCodec, SchemaRegistry, encode_compact
from sidecar.codec import compiled as compiled_codecs
from sidecar.codec.compact import decode_compact
from sidecar.codec.compiled import PLAIN_KINDS, Fallback, compilable
from sidecar.codec.jsonmap import record_from_json
from sidecar.codec.plan import plan_of
from sidecar.codec.schemas import build_schema, to_record
from sidecar.errors import DecodeError, UnknownSchemaError
from sidecar.providers.base import StoredValue
from tests.prerequisites import missing

from .strategies import LEAF_KINDS, mutate, records, schemas

FLAT_KINDS = [k for k in LEAF_KINDS if not k.name.startswith("ARRAY_OF_")]
FRAME = struct.pack(">ii", 0, -55)
SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def flat_records(draw: st.DrawFn) -> CompactRecord:
    schema = draw(schemas(FLAT_KINDS, "Flat"))
    record: CompactRecord = draw(records(schema))
    return record


def _codec(schema: Any) -> DataCodec:
    registry = SchemaRegistry()
    registry.add(to_record(schema))
    return DataCodec(registry)


def _has_nan(record: CompactRecord) -> bool:
    return any(isinstance(v, float) and math.isnan(v) for v in record.fields.values())


def _generic_document(codec: DataCodec, data: bytes) -> str:
    return codec.decode_value(data).stored.document


@SETTINGS
@given(flat_records())
def test_compiled_decode_and_encode_equal_the_generic_codec(record: CompactRecord) -> None:
    schema = record.schema
    assert compilable(schema)
    codec = _codec(schema)
    data = FRAME + encode_compact(record)[0]
    decoder, encoder = compiled_codecs.decoder(schema), compiled_codecs.encoder(schema)
    assert decoder is not None and encoder is not None
    generic = codec.decode_value(data)
    try:
        document, _ = decoder(data)
    except Fallback:
        # Only a NaN (whose bits the generic path checks) makes it step aside.
        assert _has_nan(record)
    else:
        # The very text json.dumps writes for the generic path's document.
        assert document == generic.stored.document
    stored = codec.decode_for_store(data)
    assert stored.stored == generic.stored
    assert stored.schema_ids == generic.schema_ids == {schema.schema_id}
    assert generic.record is not None
    plain = {f.name for f in schema.fields if f.kind in PLAIN_KINDS}
    assert stored.fields is not None
    assert {k: v for k, v in stored.fields.items() if k in plain} == {
        k: v for k, v in generic.record.fields.items() if k in plain
    }
    # Every document the generic codec writes takes the compiled encoder.
    assert encoder(json.loads(generic.stored.document)) == data
    assert codec.encode_value(generic.stored).data == data


@SETTINGS
@given(flat_records(), st.data())
def test_compiled_decode_never_accepts_what_the_generic_codec_refuses(
    record: CompactRecord, draw: Any
) -> None:
    schema = record.schema
    codec = _codec(schema)
    data = mutate(draw, FRAME + encode_compact(record)[0], 16, [-1, 0, 1, 29, 254, 255, 65535])
    decoder = compiled_codecs.decoder(schema)
    assert decoder is not None
    document: str | None
    try:
        document, _ = decoder(data)
    except Fallback:
        document = None
    try:
        generic = codec.decode_value(data)
    except (DecodeError, UnknownSchemaError) as exc:
        assert document is None, f"compiled path accepted bytes the generic path refuses: {exc}"
        with pytest.raises(type(exc)):
            codec.decode_for_store(data)
        return
    if document is not None:
        assert document == generic.stored.document
    assert codec.decode_for_store(data).stored == generic.stored


JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**64), 2**64),
    st.floats(allow_nan=False),
    st.text(max_size=6),
    st.sampled_from(
        ["2025-02-29", "2024-02-29", "12.50", "-0.00", "5.", "1E+3", "NaN", "-0.0", "13:45:07"]
    ),
    # What Python itself refuses: int <-> str past its digit limit, a scale past a Java
    # int, a lone surrogate, a float past float64, impossible dates and times.
    st.sampled_from(
        [
            "9" * 5000,
            "0." + "1" * 5000,
            "1E-9999999999",
            "\ud800",
            "2024-13-01",
            "0000-01-01",
            "+999999999-12-31",
            "24:00:00",
            "2024-02-29T25:00:00",
            "2024-02-29T00:00:00+19:00",
        ]
    ),
    st.sampled_from([10**400, -(10**400), 2**63, 1e308]),
    st.lists(st.integers(), max_size=2),
    st.lists(st.lists(st.text(max_size=2), max_size=1), max_size=2),
)


@SETTINGS
@given(flat_records(), st.data())
def test_compiled_encode_never_accepts_a_document_the_generic_codec_refuses(
    record: CompactRecord, draw: Any
) -> None:
    schema = record.schema
    codec = _codec(schema)
    data = FRAME + encode_compact(record)[0]
    document: dict[str, Any] = json.loads(codec.decode_value(data).stored.document)
    names = [*document, "@order", "extra"]
    for _ in range(draw.draw(st.integers(1, 3))):
        how = draw.draw(st.sampled_from(["set", "drop", "order"]))
        name = draw.draw(st.sampled_from(names))
        if how == "set":
            document[name] = draw.draw(JSON_VALUES)
        elif how == "drop":
            document.pop(name, None)
        else:
            var = [f.name for f in schema.fields if f.index >= 0]
            name_or_other = st.sampled_from(var or ["x"]) | JSON_VALUES
            document["@order"] = draw.draw(st.lists(name_or_other, max_size=4) | JSON_VALUES)
    encoder = compiled_codecs.encoder(schema)
    assert encoder is not None
    try:
        compiled = encoder(document)
    except Fallback:
        return  # anything else than Fallback is a bug of the generated code: it propagates
    generic = record_from_json(document, codec.registry, schema)
    assert FRAME + encode_compact(generic)[0] == compiled


def test_flat_client_record_takes_the_compiled_path_and_nested_ones_do_not() -> None:
    kinds = FieldKind
    flat = build_schema(
        "Flat", [("name", kinds.STRING), ("count", kinds.INT64), ("price", kinds.DECIMAL),
                 ("on", kinds.BOOLEAN)],
    )  # fmt: skip
    nested = build_schema("Outer", [("inner", kinds.COMPACT), ("name", kinds.STRING)])
    listed = build_schema("Listed", [("tags", kinds.ARRAY_OF_STRING)])
    assert compilable(flat)
    assert not compilable(nested)
    assert not compilable(listed)
    assert not compilable(build_schema("Clash", [("@order", kinds.STRING)]))
    record = CompactRecord(
        "Flat",
        flat,
        {"name": "ä", "count": 7, "price": decimal.Decimal("1.50"), "on": True},
    )
    data = FRAME + encode_compact(record)[0]
    codec = _codec(flat)
    decoded = codec.decode_for_store(data)
    assert decoded.record is None  # compiled
    assert decoded.fields == {"name": "ä", "count": 7, "on": True}
    assert decoded.stored == codec.decode_value(data).stored
    assert codec.encode_value(decoded.stored).data == data


def test_unknown_schema_and_corrupt_bytes_get_the_generic_errors() -> None:
    flat = build_schema("Flat", [("name", FieldKind.STRING)])
    record = CompactRecord("Flat", flat, {"name": "x"})
    data = FRAME + encode_compact(record)[0]
    with pytest.raises(UnknownSchemaError):
        DataCodec(SchemaRegistry()).decode_for_store(data)
    with pytest.raises(DecodeError, match="Flat"):
        _codec(flat).decode_for_store(data[:-1])
    # The re-encoding check still names the offending byte for non-canonical bytes.
    padded = bytearray(data)
    padded[-1] = 0x05  # offset of "name" moved: bytes 0..4 of the data unaccounted for
    with pytest.raises(DecodeError):
        _codec(flat).decode_for_store(bytes(padded))
    assert decode_compact(data, 8, _codec(flat).registry)[0].fields == {"name": "x"}


def test_a_declined_record_is_counted_and_converted_by_the_generic_codec() -> None:
    flat = build_schema("Measure", [("value", FieldKind.FLOAT64), ("unit", FieldKind.STRING)])
    registry = SchemaRegistry()
    registry.add(to_record(flat))
    fallbacks: list[str] = []
    codec = DataCodec(registry, on_fallback=fallbacks.append)
    data = (
        FRAME + encode_compact(CompactRecord("Measure", flat, {"value": math.nan, "unit": "m"}))[0]
    )
    decoded = codec.decode_for_store(data)  # a NaN: the generic path checks its bits
    assert decoded.record is not None and fallbacks == ["Measure"]
    assert codec.encode_value(decoded.stored).data == data
    assert fallbacks == ["Measure"]  # "NaN" is a string the compiled encoder reads itself
    # "@order" naming a null field: the compiled encoder declines, the generic one writes it.
    odd = StoredValue(
        "compact", '{"unit": null, "value": 1.5, "@order": ["unit"]}', "Measure", flat.schema_id
    )
    no_unit = CompactRecord("Measure", flat, {"value": 1.5, "unit": None})
    assert codec.encode_value(odd).data == FRAME + encode_compact(no_unit)[0]
    assert fallbacks == ["Measure", "Measure"]
    ordinary = (
        FRAME + encode_compact(CompactRecord("Measure", flat, {"value": 1.5, "unit": "m"}))[0]
    )
    assert codec.encode_value(codec.decode_for_store(ordinary).stored).data == ordinary
    assert fallbacks == ["Measure", "Measure"]


@pytest.mark.parametrize("path", ["decoder", "encoder", "text_encoder"])
def test_an_error_of_the_compiled_code_itself_is_not_hidden(
    path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    flat = build_schema("Buggy", [("name", FieldKind.STRING), ("n", FieldKind.INT32)])
    registry = SchemaRegistry()
    registry.add(to_record(flat))
    data = FRAME + encode_compact(CompactRecord("Buggy", flat, {"name": "x", "n": 1}))[0]
    codec = DataCodec(registry)
    stored = codec.decode_for_store(data).stored
    plan = compiled_codecs.compile_plan(plan_of(registry.get(flat.schema_id)))

    def bug(*args: object) -> Any:
        raise IndexError("a bug in generated code")

    if path == "text_encoder" and plan.text_encoder is None:
        missing("the compiled codec accelerator is not built", "`make install` with gcc")
    if path == "encoder":  # the accelerator's text encoder would answer first
        monkeypatch.setattr(plan, "text_encoder", None)
    monkeypatch.setattr(plan, path, bug)
    with pytest.raises(IndexError, match="a bug"):
        if path == "decoder":
            codec.decode_for_store(data)
        else:
            codec.encode_value(stored)
    assert DataCodec(registry, compiled=False).encode_value(stored).data == data


def test_the_kind_table_covers_exactly_the_compact_kinds_of_the_client() -> None:
    from hazelcast.serialization.compact import FIELD_OPERATIONS

    from sidecar.codec.kinds import KINDS

    client = {
        kind
        for kind in FieldKind
        if kind.value < len(FIELD_OPERATIONS) and FIELD_OPERATIONS[kind.value] is not None
    }
    assert set(KINDS) == client
    for kind, encoding in KINDS.items():
        assert encoding.kind is kind
        assert encoding.array == kind.name.startswith("ARRAY_OF_")
        assert encoding.nullable == (kind.name.startswith(("NULLABLE_", "ARRAY_")) or kind in {
            FieldKind.STRING, FieldKind.DECIMAL, FieldKind.TIME, FieldKind.DATE,
            FieldKind.TIMESTAMP, FieldKind.TIMESTAMP_WITH_TIMEZONE, FieldKind.COMPACT,
        })  # fmt: skip


def test_compact_keys_are_encoded_with_the_schema_ids_they_use() -> None:
    child = build_schema("Child", [("name", FieldKind.STRING)])
    parent = build_schema("Parent", [("child", FieldKind.COMPACT), ("n", FieldKind.INT32)])
    registry = SchemaRegistry()
    registry.add(to_record(child))
    registry.add(to_record(parent))
    record = CompactRecord(
        "Parent", parent, {"child": CompactRecord("Child", child, {"name": "c"}), "n": 2}
    )
    data = FRAME + encode_compact(record)[0]
    codec = DataCodec(registry)
    key = codec.decode_key(data)
    encoded = codec.encode_key(key)
    assert encoded.data == data
    assert encoded.schema_ids == {child.schema_id, parent.schema_id}
    flat_key = codec.decode_key(
        FRAME + encode_compact(CompactRecord("Child", child, {"name": "k"}))[0]
    )
    assert codec.encode_key(flat_key).schema_ids == {child.schema_id}
    int_key = codec.decode_key(b"\0\0\0\0\xff\xff\xff\xf9\0\0\0\x05")
    assert codec.encode_key(int_key).schema_ids == frozenset()
