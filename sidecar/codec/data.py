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
java          -100     Java serialization stream (:mod:`sidecar.codec.javaser`)
java          -101     Externalizable: class name, then its stream
opaque        other    ``{"@opaque": {"typeId": N, "data": base64 of the whole Data}}``
============  =======  ===================================================

Java-serialized keys and values (Serializable, Externalizable: what a member
writes for a class without a Compact or other serializer, such as the reference
framework's ``PartitionedSequenceKey``) are read from the stream's own class
descriptors into a readable document (``{"@class": ..., <field>: <value>}``),
while the member's bytes stay the authority for the round trip: a value's
document carries them as ``"@serialized"`` (base64), a key's ``StoredKey.data``. A key's
text is made by its map's key rule (:data:`JavaKeyText`): by default the
reference's ``seq:{sequence}|key:{partitionKey}`` for a ``PartitionedSequenceKey``
of a String, else the document as compact JSON.

Opaque covers what Python cannot interpret (a Java stream the reader cannot
follow, IdentifiedDataSerializable -2,
Portable -1, arrays, BigDecimal, custom serializers, Compact with inline schema
-56...): valid data, stored as is, never an error. Bytes of a known type that
are truncated, inconsistent or not in the form a member writes are a DecodeError.

A key is identified by its text and its format together. The keys of the
reference framework's own form (a String key of a view map, a
``PartitionedSequenceKey<String>`` of an event map) are stored as the framework
stored them, with the format ``""`` (:meth:`DataCodec.canonical_key`), so its
rows and the sidecar's are the same rows; :meth:`DataCodec.resolve_key` turns
them back into bytes. Rows the framework wrote have no value format either:
:meth:`DataCodec.encode_value` rebuilds their ``_schemaType`` / ``_fieldKinds`` /
``_fields`` documents as the framework did (:mod:`sidecar.codec.framework`).

Compact write orders: a Compact document carries ``"@order"`` only when its record
is not in the order its schema's write order implies (the rules, and why one
schema can be written in several orders, are in :mod:`sidecar.codec.jsonmap`).
Every Compact method (decode or encode, key or value, compiled or generic) may
therefore raise :class:`~sidecar.errors.WriteOrderNeeded` for a schema whose order
is still pending; :func:`sidecar.codec.schemas.settle_write_orders` claims it or
refreshes it from the provider and runs the method again.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
import struct
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from sidecar.codec.compact import DEFAULT_MAX_DEPTH, CompactRecord, decode_compact, encode_compact
from sidecar.codec.compiled import Fallback, compile_plan
from sidecar.codec.framework import is_framework_document, parse_framework_json, rebuild_record
from sidecar.codec.javaser import (
    CLASS_KEY,
    PARTITIONED_SEQUENCE_KEY,
    TYPE_JAVA_EXTERNALIZABLE,
    TYPE_JAVA_SERIALIZABLE,
    partitioned_sequence_key_data,
    read_java,
)
from sidecar.codec.jsonmap import (
    dumps,
    float_from_json,
    float_to_json,
    int_from_json,
    loads,
    record_from_json,
    record_to_json,
)
from sidecar.codec.kinds import ITEM_STRUCTS
from sidecar.codec.plan import plan_of
from sidecar.codec.schemas import SchemaRegistry
from sidecar.errors import DecodeError
from sidecar.providers.base import SchemaRecord, StoredKey, StoredValue, StoreKind

log = logging.getLogger(__name__)

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
JAVA_FORMAT = "java"
#: The member's bytes of a Java-serialized value, in its document (base64).
JAVA_DATA_KEY = "@serialized"
_JAVA_TYPES = frozenset({TYPE_JAVA_SERIALIZABLE, TYPE_JAVA_EXTERNALIZABLE})
#: The reference framework's event key text (EventStoreMapStore.serializeKey).
_REFERENCE_EVENT_KEY = re.compile(r"seq:(-?\d{1,19})\|key:(.*)", re.DOTALL)

#: A map's rule for the text of a Java-serialized key, given its readable document.
JavaKeyText = Callable[[Mapping[str, object]], str]


