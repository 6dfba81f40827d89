"""Generic Compact records: read and written byte-exactly, for any schema.

The layout is the one hazelcast-python-client's ``DefaultCompactReader`` /
``DefaultCompactWriter`` implement, and the field layout (positions, boolean bits,
variable-size indexes) comes from the client's :class:`Schema`. The reader and
writer themselves are our own, because the client's lose information the member
sent and trust the bytes they are given:

* TIME / TIMESTAMP / TIMESTAMP_WITH_TIMEZONE carry nanoseconds; the client divides
  them by 1000 (``IOUtil.read_time``) and builds a ``datetime``, which also cannot
  hold years outside 1..9999. We keep :mod:`sidecar.codec.temporal` values.
* The client reads offsets and lengths without bounds checks against the record,
  so a lying length becomes an ``IndexError`` or a giant allocation. Every read
  here is bounded by its enclosing region and charged to a byte budget (the
  payload size), so overlapping or repeated regions cannot blow up the work.
* A Java serializer writes variable-size fields in the order its code calls the
  writer (declaration order for the reflective serializer), not in schema order;
  only the offset table is in schema order. The reader records that order
  (:attr:`CompactRecord.write_order`) so the writer can reproduce the bytes.
  Whether a document has to name it is decided per schema, in
  :mod:`sidecar.codec.jsonmap`.

Exactness is enforced, not assumed: :func:`decode_compact` re-encodes what it read
and refuses (DecodeError) a payload that would not come back byte-identical,
e.g. a non-canonical NaN, a stray padding bit or a non-minimal BigInteger. A Java
member never writes those.

Wire layout of one record (big-endian): schema id int64; when the schema has
variable-size fields, the data length int32; the fixed-size fields at their schema
positions (booleans as bits); the variable-size data; then the offset table, one
entry per variable-size field (uint8 when the data length is < 255, uint16 when
< 65535, else int32; all-ones / -1 means null), offsets relative to the start of
the fixed-size section.
"""

from __future__ import annotations

import decimal
import struct
from dataclasses import dataclass
from typing import Any

from hazelcast.serialization.api import FieldKind
from hazelcast.serialization.compact import PositionReader

from sidecar.codec.kinds import (
    BOOL,
    COMPACT,
    DATE,
    DECIMAL,
    FLOAT_ITEMS,
    ITEM_STRUCTS,
    KINDS,
    NUMBER_ITEMS,
    STRING,
    TIME,
    TIMESTAMP,
)
from sidecar.codec.plan import MAX_ORDERS, SchemaPlan, plan_of
from sidecar.codec.schemas import SchemaRegistry
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.errors import DecodeError

#: Default limit of nested Compact records (a record inside a record ...).
DEFAULT_MAX_DEPTH = 64

_UINT8_RANGE: int = PositionReader.UINT8_POSITION_READER_RANGE  # 255
_UINT16_RANGE: int = PositionReader.UINT16_POSITION_READER_RANGE  # 65535

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
_TIME = ITEM_STRUCTS[TIME]
_DATE = ITEM_STRUCTS[DATE]
_TIMESTAMP = ITEM_STRUCTS[TIMESTAMP]
_TIMESTAMP_TZ = ITEM_STRUCTS["timestamp_tz"]
#: The struct of each number item (a fixed-size field, a nullable one, an array item).
_NUMBERS: dict[str, struct.Struct] = {item: ITEM_STRUCTS[item] for item in NUMBER_ITEMS}

K = FieldKind


@dataclass(slots=True)
class CompactRecord:
    """A Compact value of any type: its schema and its field values.

    ``fields`` holds every schema field, in schema (name) order. Values by kind:
    ``bool``; ``int`` for INT8..INT64; ``float`` for FLOAT32/64; ``None`` for a
    null NULLABLE_*, STRING, DECIMAL, date/time, COMPACT or ARRAY_OF_* field;
    ``str``; ``decimal.Decimal`` (its exponent is the Java scale, negated);
    :class:`LocalTime`, :class:`LocalDate`, :class:`LocalDateTime`,
    :class:`OffsetDateTime`; a nested ``CompactRecord`` (with its own schema);
    ``list`` for ARRAY_OF_* (items ``None`` where the kind allows nulls).

    ``write_order`` is None when the variable-size data is in schema order (as a
    GenericRecord is written); otherwise the names of the non-null variable-size
    fields in the order their data appears in the bytes.
    """

    type_name: str
    schema: Any
    fields: dict[str, object]
    write_order: tuple[str, ...] | None = None

    @property
    def schema_id(self) -> int:
        schema_id: int = self.schema.schema_id
        return schema_id


