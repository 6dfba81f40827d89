"""Compiled codecs for flat Compact records: the Store and Load hot paths.

Most map values are flat records: numbers, booleans, strings, decimals, dates and
times, nullable or not, with no nested record and no array. For each such schema
this module generates, once, a Python function that turns a value's ``Data`` bytes
into its JSON document (Store) and one that turns the document back into the bytes
(Load), with one ``struct`` call for the whole fixed-size section (boolean bytes
included) and one for the offset table, and straight-line code for the rest.

The generic codec (:mod:`sidecar.codec.compact` and :mod:`sidecar.codec.jsonmap`)
stays the authority. A compiled function either returns exactly what the generic
path returns for the same input, or raises :class:`Fallback`, and the caller runs
the generic path, which gives the precise error (or handles the unusual case, such
as a NaN, a non-ASCII digit or a ``@order`` naming a null field). The tests compare
both paths over every field kind, random schemas and mutated bytes.

Exactness without re-encoding: the generic decoder re-encodes what it read and
compares the bytes. Here the same guarantee comes from structure: the record spans
its region exactly; unused bits of the boolean bytes are zero; the non-null
variable-size values, taken in offset order, tile the variable-size data from the
end of the fixed-size section to the data length without gap or overlap; and each
value is in its canonical form (minimal BigInteger bytes, a 0/1 nullable boolean,
Java's one NaN). Bytes with these properties re-encode to themselves.
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any

from hazelcast.serialization.api import FieldKind

from sidecar.codec.compact import decimal_parts
from sidecar.codec.jsonmap import (
    ORDER_KEY,
    PLAIN_DECIMAL_MAX_SCALE,
    RESERVED_KEYS,
    decimal_from_json,
    decimal_to_json,
    float_from_json,
    float_to_json,
)
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.errors import DecodeError

K = FieldKind

#: The type id of Compact ``Data`` (schema id in the stream), as in :mod:`sidecar.codec.data`.
_TYPE_COMPACT = -55


#: A compiled decoder: Data bytes -> (the JSON document's text, its plain fields).
Decoder = Callable[[bytes], tuple[str, dict[str, object]]]


class Fallback(Exception):
    """The compiled path steps aside: the generic codec decides (and explains)."""


#: Errors a compiled function may hit on input the generic path must judge.
FALLBACK_ERRORS: tuple[type[BaseException], ...] = (
    Fallback,
    DecodeError,
    struct.error,
    ValueError,
    TypeError,
    KeyError,
    IndexError,
    OverflowError,
)

#: Fixed-size kinds: struct code, JSON conversion ("int", "f32", "f64").
_FIXED: dict[FieldKind, tuple[str, str]] = {
    K.INT8: ("b", "int"),
    K.INT16: ("h", "int"),
    K.INT32: ("i", "int"),
    K.INT64: ("q", "int"),
    K.FLOAT32: ("f", "f32"),
    K.FLOAT64: ("d", "f64"),
}
#: Nullable scalar kinds stored in the variable-size data: struct code, size, conversion.
_NULLABLE: dict[FieldKind, tuple[str, int, str]] = {
    K.NULLABLE_INT8: ("b", 1, "int"),
    K.NULLABLE_INT16: ("h", 2, "int"),
    K.NULLABLE_INT32: ("i", 4, "int"),
    K.NULLABLE_INT64: ("q", 8, "int"),
    K.NULLABLE_FLOAT32: ("f", 4, "f32"),
    K.NULLABLE_FLOAT64: ("d", 8, "f64"),
}
_TEMPORAL: dict[FieldKind, tuple[str, int]] = {
    kind: (fmt, struct.calcsize(fmt))
    for kind, fmt in (
        (K.TIME, ">bbbi"),
        (K.DATE, ">ibb"),
        (K.TIMESTAMP, ">ibbbbbi"),
        (K.TIMESTAMP_WITH_TIMEZONE, ">ibbbbbii"),
    )
}
#: The helpers of each date/time kind: ``_<name>_json`` and ``_<name>_value``.
_TEMPORAL_NAMES = {
    K.TIME: "time",
    K.DATE: "date",
    K.TIMESTAMP: "timestamp",
    K.TIMESTAMP_WITH_TIMEZONE: "timestamp_tz",
}
_VARIABLE = frozenset(
    {K.STRING, K.DECIMAL, K.NULLABLE_BOOLEAN, *_NULLABLE, *_TEMPORAL},
)
#: Kinds whose JSON value is the decoded Python value itself (and what the event
#: columns may read, see :meth:`sidecar.routing.Route.event_columns`).
PLAIN_KINDS = frozenset(
    {
        K.BOOLEAN,
        K.INT8,
        K.INT16,
        K.INT32,
        K.INT64,
        K.NULLABLE_BOOLEAN,
        K.NULLABLE_INT8,
        K.NULLABLE_INT16,
        K.NULLABLE_INT32,
        K.NULLABLE_INT64,
        K.STRING,
    }
)
#: Date/time kinds the event columns may read (``timestamp_millis``), as ISO text.
_TIMESTAMP_KINDS = frozenset({K.TIMESTAMP, K.TIMESTAMP_WITH_TIMEZONE})
_INT_RANGE = {"b": 2**7, "h": 2**15, "i": 2**31, "q": 2**63}
_PLAIN_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d+))?", re.ASCII)
_PLAIN_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_I32 = struct.Struct(">i")


def compilable(schema: Any) -> bool:
    """Whether ``schema`` is flat: every field fixed-size, boolean or a variable-size scalar."""
    return all(
        (f.kind in _FIXED or f.kind is K.BOOLEAN or f.kind in _VARIABLE)
        and f.name not in RESERVED_KEYS
        for f in schema.fields
    )


# -- helpers the generated code calls -------------------------------------------------


def _f64_json(value: float) -> float | str:
    if value != value:
        raise Fallback  # the generic path checks the NaN's bits
    return float_to_json(value)


def _f32_json(value: float) -> float | str:
    if value != value:
        raise Fallback
    return float_to_json(value, single=True)


def _decimal_json(unscaled: int, scale: int) -> str:
    """The text :func:`decimal_to_json` writes for ``unscaled * 10**-scale``."""
    if 0 <= scale <= PLAIN_DECIMAL_MAX_SCALE:
        digits = str(abs(unscaled))
        if scale:
            digits = digits.rjust(scale + 1, "0")
            digits = f"{digits[:-scale]}.{digits[-scale:]}"
        return f"-{digits}" if unscaled < 0 else digits
    parts = decimal.Decimal(unscaled).as_tuple()
    return decimal_to_json(decimal.Decimal((parts.sign, parts.digits, -scale)))


def _date_json(year: int, month: int, day: int) -> str:
    if 1 <= year <= 9999:
        datetime.date(year, month, day)  # ValueError for an impossible date
        return f"{year:04d}-{month:02d}-{day:02d}"
    return LocalDate(year, month, day).isoformat()


def _time_json(h: int, mi: int, s: int, n: int) -> str:
    return LocalTime(h, mi, s, n).isoformat()


def _timestamp_json(y: int, mo: int, d: int, h: int, mi: int, s: int, n: int) -> str:
    return LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n)).isoformat()


def _timestamp_tz_json(
    y: int, mo: int, d: int, h: int, mi: int, s: int, n: int, offset: int
) -> str:
    date_time = LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n))
    return OffsetDateTime(date_time, offset).isoformat()


def _tiling(spans: list[tuple[int, int, int]], start: int, stop: int) -> list[int] | None:
    """Check that the (offset, end, field) spans tile ``start..stop``; the write order.

    Returns None when the data is in schema order, else the field numbers in the
    order their data appears.
    """
    spans.sort()
    expected = start
    in_order = True
    last = -1
    for offset, end, field in spans:
        if offset != expected:
            raise Fallback
        expected = end
        if field < last:
            in_order = False
        last = field
    if expected != stop:
        raise Fallback
    return None if in_order else [field for _, _, field in spans]


def _float_value(value: object, single: bool) -> float:
    if type(value) is float and value - value == 0.0 and not single:
        return value
    return float_from_json(value, single=single)


def _decimal_parts(text: object) -> tuple[int, int]:
    """(unscaled, scale) of a decimal's JSON text, as :func:`decimal_from_json` reads it."""
    if type(text) is not str:
        raise Fallback
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is not None:
        sign, whole, fraction = match.groups()
        unscaled = int(whole + (fraction or ""))
        return (-unscaled if sign else unscaled), len(fraction or "")
    return decimal_parts(decimal_from_json(text))


