"""Compiled codecs for flat Compact records: the Store and Load hot paths.

Most map values are flat records: numbers, booleans, strings, decimals, dates and
times, nullable or not, with no nested record and no array. For each such schema
this module generates, once, a Python function that turns a value's ``Data`` bytes
into its JSON document (Store) and one that turns the document back into the bytes
(Load), with one ``struct`` call for the whole fixed-size section (boolean bytes
included) and one for the offset table, and straight-line code for the rest. The
functions are kept on the schema's :class:`~sidecar.codec.plan.SchemaPlan`, the
layout the generic codec uses too.

The generic codec (:mod:`sidecar.codec.compact` and :mod:`sidecar.codec.jsonmap`)
stays the authority. A compiled function either returns exactly what the generic
path returns for the same input, or raises :class:`Fallback`, and the caller runs
the generic path, which gives the precise error (or handles the unusual case, such
as a NaN, a non-ASCII digit or a ``@order`` naming a null field). Every case the
compiled code declines raises :class:`Fallback` explicitly, where it is met: any
other exception out of a compiled function is a bug, and the caller lets it
propagate rather than hide it behind the slower path. The one other exception on
purpose is :class:`~sidecar.errors.WriteOrderNeeded`, raised for valid input
exactly where the generic path raises it. The tests compare both paths over every
field kind, random schemas, mutated bytes and mutated documents.

Exactness without re-encoding: the generic decoder re-encodes what it read and
compares the bytes. Here the same guarantee comes from structure: the record spans
its region exactly; unused bits of the boolean bytes are zero; the non-null
variable-size values, taken in offset order, tile the variable-size data from the
end of the fixed-size section to the data length without gap or overlap; and each
value is in its canonical form (minimal BigInteger bytes, a 0/1 nullable boolean,
Java's one NaN). Bytes with these properties re-encode to themselves.

Write orders: a decoder takes ``rank`` and ``pending``, an encoder ``seq`` and
``pending``, from :meth:`SchemaPlan.order_numbers` of the schema's write order
(see :mod:`sidecar.codec.jsonmap` for what they mean).
"""

from __future__ import annotations

import datetime
import decimal
import re
import struct
from collections.abc import Callable
from json.encoder import encode_basestring
from typing import Any, NoReturn

from hazelcast.serialization.api import FieldKind

from sidecar.codec import accel
from sidecar.codec.compact import decimal_parts
from sidecar.codec.jsonmap import (
    PLAIN_DECIMAL_MAX_SCALE,
    decimal_from_json,
    decimal_to_json,
    float_from_json,
    float_to_json,
)
from sidecar.codec.kinds import (
    BOOL,
    DATE,
    DECIMAL,
    FLOAT32,
    FLOAT64,
    INT_ITEMS,
    INT_RANGES,
    ITEM_STRUCTS,
    JSON_AS_IS_ITEMS,
    KINDS,
    STRING,
    TEMPORAL_ITEMS,
    TIMESTAMP,
    TIMESTAMP_TZ,
)
from sidecar.codec.plan import ORDER_KEY, Decoder, Encoder, SchemaPlan, TextEncoder, plan_of
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.errors import DecodeError, WriteOrderNeeded

K = FieldKind

#: The type id of Compact ``Data`` (schema id in the stream), as in :mod:`sidecar.codec.data`.
_TYPE_COMPACT = -55


class Fallback(Exception):
    """The compiled path steps aside: the generic codec decides (and explains)."""


#: Kinds whose JSON value is the decoded Python value itself (and what the event
#: columns may read, see :meth:`sidecar.routing.Route.event_columns`).
PLAIN_KINDS = frozenset(
    kind
    for kind, encoding in KINDS.items()
    if encoding.item in JSON_AS_IS_ITEMS and not encoding.array
)
#: Date/time kinds the event columns may read (``timestamp_millis``), as ISO text.
_TIMESTAMP_KINDS = frozenset({K.TIMESTAMP, K.TIMESTAMP_WITH_TIMEZONE})
_PLAIN_DECIMAL = re.compile(r"(-?)(\d+)(?:\.(\d+))?", re.ASCII)
_PLAIN_DATE = re.compile(r"(\d{4})-(\d{2})-(\d{2})", re.ASCII)
_I32 = struct.Struct(">i")
_INT32_RANGE = INT_RANGES["int32"]
#: Python refuses int <-> str conversions beyond ``sys.get_int_max_str_digits()`` digits
#: (4300 by default, 640 at the least): longer decimals take the generic path.
_MAX_DIGITS = 640
_MAX_DIGITS_BITS = 2000  # fewer than 640 decimal digits


