"""Hazelcast ``Data`` bytes ⇄ the store-ready form (readable JSON + what an exact round trip needs).

A ``Data`` as the member serializes it: partition hash (int32, big-endian), type id
(int32, big-endian), then the payload. The Java member writes partition hash 0
unless the key is ``PartitionAware``; this codec always encodes 0, so a ``Data``
with another hash is stored opaque (whole bytes) and comes back unchanged.

Formats (``StoredKey.format`` / ``StoredValue.format``), by type id
(``hazelcast.serialization.serialization_const``):

============  =======  ===================================================
format        type id  payload
============  =======  ===================================================
null          0        empty
int8          -3       int8 (Java ``Byte``)
boolean       -4       one byte, 0 or 1
int16         -6       int16
int32         -7       int32
int64         -8       int64
float32       -9       IEEE-754 binary32
float64       -10      IEEE-754 binary64
string        -11      int32 UTF-8 byte length, UTF-8 bytes
uuid          -21      int64 most significant bits, int64 least significant
json          -130     as string (``HazelcastJsonValue``); document = the text
compact       -55      int64 schema id, record (:mod:`sidecar.codec.compact`)
opaque        other    ``{"@opaque": {"typeId": N, "data": base64 of the whole Data}}``
============  =======  ===================================================

Opaque covers what Python cannot interpret (Java Serializable -100,
IdentifiedDataSerializable -2, Portable -1, arrays, BigDecimal, custom serializers,
Compact with inline schema -56...): valid data, stored as is, never an error.
Bytes of a known type that are truncated, inconsistent or not in the form a
member writes are a DecodeError.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass

from sidecar.codec.compact import DEFAULT_MAX_DEPTH, CompactRecord, decode_compact, encode_compact
from sidecar.codec.compiled import FALLBACK_ERRORS, CompiledCodecs
from sidecar.codec.jsonmap import (
    dumps,
    float_from_json,
    float_to_json,
    int_from_json,
    loads,
    record_from_json,
    record_to_json,
)
from sidecar.codec.schemas import SchemaRegistry
from sidecar.errors import DecodeError
from sidecar.providers.base import StoredKey, StoredValue

TYPE_NULL = 0
TYPE_BYTE = -3
TYPE_BOOLEAN = -4
TYPE_SHORT = -6
TYPE_INTEGER = -7
TYPE_LONG = -8
TYPE_FLOAT = -9
TYPE_DOUBLE = -10
TYPE_STRING = -11
TYPE_UUID = -21
TYPE_COMPACT = -55
TYPE_JSON = -130

HEADER = struct.Struct(">ii")
_SCHEMA_ID = struct.Struct(">q")
_LENGTH = struct.Struct(">i")
_STRING_HEADER = HEADER.pack(0, TYPE_STRING)
COMPACT_KEY_PREFIX = "compact:"
OPAQUE_KEY = "@opaque"

_FIXED: dict[str, tuple[int, struct.Struct]] = {
    "int8": (TYPE_BYTE, struct.Struct(">b")),
    "int16": (TYPE_SHORT, struct.Struct(">h")),
    "int32": (TYPE_INTEGER, struct.Struct(">i")),
    "int64": (TYPE_LONG, struct.Struct(">q")),
    "float32": (TYPE_FLOAT, struct.Struct(">f")),
    "float64": (TYPE_DOUBLE, struct.Struct(">d")),
}
_FORMAT_OF_TYPE: dict[int, str] = {
    **{type_id: fmt for fmt, (type_id, _) in _FIXED.items()},
    TYPE_NULL: "null",
    TYPE_BOOLEAN: "boolean",
    TYPE_STRING: "string",
    TYPE_UUID: "uuid",
    TYPE_JSON: "json",
}
_INT_TEXT = re.compile(r"-?(?:0|[1-9]\d*)")
_FLOAT_TEXT = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


@dataclass(frozen=True, slots=True)
class DecodedValue:
    """A decoded map value: the stored form, the schema ids it uses, the record if Compact.

    :meth:`DataCodec.decode_for_store` leaves ``record`` None for a flat record it
    decoded with a compiled codec; ``plain_fields`` then holds its string, integer
    and boolean fields (see :attr:`fields`).
    """

    stored: StoredValue
    schema_ids: frozenset[int]
    record: CompactRecord | None
    plain_fields: Mapping[str, object] | None = None

    @property
    def fields(self) -> Mapping[str, object] | None:
        """The top-level field values a Compact value's event columns are read from.

        Strings, integers and booleans are the decoded values; with a compiled
        decode, fields of other kinds are absent (the event columns never use them).
        """
        if self.record is not None:
            return self.record.fields
        return self.plain_fields


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A value's ``Data`` bytes and the schema ids the member needs to read them."""

    data: bytes
    schema_ids: frozenset[int]