def _decimal_bytes(unscaled: int, scale: int) -> bytes:
    data = unscaled.to_bytes(
        (8 + (unscaled + (unscaled < 0)).bit_length()) // 8, "big", signed=True
    )
    return _I32.pack(len(data)) + data + _I32.pack(scale)


def _date_value(text: object) -> tuple[int, int, int]:
    if type(text) is not str:
        raise Fallback
    match = _PLAIN_DATE.fullmatch(text)
    if match is not None:
        year, month, day = int(match[1]), int(match[2]), int(match[3])
        if year:
            datetime.date(year, month, day)  # ValueError: let the generic path explain
            return year, month, day
    value = LocalDate.parse(text)  # year 0, extended years
    return value.year, value.month, value.day


def _time_value(text: object) -> tuple[int, int, int, int]:
    if type(text) is not str:
        raise Fallback
    t = LocalTime.parse(text)
    return t.hour, t.minute, t.second, t.nano


def _timestamp_value(text: object) -> tuple[int, ...]:
    if type(text) is not str:
        raise Fallback
    v = LocalDateTime.parse(text)
    return (v.date.year, v.date.month, v.date.day, v.time.hour, v.time.minute,
            v.time.second, v.time.nano)  # fmt: skip


def _timestamp_tz_value(text: object) -> tuple[int, ...]:
    if type(text) is not str:
        raise Fallback
    v = OffsetDateTime.parse(text)
    d, t = v.datetime.date, v.datetime.time
    return d.year, d.month, d.day, t.hour, t.minute, t.second, t.nano, v.offset_seconds


