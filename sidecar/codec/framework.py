"""Rows written by the reference framework, rebuilt as the record the framework would load.

The reference framework (myawnhc/hazelcast-microservices-framework, its
``GenericRecordJsonConverter``) stores a Compact value as::

    {"_schemaType": "<type name>",
     "_fieldKinds": {"<field>": "<FieldKind name>", ...},
     "_fields": {"<field>": <value>, ...}}

with nested COMPACT values in the same shape and ARRAY_OF_COMPACT as arrays of them (or
nulls). Loading a row, the framework parses the text with its own small JSON parser, builds
``GenericRecordBuilder.compact(_schemaType)`` and writes each ``_fieldKinds`` entry, in
document order, through a switch over the kinds; the member then serializes that record.
:func:`rebuild_record` computes the record the member ends up holding: the type name, the
schema (``_schemaType`` plus the fields the switch wrote, sorted by name, id = Rabin
fingerprint) and the values, in schema order (``write_order`` None, as a GenericRecord is
written). A row the framework could not load raises :class:`DecodeError`: it was unreadable
for the framework too, and guessing would invent data.

The rules, each the framework's own behaviour:

* Kinds written: :data:`SUPPORTED_KINDS` (STRING, INT32, INT64, FLOAT32, FLOAT64, BOOLEAN,
  NULLABLE_INT32/INT64/FLOAT32/FLOAT64/BOOLEAN, COMPACT, ARRAY_OF_COMPACT). Every other
  FieldKind name (DECIMAL, INT8, DATE, ARRAY_OF_STRING, also NOT_AVAILABLE, CHAR, PORTABLE)
  is skipped silently: the field is not in the rebuilt schema, whatever its value. A name
  that is no FieldKind constant (``FieldKind.valueOf`` is case-sensitive: ``"int32"`` fails)
  or a kind that is not a string fails.
* ``_fields`` entries without a ``_fieldKinds`` entry are ignored; a ``_fieldKinds`` entry
  without a ``_fields`` entry reads as null. Keys besides the three are ignored.
* null is accepted for STRING, NULLABLE_*, COMPACT, ARRAY_OF_COMPACT and its items; for
  INT32, INT64, FLOAT32, FLOAT64 and BOOLEAN the framework unboxes it (NullPointerException).
* JSON types are casts: STRING takes a string only, BOOLEAN / NULLABLE_BOOLEAN only
  ``true``/``false``, the numeric kinds only numbers (``"5"`` or ``true`` fail), COMPACT an
  object, ARRAY_OF_COMPACT an array of objects and nulls (ClassCastException otherwise).
* A nested object lacking ``_schemaType``, ``_fieldKinds`` or ``_fields`` (or with null
  there) fails as the top level does (IllegalArgumentException).
* Numbers: the framework's parser makes a number written with ``.`` or an exponent a Double
  (``1.0``, ``1e3``; ``1E400`` is Infinity), any other an Integer or Long (``-0`` is 0), and
  rejects the whole document for an integer beyond int64 (``Long.parseLong``), wherever it
  is, ignored fields included. Python's ``json`` splits int from float by the same rule, so a
  parsed document holds what Java saw. The conversions are Java's ``Number`` methods:

  - INT32 from an integer keeps its low 32 bits (``(int) long`` wraps: 2**31 is -2**31);
  - INT32 / INT64 from a Double truncate toward zero and saturate at the type's bounds
    (``1.9`` is 1, ``-1.9`` is -1, ``1e30`` is the maximum; NaN would be 0);
  - FLOAT32 from a Double is the nearest binary32, ties to even, ±Infinity beyond its range
    (``(float) double``); from an integer it is the nearest binary32 of the exact integer,
    rounded once as ``(float) long`` does (not through a double, which can round twice);
  - FLOAT64 from an integer is the nearest double (``(double) long``).
* ARRAY_OF_COMPACT items of different schemas: the builder takes them, but the member
  refuses to serialize such an array (HazelcastSerializationException), so the load failed.
* Strings are Java strings: a lone UTF-16 surrogate (possible only through an escape such as
  ``\\ud800``) becomes ``?`` when the member writes it as UTF-8 (``String.getBytes``), in
  values, field names and type names alike.
* Nesting deeper than ``max_depth`` records is refused (a resource bound; Java's limit is its
  thread stack).

Reading text. :func:`rebuild_record` takes an already parsed document and reads it as the
framework's parser would have produced it: an int beyond int64 or a NaN float anywhere is
refused (Java's parser reads neither), an infinite float is taken as an overflowing literal
such as ``1e400`` (Infinity in Java too), so the document must come from a parser that
refuses ``NaN``/``Infinity`` literals, as :func:`sidecar.codec.jsonmap.loads` does. Where the
raw text is at hand, :func:`rebuild_record_from_text` is exact: it parses with
:func:`parse_framework_json`, which reads text as the framework's parser does. That differs
from a strict JSON parser (Python's ``json``, ``jsonmap.loads``) here:

* ``\\b`` and ``\\f`` (and any unknown escape ``\\x``) stand for the letter itself, not
  U+0008 / U+000C. PostgreSQL's JSONB prints those two characters as ``\\b`` / ``\\f``, so
  such strings came back to the framework changed; a Python parse would not reproduce that.
* ``NaN`` / ``Infinity`` literals (what the framework writes for non-finite floats) fail.
* A repeated key keeps its first position and last value (``jsonmap.loads`` refuses it).
* Lenient syntax is accepted: raw control characters in strings, leading zeros (``007``),
  ``1.``, ``.5``, Unicode decimal digits in integers, Java whitespace; text after the first
  value is ignored; ``\\u`` takes any four characters ``Integer.parseInt(s, 16)`` accepts
  (``\\u+041`` is ``A``).

:func:`framework_document` goes the other way: the document the framework's converter
writes for a record (values of unsupported kinds written as null, as the framework does), so
``rebuild_record(framework_document(r))`` gives ``r`` back when every kind in ``r`` is
supported, its floats are finite and its nested records keep their type names.
"""