def compilable(schema: Any) -> bool:
    """Whether ``schema`` is flat: every field fixed-size, boolean or a variable-size scalar."""
    return plan_of(schema).flat


# -- helpers the generated code calls (each declines with Fallback, nothing else) ------


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
    if unscaled.bit_length() > _MAX_DIGITS_BITS:
        raise Fallback
    if 0 <= scale <= PLAIN_DECIMAL_MAX_SCALE:
        digits = str(abs(unscaled))
        if scale:
            digits = digits.rjust(scale + 1, "0")
            digits = f"{digits[:-scale]}.{digits[-scale:]}"
        return f"-{digits}" if unscaled < 0 else digits
    parts = decimal.Decimal(unscaled).as_tuple()
    return decimal_to_json(decimal.Decimal((parts.sign, parts.digits, -scale)))


def _date_json(year: int, month: int, day: int) -> str:
    try:
        if 1 <= year <= 9999:
            datetime.date(year, month, day)  # ValueError for an impossible date
            return f"{year:04d}-{month:02d}-{day:02d}"
        return LocalDate(year, month, day).isoformat()
    except (ValueError, DecodeError):
        raise Fallback from None


def _time_json(h: int, mi: int, s: int, n: int) -> str:
    try:
        return LocalTime(h, mi, s, n).isoformat()
    except DecodeError:
        raise Fallback from None


def _timestamp_json(y: int, mo: int, d: int, h: int, mi: int, s: int, n: int) -> str:
    try:
        return LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n)).isoformat()
    except DecodeError:
        raise Fallback from None


def _timestamp_tz_json(
    y: int, mo: int, d: int, h: int, mi: int, s: int, n: int, offset: int
) -> str:
    try:
        date_time = LocalDateTime(LocalDate(y, mo, d), LocalTime(h, mi, s, n))
        return OffsetDateTime(date_time, offset).isoformat()
    except DecodeError:
        raise Fallback from None


def _tiling(
    spans: list[tuple[int, int, int]], start: int, stop: int, rank: tuple[int, ...]
) -> list[int] | None:
    """Check that the (offset, end, field) spans tile ``start..stop``; the write order.

    ``rank`` gives each variable-size field's place in the order a document
    implies (the schema's claimed write order, else schema order). Returns None
    when the data is in that order, else the field numbers in the order their
    data appears. The spans are left sorted by offset.
    """
    spans.sort()
    expected = start
    in_order = True
    last = -1
    for offset, end, field in spans:
        if offset != expected:
            raise Fallback
        expected = end
        place = rank[field]
        if place < last:
            in_order = False
        last = place
    if expected != stop:
        raise Fallback
    return None if in_order else [field for _, _, field in spans]


def _order_needed(
    schema_id: int, spans: list[tuple[int, int, int]], names: tuple[str, ...]
) -> NoReturn:
    """Raise WriteOrderNeeded with the order of the spans (sorted by offset), then the rest."""
    present = tuple(names[field] for _, _, field in spans)
    rest = tuple(name for name in names if name not in present)
    raise WriteOrderNeeded(schema_id, present + rest)


def _float_value(value: object, single: bool) -> float:
    if type(value) is float and value - value == 0.0 and not single:
        return value
    try:
        return float_from_json(value, single=single)
    except DecodeError:
        raise Fallback from None


def _decimal_parts(text: object) -> tuple[int, int]:
    """(unscaled, scale) of a decimal's JSON text, as :func:`decimal_from_json` reads it."""
    if type(text) is not str:
        raise Fallback
    match = _PLAIN_DECIMAL.fullmatch(text)
    if match is not None:
        sign, whole, fraction = match.groups()
        if len(whole) + len(fraction or "") > _MAX_DIGITS:
            raise Fallback
        unscaled = int(whole + (fraction or ""))
        return (-unscaled if sign else unscaled), len(fraction or "")
    try:
        return decimal_parts(decimal_from_json(text))
    except (DecodeError, ValueError):  # not a decimal; a scale beyond a Java int
        raise Fallback from None