def _write_order(
    order: object, parts: tuple[bytes | None, ...], index: dict[str, int]
) -> list[int]:
    """Field numbers of ``@order``: exactly the non-null variable-size fields, each once."""
    if type(order) is not list:
        raise Fallback
    numbers = [index[name] for name in order]  # KeyError (or TypeError): not a field name
    if len(set(numbers)) != len(numbers):
        raise Fallback
    for number in numbers:
        if parts[number] is None:
            raise Fallback
    if len(numbers) != len(parts) - parts.count(None):
        raise Fallback
    return numbers


# -- the generator ---------------------------------------------------------------------


class _Source:
    def __init__(self) -> None:
        self.lines: list[str] = []
        self.constants: dict[str, object] = {}

    def const(self, name: str, value: object) -> str:
        self.constants[name] = value
        return name

    def add(self, line: str, indent: int = 1) -> None:
        self.lines.append("    " * indent + line)


class _Layout:
    """A flat schema's layout, in the terms the generated code uses."""

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.fields: list[Any] = list(schema.fields)
        self.fix_len: int = schema.fix_sized_fields_length
        self.var_count: int = schema.var_sized_field_count
        # The fixed-size section as one struct: number fields at their positions,
        # each boolean byte as "B", zero padding for any gap.
        slots: list[tuple[int, str, int]] = []  # position, code, size
        for f in self.fields:
            if f.kind in _FIXED:
                code = _FIXED[f.kind][0]
                slots.append((f.position, code, struct.calcsize(code)))
        self.bool_bytes = sorted({f.position for f in self.fields if f.kind is K.BOOLEAN})
        slots += [(position, "B", 1) for position in self.bool_bytes]
        slots.sort()
        fmt, at = ">", 0
        for position, code, size in slots:
            fmt += "x" * (position - at) + code
            at = position + size
        fmt += "x" * (self.fix_len - at)
        self.fixed_format = fmt
        self.slot_positions = [position for position, _, _ in slots]
        self.slot_codes = [code for _, code, _ in slots]
        #: Unused bits of each boolean byte must be zero.
        self.bool_masks = {
            position: sum(
                1 << f.bit_position
                for f in self.fields
                if f.kind is K.BOOLEAN and f.position == position
            )
            for position in self.bool_bytes
        }
        self.var_fields: list[Any] = [f for f in self.fields if f.kind in _VARIABLE]


