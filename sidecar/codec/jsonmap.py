"""Compact records ⇄ readable JSON documents, exactly, given the schemas.

A record becomes a JSON object with its field names as keys, in schema order:
``{"amount": 12.5, "customer": {...}, "tags": ["a"]}``. The JSON alone does not
say which FieldKind a number is; the schema does, so reading a document back uses
the schema's kinds (an INT8 stays an INT8) and refuses a value that does not fit
its kind (DecodeError).

Choices made so that the JSON survives PostgreSQL JSONB and comes back to the same
bytes:

* Floats are JSON numbers when finite and not -0.0; otherwise the strings
  ``"NaN"``, ``"Infinity"``, ``"-Infinity"``, ``"-0.0"`` (JSONB has no NaN and
  turns -0.0 into 0). FLOAT32 values are written with the fewest digits that
  still select the same 32-bit float (``0.1``, not ``0.10000000149011612``).
  Reading accepts any JSON number (JSONB may print ``1e+38`` as an integer).
* DECIMAL is a string keeping its scale (``"12.50"``; ``"1.2E+4"`` for a
  negative scale).
* DATE / TIME / TIMESTAMP / TIMESTAMP_WITH_TIMEZONE are ISO-8601 strings with
  nanoseconds and Java's extended years (see :mod:`sidecar.codec.temporal`).
* A nested record names its schema: ``"@type"`` and ``"@schemaId"`` (the id as a
  string, since int64 ids exceed what JSON numbers keep in JavaScript).
* ``"@order"`` lists the variable-size fields in the order their data was written,
  only when that is not the schema's order (see :class:`CompactRecord`).
"""

from __future__ import annotations

import decimal
import json
import math
import re
import struct
from collections.abc import Callable
from typing import Any

from hazelcast.serialization.api import FieldKind

from sidecar.codec.compact import CompactRecord
from sidecar.codec.schemas import SchemaRegistry
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.errors import DecodeError

TYPE_KEY = "@type"
SCHEMA_ID_KEY = "@schemaId"
ORDER_KEY = "@order"
RESERVED_KEYS = frozenset({TYPE_KEY, SCHEMA_ID_KEY, ORDER_KEY})

_F32 = struct.Struct(">f")
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SCHEMA_ID_RE = re.compile(r"-?\d{1,19}")
_SPECIAL_FLOATS = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "-0.0": -0.0,
}
_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
}

K = FieldKind

# kind -> (item encoding, is array, items may be null)
_KINDS: dict[FieldKind, tuple[str, bool, bool]] = {
    K.BOOLEAN: ("bool", False, False),
    K.INT8: ("int8", False, False),
    K.INT16: ("int16", False, False),
    K.INT32: ("int32", False, False),
    K.INT64: ("int64", False, False),
    K.FLOAT32: ("float32", False, False),
    K.FLOAT64: ("float64", False, False),
    K.NULLABLE_BOOLEAN: ("bool", False, True),
    K.NULLABLE_INT8: ("int8", False, True),
    K.NULLABLE_INT16: ("int16", False, True),
    K.NULLABLE_INT32: ("int32", False, True),
    K.NULLABLE_INT64: ("int64", False, True),
    K.NULLABLE_FLOAT32: ("float32", False, True),
    K.NULLABLE_FLOAT64: ("float64", False, True),
    K.STRING: ("string", False, True),
    K.DECIMAL: ("decimal", False, True),
    K.TIME: ("time", False, True),
    K.DATE: ("date", False, True),
    K.TIMESTAMP: ("timestamp", False, True),
    K.TIMESTAMP_WITH_TIMEZONE: ("timestamp_tz", False, True),
    K.COMPACT: ("compact", False, True),
    K.ARRAY_OF_BOOLEAN: ("bool", True, False),
    K.ARRAY_OF_INT8: ("int8", True, False),
    K.ARRAY_OF_INT16: ("int16", True, False),
    K.ARRAY_OF_INT32: ("int32", True, False),
    K.ARRAY_OF_INT64: ("int64", True, False),
    K.ARRAY_OF_FLOAT32: ("float32", True, False),
    K.ARRAY_OF_FLOAT64: ("float64", True, False),
    K.ARRAY_OF_NULLABLE_BOOLEAN: ("bool", True, True),
    K.ARRAY_OF_NULLABLE_INT8: ("int8", True, True),
    K.ARRAY_OF_NULLABLE_INT16: ("int16", True, True),
    K.ARRAY_OF_NULLABLE_INT32: ("int32", True, True),
    K.ARRAY_OF_NULLABLE_INT64: ("int64", True, True),
    K.ARRAY_OF_NULLABLE_FLOAT32: ("float32", True, True),
    K.ARRAY_OF_NULLABLE_FLOAT64: ("float64", True, True),
    K.ARRAY_OF_STRING: ("string", True, True),
    K.ARRAY_OF_DECIMAL: ("decimal", True, True),
    K.ARRAY_OF_TIME: ("time", True, True),
    K.ARRAY_OF_DATE: ("date", True, True),
    K.ARRAY_OF_TIMESTAMP: ("timestamp", True, True),
    K.ARRAY_OF_TIMESTAMP_WITH_TIMEZONE: ("timestamp_tz", True, True),
    K.ARRAY_OF_COMPACT: ("compact", True, True),
}