def reference_key_text(document: Mapping[str, object]) -> str | None:
    """``seq:{sequence}|key:{partitionKey}`` for a ``PartitionedSequenceKey`` of a String.

    None for any other document: the reference framework's MapStore wrote only
    that key class this way.
    """
    if document.get(CLASS_KEY) != PARTITIONED_SEQUENCE_KEY:
        return None
    sequence = document.get("sequence")
    partition_key = document.get("partitionKey")
    if type(sequence) is not int or not isinstance(partition_key, str):
        return None
    return f"seq:{sequence}|key:{partition_key}"


def java_fields(document: Mapping[str, object]) -> dict[str, object]:
    """The fields of a Java document: everything but its ``@`` entries (class, bytes...)."""
    return {k: v for k, v in document.items() if not k.startswith("@")}


def reference_key_parts(text: str) -> tuple[int, str] | None:
    """(sequence, partitionKey) of a ``seq:{sequence}|key:{partitionKey}`` text, else None."""
    match = _REFERENCE_EVENT_KEY.fullmatch(text)
    if match is None or not -(2**63) <= int(match[1]) < 2**63:
        return None
    return int(match[1]), match[2]


def default_java_key_text(document: Mapping[str, object]) -> str:
    """The reference's text for its event keys, else the document as compact JSON."""
    text = reference_key_text(document)
    return text if text is not None else dumps(dict(document), compact=True)