_CANONICAL_NAN = {4: bytes.fromhex("7fc00000"), 8: bytes.fromhex("7ff8000000000000")}


def _check_nan(buf: bytes, pos: int, size: int) -> None:
    # Java writes floats through Float.floatToIntBits / Double.doubleToLongBits, which
    # collapse every NaN to one bit pattern; JSON keeps only "NaN", so refuse the rest.
    raw = buf[pos : pos + size]
    if raw != _CANONICAL_NAN[size]:
        raise DecodeError(
            f"NaN with payload 0x{raw.hex()} is not the canonical NaN a Java member "
            "writes: not in the canonical form, could not be restored exactly"
        )


def _entry_format(data_length: int) -> tuple[struct.Struct, int]:
    """The offset-table entry (struct, null marker) for a region of ``data_length`` bytes."""
    if data_length < _UINT8_RANGE:
        return _U8, 0xFF
    if data_length < _UINT16_RANGE:
        return _U16, 0xFFFF
    return _I32, -1


class _Decoding:
    """One decode call: the buffer, the byte budget and the schema ids met."""

    __slots__ = ("budget", "buf", "ids", "max_depth", "registry")

    def __init__(self, buf: bytes, budget: int, registry: SchemaRegistry, max_depth: int) -> None:
        self.buf = buf
        self.budget = budget
        self.ids: set[int] = set()
        self.registry = registry
        self.max_depth = max_depth

    def take(self, pos: int, size: int, end: int, what: str) -> int:
        """Check that ``size`` bytes at ``pos`` lie before ``end``; charge them; return pos+size."""
        if size < 0 or pos + size > end:
            raise DecodeError(
                f"truncated {what}: needs {size} bytes at offset {pos}, "
                f"only {max(end - pos, 0)} available"
            )
        self.budget -= size
        if self.budget < 0:
            raise DecodeError(
                "compact data reads overlapping regions (offsets point into data "
                "already read): not bytes a Hazelcast member writes"
            )
        return pos + size

    def record(self, pos: int, end: int, depth: int) -> CompactRecord:
        if depth > self.max_depth:
            raise DecodeError(f"compact records nested deeper than {self.max_depth} levels")
        buf = self.buf
        self.take(pos, 8, end, "compact schema id")
        schema_id: int = _I64.unpack_from(buf, pos)[0]
        schema = self.registry.get(schema_id)
        self.ids.add(schema_id)
        pos += 8
        fix_len: int = schema.fix_sized_fields_length
        var_count: int = schema.var_sized_field_count
        if var_count:
            self.take(pos, 4, end, f"{schema.type_name} data length")
            data_length: int = _I32.unpack_from(buf, pos)[0]
            data_start = pos + 4
            if data_length < fix_len:
                raise DecodeError(
                    f"{schema.type_name}: data length {data_length} is smaller than its "
                    f"fixed-size fields ({fix_len} bytes)"
                )
            table = data_start + data_length
            entry, null = _entry_format(data_length)
            if table > end:
                raise DecodeError(
                    f"{schema.type_name}: data length {data_length} runs past the end "
                    f"of its region ({end - data_start} bytes available)"
                )
            self.take(data_start, fix_len, table, f"{schema.type_name} fixed-size fields")
            self.take(table, var_count * entry.size, end, f"{schema.type_name} offset table")
        else:
            data_start = pos
            table = pos + fix_len
            entry, null, data_length = _U8, 0xFF, fix_len
            self.take(data_start, fix_len, end, f"{schema.type_name} fixed-size fields")

        plan = plan_of(schema)
        fields: dict[str, object] = dict.fromkeys(plan.names)
        if plan.fixed is not None:
            numbers = plan.fixed.unpack_from(buf, data_start)
            for slot, position, size in plan.float_slots:
                number = numbers[slot]
                if number != number:
                    try:
                        _check_nan(buf, data_start + position, size)
                    except DecodeError as exc:
                        name = plan.fixed_names[slot]
                        raise DecodeError(f"{schema.type_name}.{name}: {exc}") from None
            fields.update(zip(plan.fixed_names, numbers, strict=True))
        for name, position, bit in plan.bools:
            fields[name] = bool((buf[data_start + position] >> bit) & 1)
        written: list[tuple[int, str]] = []
        if var_count:
            offsets = plan.tables[entry.size].unpack_from(buf, table)
            for name, index, kind in plan.var:
                offset: int = offsets[index]
                if offset == null:
                    continue
                if not fix_len <= offset < data_length:
                    raise DecodeError(
                        f"{schema.type_name}.{name}: offset {offset} is outside the "
                        f"variable-size data (bytes {fix_len}..{data_length - 1})"
                    )
                written.append((offset, name))
                at = data_start + offset
                if kind is K.STRING and at + 4 <= table:
                    # The common case inline; anything unusual takes the checked path below.
                    length: int = _I32.unpack_from(buf, at)[0]
                    stop = at + 4 + length
                    if 0 <= length and stop <= table and self.budget >= 4 + length:
                        try:
                            fields[name] = buf[at + 4 : stop].decode("utf-8")
                            self.budget -= 4 + length
                            continue
                        except UnicodeDecodeError:
                            pass
                try:
                    fields[name] = self.var_field(kind, at, table, depth)
                except DecodeError as exc:
                    raise DecodeError(f"{schema.type_name}.{name}: {exc}") from None
        order = [name for _, name in sorted(written)]
        write_order = None if order == [name for _, name in written] else tuple(order)
        return CompactRecord(schema.type_name, schema, fields, write_order)

    def var_field(self, kind: FieldKind, pos: int, end: int, depth: int) -> object:
        encoding = KINDS[kind]
        item = encoding.item
        if not encoding.array:
            return self.value(item, pos, end, depth)
        buf = self.buf
        if kind is K.ARRAY_OF_BOOLEAN:
            count = self.count(pos, end)
            start = pos + 4
            self.take(start, (count + 7) // 8, end, f"array of {count} booleans")
            return [bool((buf[start + i // 8] >> (i % 8)) & 1) for i in range(count)]
        if encoding.packed:
            number = _NUMBERS[item]
            code, size = number.format[-1], number.size
            count = self.count(pos, end)
            self.take(pos + 4, count * size, end, f"array of {count} {item}")
            values = list(struct.unpack_from(f">{count}{code}", buf, pos + 4))
            if item in FLOAT_ITEMS:
                for index, value in enumerate(values):
                    if value != value:
                        _check_nan(buf, pos + 4 + index * size, size)
            return values
        self.take(pos, 8, end, "array header")
        data_length, count = struct.unpack_from(">ii", buf, pos)
        if data_length < 0 or count < 0:
            raise DecodeError(f"array data length {data_length} / item count {count} is negative")
        start = pos + 8
        table = start + data_length
        if table > end:
            raise DecodeError(
                f"array data length {data_length} runs past the end of its region "
                f"({end - start} bytes available)"
            )
        entry, null = _entry_format(data_length)
        self.take(table, count * entry.size, end, f"offset table of {count} array items")
        items: list[object] = []
        for index in range(count):
            offset: int = entry.unpack_from(buf, table + index * entry.size)[0]
            if offset == null:
                items.append(None)
                continue
            if not 0 <= offset < data_length:
                raise DecodeError(
                    f"[{index}]: offset {offset} is outside the array data "
                    f"(bytes 0..{data_length - 1})"
                )
            try:
                items.append(self.value(item, start + offset, table, depth))
            except DecodeError as exc:
                raise DecodeError(f"[{index}]: {exc}") from None
        return items

    def count(self, pos: int, end: int) -> int:
        self.take(pos, 4, end, "array length")
        count: int = _I32.unpack_from(self.buf, pos)[0]
        if count < 0:
            raise DecodeError(f"array length {count} is negative")
        return count

    def value(self, item: str, pos: int, end: int, depth: int) -> object:
        buf = self.buf
        scalar = _NUMBERS.get(item)
        if scalar is not None:
            self.take(pos, scalar.size, end, item)
            number = scalar.unpack_from(buf, pos)[0]
            if number != number:
                _check_nan(buf, pos, scalar.size)
            return number
        if item == BOOL:
            self.take(pos, 1, end, "boolean")
            return buf[pos] != 0
        if item == STRING:
            self.take(pos, 4, end, "string length")
            length: int = _I32.unpack_from(buf, pos)[0]
            if length < 0:
                raise DecodeError(f"string length {length} is negative")
            self.take(pos + 4, length, end, f"string of {length} bytes")
            try:
                return buf[pos + 4 : pos + 4 + length].decode("utf-8")
            except UnicodeDecodeError as exc:
                raise DecodeError(
                    f"string is not valid UTF-8 ({exc.reason} at byte {exc.start})"
                ) from None
        if item == COMPACT:
            return self.record(pos, end, depth + 1)
        if item == DECIMAL:
            self.take(pos, 4, end, "decimal length")
            length = _I32.unpack_from(buf, pos)[0]
            if length <= 0:
                raise DecodeError(f"decimal unscaled value length {length} is not positive")
            self.take(pos + 4, length + 4, end, f"decimal of {length} bytes")
            unscaled = int.from_bytes(buf[pos + 4 : pos + 4 + length], "big", signed=True)
            scale: int = _I32.unpack_from(buf, pos + 4 + length)[0]
            sign, digits, _ = decimal.Decimal(unscaled).as_tuple()
            return decimal.Decimal((sign, digits, -scale))
        if item == TIME:
            self.take(pos, _TIME.size, end, "time")
            return LocalTime(*_TIME.unpack_from(buf, pos))
        if item == DATE:
            self.take(pos, _DATE.size, end, "date")
            return LocalDate(*_DATE.unpack_from(buf, pos))
        if item == TIMESTAMP:
            self.take(pos, _TIMESTAMP.size, end, "timestamp")
            y, mo, d, h, mi, s, n = _TIMESTAMP.unpack_from(buf, pos)
            return LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n))
        self.take(pos, _TIMESTAMP_TZ.size, end, "timestamp with time zone")
        y, mo, d, h, mi, s, n, off = _TIMESTAMP_TZ.unpack_from(buf, pos)
        return OffsetDateTime(LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n)), off)


class _Encoding:
    """One encode call: the output buffer and the schema ids written."""

    __slots__ = ("ids", "max_depth", "out")

    def __init__(self, max_depth: int) -> None:
        self.out = bytearray()
        self.ids: set[int] = set()
        self.max_depth = max_depth

    def record(self, record: CompactRecord, depth: int) -> None:
        if depth > self.max_depth:
            raise DecodeError(f"compact records nested deeper than {self.max_depth} levels")
        if not isinstance(record, CompactRecord):
            raise DecodeError(f"expected a compact record, got {type(record).__name__}")
        schema = record.schema
        values = record.fields
        out = self.out
        schema_id: int = schema.schema_id
        self.ids.add(schema_id)
        out += _I64.pack(schema_id)
        fix_len: int = schema.fix_sized_fields_length
        var_count: int = schema.var_sized_field_count
        length_pos = len(out)
        if var_count:
            out += bytes(4 + fix_len)
            data_start = length_pos + 4
        else:
            out += bytes(fix_len)
            data_start = length_pos
        missing = [f.name for f in schema.fields if f.name not in values]
        if missing or len(values) != len(schema.fields):
            extra = sorted(set(values) - set(schema.fields_dict))
            raise DecodeError(
                f"{schema.type_name}: fields do not match the schema "
                f"(missing {missing}, unknown {extra})"
            )
        plan = plan_of(schema)
        scalar_fields = plan.scalar_fields
        if plan.fixed is not None:
            numbers = [values[name] for name in plan.fixed_names]
            if all(type(v) is t for v, t in zip(numbers, plan.fixed_types, strict=True)):
                try:
                    plan.fixed.pack_into(out, data_start, *numbers)
                    scalar_fields = plan.bool_fields
                except struct.error:
                    pass  # out of range: the per-field loop below names the field
        for field in scalar_fields:
            kind = field.kind
            value = values[field.name]
            try:
                if kind == K.BOOLEAN:
                    if not isinstance(value, bool):
                        raise TypeError(f"expected a boolean, got {type(value).__name__}")
                    if value:
                        out[data_start + field.position] |= 1 << field.bit_position
                    continue
                item = KINDS[kind].item
                _check_number(item, value)
                _NUMBERS[item].pack_into(out, data_start + field.position, value)
            except (TypeError, ValueError, OverflowError, struct.error) as exc:
                raise DecodeError(f"{schema.type_name}.{field.name}: {exc}") from None
        var_fields = plan.var_fields
        if record.write_order is not None:
            var_fields = plan.orders.get(record.write_order) or _ordered(plan, record.write_order)
        positions = [-1] * var_count
        for field in var_fields:
            value = values[field.name]
            if value is None:
                continue
            positions[field.index] = len(out) - data_start
            if field.kind is K.STRING and type(value) is str and value.isascii():
                out += _I32.pack(len(value))
                out += value.encode("ascii")
                continue
            try:
                self.var_field(field.kind, value, depth)
            except (TypeError, ValueError, OverflowError, struct.error, AttributeError) as exc:
                raise DecodeError(f"{schema.type_name}.{field.name}: {exc}") from None
            except DecodeError as exc:
                raise DecodeError(f"{schema.type_name}.{field.name}: {exc}") from None
        if var_count:
            data_length = len(out) - data_start
            self.positions(data_length, positions)
            _I32.pack_into(out, length_pos, data_length)

    def positions(self, data_length: int, positions: list[int]) -> None:
        entry, null = _entry_format(data_length)
        self.out += struct.pack(
            f">{len(positions)}{entry.format[-1]}",
            *(null if p < 0 else p for p in positions),
        )

    def var_field(self, kind: FieldKind, value: object, depth: int) -> None:
        encoding = KINDS[kind]
        item = encoding.item
        if not encoding.array:
            self.value(item, value, depth)
            return
        if not isinstance(value, list):
            raise TypeError(f"expected a list, got {type(value).__name__}")
        out = self.out
        if kind is K.ARRAY_OF_BOOLEAN:
            out += _I32.pack(len(value))
            bits = bytearray((len(value) + 7) // 8)
            for i, item in enumerate(value):
                if not isinstance(item, bool):
                    raise TypeError(f"[{i}]: expected a boolean, got {type(item).__name__}")
                if item:
                    bits[i // 8] |= 1 << (i % 8)
            out += bits
            return
        if encoding.packed:
            for number in value:
                _check_number(item, number)
            out += _I32.pack(len(value))
            out += struct.pack(f">{len(value)}{_NUMBERS[item].format[-1]}", *value)
            return
        header = len(out)
        out += bytes(8)
        start = len(out)
        positions = [-1] * len(value)
        for index, element in enumerate(value):
            if element is None:
                continue
            positions[index] = len(out) - start
            try:
                self.value(item, element, depth)
            except (TypeError, ValueError, OverflowError, struct.error, AttributeError) as exc:
                raise DecodeError(f"[{index}]: {exc}") from None
            except DecodeError as exc:
                raise DecodeError(f"[{index}]: {exc}") from None
        data_length = len(out) - start
        struct.pack_into(">ii", out, header, data_length, len(value))
        self.positions(data_length, positions)

    def value(self, item: str, value: object, depth: int) -> None:
        out = self.out
        scalar = _NUMBERS.get(item)
        if scalar is not None:
            _check_number(item, value)
            out += scalar.pack(value)
        elif item == BOOL:
            if not isinstance(value, bool):
                raise TypeError(f"expected a boolean, got {type(value).__name__}")
            out.append(1 if value else 0)
        elif item == STRING:
            if not isinstance(value, str):
                raise TypeError(f"expected a string, got {type(value).__name__}")
            try:
                data = value.encode("utf-8")
            except UnicodeEncodeError as exc:
                raise ValueError(f"string cannot be encoded as UTF-8 ({exc.reason})") from None
            out += _I32.pack(len(data))
            out += data
        elif item == COMPACT:
            if not isinstance(value, CompactRecord):
                raise TypeError(f"expected a compact record, got {type(value).__name__}")
            self.record(value, depth + 1)
        elif item == DECIMAL:
            unscaled, scale = decimal_parts(value)
            data = unscaled.to_bytes(
                (8 + (unscaled + (unscaled < 0)).bit_length()) // 8, "big", signed=True
            )
            out += _I32.pack(len(data))
            out += data
            out += _I32.pack(scale)
        elif item == TIME:
            if not isinstance(value, LocalTime):
                raise TypeError(f"expected a LocalTime, got {type(value).__name__}")
            out += _TIME.pack(value.hour, value.minute, value.second, value.nano)
        elif item == DATE:
            if not isinstance(value, LocalDate):
                raise TypeError(f"expected a LocalDate, got {type(value).__name__}")
            out += _DATE.pack(value.year, value.month, value.day)
        elif item == TIMESTAMP:
            if not isinstance(value, LocalDateTime):
                raise TypeError(f"expected a LocalDateTime, got {type(value).__name__}")
            out += _TIMESTAMP.pack(*_datetime_parts(value))
        else:
            if not isinstance(value, OffsetDateTime):
                raise TypeError(f"expected an OffsetDateTime, got {type(value).__name__}")
            out += _TIMESTAMP_TZ.pack(*_datetime_parts(value.datetime), value.offset_seconds)


def _check_number(item: str, value: object) -> None:
    # struct would silently accept True/False as 1/0 and ints for floats.
    if item in FLOAT_ITEMS:
        if not isinstance(value, float):
            raise TypeError(f"expected a float, got {type(value).__name__}")
    elif isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")


def _datetime_parts(value: LocalDateTime) -> tuple[int, int, int, int, int, int, int]:
    d, t = value.date, value.time
    return d.year, d.month, d.day, t.hour, t.minute, t.second, t.nano


def decimal_parts(value: object) -> tuple[int, int]:
    """(unscaled value, scale) of a Decimal, as Java's BigDecimal holds it."""
    if not isinstance(value, decimal.Decimal):
        raise TypeError(f"expected a decimal.Decimal, got {type(value).__name__}")
    sign, digits, exponent = value.as_tuple()
    if not isinstance(exponent, int):
        raise ValueError(f"decimal {value} is not finite")
    if not -(2**31) <= -exponent < 2**31:
        raise ValueError(f"decimal scale {-exponent} does not fit a Java int")
    unscaled = int(decimal.Decimal((sign, digits, 0)))
    return unscaled, -exponent


def _ordered(plan: SchemaPlan, write_order: tuple[str, ...]) -> tuple[Any, ...]:
    """The plan's variable-size fields in ``write_order`` (then the ones it leaves out)."""
    by_name = {f.name: f for f in plan.var_fields}
    first = []
    for name in write_order:
        field = by_name.pop(name, None)
        if field is None:
            raise DecodeError(
                f"{plan.type_name}: write order names {name!r}, which is not a "
                "variable-size field of the schema (or is named twice)"
            )
        first.append(field)
    ordered = (*first, *(f for f in plan.var_fields if f.name in by_name))
    if len(plan.orders) < MAX_ORDERS:
        plan.orders[write_order] = ordered
    return ordered


def decode_compact(
    data: bytes,
    offset: int,
    registry: SchemaRegistry,
    *,
    max_depth: int = DEFAULT_MAX_DEPTH,
) -> tuple[CompactRecord, frozenset[int]]:
    """Decode the Compact record starting at ``offset`` (its schema id) up to the end of ``data``.

    Returns the record and every schema id it uses, nested ones included.

    Raises:
        UnknownSchemaError: a schema id (top-level or nested) is not in ``registry``.
        DecodeError: the bytes are truncated, inconsistent with the schema, or not
            in the canonical form a member writes (so not restorable exactly).
    """
    data = bytes(data)
    run = _Decoding(data, len(data) - offset, registry, max_depth)
    record = run.record(offset, len(data), 0)
    again, _ = encode_compact(record, max_depth=max_depth)
    if again != data[offset:]:
        at = next(
            (i for i, (a, b) in enumerate(zip(again, data[offset:], strict=False)) if a != b),
            min(len(again), len(data) - offset),
        )
        raise DecodeError(
            f"compact {record.type_name} payload is not in the canonical form a Hazelcast "
            f"member writes (re-encoding differs at payload byte {at}; "
            f"{len(data) - offset} bytes in, {len(again)} bytes out): refused because "
            "it could not be restored exactly"
        )
    return record, frozenset(run.ids)


def encode_compact(
    record: CompactRecord, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[bytes, frozenset[int]]:
    """Encode ``record`` as a Compact payload: schema id, then the record.

    Raises:
        DecodeError: a value does not fit its field kind (type, range, encoding).
    """
    run = _Encoding(max_depth)
    run.record(record, 0)
    return bytes(run.out), frozenset(run.ids)