def _decimal_bytes(unscaled: int, scale: int) -> bytes:
    if not _INT32_RANGE[0] <= scale <= _INT32_RANGE[1]:
        raise Fallback
    data = unscaled.to_bytes(
        (8 + (unscaled + (unscaled < 0)).bit_length()) // 8, "big", signed=True
    )
    return _I32.pack(len(data)) + data + _I32.pack(scale)


def _date_value(text: object) -> tuple[int, int, int]:
    if type(text) is not str:
        raise Fallback
    try:
        match = _PLAIN_DATE.fullmatch(text)
        if match is not None:
            year, month, day = int(match[1]), int(match[2]), int(match[3])
            if year:
                datetime.date(year, month, day)  # ValueError: let the generic path explain
                return year, month, day
        value = LocalDate.parse(text)  # year 0, extended years
    except (ValueError, DecodeError):
        raise Fallback from None
    return value.year, value.month, value.day


def _time_value(text: object) -> tuple[int, int, int, int]:
    if type(text) is not str:
        raise Fallback
    try:
        t = LocalTime.parse(text)
    except DecodeError:
        raise Fallback from None
    return t.hour, t.minute, t.second, t.nano


def _timestamp_value(text: object) -> tuple[int, ...]:
    if type(text) is not str:
        raise Fallback
    try:
        v = LocalDateTime.parse(text)
    except DecodeError:
        raise Fallback from None
    return (v.date.year, v.date.month, v.date.day, v.time.hour, v.time.minute,
            v.time.second, v.time.nano)  # fmt: skip


def _timestamp_tz_value(text: object) -> tuple[int, ...]:
    if type(text) is not str:
        raise Fallback
    try:
        v = OffsetDateTime.parse(text)
    except DecodeError:
        raise Fallback from None
    d, t = v.datetime.date, v.datetime.time
    return d.year, d.month, d.day, t.hour, t.minute, t.second, t.nano, v.offset_seconds


def _write_order(
    order: object, parts: tuple[bytes | None, ...], index: dict[str, int]
) -> list[int]:
    """Field numbers of ``@order``: exactly the non-null variable-size fields, each once."""
    if type(order) is not list:
        raise Fallback
    numbers = []
    for name in order:
        number = index.get(name) if type(name) is str else None
        if number is None or parts[number] is None:
            raise Fallback  # not a variable-size field, or a null one
        numbers.append(number)
    if len(set(numbers)) != len(numbers):
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


def _item(field: Any) -> str:
    return KINDS[field.kind].item


def _is_number(field: Any) -> bool:
    """A fixed-size number field (INT8..FLOAT64), read from the fixed-size struct."""
    return field.kind is not K.BOOLEAN and KINDS[field.kind].fixed