from __future__ import annotations

import math
import re
import struct
import unicodedata
from collections.abc import Callable
from typing import Any

from hazelcast.serialization.api import FieldKind

from sidecar.codec.compact import DEFAULT_MAX_DEPTH, CompactRecord
from sidecar.codec.jsonmap import float_to_json
from sidecar.codec.schemas import SchemaRegistry, build_schema, to_record
from sidecar.errors import DecodeError
from sidecar.providers.base import SchemaRecord

__all__ = [
    "DEFAULT_SCHEMA_TYPE",
    "FRAMEWORK_KEYS",
    "SUPPORTED_KINDS",
    "framework_document",
    "infer_schema_type",
    "is_framework_document",
    "parse_framework_json",
    "rebuild_record",
    "rebuild_record_from_text",
]

FRAMEWORK_KEYS = ("_schemaType", "_fieldKinds", "_fields")
SCHEMA_TYPE_KEY, FIELD_KINDS_KEY, FIELDS_KEY = FRAMEWORK_KEYS
#: The type name the framework writes when a record has no non-empty STRING ``eventType``.
DEFAULT_SCHEMA_TYPE = "GenericRecord"

K = FieldKind

#: The kinds the framework's converter writes back; any other kind is skipped.
SUPPORTED_KINDS: frozenset[FieldKind] = frozenset(
    {
        K.STRING,
        K.INT32,
        K.INT64,
        K.FLOAT32,
        K.FLOAT64,
        K.BOOLEAN,
        K.NULLABLE_INT32,
        K.NULLABLE_INT64,
        K.NULLABLE_FLOAT32,
        K.NULLABLE_FLOAT64,
        K.NULLABLE_BOOLEAN,
        K.COMPACT,
        K.ARRAY_OF_COMPACT,
    }
)
#: Kinds the framework unboxes to a Java primitive: null is a NullPointerException.
_PRIMITIVE = frozenset({K.INT32, K.INT64, K.FLOAT32, K.FLOAT64, K.BOOLEAN})
_KIND_BY_NAME: dict[str, FieldKind] = dict(FieldKind.__members__)

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_F32 = struct.Struct(">f")
_SURROGATE = re.compile("[\ud800-\udfff]")
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


# -- Java's conversions ---------------------------------------------------------------


