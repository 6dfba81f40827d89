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
* ``"@order"`` lists the non-null variable-size fields in the order their data
  was written, only when that is not what the schema's write order implies.

The write order. A Java serializer writes variable-size data in its own order (a
hand-written ``CompactSerializer`` in its call order, the zero-config one in
declaration order); only the offset table is in schema order, so the order is
needed to give the member back its bytes (see :class:`CompactRecord`). It belongs
to the schema's Java serializer, so it is kept once, with the schema
(:attr:`~sidecar.providers.base.SchemaRecord.write_order`), and a document holds
nothing but the record's fields. But one schema id can be written by several
serializers: the Java class in its order, a Python client or a GenericRecord in
schema order. So the schema's order is the one claimed by the first record that
needed it, and a record written in another order says so in its document:

* claimed order: a document has no ``"@order"`` when its record's data is in the
  claimed order (restricted to its non-null fields), else an explicit one, also
  when that other order is the schema's;
* legacy schema (None: persisted before orders were kept, or by a provider that
  keeps none): ``"@order"`` whenever the record is not in schema order, as before;
* pending (``()``): a record with every variable-size field present (two or
  more) raises :class:`~sidecar.errors.WriteOrderNeeded` with the order seen, for
  the caller to claim it (``Provider.claim_write_order``), record it
  (``SchemaRegistry.set_write_order``) and convert again. A record with some of
  them null shows only part of the order; since a claim is final, it claims
  nothing and its document names its own order (explicit ``"@order"``, when two
  or more are present) until a complete record has claimed the schema's. With
  fewer than two present, order does not matter.

Nested records follow the same rules, each with its own schema. Reading a
document back, ``"@order"`` always wins (rows written before keep loading); without
it, a claimed order is used, schema order for a legacy schema, and a pending
schema raises ``WriteOrderNeeded`` (order None: refresh the schemas from the
store, whose order another sidecar claimed) when the order would matter.
"""

from __future__ import annotations

import decimal
import json
import math
import re
from collections.abc import Callable
from typing import Any

from sidecar.codec.compact import CompactRecord
from sidecar.codec.kinds import FLOAT32, INT_RANGES, ITEM_STRUCTS, KINDS
from sidecar.codec.plan import ORDER_KEY, RESERVED_KEYS, SCHEMA_ID_KEY, TYPE_KEY, plan_of
from sidecar.codec.schemas import SchemaRegistry
from sidecar.codec.temporal import LocalDate, LocalDateTime, LocalTime, OffsetDateTime
from sidecar.errors import DecodeError, WriteOrderNeeded

_F32 = ITEM_STRUCTS[FLOAT32]
_DECIMAL_RE = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")
_SCHEMA_ID_RE = re.compile(r"-?\d{1,19}")
_SPECIAL_FLOATS = {
    "NaN": math.nan,
    "Infinity": math.inf,
    "-Infinity": -math.inf,
    "-0.0": -0.0,
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
    low, high = INT_RANGES[kind]
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


def record_to_json(
    record: CompactRecord, registry: SchemaRegistry | None = None, *, nested: bool = False
) -> dict[str, object]:
    """The JSON object of ``record`` (with ``@type``/``@schemaId`` when ``nested``).

    ``registry`` holds the schemas' write orders, which decide ``"@order"`` (see
    the module's notes); without it every schema is taken as legacy. Pass the
    registry whose store the document is for: a document made without it may lack
    an ``"@order"`` that the registry's claimed order would need.

    Raises:
        WriteOrderNeeded: the record (or a nested one) needs a write order that its
            schema has not claimed yet.
        UnknownSchemaError: a schema of the record is not in ``registry``.
    """
    schema = record.schema
    document: dict[str, object] = {}
    if nested:
        document[TYPE_KEY] = record.type_name
        document[SCHEMA_ID_KEY] = str(schema.schema_id)
    plan = plan_of(schema)
    if plan.clash is not None:
        raise DecodeError(
            f"{record.type_name}: field name {plan.clash!r} clashes with a reserved JSON key"
        )
    values = record.fields
    order = record.write_order
    if registry is not None:
        claimed = registry.write_order(plan.schema_id)
        if claimed is not None:  # None: legacy, the record's own order as before
            order = _document_order(record, claimed, plan.var_names)
    for name, encoding, is_array in plan.json_fields:
        value = values[name]
        if value is None or encoding is None:
            document[name] = value
        elif is_array:
            assert isinstance(value, list)
            document[name] = [None if v is None else _to_json(encoding, v, registry) for v in value]
        else:
            document[name] = _to_json(encoding, value, registry)
    if order is not None:
        document[ORDER_KEY] = list(order)
    return document


def _document_order(
    record: CompactRecord, claimed: tuple[str, ...], var_names: tuple[str, ...]
) -> tuple[str, ...] | None:
    """The ``"@order"`` of ``record``'s document given its schema's pending (``()``) or
    claimed write order; None: none."""
    observed = record.write_order
    values = record.fields
    present = (
        observed
        if observed is not None
        else tuple(name for name in var_names if values[name] is not None)
    )
    if not claimed:
        if len(present) < 2:
            return None  # no order to tell
        if len(present) < len(var_names):
            # Only a record with every variable-size field present shows the whole
            # order; claiming from this one would place the missing fields by guess,
            # and the claim is final. Its document names its own order meanwhile.
            return present
        raise WriteOrderNeeded(record.schema_id, present)

    expected = tuple(name for name in claimed if values[name] is not None)
    return None if present == expected else present


def _to_json(encoding: str, value: object, registry: SchemaRegistry | None) -> object:
    if encoding in ("float32", "float64"):
        assert isinstance(value, float)
        return float_to_json(value, single=encoding == "float32")
    if encoding == "decimal":
        assert isinstance(value, decimal.Decimal)
        return decimal_to_json(value)
    if encoding == "compact":
        assert isinstance(value, CompactRecord)
        return record_to_json(value, registry, nested=True)
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
        kind = KINDS[field.kind]
        encoding, is_array, items_nullable = kind.item, kind.array, kind.items_nullable
        value = document[name]
        try:
            if value is None:
                if not kind.nullable:
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
    else:
        claimed = registry.write_order(schema.schema_id)
        if claimed is not None:  # None: legacy, schema order
            write_order = _default_order(schema, claimed, fields)
    return CompactRecord(type_name, schema, fields, write_order)


def _default_order(
    schema: Any, claimed: tuple[str, ...], fields: dict[str, object]
) -> tuple[str, ...] | None:
    """The write order of a document without ``"@order"`` given its schema's pending
    (``()``) or claimed write order (None: schema order)."""
    present = tuple(name for name in plan_of(schema).var_names if fields[name] is not None)
    if not claimed:
        if len(present) > 1:
            raise WriteOrderNeeded(schema.schema_id, None)
        return None
    ordered = tuple(name for name in claimed if fields[name] is not None)
    return None if ordered == present else ordered


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