def _compile_decoder(plan: SchemaPlan) -> Decoder:
    schema = plan.schema
    fields: list[Any] = list(schema.fields)
    fix_len: int = schema.fix_sized_fields_length
    var_count: int = schema.var_sized_field_count
    src = _Source()
    c = src.const
    c("I32", _I32)
    header = 16  # Data header (8) + schema id (8)
    identity = c("SCHEMA_RANK", plan.schema_order)
    src.lines.append(f"def decode(buf, rank={identity}, pending=False):")
    src.add("end = len(buf)")
    if var_count:
        src.add(f"if end < {header + 4}: raise Fallback")
        src.add(f"dl = I32.unpack_from(buf, {header})[0]")
        src.add(f"ds = {header + 4}")
        src.add(f"if dl < {fix_len}: raise Fallback")
        src.add("table = ds + dl")
        for limit, code, size, null in (
            (255, "B", 1, 0xFF),
            (65535, "H", 2, 0xFFFF),
            (None, "i", 4, -1),
        ):
            name = c(f"T{code}", struct.Struct(f">{var_count}{code}"))
            if limit is not None:
                keyword = "if" if code == "B" else "elif"
                src.add(f"{keyword} dl < {limit}:")
            else:
                src.add("else:")
            src.add(f"if table + {var_count * size} != end: raise Fallback", 2)
            src.add(f"offsets = {name}.unpack_from(buf, table); null = {null}", 2)
    else:
        src.add(f"ds = {header}")
        src.add(f"if ds + {fix_len} != end: raise Fallback")
    slot_vars = [f"s{i}" for i in range(len(plan.slot_codes))]
    if slot_vars:
        fixed = c("FIXED", struct.Struct(plan.slot_format))
        src.add(f"{', '.join(slot_vars)}, = {fixed}.unpack_from(buf, ds)")
    for position, mask in plan.bool_masks.items():
        slot = plan.slot_positions.index(position)
        src.add(f"if {slot_vars[slot]} & {0xFF & ~mask}: raise Fallback")
    values: list[str] = []
    for n, f in enumerate(fields):
        v = f"v{n}"
        values.append(v)
        if _is_number(f):
            s = slot_vars[plan.slot_positions.index(f.position)]
            item = _item(f)
            if item in INT_ITEMS:
                src.add(f"{v} = {s}")
            elif item == FLOAT64:
                src.add(f"{v} = {s} if {s} - {s} == 0.0 and {s} != 0.0 else _f64_json({s})")
            else:
                src.add(f"{v} = _f32_json({s})")
        elif f.kind is K.BOOLEAN:
            s = slot_vars[plan.slot_positions.index(f.position)]
            src.add(f"{v} = ({s} >> {f.bit_position}) & 1 == 1")
    if var_count:
        src.add("spans = []")
    numbers = {name: n for n, name in enumerate(plan.var_names)}
    for n, f in enumerate(fields):
        if KINDS[f.kind].fixed:
            continue
        v = values[n]
        src.add(f"o = offsets[{f.index}]")
        src.add("if o == null:")
        src.add(f"{v} = None", 2)
        src.add("else:")
        src.add(f"if not {fix_len} <= o < dl: raise Fallback", 2)
        src.add("a = ds + o", 2)
        for line in _read_value(f.kind, v, c, var_count):
            src.add(line, 2)
        src.add(f"spans.append((o, e - ds, {numbers[f.name]}))", 2)
    # The document's text, as json.dumps writes the generic path's dict: fields in
    # schema order, ", " and ": " separators, strings escaped by the same function.
    pieces: list[str] = []
    for n, f in enumerate(fields):
        key = ("{" if n == 0 else ", ") + _json_string(f.name) + ": "
        pieces += [repr(key), _json_text(f.kind, values[n])]
    plain = ", ".join(
        f"{f.name!r}: {values[n]}"
        for n, f in enumerate(fields)
        if f.kind in PLAIN_KINDS or f.kind in _TIMESTAMP_KINDS
    )
    src.add(f"plain = {{{plain}}}")
    if var_count:
        var_json = c("VAR_JSON", tuple(_json_string(name) for name in plan.var_names))
        src.add(f"order = _tiling(spans, {fix_len}, dl, rank)")
        # A pending schema is claimed only by a record with every variable-size field
        # present (the whole order seen); a record with nulls names its own order.
        src.add("if pending and len(spans) > 1:")
        names = c("VAR_NAMES", plan.var_names)
        src.add(f"if len(spans) == {var_count}:", 2)
        src.add(f"_order_needed({plan.schema_id}, spans, {names})", 3)
        src.add("order = [field for _, _, field in spans]", 2)
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
    decoder: Decoder = _build(src, "decode")
    return decoder


def _json_string(text: str) -> str:
    return '"' + encode_basestring(text)[1:-1] + '"'


def _json_text(kind: FieldKind, v: str) -> str:
    """An expression: the JSON text of the field value ``v`` (a JSON-ready Python value)."""
    encoding = KINDS[kind]
    item = encoding.item
    if item == BOOL:
        text = f"('true' if {v} else 'false')"
    elif item in INT_ITEMS:
        text = f"repr({v})"
    elif item in (FLOAT32, FLOAT64):
        text = f"(repr({v}) if {v}.__class__ is float else E({v}))"
    else:  # strings, decimals, dates and times are JSON strings
        text = f"E({v})"
    return text if encoding.fixed else f"('null' if {v} is None else {text})"