def _wrap_int32(value: int) -> int:
    """``(int) long``: the low 32 bits, two's complement."""
    return ((value - _INT32_MIN) & 0xFFFFFFFF) + _INT32_MIN


def _double_to_integer(value: float, low: int, high: int) -> int:
    """``(int) double`` / ``(long) double``: toward zero, saturated, NaN is 0 (JLS 5.1.3)."""
    if math.isnan(value):
        return 0
    if value <= low:
        return low
    if value >= high:
        return high
    return int(value)


def _double_to_float32(value: float) -> float:
    """``(float) double``: the nearest binary32, ties to even, ±Infinity past the range."""
    try:
        result: float = _F32.unpack(_F32.pack(value))[0]
    except OverflowError:  # struct refuses what C's cast rounds to infinity
        return math.copysign(math.inf, value)
    return result


def _integer_to_float32(value: int) -> float:
    """``(float) long``: the exact integer rounded once to 24 significant bits, ties to even."""
    magnitude = abs(value)
    excess = magnitude.bit_length() - 24
    if excess > 0:
        quotient, remainder = divmod(magnitude, 1 << excess)
        half = 1 << (excess - 1)
        if remainder > half or (remainder == half and quotient & 1):
            quotient += 1
        magnitude = quotient << excess
    result = float(magnitude)  # exact: at most 25 significant bits
    return -result if value < 0 else result


def _to_int32(value: int | float) -> int:
    if isinstance(value, int):
        return _wrap_int32(value)
    return _double_to_integer(value, _INT32_MIN, _INT32_MAX)


def _to_int64(value: int | float) -> int:
    if isinstance(value, int):
        return value
    return _double_to_integer(value, _INT64_MIN, _INT64_MAX)


def _to_float32(value: int | float) -> float:
    if isinstance(value, int):
        return _integer_to_float32(value)
    return _double_to_float32(value)


def _to_float64(value: int | float) -> float:
    return float(value)  # an int rounds to nearest, ties to even, as (double) long


_NUMBER_CONVERSIONS: dict[FieldKind, Callable[[int | float], int | float]] = {
    K.INT32: _to_int32,
    K.NULLABLE_INT32: _to_int32,
    K.INT64: _to_int64,
    K.NULLABLE_INT64: _to_int64,
    K.FLOAT32: _to_float32,
    K.NULLABLE_FLOAT32: _to_float32,
    K.FLOAT64: _to_float64,
    K.NULLABLE_FLOAT64: _to_float64,
}


def _java_string(text: str) -> str:
    """The text a member writes for a Java string holding ``text``'s UTF-16 units.

    Surrogate code points that form a pair are one character; a lone surrogate is written
    as ``?`` (``String.getBytes(UTF_8)`` replaces what it cannot encode).
    """
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE.sub("?", _join_surrogates(text))


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return f"a {type(value).__name__} (not a JSON value)"


def _error(path: str, cause: str) -> DecodeError:
    where = f"framework row, field {path}" if path else "framework row"
    return DecodeError(f"{where}: {cause}")


# -- the document -> the record ----------------------------------------------------------


def is_framework_document(document: object) -> bool:
    """Whether ``document`` has the framework's shape: an object with exactly its three keys.

    Exactly, because the framework's converter always writes those three and nothing else,
    and a looser test would claim more of our own documents (whose keys are field names).
    The values are not checked here: :func:`rebuild_record` explains what is wrong with them.
    A record of ours whose only fields are named like the three keys looks the same; use
    this only for rows that carry no schema id (the framework's rows never do).
    """
    return isinstance(document, dict) and document.keys() == set(FRAMEWORK_KEYS)