def _fixed_slot(layout: _Layout, field: Any) -> int:
    return layout.slot_positions.index(field.position) if field.kind in _FIXED else -1


def _compile_decoder(schema: Any) -> Decoder:
    layout = _Layout(schema)
    src = _Source()
    c = src.const
    header = 16  # Data header (8) + schema id (8)
    src.lines.append("def decode(buf):")
    src.add("end = len(buf)")
    if layout.var_count:
        src.add(f"dl = {c('I32', _I32)}.unpack_from(buf, {header})[0]")
        src.add(f"ds = {header + 4}")
        src.add(f"if dl < {layout.fix_len}: raise Fallback")
        src.add("table = ds + dl")
        count = layout.var_count
        for limit, code, size, null in (
            (255, "B", 1, 0xFF),
            (65535, "H", 2, 0xFFFF),
            (None, "i", 4, -1),
        ):
            name = c(f"T{code}", struct.Struct(f">{count}{code}"))
            if limit is not None:
                keyword = "if" if code == "B" else "elif"
                src.add(f"{keyword} dl < {limit}:")
            else:
                src.add("else:")
            src.add(f"offsets = {name}.unpack_from(buf, table); null = {null}", 2)
            src.add(f"if table + {count * size} != end: raise Fallback", 2)
    else:
        src.add(f"ds = {header}")
        src.add(f"if ds + {layout.fix_len} != end: raise Fallback")
    slot_vars = [f"s{i}" for i in range(len(layout.slot_codes))]
    if slot_vars:
        fixed = c("FIXED", struct.Struct(layout.fixed_format))
        src.add(f"{', '.join(slot_vars)}, = {fixed}.unpack_from(buf, ds)")
    for position, mask in layout.bool_masks.items():
        slot = layout.slot_positions.index(position)
        src.add(f"if {slot_vars[slot]} & {0xFF & ~mask}: raise Fallback")
    values: list[str] = []
    for n, f in enumerate(layout.fields):
        v = f"v{n}"
        values.append(v)
        kind = f.kind
        if kind in _FIXED:
            code, conversion = _FIXED[kind]
            s = slot_vars[_fixed_slot(layout, f)]
            if conversion == "int":
                src.add(f"{v} = {s}")
            elif conversion == "f64":
                src.add(f"{v} = {s} if {s} - {s} == 0.0 and {s} != 0.0 else _f64_json({s})")
            else:
                src.add(f"{v} = _f32_json({s})")
        elif kind is K.BOOLEAN:
            s = slot_vars[layout.slot_positions.index(f.position)]
            src.add(f"{v} = ({s} >> {f.bit_position}) & 1 == 1")
    if layout.var_count:
        src.add("spans = []")
    numbers = {f.name: n for n, f in enumerate(layout.var_fields)}
    for n, f in enumerate(layout.fields):
        if f.kind not in _VARIABLE:
            continue
        v = values[n]
        number = numbers[f.name]
        src.add(f"o = offsets[{f.index}]")
        src.add("if o == null:")
        src.add(f"{v} = None", 2)
        src.add("else:")
        src.add(f"if not {layout.fix_len} <= o < dl: raise Fallback", 2)
        src.add("a = ds + o", 2)
        for line in _read_value(f.kind, v, c):
            src.add(line, 2)
        src.add(f"spans.append((o, e - ds, {number}))", 2)
    # The document's text, as json.dumps writes the generic path's dict: fields in
    # schema order, ", " and ": " separators, strings escaped by the same function.
    pieces: list[str] = []
    for n, f in enumerate(layout.fields):
        key = ("{" if n == 0 else ", ") + _json_string(f.name) + ": "
        pieces += [repr(key), _json_text(f.kind, values[n])]
    plain = ", ".join(
        f"{f.name!r}: {values[n]}"
        for n, f in enumerate(layout.fields)
        if f.kind in PLAIN_KINDS or f.kind in _TIMESTAMP_KINDS
    )
    src.add(f"plain = {{{plain}}}")
    if layout.var_count:
        var_json = c("VAR_JSON", tuple(_json_string(f.name) for f in layout.var_fields))
        src.add(f"order = _tiling(spans, {layout.fix_len}, dl)")
        src.add("if order is None:")
        src.add("tail = '}'", 2)
        src.add("else:")
        order_key = repr(", " + _json_string(ORDER_KEY) + ": [")
        src.add(f"tail = {order_key} + ', '.join([{var_json}[i] for i in order]) + ']}}'", 2)
    else:
        src.add("tail = '}'")
    if not pieces:
        pieces = [repr("{")]
    src.add(f"return ''.join(({', '.join(pieces)}, tail)), plain")
    return _build(src, "decode")