def _read_value(
    kind: FieldKind, v: str, c: Callable[[str, object], str], var_count: int
) -> list[str]:
    """Lines that read the value at ``a`` (``a < table``) into ``v``; ``e`` its end.

    Every read stays inside ``buf``. A read of ``size`` bytes at ``a`` ends before
    the offset table's last byte, so it needs no check when ``size - 1`` bytes fit in
    the table (``var_count`` entries of at least one byte). A value that runs into
    the table is not checked here: its span then ends past the data, which the
    tiling check refuses.
    """

    def within(size: int | str) -> list[str]:
        if isinstance(size, int) and size - 1 <= var_count:
            return []
        return [f"if a + {size} > table: raise Fallback"]

    item = KINDS[kind].item
    if item == STRING:
        return [
            *within(4),
            "n = I32.unpack_from(buf, a)[0]",
            "if n < 0: raise Fallback",
            "e = a + 4 + n",
            f"try: {v} = buf[a + 4:e].decode('utf-8')",
            "except UnicodeDecodeError: raise Fallback from None",
        ]
    if item == DECIMAL:
        return [
            *within(4),
            "n = I32.unpack_from(buf, a)[0]",
            "e = a + 8 + n",
            "if n <= 0 or e > table: raise Fallback",
            "u = int.from_bytes(buf[a + 4:e - 4], 'big', signed=True)",
            "if (8 + (u + (u < 0)).bit_length()) // 8 != n: raise Fallback",
            f"{v} = _decimal_json(u, I32.unpack_from(buf, e - 4)[0])",
        ]
    if item == BOOL:
        return ["b = buf[a]", "if b > 1: raise Fallback", "e = a + 1", f"{v} = b == 1"]
    st = ITEM_STRUCTS[item]
    name = c(f"S_{item}", st)
    lines = [*within(st.size), f"e = a + {st.size}"]
    if item in TEMPORAL_ITEMS:
        return [*lines, f"{v} = _{item}_json(*{name}.unpack_from(buf, a))"]
    lines.append(f"{v} = {name}.unpack_from(buf, a)[0]")
    if item == FLOAT64:
        lines.append(f"if not ({v} - {v} == 0.0 and {v} != 0.0): {v} = _f64_json({v})")
    elif item == FLOAT32:
        lines.append(f"{v} = _f32_json({v})")
    return lines


def _compile_encoder(plan: SchemaPlan) -> Encoder:
    schema = plan.schema
    fields: list[Any] = list(schema.fields)
    fix_len: int = schema.fix_sized_fields_length
    var_count: int = schema.var_sized_field_count
    src = _Source()
    c = src.const
    c("I32", _I32)
    prefix = c("PREFIX", struct.pack(">iiq", 0, _TYPE_COMPACT, plan.schema_id))
    schema_order = c("SCHEMA_ORDER", plan.schema_order)
    src.lines.append(f"def encode(doc, seq={schema_order}, pending=False):")
    # Exactly the schema's fields, and maybe "@order": as many keys, and each field's.
    src.add(f"order = doc.get({ORDER_KEY!r})")
    src.add(f"if len(doc) != {len(fields)} + (order is not None): raise Fallback")
    if fields:
        src.add("try:")
        src.add(", ".join(f"v{n}" for n in range(len(fields))) + ", = (", 2)
        for f in fields:
            src.add(f"doc[{f.name!r}],", 3)
        src.add(")", 2)
        src.add("except KeyError: raise Fallback from None")
    slot_values: list[str] = ["0"] * len(plan.slot_codes)
    for position in plan.bool_masks:
        slot_values[plan.slot_positions.index(position)] = f"b{position}"
        src.add(f"b{position} = 0")
    parts: dict[str, str] = {}
    for n, f in enumerate(fields):
        v = f"v{n}"
        item = _item(f)
        if _is_number(f):
            if item in INT_ITEMS:
                low, high = INT_RANGES[item]
                src.add(f"if type({v}) is not int or not {low} <= {v} <= {high}: raise Fallback")
            else:
                src.add(f"{v} = _float_value({v}, {item == FLOAT32})")
            slot_values[plan.slot_positions.index(f.position)] = v
        elif f.kind is K.BOOLEAN:
            src.add(f"if type({v}) is not bool: raise Fallback")
            src.add(f"if {v}: b{f.position} |= {1 << f.bit_position}")
        else:
            p = f"p{n}"
            parts[f.name] = p
            src.add(f"if {v} is None:")
            src.add(f"{p} = None", 2)
            src.add("else:")
            for line in _write_value(f.kind, v, p, c):
                src.add(line, 2)
    if plan.slot_codes:
        fixed = c("FIXED", struct.Struct(plan.slot_format))
        pack = f"{fixed}.pack({', '.join(slot_values)})"
    else:
        pack = "b''"
    if not var_count:
        src.add("if order is not None: raise Fallback")
        src.add(f"return {prefix} + {pack}")
        encoder: Encoder = _build(src, "encode")
        return encoder
    var_parts = ", ".join(parts[name] for name in plan.var_names)
    src.add(f"ps = ({var_parts},)")
    src.add("if order is None:")
    src.add(f"if seq is {schema_order}: data = [p for p in ps if p is not None]", 2)
    src.add("else: data = [ps[i] for i in seq if ps[i] is not None]", 2)
    src.add("if pending and len(data) > 1:", 2)
    src.add(f"raise WriteOrderNeeded({plan.schema_id}, None)", 3)
    src.add("else:")
    index = c("VAR_INDEX", {name: n for n, name in enumerate(plan.var_names)})
    src.add(f"seq = _write_order(order, ps, {index})", 2)
    src.add("data = [ps[i] for i in seq]", 2)
    table_index = c("TABLE_INDEX", tuple(f.index for f in plan.var_fields))
    src.add(f"positions = [-1] * {var_count}")
    src.add(f"at = {fix_len}")
    src.add("for i in seq:")
    src.add("p = ps[i]", 2)
    src.add("if p is not None:", 2)
    src.add(f"positions[{table_index}[i]] = at", 3)
    src.add("at += len(p)", 3)
    src.add("dl = at")
    # Null positions are -1: all ones in the entry's width (0xFF, 0xFFFF, or -1 itself).
    tables = [c(f"T{code}", struct.Struct(f">{var_count}{code}")) for code in "BHi"]
    src.add(f"if dl < 255: table = {tables[0]}.pack(*[p & 0xFF for p in positions])")
    src.add(f"elif dl < 65535: table = {tables[1]}.pack(*[p & 0xFFFF for p in positions])")
    src.add(f"else: table = {tables[2]}.pack(*positions)")
    src.add(f"return b''.join(({prefix}, I32.pack(dl), {pack}, *data, table))")
    encoder = _build(src, "encode")
    return encoder