# -- JSON text ------------------------------------------------------------------


_DUMPS = json.JSONEncoder(ensure_ascii=False, allow_nan=False).encode
_DUMPS_COMPACT = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode


def dumps(value: object, *, compact: bool = False) -> str:
    """JSON text of a document: UTF-8 readable, never NaN literals."""
    return _DUMPS_COMPACT(value) if compact else _DUMPS(value)


def _reject_constant(name: str) -> object:
    raise DecodeError(f"JSON literal {name} is not allowed; floats use the string {name!r}")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DecodeError(f"JSON object repeats the key {key!r}")
            seen.add(key)
    return result


def loads(text: str) -> Any:
    """Parse a stored document strictly (no NaN literals, no repeated keys)."""
    try:
        return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_unique_keys)
    except DecodeError:
        raise
    except (ValueError, RecursionError) as exc:
        raise DecodeError(f"document is not valid JSON: {exc}") from None


# -- scalars ----------------------------------------------------------------------


def float_to_json(value: float, *, single: bool = False) -> float | str:
    """A float as a JSON number, or one of the strings NaN/Infinity/-Infinity/-0.0."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0.0 and math.copysign(1.0, value) < 0:
        return "-0.0"
    if single:
        bits = _F32.pack(value)
        for digits in range(1, 10):
            shorter = float(f"{value:.{digits}g}")
            try:
                if _F32.pack(shorter) == bits:
                    return shorter
            except OverflowError:  # rounded up past the largest float32
                continue
    return value


def float_from_json(value: object, *, single: bool = False) -> float:
    """The float a JSON value stands for (see :func:`float_to_json`)."""
    if isinstance(value, str):
        special = _SPECIAL_FLOATS.get(value)
        if special is None:
            raise DecodeError(
                f"expected a number or one of {sorted(_SPECIAL_FLOATS)}, got the string {value!r}"
            )
        return special
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DecodeError(f"expected a number, got {_json_type(value)}")
    try:
        result = float(value)
    except OverflowError:
        raise DecodeError(f"number {value} is out of the float64 range") from None
    if math.isinf(result):
        raise DecodeError(f"number {value} is out of the float64 range")
    if single:
        try:
            result = _F32.unpack(_F32.pack(result))[0]
        except OverflowError:
            raise DecodeError(f"number {value} is out of the float32 range") from None
    return result


def int_from_json(value: object, kind: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DecodeError(f"expected an integer, got {_json_type(value)}")
    low, high = _INT_RANGES[kind]
    if not low <= value <= high:
        raise DecodeError(f"{value} is out of the {kind} range ({low}..{high})")
    return value


#: Largest scale written in plain notation; beyond it (Java allows scales up to
#: 2**31-1) plain text would be gigabytes, so scientific notation is used.
PLAIN_DECIMAL_MAX_SCALE = 100


def decimal_to_json(value: decimal.Decimal) -> str:
    """A decimal as text that keeps its scale: ``12.50``, ``0.0000000000``, ``1.2E+4``.

    Both notations parse back to the same coefficient and exponent.
    """
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and -PLAIN_DECIMAL_MAX_SCALE <= exponent <= 0:
        return format(value, "f")
    return str(value)


def decimal_from_json(value: object) -> decimal.Decimal:
    if not isinstance(value, str):
        raise DecodeError(f'expected a decimal as a string (e.g. "12.50"), got {_json_type(value)}')
    if _DECIMAL_RE.fullmatch(value) is None:
        raise DecodeError(f"{value!r} is not a decimal number")
    return decimal.Decimal(value)


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value}"
    if isinstance(value, str):
        return f"the string {value!r}"
    if isinstance(value, list):
        return "an array"
    return "an object"


# -- records -> JSON ----------------------------------------------------------------


def record_to_json(record: CompactRecord, *, nested: bool = False) -> dict[str, object]:
    """The JSON object of ``record`` (with ``@type``/``@schemaId`` when ``nested``)."""
    schema = record.schema
    document: dict[str, object] = {}
    if nested:
        document[TYPE_KEY] = record.type_name
        document[SCHEMA_ID_KEY] = str(schema.schema_id)
    values = record.fields
    for name, encoding, is_array in _json_plan(schema, record.type_name):
        value = values[name]
        if value is None or encoding is None:
            document[name] = value
        elif is_array:
            assert isinstance(value, list)
            document[name] = [None if v is None else _to_json(encoding, v) for v in value]
        else:
            document[name] = _to_json(encoding, value)
    if record.write_order is not None:
        document[ORDER_KEY] = list(record.write_order)
    return document


#: Encodings whose Python values are already JSON values (ints, strings, booleans).
_AS_IS = frozenset({"bool", "int8", "int16", "int32", "int64", "string"})
_JSON_PLANS: dict[int, tuple[Any, tuple[tuple[str, str | None, bool], ...]]] = {}


def _json_plan(schema: Any, type_name: str) -> tuple[tuple[str, str | None, bool], ...]:
    """(name, encoding or None when the value is JSON as is, is array) per field, cached."""
    cached = _JSON_PLANS.get(schema.schema_id)
    if cached is not None and cached[0] is schema:
        return cached[1]
    plan = []
    for field in schema.fields:
        name: str = field.name
        if name in RESERVED_KEYS:
            raise DecodeError(f"{type_name}: field name {name!r} clashes with a reserved JSON key")
        encoding, is_array, _ = _KINDS[field.kind]
        plan.append((name, None if encoding in _AS_IS else encoding, is_array))
    result = tuple(plan)
    _JSON_PLANS[schema.schema_id] = (schema, result)
    return result


def _to_json(encoding: str, value: object) -> object:
    if encoding in ("float32", "float64"):
        assert isinstance(value, float)
        return float_to_json(value, single=encoding == "float32")
    if encoding == "decimal":
        assert isinstance(value, decimal.Decimal)
        return decimal_to_json(value)
    if encoding == "compact":
        assert isinstance(value, CompactRecord)
        return record_to_json(value, nested=True)
    if isinstance(value, LocalDate | LocalTime | LocalDateTime | OffsetDateTime):
        return value.isoformat()
    return value


# -- JSON -> records ----------------------------------------------------------------


def record_from_json(
    document: object,
    registry: SchemaRegistry,
    schema: Any | None = None,
    *,
    max_depth: int = 64,
) -> CompactRecord:
    """Rebuild a record from its JSON object.

    ``schema`` is the top-level schema (from ``StoredValue.schema_id``); nested
    records name theirs with ``@schemaId``.

    Raises:
        DecodeError: the document does not fit the schema (missing or unknown
            field, wrong JSON type, number out of range, malformed text).
        UnknownSchemaError: a nested ``@schemaId`` is not in ``registry``.
    """
    return _record(document, registry, schema, 0, max_depth)


def _record(
    document: object, registry: SchemaRegistry, schema: Any | None, depth: int, max_depth: int
) -> CompactRecord:
    if depth > max_depth:
        raise DecodeError(f"compact records nested deeper than {max_depth} levels")
    if not isinstance(document, dict):
        raise DecodeError(
            f"expected a JSON object for a compact record, got {_json_type(document)}"
        )
    schema_id_text = document.get(SCHEMA_ID_KEY)
    if schema_id_text is not None:
        if not isinstance(schema_id_text, str) or _SCHEMA_ID_RE.fullmatch(schema_id_text) is None:
            raise DecodeError(
                f"{SCHEMA_ID_KEY} must be a schema id as a string, got {schema_id_text!r}"
            )
        named = registry.get(int(schema_id_text))
        if schema is not None and named.schema_id != schema.schema_id:
            raise DecodeError(
                f"{SCHEMA_ID_KEY} {schema_id_text} differs from the record's schema "
                f"{schema.schema_id}"
            )
        schema = named
    if schema is None:
        raise DecodeError(f"nested compact record has no {SCHEMA_ID_KEY}")
    type_name: str = schema.type_name
    named_type = document.get(TYPE_KEY, type_name)
    if named_type != type_name:
        raise DecodeError(
            f"{TYPE_KEY} {named_type!r} differs from the type of schema "
            f"{schema.schema_id} ({type_name!r})"
        )
    unknown = sorted(set(document) - set(schema.fields_dict) - RESERVED_KEYS)
    missing = [f.name for f in schema.fields if f.name not in document]
    if unknown or missing:
        raise DecodeError(
            f"{type_name}: fields do not match the schema (missing {missing}, unknown {unknown})"
        )
    fields: dict[str, object] = {}
    for field in schema.fields:
        name: str = field.name
        encoding, is_array, items_nullable = _KINDS[field.kind]
        value = document[name]
        try:
            if value is None:
                if field.kind in _NOT_NULL:
                    raise DecodeError(f"a {field.kind.name} field cannot be null")
                fields[name] = None
                continue
            if not is_array:
                fields[name] = _from_json(encoding, value, registry, depth, max_depth)
                continue
            if not isinstance(value, list):
                raise DecodeError(f"expected an array, got {_json_type(value)}")
            items: list[object] = []
            for index, item in enumerate(value):
                if item is None:
                    if not items_nullable:
                        raise DecodeError(f"[{index}]: a {field.kind.name} item cannot be null")
                    items.append(None)
                    continue
                try:
                    items.append(_from_json(encoding, item, registry, depth, max_depth))
                except DecodeError as exc:
                    raise DecodeError(f"[{index}]: {exc}") from None
            fields[name] = items
        except DecodeError as exc:
            raise DecodeError(f"{type_name}.{name}: {exc}") from None
    order = document.get(ORDER_KEY)
    write_order: tuple[str, ...] | None = None
    if order is not None:
        if not isinstance(order, list) or not all(isinstance(n, str) for n in order):
            raise DecodeError(f"{type_name}: {ORDER_KEY} must be an array of field names")
        write_order = tuple(order)
    return CompactRecord(type_name, schema, fields, write_order)


_NOT_NULL = frozenset({K.BOOLEAN, K.INT8, K.INT16, K.INT32, K.INT64, K.FLOAT32, K.FLOAT64})


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise DecodeError(f"expected a string, got {_json_type(value)}")
    return value


_PARSERS: dict[str, Callable[[object], object]] = {
    "int8": lambda v: int_from_json(v, "int8"),
    "int16": lambda v: int_from_json(v, "int16"),
    "int32": lambda v: int_from_json(v, "int32"),
    "int64": lambda v: int_from_json(v, "int64"),
    "float32": lambda v: float_from_json(v, single=True),
    "float64": lambda v: float_from_json(v),
    "string": _text,
    "decimal": decimal_from_json,
    "time": lambda v: LocalTime.parse(_text(v)),
    "date": lambda v: LocalDate.parse(_text(v)),
    "timestamp": lambda v: LocalDateTime.parse(_text(v)),
    "timestamp_tz": lambda v: OffsetDateTime.parse(_text(v)),
}


def _from_json(
    encoding: str, value: object, registry: SchemaRegistry, depth: int, max_depth: int
) -> object:
    if encoding == "bool":
        if not isinstance(value, bool):
            raise DecodeError(f"expected a boolean, got {_json_type(value)}")
        return value
    if encoding == "compact":
        return _record(value, registry, None, depth + 1, max_depth)
    return _PARSERS[encoding](value)
