"""Every Compact FieldKind, in one table: where its value lives and how it is encoded.

The generic codec (:mod:`sidecar.codec.compact`, :mod:`sidecar.codec.jsonmap`), the
compiled one (:mod:`sidecar.codec.compiled`) and the scalar ``Data`` formats
(:mod:`sidecar.codec.data`) all derive what they need from :data:`KINDS` and
:data:`ITEM_STRUCTS`, so a kind is described once.

A field's value is either in the fixed-size section (INT8..FLOAT64 at their schema
positions, BOOLEAN as one bit) or in the variable-size data, reached through the
offset table; there a single value, or an array: of fixed-size items packed after an
int32 count (ARRAY_OF_BOOLEAN as bits), or of variable-size or nullable items with an
offset table of their own. Each value (a field's, or an array item's) is encoded by
its *item* encoding, one of the names below, which is also the name of the scalar
``Data`` format of the same value (``int32`` is a Java ``Integer``).

Byte layouts (big-endian, ``java.time`` fields as Hazelcast writes them): TIME hour,
minute, second int8 + nano int32; DATE year int32 + month, day int8; TIMESTAMP a
DATE then a TIME; TIMESTAMP_WITH_TIMEZONE a TIMESTAMP then the offset in seconds
(int32); DECIMAL the unscaled value's two's-complement bytes after their int32
length, then the scale (int32); STRING the UTF-8 bytes after their int32 length.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from hazelcast.serialization.api import FieldKind

# -- item encodings ---------------------------------------------------------------------

BOOL = "bool"
INT8 = "int8"
INT16 = "int16"
INT32 = "int32"
INT64 = "int64"
FLOAT32 = "float32"
FLOAT64 = "float64"
STRING = "string"
DECIMAL = "decimal"
TIME = "time"
DATE = "date"
TIMESTAMP = "timestamp"
TIMESTAMP_TZ = "timestamp_tz"
COMPACT = "compact"

INT_ITEMS = frozenset({INT8, INT16, INT32, INT64})
FLOAT_ITEMS = frozenset({FLOAT32, FLOAT64})
NUMBER_ITEMS = INT_ITEMS | FLOAT_ITEMS
TEMPORAL_ITEMS = frozenset({TIME, DATE, TIMESTAMP, TIMESTAMP_TZ})
#: Items whose decoded Python value is already its JSON value (no conversion).
JSON_AS_IS_ITEMS = frozenset({BOOL, STRING, *INT_ITEMS})

#: The struct of each fixed-size item: numbers, and the date/time values.
ITEM_STRUCTS: Mapping[str, struct.Struct] = MappingProxyType(
    {
        INT8: struct.Struct(">b"),
        INT16: struct.Struct(">h"),
        INT32: struct.Struct(">i"),
        INT64: struct.Struct(">q"),
        FLOAT32: struct.Struct(">f"),
        FLOAT64: struct.Struct(">d"),
        TIME: struct.Struct(">bbbi"),
        DATE: struct.Struct(">ibb"),
        TIMESTAMP: struct.Struct(">ibbbbbi"),
        TIMESTAMP_TZ: struct.Struct(">ibbbbbii"),
    }
)
#: The range of each integer item.
INT_RANGES: Mapping[str, tuple[int, int]] = MappingProxyType(
    {
        item: (-(1 << bits), (1 << bits) - 1)
        for item, bits in ((item, 8 * ITEM_STRUCTS[item].size - 1) for item in sorted(INT_ITEMS))
    }
)


# -- the kinds ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KindEncoding:
    """How one FieldKind is held in a Compact record.

    Attributes:
        kind: the FieldKind.
        item: the encoding of its value, or of each item of an array.
        array: an ARRAY_OF_* kind.
        nullable: the field may be null (every kind but BOOLEAN and INT8..FLOAT64).
        items_nullable: an array whose items may be null.
        fixed: the value lives in the fixed-size section (BOOLEAN as a bit).
        packed: an array of fixed-size items, packed after its count.
    """

    kind: FieldKind
    item: str
    array: bool
    nullable: bool
    items_nullable: bool
    fixed: bool
    packed: bool

    @property
    def variable(self) -> bool:
        """The value lives in the variable-size data (through the offset table)."""
        return not self.fixed


def _fixed(kind: FieldKind, item: str) -> KindEncoding:
    return KindEncoding(kind, item, False, False, False, True, False)


def _single(kind: FieldKind, item: str) -> KindEncoding:
    return KindEncoding(kind, item, False, True, False, False, False)


def _array(kind: FieldKind, item: str, *, items_nullable: bool) -> KindEncoding:
    return KindEncoding(kind, item, True, True, items_nullable, False, not items_nullable)


K = FieldKind


def _kinds() -> dict[FieldKind, KindEncoding]:
    table: list[KindEncoding] = [
        _fixed(K.BOOLEAN, BOOL),
        _fixed(K.INT8, INT8),
        _fixed(K.INT16, INT16),
        _fixed(K.INT32, INT32),
        _fixed(K.INT64, INT64),
        _fixed(K.FLOAT32, FLOAT32),
        _fixed(K.FLOAT64, FLOAT64),
        _single(K.NULLABLE_BOOLEAN, BOOL),
        _single(K.NULLABLE_INT8, INT8),
        _single(K.NULLABLE_INT16, INT16),
        _single(K.NULLABLE_INT32, INT32),
        _single(K.NULLABLE_INT64, INT64),
        _single(K.NULLABLE_FLOAT32, FLOAT32),
        _single(K.NULLABLE_FLOAT64, FLOAT64),
        _single(K.STRING, STRING),
        _single(K.DECIMAL, DECIMAL),
        _single(K.TIME, TIME),
        _single(K.DATE, DATE),
        _single(K.TIMESTAMP, TIMESTAMP),
        _single(K.TIMESTAMP_WITH_TIMEZONE, TIMESTAMP_TZ),
        _single(K.COMPACT, COMPACT),
        # Fixed-size items packed after their count (booleans as bits).
        _array(K.ARRAY_OF_BOOLEAN, BOOL, items_nullable=False),
        _array(K.ARRAY_OF_INT8, INT8, items_nullable=False),
        _array(K.ARRAY_OF_INT16, INT16, items_nullable=False),
        _array(K.ARRAY_OF_INT32, INT32, items_nullable=False),
        _array(K.ARRAY_OF_INT64, INT64, items_nullable=False),
        _array(K.ARRAY_OF_FLOAT32, FLOAT32, items_nullable=False),
        _array(K.ARRAY_OF_FLOAT64, FLOAT64, items_nullable=False),
        # Items that may be null or vary in size: an offset table of their own.
        _array(K.ARRAY_OF_NULLABLE_BOOLEAN, BOOL, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_INT8, INT8, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_INT16, INT16, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_INT32, INT32, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_INT64, INT64, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_FLOAT32, FLOAT32, items_nullable=True),
        _array(K.ARRAY_OF_NULLABLE_FLOAT64, FLOAT64, items_nullable=True),
        _array(K.ARRAY_OF_STRING, STRING, items_nullable=True),
        _array(K.ARRAY_OF_DECIMAL, DECIMAL, items_nullable=True),
        _array(K.ARRAY_OF_TIME, TIME, items_nullable=True),
        _array(K.ARRAY_OF_DATE, DATE, items_nullable=True),
        _array(K.ARRAY_OF_TIMESTAMP, TIMESTAMP, items_nullable=True),
        _array(K.ARRAY_OF_TIMESTAMP_WITH_TIMEZONE, TIMESTAMP_TZ, items_nullable=True),
        _array(K.ARRAY_OF_COMPACT, COMPACT, items_nullable=True),
    ]
    return {encoding.kind: encoding for encoding in table}


#: Every FieldKind a Compact schema may use. CHAR (5), ARRAY_OF_CHAR (6), PORTABLE (31),
#: ARRAY_OF_PORTABLE (32) and NOT_AVAILABLE (0) exist in FieldKind for the
#: GenericRecord API but have no Compact encoding.
KINDS: Mapping[FieldKind, KindEncoding] = _kinds()