def _write_value(kind: FieldKind, v: str, p: str, c: Callable[[str, object], str]) -> list[str]:
    """Lines that turn the JSON value ``v`` (not None) into its bytes ``p``."""
    item = KINDS[kind].item
    if item == STRING:
        return [
            f"if type({v}) is not str: raise Fallback",
            f"try: {p} = {v}.encode('utf-8')",
            "except UnicodeEncodeError: raise Fallback from None",  # a lone surrogate
            f"{p} = I32.pack(len({p})) + {p}",
        ]
    if item == DECIMAL:
        return [f"{p} = _decimal_bytes(*_decimal_parts({v}))"]
    if item == BOOL:
        return [
            f"if type({v}) is not bool: raise Fallback",
            f"{p} = b'\\x01' if {v} else b'\\x00'",
        ]
    st = c(f"S_{item}", ITEM_STRUCTS[item])
    if item in INT_ITEMS:
        low, high = INT_RANGES[item]
        return [
            f"if type({v}) is not int or not {low} <= {v} <= {high}: raise Fallback",
            f"{p} = {st}.pack({v})",
        ]
    if item in (FLOAT32, FLOAT64):
        return [f"{p} = {st}.pack(_float_value({v}, {item == FLOAT32}))"]
    return [f"{p} = {st}.pack(*_{item}_value({v}))"]


_HELPERS: dict[str, object] = {
    "Fallback": Fallback,
    "WriteOrderNeeded": WriteOrderNeeded,
    "E": encode_basestring,
    "_f64_json": _f64_json,
    "_f32_json": _f32_json,
    "_decimal_json": _decimal_json,
    "_tiling": _tiling,
    "_order_needed": _order_needed,
    "_float_value": _float_value,
    "_decimal_parts": _decimal_parts,
    "_decimal_bytes": _decimal_bytes,
    "_write_order": _write_order,
    f"_{DATE}_json": _date_json,
    f"_{DATE}_value": _date_value,
    "_time_json": _time_json,
    "_time_value": _time_value,
    f"_{TIMESTAMP}_json": _timestamp_json,
    f"_{TIMESTAMP}_value": _timestamp_value,
    f"_{TIMESTAMP_TZ}_json": _timestamp_tz_json,
    f"_{TIMESTAMP_TZ}_value": _timestamp_tz_value,
}


def _build(src: _Source, name: str) -> Any:
    text = "\n".join(src.lines) + "\n"
    namespace: dict[str, Any] = {**_HELPERS, **src.constants}
    # The source is generated here from a schema's field layout; names and kinds
    # enter it only as repr() literals and numbers.
    exec(compile(text, f"<compiled {name} of schema>", "exec"), namespace)  # noqa: S102
    function = namespace[name]
    function.__doc__ = text
    return function