class _Rebuild:
    """One rebuild: the registry, the schemas it will add, and the records made."""

    __slots__ = ("built", "max_depth", "new", "records", "registry")

    def __init__(self, registry: SchemaRegistry, max_depth: int) -> None:
        self.registry = registry
        self.max_depth = max_depth
        self.built: dict[tuple[str, tuple[tuple[str, int], ...]], Any] = {}
        self.new: dict[int, Any] = {}
        self.records: list[CompactRecord] = []

    def record(self, node: object, path: str, depth: int) -> CompactRecord:
        if depth > self.max_depth:
            raise _error(path, f"compact records nested deeper than {self.max_depth} levels")
        if not isinstance(node, dict):
            raise _error(
                path,
                f"expected an object with {', '.join(FRAMEWORK_KEYS)}, got {_describe(node)} "
                "(the framework's cast to Map fails)",
            )
        type_name = node.get(SCHEMA_TYPE_KEY)
        kinds = node.get(FIELD_KINDS_KEY)
        values = node.get(FIELDS_KEY)
        for key, got, wanted in (
            (SCHEMA_TYPE_KEY, type_name, str),
            (FIELD_KINDS_KEY, kinds, dict),
            (FIELDS_KEY, values, dict),
        ):
            if got is not None and not isinstance(got, wanted):
                what = "a string" if wanted is str else "an object"
                raise _error(path, f"{key} is {_describe(got)}, not {what} (ClassCastException)")
        if not (
            isinstance(type_name, str) and isinstance(kinds, dict) and isinstance(values, dict)
        ):
            absent = [
                k
                for k, v in zip(FRAMEWORK_KEYS, (type_name, kinds, values), strict=True)
                if v is None
            ]
            raise _error(
                path,
                f"{', '.join(absent)} missing or null: the framework requires "
                f"{', '.join(FRAMEWORK_KEYS)} in every record (IllegalArgumentException)",
            )
        fields: dict[str, object] = {}
        field_kinds: dict[str, FieldKind] = {}
        for name, kind_name in kinds.items():
            if not isinstance(name, str):
                raise _error(path, f"{FIELD_KINDS_KEY} has a key that is not a string: {name!r}")
            field_path = f"{path}.{name}" if path else name
            kind = _kind(kind_name, field_path)
            if kind not in SUPPORTED_KINDS:
                continue  # the framework's switch skips it
            java_name = _java_string(name)
            if java_name in field_kinds:
                raise _error(
                    field_path,
                    f"the member writes the name as {java_name!r}, which another field has",
                )
            fields[java_name] = self.value(kind, values.get(name), field_path, depth)
            field_kinds[java_name] = kind
        schema = self.schema(_java_string(type_name), field_kinds)
        record = CompactRecord(
            schema.type_name, schema, {f.name: fields[f.name] for f in schema.fields}
        )
        self.records.append(record)
        return record

    def value(self, kind: FieldKind, value: object, path: str, depth: int) -> object:
        if value is None:
            if kind in _PRIMITIVE:
                raise _error(
                    path,
                    f"a {kind.name} field is null or missing in {FIELDS_KEY}: the framework "
                    "unboxes it to a primitive (NullPointerException)",
                )
            return None
        if kind is K.STRING:
            if not isinstance(value, str):
                raise _error(
                    path, f"expected a string, got {_describe(value)} (ClassCastException)"
                )
            return _java_string(value)
        if kind is K.BOOLEAN or kind is K.NULLABLE_BOOLEAN:
            if not isinstance(value, bool):
                raise _error(
                    path, f"expected true or false, got {_describe(value)} (ClassCastException)"
                )
            return value
        if kind is K.COMPACT:
            return self.record(value, path, depth + 1)
        if kind is K.ARRAY_OF_COMPACT:
            return self.array(value, path, depth)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _error(path, f"expected a number, got {_describe(value)} (ClassCastException)")
        if isinstance(value, int) and not _INT64_MIN <= value <= _INT64_MAX:
            raise _error(
                path,
                f"the integer {value} is beyond int64: the framework's parser "
                "(Long.parseLong) rejects the whole document",
            )
        if isinstance(value, float) and math.isnan(value):
            raise _error(path, "NaN is not a number the framework's parser reads")
        return _NUMBER_CONVERSIONS[kind](value)

    def array(self, value: object, path: str, depth: int) -> list[CompactRecord | None]:
        if not isinstance(value, list):
            raise _error(path, f"expected an array, got {_describe(value)} (ClassCastException)")
        items: list[CompactRecord | None] = []
        for index, item in enumerate(value):
            items.append(None if item is None else self.record(item, f"{path}[{index}]", depth + 1))
        schemas = {item.schema_id: item.type_name for item in items if item is not None}
        if len(schemas) > 1:
            raise _error(
                path,
                f"items have {len(schemas)} different schemas ({sorted(schemas.values())}): "
                "the member refuses to serialize such an array (HazelcastSerializationException)",
            )
        return items

    def schema(self, type_name: str, field_kinds: dict[str, FieldKind]) -> Any:
        fields = tuple(sorted((name, int(kind)) for name, kind in field_kinds.items()))
        key = (type_name, fields)
        schema = self.built.get(key)
        if schema is None:
            schema = build_schema(type_name, list(fields))
            if schema.schema_id in self.registry:
                schema = self.registry.get(schema.schema_id)
            else:
                schema = self.new.setdefault(schema.schema_id, schema)
            self.built[key] = schema
        return schema

    def commit(self) -> list[SchemaRecord]:
        """Add the new schemas to the registry (only now, so a failed rebuild adds none)."""
        added: list[SchemaRecord] = []
        stored: dict[int, Any] = {}
        for schema_id, schema in self.new.items():
            if schema_id in self.registry:
                continue
            persisted = to_record(schema)
            stored[schema_id] = self.registry.add(persisted)
            added.append(persisted)
        for record in self.records:  # share the registry's Schema objects
            record.schema = stored.get(record.schema_id, record.schema)
        return added