#: The number formats: a Java Byte .. Double, encoded as the Compact item of the same name.
_FIXED: dict[str, tuple[int, struct.Struct]] = {
    fmt: (type_id, ITEM_STRUCTS[fmt])
    for fmt, type_id in (
        ("int8", TYPE_BYTE),
        ("int16", TYPE_SHORT),
        ("int32", TYPE_INTEGER),
        ("int64", TYPE_LONG),
        ("float32", TYPE_FLOAT),
        ("float64", TYPE_DOUBLE),
    )
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
    decoded with a compiled codec; ``plain_fields`` then holds its string, integer,
    boolean and timestamp fields (see :attr:`fields`). For a Java-serialized value,
    ``plain_fields`` holds the fields of its readable document.
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
class DecodedKey:
    """A decoded map key: its stored form and, for a record-like key, its fields.

    ``fields`` are a Java-serialized key's fields or a Compact key's top-level
    fields (the event columns may be read from them); None for a scalar key.
    """

    stored: StoredKey
    fields: Mapping[str, object] | None = None


@dataclass(frozen=True, slots=True)
class EncodedValue:
    """A value's or a key's ``Data`` bytes and the schema ids the member needs to read
    them (a Compact record's, nested ones included; empty for every other type)."""

    data: bytes
    schema_ids: frozenset[int]


#: Called with a Compact type name each time a compiled codec steps aside for the
#: generic one (see :mod:`sidecar.codec.compiled`): a metric's hook.
FallbackHook = Callable[[str], None]


class _Opaque(Exception):
    """Internal: the payload is valid but stays opaque."""


class DataCodec:
    """Converts map keys and values between ``Data`` bytes and their stored form.

    Args:
        registry: the Compact schemas; values referencing an id missing from it
            raise :class:`~sidecar.errors.UnknownSchemaError`.
        max_depth: the deepest nesting of Compact records accepted.
        on_fallback: called with the type name whenever a flat record's compiled
            codec steps aside and the generic one converts it (a NaN, an unusual
            document...), so that the slower path is counted, not silent.
        compiled: whether flat records take the compiled codecs (the generic
            ones alone when False: for comparisons and tests).
    """

    def __init__(
        self,
        registry: SchemaRegistry,
        *,
        max_depth: int = DEFAULT_MAX_DEPTH,
        on_fallback: FallbackHook | None = None,
        compiled: bool = True,
    ) -> None:
        self.registry = registry
        self.max_depth = max_depth
        self.on_fallback = on_fallback
        self.compiled = compiled

    # -- keys -------------------------------------------------------------------

    def decode_key(
        self,
        data: bytes,
        key_text: JavaKeyText | None = None,
        kind: StoreKind | None = None,
    ) -> StoredKey:
        """The stored form of a key's ``Data``.

        Args:
            key_text: the map's rule for a Java-serialized key's text
                (default: :func:`default_java_key_text`).
            kind: the map's store kind: a key in the reference framework's own
                form gets the format ``""`` there (:meth:`canonical_key`).

        Raises:
            DecodeError: corrupt bytes of a known type.
            UnknownSchemaError: a Compact key whose schema was never sent.
        """
        return self.decode_key_fields(data, key_text, kind).stored

    def decode_key_fields(
        self,
        data: bytes,
        key_text: JavaKeyText | None = None,
        kind: StoreKind | None = None,
    ) -> DecodedKey:
        """As :meth:`decode_key`, with the key's fields when it is a record."""
        data = bytes(data)
        if kind is StoreKind.VIEW and data[:8] == _STRING_HEADER and len(data) >= 12:
            # The view key of the reference framework, a String: its canonical form at once.
            if _LENGTH.unpack_from(data, 8)[0] == len(data) - 12:
                try:
                    return DecodedKey(StoredKey(data[12:].decode("utf-8"), ""))
                except UnicodeDecodeError:
                    pass  # the generic path explains
        decoded = self._decode_key_fields(data, key_text)
        if kind is None:
            return decoded
        return DecodedKey(self.canonical_key(kind, decoded.stored), decoded.fields)

    def _decode_key_fields(self, data: bytes, key_text: JavaKeyText | None) -> DecodedKey:
        if data[:8] == _STRING_HEADER and len(data) >= 12:
            # The common key: a String whose length matches exactly is canonical.
            if _LENGTH.unpack_from(data, 8)[0] == len(data) - 12:
                try:
                    return DecodedKey(StoredKey(data[12:].decode("utf-8"), "string"))
                except UnicodeDecodeError:
                    pass  # the generic path explains
        type_id = _type_id(data)
        if type_id == TYPE_COMPACT and HEADER.unpack_from(data)[0] == 0:
            record, _ = decode_compact(data, HEADER.size, self.registry, max_depth=self.max_depth)
            text = dumps(record_to_json(record, self.registry), compact=True)
            return DecodedKey(
                StoredKey(text, f"{COMPACT_KEY_PREFIX}{record.schema_id}"), record.fields
            )
        document = _java_document(data, type_id)
        if document is not None:
            text = (key_text or default_java_key_text)(document)
            if _storable(text):
                return DecodedKey(StoredKey(text, JAVA_FORMAT, data), java_fields(document))
        try:
            fmt, value = self._scalar(data, type_id)
        except _Opaque:
            return DecodedKey(StoredKey(base64.b64encode(data).decode("ascii"), "opaque"))
        key = StoredKey(_key_text(fmt, value), fmt)
        _check_exact(data, self.encode_key(key).data, fmt)
        return DecodedKey(key)

    @staticmethod
    def canonical_key(kind: StoreKind, key: StoredKey) -> StoredKey:
        """The key as a map of ``kind`` stores it: the reference framework's form as ``""``.

        A String key of a view map, and a ``PartitionedSequenceKey<String>`` of an
        event map whose bytes its text rebuilds exactly, are stored as the
        framework stored them (format ``""``, no key bytes), so that the
        framework's rows and the sidecar's are the same rows. :meth:`resolve_key`
        is the inverse.
        """
        if kind is StoreKind.VIEW:
            return StoredKey(key.text, "") if key.format == "string" else key
        if key.format != JAVA_FORMAT or key.data is None:
            return key
        parts = reference_key_parts(key.text)
        if parts is None or partitioned_sequence_key_data(*parts) != key.data:
            return key
        return StoredKey(key.text, "")

    @staticmethod
    def resolve_key(kind: StoreKind, key: StoredKey) -> StoredKey:
        """A stored key with the format its bytes need: the inverse of :meth:`canonical_key`.

        The format ``""`` is the reference framework's key form: it keyed its event
        maps by ``PartitionedSequenceKey<String>``, stored as
        ``seq:{sequence}|key:{partitionKey}``, and its view maps by String. Such a
        key gets the format (and, for an event key, the member's bytes) the codec
        encodes.

        Raises:
            DecodeError: an event key without format whose text is not the
                reference's form.
        """
        if key.format:
            return key
        if kind is StoreKind.VIEW:
            return StoredKey(key.text, "string")
        parts = reference_key_parts(key.text)
        if parts is None:
            raise DecodeError(
                f"event key {key.text!r} has no key format and is not the reference "
                "framework's 'seq:{sequence}|key:{partitionKey}'"
            )
        return StoredKey(key.text, JAVA_FORMAT, partitioned_sequence_key_data(*parts))

    def encode_key(self, key: StoredKey) -> EncodedValue:
        """The ``Data`` bytes of a stored key, and the schema ids they use (a Compact
        key's: what the member needs to read it, without decoding the bytes again).

        Raises:
            DecodeError: the text does not fit the format, or the format is unknown.
            UnknownSchemaError: a Compact key whose schema is not known.
            WriteOrderNeeded: see :mod:`sidecar.codec.jsonmap`.
        """
        if key.format.startswith(COMPACT_KEY_PREFIX):
            schema_id = _parse_schema_id(key.format[len(COMPACT_KEY_PREFIX) :])
            return self._encode_compact(loads(key.text), schema_id)
        return EncodedValue(self._encode_plain_key(key), frozenset())

    def _encode_plain_key(self, key: StoredKey) -> bytes:
        fmt = key.format
        text = key.text
        if fmt == "opaque":
            return _opaque_bytes(text)
        if fmt == JAVA_FORMAT:
            if key.data is None:
                # A reference-framework key read from its text (resolve_key) has its bytes.
                raise DecodeError(f"Java-serialized key {text!r} is stored without its bytes")
            return _java_bytes(key.data)
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
        if not fmt:
            raise DecodeError(f"key {text!r} has no key format (resolve_key reads such rows)")
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
                document=dumps(record_to_json(record, self.registry)),
                type_name=record.type_name,
                schema_id=record.schema_id,
            )
            return DecodedValue(stored, ids, record)
        document = _java_document(data, type_id)
        if document is not None:
            fields = java_fields(document)
            document[JAVA_DATA_KEY] = base64.b64encode(data).decode("ascii")
            text = dumps(document)
            if _storable(text):
                return DecodedValue(StoredValue(JAVA_FORMAT, text), frozenset(), None, fields)
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
        if (
            self.compiled
            and len(data) >= 16
            and HEADER.unpack_from(data) == (0, TYPE_COMPACT)
            and (schema_id := _SCHEMA_ID.unpack_from(data, 8)[0]) in self.registry
        ):
            plan = plan_of(self.registry.get(schema_id))
            if not plan.compiled:
                compile_plan(plan)
            decoder = plan.decoder
            if decoder is not None:
                rank, _, pending = plan.order_numbers(self.registry.write_order(schema_id))
                try:
                    document, plain = decoder(data, rank, pending)
                except Fallback:
                    self._fell_back(plan.type_name)  # the generic path decides, and explains
                else:
                    stored = StoredValue(
                        format="compact",
                        document=document,
                        type_name=plan.type_name,
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
            encoded = self._encode_compact_text(value.document, value.schema_id)
            if encoded is not None:
                return encoded
            return self._encode_compact(loads(value.document), value.schema_id)
        if fmt == "json":
            return EncodedValue(_frame(TYPE_JSON, _string_payload(value.document)), frozenset())
        if fmt == JAVA_FORMAT:
            document = loads(value.document)
            encoded = document.get(JAVA_DATA_KEY) if isinstance(document, dict) else None
            if not isinstance(encoded, str):
                raise DecodeError(
                    f'java value document has no "{JAVA_DATA_KEY}" (the member\'s bytes, base64)'
                )
            return EncodedValue(_java_bytes(_opaque_bytes(encoded)), frozenset())
        if not fmt:
            return self.rebuild_framework_value(value.document)[0]
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

    def rebuild_framework_value(self, document_text: str) -> tuple[EncodedValue, CompactRecord]:
        """A reference-framework document's Compact bytes, and the record rebuilt.

        Raises:
            DecodeError: the document is not the framework's, or the framework
                itself could not have rebuilt it.
        """
        # The framework's own JSON reader, not a strict one: it read escapes and
        # repeated keys its own way (see sidecar.codec.framework).
        document = parse_framework_json(document_text)
        if not is_framework_document(document):
            raise DecodeError(
                "stored value has no value format and is not a reference-framework document "
                '({"_schemaType": ..., "_fieldKinds": {...}, "_fields": {...}})'
            )
        record, _ = rebuild_record(document, self.registry, max_depth=self.max_depth)
        payload, ids = encode_compact(record, max_depth=self.max_depth)
        return EncodedValue(_frame(TYPE_COMPACT, payload), ids), record

    def new_schemas(self, schema_ids: frozenset[int]) -> list[SchemaRecord]:
        """The persisted form of these schemas, write orders included (to make rebuilt
        ones durable)."""
        return [self.registry.record(i) for i in sorted(schema_ids)]

    # -- internals ----------------------------------------------------------------

    def _encode_compact_text(self, document: str, schema_id: int) -> EncodedValue | None:
        """The accelerator's shortcut (a flat record's document text straight to bytes), or
        None: then the document is parsed and encoded as below, which decides and explains."""
        if not self.compiled or schema_id not in self.registry:
            return None
        plan = plan_of(self.registry.get(schema_id))
        if not plan.compiled:
            compile_plan(plan)
        encoder = plan.text_encoder
        if encoder is None:
            return None
        _, seq, pending = plan.order_numbers(self.registry.write_order(schema_id))
        try:
            return EncodedValue(encoder(document, seq, pending), frozenset((schema_id,)))
        except Fallback:
            return None

    def _encode_compact(self, document: object, schema_id: int) -> EncodedValue:
        """A Compact document's Data bytes (compiled when flat) and the schema ids used."""
        schema = self.registry.get(schema_id)
        if self.compiled and type(document) is dict:
            plan = plan_of(schema)
            if not plan.compiled:
                compile_plan(plan)
            encoder = plan.encoder
            if encoder is not None:
                _, seq, pending = plan.order_numbers(self.registry.write_order(schema_id))
                try:
                    return EncodedValue(encoder(document, seq, pending), frozenset((schema_id,)))
                except Fallback:
                    self._fell_back(plan.type_name)  # the generic path decides, and explains
        record = record_from_json(document, self.registry, schema, max_depth=self.max_depth)
        payload, ids = encode_compact(record, max_depth=self.max_depth)
        return EncodedValue(_frame(TYPE_COMPACT, payload), ids)

    def _fell_back(self, type_name: str) -> None:
        if self.on_fallback is not None:
            self.on_fallback(type_name)

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


def _java_document(data: bytes, type_id: int) -> dict[str, object] | None:
    """The readable document of Java-serialized data; None for other types.

    Also None for a Java stream this reader cannot follow: the member wrote it,
    so it is valid data whatever the reader thinks, and it is kept opaque (as
    every type Python cannot interpret) rather than dead-lettered.
    """
    if type_id not in _JAVA_TYPES:
        return None
    try:
        return read_java(data)
    except DecodeError as exc:
        log.debug("Java-serialized data kept opaque: %s", exc)
        return None


def _storable(text: str) -> bool:
    """Whether a store can keep ``text``: Java strings may hold lone surrogates, which
    UTF-8 cannot encode; such data stays opaque (its bytes are kept all the same)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _java_bytes(data: bytes) -> bytes:
    if _type_id(data) not in _JAVA_TYPES:
        raise DecodeError(
            f"java data has type id {_type_id(data)}, not Java serialization "
            f"({TYPE_JAVA_SERIALIZABLE}) or Externalizable ({TYPE_JAVA_EXTERNALIZABLE})"
        )
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