class _Opaque(Exception):
    """Internal: the payload is valid but stays opaque."""


class DataCodec:
    """Converts map keys and values between ``Data`` bytes and their stored form.

    Args:
        registry: the Compact schemas; values referencing an id missing from it
            raise :class:`~sidecar.errors.UnknownSchemaError`.
        max_depth: the deepest nesting of Compact records accepted.
    """

    def __init__(self, registry: SchemaRegistry, *, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        self.registry = registry
        self.max_depth = max_depth
        self._compiled = CompiledCodecs()

    # -- keys -------------------------------------------------------------------

    def decode_key(self, data: bytes) -> StoredKey:
        """The stored form of a key's ``Data``.

        Raises:
            DecodeError: corrupt bytes of a known type.
            UnknownSchemaError: a Compact key whose schema was never sent.
        """
        data = bytes(data)
        if data[:8] == _STRING_HEADER and len(data) >= 12:
            # The common key: a String whose length matches exactly is canonical.
            if _LENGTH.unpack_from(data, 8)[0] == len(data) - 12:
                try:
                    return StoredKey(data[12:].decode("utf-8"), "string")
                except UnicodeDecodeError:
                    pass  # the generic path explains
        type_id = _type_id(data)
        if type_id == TYPE_COMPACT and HEADER.unpack_from(data)[0] == 0:
            record, _ = decode_compact(data, HEADER.size, self.registry, max_depth=self.max_depth)
            text = dumps(record_to_json(record), compact=True)
            return StoredKey(text, f"{COMPACT_KEY_PREFIX}{record.schema_id}")
        try:
            fmt, value = self._scalar(data, type_id)
        except _Opaque:
            return StoredKey(base64.b64encode(data).decode("ascii"), "opaque")
        key = StoredKey(_key_text(fmt, value), fmt)
        _check_exact(data, self.encode_key(key), fmt)
        return key

    def encode_key(self, key: StoredKey) -> bytes:
        """The ``Data`` bytes of a stored key.

        Raises:
            DecodeError: the text does not fit the format, or the format is unknown.
            UnknownSchemaError: a Compact key whose schema is not known.
        """
        fmt = key.format
        text = key.text
        if fmt.startswith(COMPACT_KEY_PREFIX):
            schema_id = _parse_schema_id(fmt[len(COMPACT_KEY_PREFIX) :])
            return self._encode_compact(loads(text), schema_id)
        if fmt == "opaque":
            return _opaque_bytes(text)
        if fmt in _FIXED:
            type_id, st = _FIXED[fmt]
            if fmt.startswith("int"):
                if _INT_TEXT.fullmatch(text) is None:
                    raise DecodeError(f"{fmt} key {text!r} is not a decimal integer")
                number: float = int_from_json(int(text), fmt)
            else:
                number = float_from_json(_float_from_text(text), single=fmt == "float32")
            return _frame(type_id, st.pack(number))
        if fmt == "boolean":
            if text not in ("true", "false"):
                raise DecodeError(f"boolean key {text!r} is neither 'true' nor 'false'")
            return _frame(TYPE_BOOLEAN, b"\x01" if text == "true" else b"\x00")
        if fmt == "string":
            return _frame(TYPE_STRING, _string_payload(text))
        if fmt == "uuid":
            return _frame(TYPE_UUID, _uuid_payload(text))
        if fmt == "json":
            return _frame(TYPE_JSON, _string_payload(text))
        if fmt == "null":
            return _frame(TYPE_NULL, b"")
        raise DecodeError(f"unknown stored key format {fmt!r}")

    # -- values -----------------------------------------------------------------

    def decode_value(self, data: bytes) -> DecodedValue:
        """The stored form of a value's ``Data``.

        Raises:
            DecodeError: corrupt bytes of a known type, or Compact bytes
                inconsistent with their schema.
            UnknownSchemaError: a Compact schema id (top-level or nested) was never sent.
        """
        data = bytes(data)
        type_id = _type_id(data)
        if type_id == TYPE_COMPACT and HEADER.unpack_from(data)[0] == 0:
            record, ids = decode_compact(data, HEADER.size, self.registry, max_depth=self.max_depth)
            stored = StoredValue(
                format="compact",
                document=dumps(record_to_json(record)),
                type_name=record.type_name,
                schema_id=record.schema_id,
            )
            return DecodedValue(stored, ids, record)
        try:
            fmt, value = self._scalar(data, type_id)
        except _Opaque:
            document = {
                OPAQUE_KEY: {"typeId": type_id, "data": base64.b64encode(data).decode("ascii")}
            }
            return DecodedValue(StoredValue("opaque", dumps(document)), frozenset(), None)
        stored = StoredValue(fmt, _document(fmt, value))
        _check_exact(data, self.encode_value(stored).data, fmt)
        return DecodedValue(stored, frozenset(), None)

    def decode_for_store(self, data: bytes) -> DecodedValue:
        """As :meth:`decode_value`, through a compiled codec when the value is a flat record.

        The stored form is the same either way; ``record`` is None when the
        compiled path was taken (use :attr:`DecodedValue.fields`).
        """
        data = bytes(data)
        if len(data) >= 16 and HEADER.unpack_from(data) == (0, TYPE_COMPACT):
            schema_id: int = _SCHEMA_ID.unpack_from(data, 8)[0]
            if schema_id in self.registry:
                schema = self.registry.get(schema_id)
                decoder = self._compiled.decoder(schema)
                if decoder is not None:
                    try:
                        document, plain = decoder(data)
                    except FALLBACK_ERRORS:
                        pass  # the generic path decides, and explains
                    else:
                        stored = StoredValue(
                            format="compact",
                            document=document,
                            type_name=schema.type_name,
                            schema_id=schema_id,
                        )
                        return DecodedValue(stored, frozenset((schema_id,)), None, plain)
        return self.decode_value(data)

    def encode_value(self, value: StoredValue) -> EncodedValue:
        """The ``Data`` bytes of a stored value, and the schema ids they use.

        Raises:
            DecodeError: the document does not fit the format (or its schema).
            UnknownSchemaError: a Compact schema id is not known.
        """
        fmt = value.format
        if fmt == "compact":
            if value.schema_id is None:
                raise DecodeError("compact value has no schema id")
            document = loads(value.document)
            schema = self.registry.get(value.schema_id)
            encoder = self._compiled.encoder(schema)
            if encoder is not None and type(document) is dict:
                try:
                    return EncodedValue(encoder(document), frozenset((value.schema_id,)))
                except FALLBACK_ERRORS:
                    pass  # the generic path decides, and explains
            record = record_from_json(document, self.registry, schema, max_depth=self.max_depth)
            payload, ids = encode_compact(record, max_depth=self.max_depth)
            return EncodedValue(_frame(TYPE_COMPACT, payload), ids)
        if fmt == "json":
            return EncodedValue(_frame(TYPE_JSON, _string_payload(value.document)), frozenset())
        if fmt == "opaque":
            document = loads(value.document)
            inner = document.get(OPAQUE_KEY) if isinstance(document, dict) else None
            if not isinstance(inner, dict) or not isinstance(inner.get("data"), str):
                raise DecodeError(
                    f'opaque document must be {{"{OPAQUE_KEY}": {{"typeId": N, "data": base64}}}}'
                )
            data = _opaque_bytes(inner["data"])
            if inner.get("typeId") != _type_id(data):
                raise DecodeError(
                    f"opaque document typeId {inner.get('typeId')!r} differs from its data's "
                    f"type id {_type_id(data)}"
                )
            return EncodedValue(data, frozenset())
        parsed = loads(value.document)
        if fmt in _FIXED:
            type_id, st = _FIXED[fmt]
            number: float = (
                int_from_json(parsed, fmt)
                if fmt.startswith("int")
                else float_from_json(parsed, single=fmt == "float32")
            )
            return EncodedValue(_frame(type_id, st.pack(number)), frozenset())
        if fmt == "boolean":
            if not isinstance(parsed, bool):
                raise DecodeError(f"boolean value document is {value.document!r}")
            return EncodedValue(_frame(TYPE_BOOLEAN, b"\x01" if parsed else b"\x00"), frozenset())
        if fmt in ("string", "uuid"):
            if not isinstance(parsed, str):
                raise DecodeError(
                    f"{fmt} value document must be a JSON string, got {value.document!r}"
                )
            payload = _string_payload(parsed) if fmt == "string" else _uuid_payload(parsed)
            return EncodedValue(_frame(_FIXED_TYPES[fmt], payload), frozenset())
        if fmt == "null":
            if parsed is not None:
                raise DecodeError(f"null value document is {value.document!r}")
            return EncodedValue(_frame(TYPE_NULL, b""), frozenset())
        raise DecodeError(f"unknown stored value format {fmt!r}")

    # -- internals ----------------------------------------------------------------

    def _encode_compact(self, document: object, schema_id: int) -> bytes:
        record = record_from_json(
            document, self.registry, self.registry.get(schema_id), max_depth=self.max_depth
        )
        payload, _ = encode_compact(record, max_depth=self.max_depth)
        return _frame(TYPE_COMPACT, payload)

    @staticmethod
    def _scalar(data: bytes, type_id: int) -> tuple[str, object]:
        """(format, Python value) of a non-Compact Data; raises _Opaque for the rest."""
        partition_hash = HEADER.unpack_from(data)[0]
        fmt = _FORMAT_OF_TYPE.get(type_id)
        if fmt is None or partition_hash != 0:
            raise _Opaque
        payload = data[HEADER.size :]
        if fmt in _FIXED:
            st = _FIXED[fmt][1]
            _expect_length(payload, st.size, fmt)
            return fmt, st.unpack(payload)[0]
        if fmt == "boolean":
            _expect_length(payload, 1, fmt)
            return fmt, payload[0] != 0
        if fmt == "null":
            _expect_length(payload, 0, fmt)
            return fmt, None
        if fmt == "uuid":
            _expect_length(payload, 16, fmt)
            return fmt, str(uuid.UUID(bytes=payload))
        text = _read_string(payload, fmt)
        if fmt == "json":
            try:
                json.loads(text)
            except (ValueError, RecursionError):
                # HazelcastJsonValue does not validate its text: keep such values as bytes.
                raise _Opaque from None
        return fmt, text


_FIXED_TYPES = {"string": TYPE_STRING, "uuid": TYPE_UUID}


def _type_id(data: bytes) -> int:
    if len(data) < HEADER.size:
        raise DecodeError(f"Data of {len(data)} bytes is shorter than its 8-byte header")
    type_id: int = HEADER.unpack_from(data)[1]
    return type_id


def _frame(type_id: int, payload: bytes) -> bytes:
    return HEADER.pack(0, type_id) + payload


def _expect_length(payload: bytes, size: int, fmt: str) -> None:
    if len(payload) != size:
        raise DecodeError(f"{fmt} Data has a {len(payload)}-byte payload; expected {size} bytes")


def _read_string(payload: bytes, fmt: str) -> str:
    if len(payload) < 4:
        raise DecodeError(f"{fmt} Data payload of {len(payload)} bytes has no length")
    length: int = struct.unpack_from(">i", payload)[0]
    if length != len(payload) - 4:
        raise DecodeError(f"{fmt} Data says {length} UTF-8 bytes but carries {len(payload) - 4}")
    try:
        return payload[4:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DecodeError(
            f"{fmt} Data is not valid UTF-8 ({exc.reason} at byte {exc.start})"
        ) from None


def _string_payload(text: str) -> bytes:
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise DecodeError(f"text cannot be encoded as UTF-8 ({exc.reason})") from None
    return struct.pack(">i", len(data)) + data


def _uuid_payload(text: str) -> bytes:
    try:
        return uuid.UUID(text).bytes
    except ValueError:
        raise DecodeError(f"{text!r} is not a UUID") from None


def _opaque_bytes(text: str) -> bytes:
    try:
        data = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raise DecodeError("opaque data is not valid base64") from None
    _type_id(data)
    return data


def _parse_schema_id(text: str) -> int:
    if _INT_TEXT.fullmatch(text) is None:
        raise DecodeError(f"compact key format carries no schema id: {COMPACT_KEY_PREFIX}{text!r}")
    return int(text)


def _float_from_text(text: str) -> object:
    if _FLOAT_TEXT.fullmatch(text) is None:
        return text  # float_from_json accepts only the special strings
    return float(text)


def _key_text(fmt: str, value: object) -> str:
    if fmt in ("float32", "float64"):
        assert isinstance(value, float)
        number = float_to_json(value, single=fmt == "float32")
        return number if isinstance(number, str) else repr(number)
    if fmt == "boolean":
        return "true" if value else "false"
    if fmt == "null":
        return "null"
    return str(value)


def _document(fmt: str, value: object) -> str:
    if fmt == "json":
        assert isinstance(value, str)
        return value
    if fmt in ("float32", "float64"):
        assert isinstance(value, float)
        return dumps(float_to_json(value, single=fmt == "float32"))
    return dumps(value)


def _check_exact(data: bytes, again: bytes, fmt: str) -> None:
    if again != data:
        raise DecodeError(
            f"{fmt} Data is not in the form a Hazelcast member writes "
            f"(it would not come back byte-identical): {data[:64].hex()}"
        )