def _kind(kind_name: object, path: str) -> FieldKind:
    if kind_name is None:
        raise _error(path, "its kind is null (FieldKind.valueOf: NullPointerException)")
    if not isinstance(kind_name, str):
        raise _error(path, f"its kind is {_describe(kind_name)}, not a string (ClassCastException)")
    kind = _KIND_BY_NAME.get(kind_name)
    if kind is None:
        raise _error(
            path,
            f"{kind_name!r} is not a FieldKind name (FieldKind.valueOf: IllegalArgumentException)",
        )
    return kind


def _check_parsable(document: object) -> None:
    """Refuse what the framework's parser cannot have produced, wherever it is in the document."""
    stack: list[tuple[object, tuple[Any, ...]]] = [(document, ())]
    while stack:
        node, where = stack.pop()
        problem = None
        if isinstance(node, dict):
            for key, item in node.items():
                if not isinstance(key, str):
                    problem = f"the object key {key!r} is not a string"
                    break
                stack.append((item, (where, "." + key)))
        elif isinstance(node, list):
            stack.extend((item, (where, f"[{index}]")) for index, item in enumerate(node))
        elif node is None or isinstance(node, str | bool):
            continue
        elif isinstance(node, int):
            if not _INT64_MIN <= node <= _INT64_MAX:
                problem = (
                    f"the integer {node} is beyond int64: the framework's parser "
                    "(Long.parseLong) rejects the whole document"
                )
        elif isinstance(node, float):
            if math.isnan(node):
                problem = "NaN is not a number the framework's parser reads"
        else:
            problem = f"{_describe(node)} cannot come from JSON"
        if problem is not None:
            parts: list[str] = []
            while where:
                where, part = where
                parts.append(part)
            location = "".join(reversed(parts)).lstrip(".") or "(the document)"
            raise DecodeError(f"framework row, at {location}: {problem}")