def _json_string(text: str) -> str:
    return '"' + encode_basestring(text)[1:-1] + '"'


def _json_text(kind: FieldKind, v: str) -> str:
    """An expression: the JSON text of the field value ``v`` (a JSON-ready Python value)."""
    if kind in _FIXED:
        if _FIXED[kind][1] == "int":
            return f"repr({v})"
        return f"(repr({v}) if {v}.__class__ is float else E({v}))"
    if kind is K.BOOLEAN:
        return f"('true' if {v} else 'false')"
    if kind is K.NULLABLE_BOOLEAN:
        text = f"('true' if {v} else 'false')"
    elif kind in _NULLABLE:
        if _NULLABLE[kind][2] == "int":
            text = f"repr({v})"
        else:
            text = f"(repr({v}) if {v}.__class__ is float else E({v}))"
    else:  # strings, decimals, dates and times are JSON strings
        text = f"E({v})"
    return f"('null' if {v} is None else {text})"


def _read_value(kind: FieldKind, v: str, c: Callable[[str, object], str]) -> list[str]:
    """Lines that read the value at ``a`` into ``v`` and set ``e`` to its end."""
    if kind is K.STRING:
        return [
            "n = I32.unpack_from(buf, a)[0]",
            "if n < 0: raise Fallback",
            "e = a + 4 + n",
            f"{v} = buf[a + 4:e].decode('utf-8')",
        ]
    if kind is K.DECIMAL:
        return [
            "n = I32.unpack_from(buf, a)[0]",
            "if n <= 0: raise Fallback",
            "u = int.from_bytes(buf[a + 4:a + 4 + n], 'big', signed=True)",
            "if (8 + (u + (u < 0)).bit_length()) // 8 != n: raise Fallback",
            "e = a + 8 + n",
            f"{v} = _decimal_json(u, I32.unpack_from(buf, a + 4 + n)[0])",
        ]
    if kind is K.NULLABLE_BOOLEAN:
        return ["b = buf[a]", "if b > 1: raise Fallback", "e = a + 1", f"{v} = b == 1"]
    if kind in _NULLABLE:
        code, size, conversion = _NULLABLE[kind]
        st = c(f"N{code}", struct.Struct(f">{code}"))
        lines = [f"{v} = {st}.unpack_from(buf, a)[0]", f"e = a + {size}"]
        if conversion == "f64":
            lines.append(f"if not ({v} - {v} == 0.0 and {v} != 0.0): {v} = _f64_json({v})")
        elif conversion == "f32":
            lines.append(f"{v} = _f32_json({v})")
        return lines
    fmt, size = _TEMPORAL[kind]
    st = c(f"TM{size}", struct.Struct(fmt))
    function = f"_{_TEMPORAL_NAMES[kind]}_json"
    return [f"{v} = {function}(*{st}.unpack_from(buf, a))", f"e = a + {size}"]


