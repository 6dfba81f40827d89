"""Hazelcast ``Data`` bytes ⇄ store-ready values (readable JSON + exact round-trip data).

* :mod:`sidecar.codec.schemas` — the Compact schema table, checked by Rabin fingerprint,
  with each schema's write order.
* :mod:`sidecar.codec.kinds` — every Compact FieldKind, in one table.
* :mod:`sidecar.codec.plan` — one plan per schema, shared by the generic and compiled codecs.
* :mod:`sidecar.codec.compact` — generic Compact records, read and written byte-exactly.
* :mod:`sidecar.codec.jsonmap` — records ⇄ JSON documents, driven by the schema's kinds
  (and the write-order rules: why documents carry no ``"@order"``).
* :mod:`sidecar.codec.compiled` — generated codecs for flat records, the hot paths.
* :mod:`sidecar.codec.data` — ``Data`` framing, non-Compact types and opaque values.
* :mod:`sidecar.codec.javaser` — Java serialization streams read into readable documents.
* :mod:`sidecar.codec.framework` — the reference framework's own documents, rebuilt.
* :mod:`sidecar.codec.temporal` — Java date/time values with nanoseconds and extended years.
"""

from sidecar.codec.compact import CompactRecord, decode_compact, encode_compact
from sidecar.codec.data import DataCodec, DecodedKey, DecodedValue, EncodedValue
from sidecar.codec.jsonmap import record_from_json, record_to_json
from sidecar.codec.schemas import SchemaRegistry, settle_write_orders
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime

__all__ = [
    "CompactRecord",
    "DataCodec",
    "DecodedKey",
    "DecodedValue",
    "EncodedValue",
    "LocalDate",
    "LocalDateTime",
    "LocalTime",
    "OffsetDateTime",
    "SchemaRegistry",
    "decode_compact",
    "encode_compact",
    "record_from_json",
    "record_to_json",
    "settle_write_orders",
]