def rebuild_record(
    document: object, registry: SchemaRegistry, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[CompactRecord, list[SchemaRecord]]:
    """The CompactRecord the framework's converter would have rebuilt from ``document``.

    ``document`` is the parsed JSON of a framework row (see the module docstring for how
    its numbers are read). Every schema the record uses, nested ones too, is added to
    ``registry`` if new; the newly added ones are returned, for the caller to persist.
    Nothing is added when the rebuild fails.

    Raises:
        DecodeError: the framework itself could not have loaded the row: not an object, a
            record without ``_schemaType``/``_fieldKinds``/``_fields``, an unknown kind name,
            a value its kind's cast or unboxing refuses, an integer beyond int64 anywhere,
            array items of different schemas, or records nested deeper than ``max_depth``.
            The message names the field (``payload.items[2].name``) and the cause.
    """
    return _rebuild(document, registry, max_depth, check_parsable=True)


def rebuild_record_from_text(
    text: str, registry: SchemaRegistry, *, max_depth: int = DEFAULT_MAX_DEPTH
) -> tuple[CompactRecord, list[SchemaRecord]]:
    """:func:`rebuild_record` of the row's raw ``text``, parsed as the framework parses it.

    Exact where a strict JSON parse is not (``\\b``/``\\f`` escapes, repeated keys, lenient
    syntax: see the module docstring).

    Raises:
        DecodeError: the framework's parser rejects ``text``, or as :func:`rebuild_record`.
    """
    return _rebuild(parse_framework_json(text), registry, max_depth, check_parsable=False)


def _rebuild(
    document: object, registry: SchemaRegistry, max_depth: int, *, check_parsable: bool
) -> tuple[CompactRecord, list[SchemaRecord]]:
    run = _Rebuild(registry, max_depth)
    record = run.record(document, "", 0)
    if check_parsable:
        _check_parsable(document)
    return record, run.commit()


# -- the framework's JSON parser ---------------------------------------------------------

#: ``String.trim()`` removes every char up to U+0020 at both ends.
_TRIMMED = "".join(chr(c) for c in range(0x21))
_JAVA_SPACE_CONTROLS = frozenset("\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f")
_NON_BREAKING = frozenset("\xa0\u2007\u202f")
_STRING_CHUNK = re.compile(r'[^"\\]*')
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "n": "\n", "r": "\r", "t": "\t"}
#: What ``Double.parseDouble`` accepts of the characters the number scan takes (ASCII digits).
_JAVA_DOUBLE = re.compile(r"-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_FULLWIDTH_HEX = {chr(0xFF21 + i): 10 + i for i in range(6)} | {
    chr(0xFF41 + i): 10 + i for i in range(6)
}


def _is_java_whitespace(ch: str) -> bool:
    """``Character.isWhitespace`` of a BMP char."""
    if ch in _JAVA_SPACE_CONTROLS:
        return True
    return (
        ch <= "\uffff"
        and unicodedata.category(ch) in ("Zs", "Zl", "Zp")
        and ch not in _NON_BREAKING
    )


def _is_java_digit(ch: str) -> bool:
    """``Character.isDigit`` of a char (Unicode Nd; Java sees non-BMP chars as surrogates)."""
    return ch <= "\uffff" and ch.isdecimal()


def _java_hex_digit(ch: str) -> int:
    """``Character.digit(ch, 16)``: -1 when it is not a hex digit."""
    if "0" <= ch <= "9":
        return ord(ch) - 0x30
    if "a" <= ch <= "f":
        return ord(ch) - 0x57
    if "A" <= ch <= "F":
        return ord(ch) - 0x37
    if ch in _FULLWIDTH_HEX:
        return _FULLWIDTH_HEX[ch]
    if _is_java_digit(ch):
        return unicodedata.decimal(ch)
    return -1


def _java_parse_hex(text: str) -> int | None:
    """``Integer.parseInt(text, 16)`` for four chars, or None where it throws."""
    sign, body = 1, text
    if text[:1] in ("+", "-"):
        sign, body = (-1 if text[0] == "-" else 1), text[1:]
    if not body:
        return None
    value = 0
    for ch in body:
        digit = _java_hex_digit(ch)
        if digit < 0:
            return None
        value = value * 16 + digit
    return sign * value