def _compile_encoder(schema: Any) -> Callable[[dict[str, object]], bytes]:
    layout = _Layout(schema)
    src = _Source()
    c = src.const
    c("I32", _I32)
    prefix = c("PREFIX", struct.pack(">iiq", 0, _TYPE_COMPACT, schema.schema_id))
    count = len(layout.fields)
    src.lines.append("def encode(doc):")
    src.add(f"order = doc.get({ORDER_KEY!r})")
    src.add(f"if len(doc) != {count} + (order is not None): raise Fallback")
    slot_values: list[str] = ["0"] * len(layout.slot_codes)
    for position in layout.bool_bytes:
        slot_values[layout.slot_positions.index(position)] = f"b{position}"
        src.add(f"b{position} = 0")
    parts: dict[str, str] = {}
    for n, f in enumerate(layout.fields):
        v = f"v{n}"
        src.add(f"{v} = doc[{f.name!r}]")
        kind = f.kind
        if kind in _FIXED:
            code, conversion = _FIXED[kind]
            if conversion == "int":
                bound = _INT_RANGE[code]
                src.add(f"if type({v}) is not int or not {-bound} <= {v} < {bound}: raise Fallback")
            else:
                src.add(f"{v} = _float_value({v}, {conversion == 'f32'})")
            slot_values[_fixed_slot(layout, f)] = v
        elif kind is K.BOOLEAN:
            src.add(f"if type({v}) is not bool: raise Fallback")
            src.add(f"if {v}: b{f.position} |= {1 << f.bit_position}")
        else:
            p = f"p{n}"
            parts[f.name] = p
            src.add(f"if {v} is None:")
            src.add(f"{p} = None", 2)
            src.add("else:")
            for line in _write_value(kind, v, p, c):
                src.add(line, 2)
    fixed = ""
    if layout.slot_codes:
        fixed = c("FIXED", struct.Struct(layout.fixed_format))
        pack = f"{fixed}.pack({', '.join(slot_values)})"
    else:
        pack = "b''"
    if not layout.var_count:
        src.add("if order is not None: raise Fallback")
        src.add(f"return {prefix} + {pack}")
        return _build(src, "encode")
    var_parts = ", ".join(parts[f.name] for f in layout.var_fields)
    src.add(f"ps = ({var_parts},)")
    src.add("if order is None:")
    src.add("data = [p for p in ps if p is not None]", 2)
    src.add(f"seq = {c('SCHEMA_ORDER', tuple(range(len(layout.var_fields))))}", 2)
    src.add("else:")
    index = c("VAR_INDEX", {f.name: n for n, f in enumerate(layout.var_fields)})
    src.add(f"seq = _write_order(order, ps, {index})", 2)
    src.add("data = [ps[i] for i in seq]", 2)
    table_index = c("TABLE_INDEX", tuple(f.index for f in layout.var_fields))
    src.add(f"positions = [-1] * {layout.var_count}")
    src.add(f"at = {layout.fix_len}")
    src.add("for i in seq:")
    src.add("p = ps[i]", 2)
    src.add("if p is not None:", 2)
    src.add(f"positions[{table_index}[i]] = at", 3)
    src.add("at += len(p)", 3)
    src.add("dl = at")
    # Null positions are -1: all ones in the entry's width (0xFF, 0xFFFF, or -1 itself).
    count = layout.var_count
    tables = [c(f"T{code}", struct.Struct(f">{count}{code}")) for code in "BHi"]
    src.add(f"if dl < 255: table = {tables[0]}.pack(*[p & 0xFF for p in positions])")
    src.add(f"elif dl < 65535: table = {tables[1]}.pack(*[p & 0xFFFF for p in positions])")
    src.add(f"else: table = {tables[2]}.pack(*positions)")
    src.add(f"return b''.join(({prefix}, I32.pack(dl), {pack}, *data, table))")
    return _build(src, "encode")