def _accelerator() -> Any:
    """The extension, given the helpers of the generated code on first use."""
    flat = accel.extension()
    if not _accelerator_ready:
        flat.configure(_HELPERS, ITEM_STRUCTS)
        _accelerator_ready.append(True)
    return flat


def _field_layout(plan: SchemaPlan, flat: Any) -> list[tuple[int, int, int, int]]:
    """Each field's (code, where, bit, number) as the accelerator reads it, schema order:
    a fixed-size field's byte position and bit, a variable-size one's offset-table index
    and its number among the variable-size fields (-1 for a fixed-size one)."""
    numbers = {name: n for n, name in enumerate(plan.var_names)}
    layout = []
    for f in plan.schema.fields:
        encoding = KINDS[f.kind]
        if encoding.fixed:
            code = flat.FIXED_CODES[encoding.item]
            layout.append((code, f.position, max(f.bit_position, 0), -1))
        else:
            code = flat.VARIABLE_CODES[encoding.item]
            layout.append((code, f.index, 0, numbers[f.name]))
    return layout


def _accelerated_decoder(plan: SchemaPlan) -> Decoder:
    """The compiled accelerator's twin of :func:`_compile_decoder` (see :mod:`.accel`)."""
    flat = _accelerator()
    fields = []
    layout = _field_layout(plan, flat)
    for n, (f, place) in enumerate(zip(plan.schema.fields, layout, strict=True)):
        prefix = ("{" if n == 0 else ", ") + _json_string(f.name) + ": "
        plain = f.kind in PLAIN_KINDS or f.kind in _TIMESTAMP_KINDS
        fields.append((*place, plain, f.name, prefix))
    decoder: Decoder = flat.FlatDecoder(
        plan.schema_id,
        plan.schema.fix_sized_fields_length,
        tuple(fields),
        tuple(plan.bool_masks.items()),
        plan.var_names,
        tuple(_json_string(name) for name in plan.var_names),
        plan.schema_order,
    )
    return decoder


def _accelerated_text_encoder(plan: SchemaPlan) -> TextEncoder:
    """The accelerator's encoder of a document's JSON text: the same bytes as
    :func:`_compile_encoder`'s function gives for the parsed document, or Fallback."""
    flat = _accelerator()
    layout = _field_layout(plan, flat)
    fields = tuple((*place, f.name) for f, place in zip(plan.schema.fields, layout, strict=True))
    encoder: TextEncoder = flat.FlatEncoder(
        plan.schema_id,
        plan.schema.fix_sized_fields_length,
        fields,
        plan.schema_order,
        struct.pack(">iiq", 0, _TYPE_COMPACT, plan.schema_id),
    )
    return encoder


_accelerator_ready: list[bool] = []


def python_decoder(plan: SchemaPlan) -> Decoder:
    """The generated Python decoder of a flat schema: the authority the accelerator matches."""
    return _compile_decoder(plan)


def compile_plan(plan: SchemaPlan) -> SchemaPlan:
    """Build ``plan``'s compiled decoder and encoder on first use (None if not flat).

    The decoder is the accelerator's when it is built and not turned off
    (:func:`sidecar.codec.accel.enabled`), else the generated Python function; the
    accelerator also gives the plan a ``text_encoder`` (a stored document's text to
    bytes without parsing it into a dict first).
    """
    if not plan.compiled:
        if plan.flat:
            if accel.enabled():
                plan.decoder = _accelerated_decoder(plan)
                plan.text_encoder = _accelerated_text_encoder(plan)
            else:
                plan.decoder = _compile_decoder(plan)
            plan.encoder = _compile_encoder(plan)
        plan.compiled = True
    return plan


def decoder(schema: Any) -> Decoder | None:
    """The compiled decoder of ``schema``'s Data bytes (JSON text, plain fields), or None.

    The plain fields are those of :data:`PLAIN_KINDS`, by name, as decoded, and
    the TIMESTAMP / TIMESTAMP_WITH_TIMEZONE fields as their ISO text.
    """
    return compile_plan(plan_of(schema)).decoder


def encoder(schema: Any) -> Encoder | None:
    """The compiled encoder of ``schema``'s JSON object into Data bytes, or None."""
    return compile_plan(plan_of(schema)).encoder