class _JavaJsonParser:
    """The framework's recursive-descent JSON parser, as a loop (no recursion limit)."""

    __slots__ = ("n", "pos", "text")

    def __init__(self, text: str) -> None:
        self.text = text.strip(_TRIMMED)
        self.n = len(self.text)
        self.pos = 0

    def fail(self, cause: str) -> DecodeError:
        return DecodeError(
            f"framework row is not JSON the framework's parser reads: {cause} "
            f"(at character {self.pos})"
        )

    def skip_whitespace(self) -> None:
        text, n, pos = self.text, self.n, self.pos
        while pos < n and _is_java_whitespace(text[pos]):
            pos += 1
        self.pos = pos

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < self.n else ""

    def expect(self, ch: str) -> None:
        self.skip_whitespace()
        if self.peek() != ch:
            got = repr(self.peek()) if self.pos < self.n else "the end"
            raise self.fail(f"expected {ch!r}, got {got}")
        self.pos += 1

    def key(self) -> str:
        self.skip_whitespace()
        key = self.string()
        self.skip_whitespace()
        self.expect(":")
        return key

    def parse(self) -> object:
        # Containers being filled, each with the key its next value goes to.
        stack: list[tuple[dict[str, object] | list[object], list[str]]] = []
        while True:
            self.skip_whitespace()
            if self.pos >= self.n:
                raise self.fail("unexpected end of JSON")
            ch = self.text[self.pos]
            value: object
            if ch == "{":
                self.pos += 1
                self.skip_whitespace()
                if self.peek() == "}":
                    self.pos += 1
                    value = {}
                else:
                    stack.append(({}, [self.key()]))
                    continue
            elif ch == "[":
                self.pos += 1
                self.skip_whitespace()
                if self.peek() == "]":
                    self.pos += 1
                    value = []
                else:
                    stack.append(([], []))
                    continue
            elif ch == '"':
                value = self.string()
            elif ch in "tf":
                value = self.boolean()
            elif ch == "n":
                self.null()
                value = None
            else:
                value = self.number()
            # Put the value in its container; close every container it completes.
            while True:
                if not stack:
                    return value  # text after the first value is ignored, as in Java
                container, pending = stack[-1]
                if isinstance(container, dict):
                    container[pending[0]] = value  # a repeated key: last value, first place
                else:
                    container.append(value)
                self.skip_whitespace()
                if self.peek() == ",":
                    self.pos += 1
                    if isinstance(container, dict):
                        pending[0] = self.key()
                    break
                self.expect("}" if isinstance(container, dict) else "]")
                stack.pop()
                value = container

    def string(self) -> str:
        self.expect('"')
        text, n, pos = self.text, self.n, self.pos
        chunks: list[str] = []
        while True:
            match = _STRING_CHUNK.match(text, pos)
            assert match is not None  # the pattern matches the empty string
            chunks.append(match.group())
            pos = match.end()
            if pos >= n:
                self.pos = pos
                raise self.fail("unterminated string")
            if text[pos] == '"':
                self.pos = pos + 1
                return _join_surrogates("".join(chunks))
            pos += 1  # the backslash
            if pos >= n:
                self.pos = pos
                raise self.fail("unexpected end of string escape")
            escaped = text[pos]
            if escaped == "u":
                unit = _java_parse_hex(text[pos + 1 : pos + 5]) if pos + 4 < n else None
                if unit is None:
                    self.pos = pos
                    raise self.fail(f"invalid unicode escape {text[pos - 1 : pos + 5]!r}")
                chunks.append(chr(unit & 0xFFFF))  # (char) int
                pos += 5
            else:
                chunks.append(_ESCAPES.get(escaped, escaped))  # \b is 'b', \f is 'f', \x is 'x'
                pos += 1

    def boolean(self) -> bool:
        if self.text.startswith("true", self.pos):
            self.pos += 4
            return True
        if self.text.startswith("false", self.pos):
            self.pos += 5
            return False
        raise self.fail("expected a boolean")

    def null(self) -> None:
        if self.text.startswith("null", self.pos):
            self.pos += 4
            return None
        raise self.fail("expected null")

    def number(self) -> int | float:
        text, n, start = self.text, self.n, self.pos
        pos = start
        is_double = False
        if pos < n and text[pos] == "-":
            pos += 1
        while pos < n and _is_java_digit(text[pos]):
            pos += 1
        if pos < n and text[pos] == ".":
            is_double = True
            pos += 1
            while pos < n and _is_java_digit(text[pos]):
                pos += 1
        if pos < n and text[pos] in "eE":
            is_double = True
            pos += 1
            if pos < n and text[pos] in "+-":
                pos += 1
            while pos < n and _is_java_digit(text[pos]):
                pos += 1
        token = text[start:pos]
        self.pos = pos
        if is_double:
            if _JAVA_DOUBLE.fullmatch(token) is None:
                raise self.fail(f"{token!r} is not a number (Double.parseDouble)")
            return float(token)  # correctly rounded, as Double.parseDouble; 1e400 is inf
        return self.long(token)

    def long(self, token: str) -> int:
        negative = token.startswith("-")
        digits = token[1:] if negative else token
        if not digits:
            raise self.fail(f"{token!r} is not a number (Long.parseLong)")
        ascii_digits = "".join(str(unicodedata.decimal(ch)) for ch in digits).lstrip("0") or "0"
        value = int(ascii_digits) if len(ascii_digits) <= 19 else _INT64_MAX + 1
        value = -value if negative else value
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise self.fail(
                f"the integer {token} is beyond int64 (Long.parseLong rejects the whole document)"
            )
        return value