def _write_value(kind: FieldKind, v: str, p: str, c: Callable[[str, object], str]) -> list[str]:
    """Lines that turn the JSON value ``v`` (not None) into its bytes ``p``."""
    if kind is K.STRING:
        return [
            f"if type({v}) is not str: raise Fallback",
            f"{p} = {v}.encode('utf-8')",
            f"{p} = I32.pack(len({p})) + {p}",
        ]
    if kind is K.DECIMAL:
        return [f"{p} = _decimal_bytes(*_decimal_parts({v}))"]
    if kind is K.NULLABLE_BOOLEAN:
        return [
            f"if type({v}) is not bool: raise Fallback",
            f"{p} = b'\\x01' if {v} else b'\\x00'",
        ]
    if kind in _NULLABLE:
        code, _, conversion = _NULLABLE[kind]
        st = c(f"N{code}", struct.Struct(f">{code}"))
        if conversion == "int":
            bound = _INT_RANGE[code]
            return [
                f"if type({v}) is not int or not {-bound} <= {v} < {bound}: raise Fallback",
                f"{p} = {st}.pack({v})",
            ]
        return [f"{p} = {st}.pack(_float_value({v}, {conversion == 'f32'}))"]
    fmt, size = _TEMPORAL[kind]
    st = c(f"TM{size}", struct.Struct(fmt))
    function = f"_{_TEMPORAL_NAMES[kind]}_value"
    return [f"{p} = {st}.pack(*{function}({v}))"]


_HELPERS: dict[str, object] = {
    "Fallback": Fallback,
    "E": encode_basestring,
    "_f64_json": _f64_json,
    "_f32_json": _f32_json,
    "_decimal_json": _decimal_json,
    "_date_json": _date_json,
    "_time_json": _time_json,
    "_timestamp_json": _timestamp_json,
    "_timestamp_tz_json": _timestamp_tz_json,
    "_tiling": _tiling,
    "_float_value": _float_value,
    "_decimal_parts": _decimal_parts,
    "_decimal_bytes": _decimal_bytes,
    "_date_value": _date_value,
    "_time_value": _time_value,
    "_timestamp_value": _timestamp_value,
    "_timestamp_tz_value": _timestamp_tz_value,
    "_write_order": _write_order,
}


def _build(src: _Source, name: str) -> Callable[..., Any]:
    text = "\n".join(src.lines) + "\n"
    namespace: dict[str, Any] = {**_HELPERS, **src.constants}
    # The source is generated here from a schema's field layout; names and kinds
    # enter it only as repr() literals and numbers.
    exec(compile(text, f"<compiled {name} of schema>", "exec"), namespace)  # noqa: S102
    function: Callable[..., Any] = namespace[name]
    function.__doc__ = text
    return function


class CompiledCodecs:
    """The compiled decode/encode functions of flat schemas, built on first use.

    Keyed by schema id and checked by identity against the registry's schema, like
    the generic codec's plans.
    """

    def __init__(self) -> None:
        self._decoders: dict[int, tuple[Any, Decoder | None]] = {}
        self._encoders: dict[int, tuple[Any, Callable[[dict[str, object]], bytes] | None]] = {}

    def decoder(self, schema: Any) -> Decoder | None:
        """The decoder of ``schema``'s Data bytes (JSON text, plain fields), or None if not flat.

        The plain fields are those of :data:`PLAIN_KINDS`, by name, as decoded, and
        the TIMESTAMP / TIMESTAMP_WITH_TIMEZONE fields as their ISO text.
        """
        cached = self._decoders.get(schema.schema_id)
        if cached is None or cached[0] is not schema:
            function = _compile_decoder(schema) if compilable(schema) else None
            cached = self._decoders[schema.schema_id] = (schema, function)
        return cached[1]

    def encoder(self, schema: Any) -> Callable[[dict[str, object]], bytes] | None:
        """The encoder of ``schema``'s JSON object into Data bytes, or None if not flat."""
        cached = self._encoders.get(schema.schema_id)
        if cached is None or cached[0] is not schema:
            function = _compile_encoder(schema) if compilable(schema) else None
            cached = self._encoders[schema.schema_id] = (schema, function)
        return cached[1]