def _join_surrogates(text: str) -> str:
    """One code point for each surrogate pair (Java holds UTF-16; escapes produce halves)."""
    if text.isascii() or _SURROGATE.search(text) is None:
        return text
    return _SURROGATE_PAIR.sub(
        lambda m: chr(0x10000 + ((ord(m[0][0]) - 0xD800) << 10) + (ord(m[0][1]) - 0xDC00)),
        text,
    )


def parse_framework_json(text: str) -> object:
    """Parse ``text`` as the framework's converter parses a row, into Python JSON values.

    Numbers written with ``.`` or an exponent become floats, others ints (always within
    int64); objects keep their first key order. Lone surrogates from ``\\u`` escapes stay in
    the strings (:func:`rebuild_record` writes them as the member does).

    Raises:
        DecodeError: where the framework's parser throws.
    """
    return _JavaJsonParser(text).parse()


# -- the record -> the framework's document -------------------------------------------------


def infer_schema_type(record: CompactRecord, default: str = DEFAULT_SCHEMA_TYPE) -> str:
    """The type name the framework writes for ``record``: its non-empty STRING ``eventType``
    field, else ``default`` (the framework's views and nested records use "GenericRecord",
    its event store "unknown")."""
    field = record.schema.fields_dict.get("eventType")
    value = record.fields.get("eventType")
    if field is not None and field.kind is K.STRING and isinstance(value, str) and value:
        return value
    return default


def framework_document(
    record: CompactRecord,
    *,
    schema_type: str | None = None,
    infer_nested_types: bool = False,
) -> dict[str, object]:
    """The document the framework's converter writes for ``record``.

    The top-level ``_schemaType`` is ``schema_type``, by default the record's type name
    (the framework passes :func:`infer_schema_type`'s answer). Nested records keep their own
    type names unless ``infer_nested_types``, which writes what the framework writes for
    them (:func:`infer_schema_type`, so usually "GenericRecord"). Fields of kinds the
    framework does not support are listed in ``_fieldKinds`` with a null value, as it does.
    Floats are JSON numbers; a non-finite one stays a non-finite float, which ``json.dumps``
    writes as the ``NaN``/``Infinity`` literals the framework also writes (and cannot read).
    """
    type_name = record.type_name if schema_type is None else schema_type
    return _document(record, type_name, infer_nested_types)


def _document(record: CompactRecord, type_name: str, infer: bool) -> dict[str, object]:
    kinds: dict[str, object] = {}
    values: dict[str, object] = {}
    for field in record.schema.fields:
        name: str = field.name
        kind: FieldKind = field.kind
        kinds[name] = kind.name
        value = record.fields[name]
        values[name] = _written(kind, value, infer) if kind in SUPPORTED_KINDS else None
    return {SCHEMA_TYPE_KEY: type_name, FIELD_KINDS_KEY: kinds, FIELDS_KEY: values}


def _written(kind: FieldKind, value: object, infer: bool) -> object:
    if value is None:
        return None
    if kind is K.COMPACT:
        assert isinstance(value, CompactRecord)
        return _nested(value, infer)
    if kind is K.ARRAY_OF_COMPACT:
        assert isinstance(value, list)
        return [None if item is None else _nested(item, infer) for item in value]
    if (kind is K.FLOAT32 or kind is K.NULLABLE_FLOAT32) and isinstance(value, float):
        if math.isfinite(value) and value != 0.0:
            return float_to_json(value, single=True)  # the digits Float.toString prints
    return value


def _nested(record: CompactRecord, infer: bool) -> dict[str, object]:
    type_name = infer_schema_type(record) if infer else record.type_name
    return _document(record, type_name, infer)
