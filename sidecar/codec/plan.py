"""One plan per Compact schema: its layout worked out once, for every codec strategy.

A :class:`SchemaPlan` holds what reading or writing a record of a schema needs, so
that nothing is looked up per field in the kind table at run time: the fixed-size
section as one ``struct`` (for the generic codec, numbers only; for the compiled one,
the boolean bytes too), the boolean bits, the variable-size fields and their
offset-table indexes, the JSON document's fields, and what a schema's write order
means for each strategy. The generic codec (:mod:`sidecar.codec.compact`,
:mod:`sidecar.codec.jsonmap`) and the compiled one (:mod:`sidecar.codec.compiled`,
whose generated functions are kept on the plan) share it.

Plans are cached by schema id (the Rabin fingerprint of the layout) and checked by
identity against the registry's Schema object, so a registry that rebuilt a schema
gets a new plan. They depend on the schema alone, never on a registry: a schema's
write order is per store, and is passed in (:meth:`SchemaPlan.order_numbers`).
"""

from __future__ import annotations

import struct
from typing import Any, Protocol

from hazelcast.serialization.api import FieldKind

from sidecar.codec.kinds import (
    BOOL,
    DECIMAL,
    FLOAT_ITEMS,
    ITEM_STRUCTS,
    JSON_AS_IS_ITEMS,
    KINDS,
    NUMBER_ITEMS,
    STRING,
    TEMPORAL_ITEMS,
)

#: The keys a JSON document uses besides the record's fields.
TYPE_KEY = "@type"
SCHEMA_ID_KEY = "@schemaId"
ORDER_KEY = "@order"
RESERVED_KEYS = frozenset({TYPE_KEY, SCHEMA_ID_KEY, ORDER_KEY})

#: Items the compiled codec handles as single variable-size fields.
_FLAT_VARIABLE_ITEMS = frozenset({BOOL, STRING, DECIMAL, *NUMBER_ITEMS, *TEMPORAL_ITEMS})
#: Bound on the write orders a plan remembers (each serializer writes one; bytes could
#: claim many).
MAX_ORDERS = 8

_U8 = struct.Struct(">B")
_U16 = struct.Struct(">H")
_I32 = struct.Struct(">i")


class Decoder(Protocol):
    """A compiled decoder: Data bytes -> (the JSON document's text, its plain fields).

    ``rank`` and ``pending`` come from the schema's write order
    (:meth:`SchemaPlan.order_numbers`); the defaults are a legacy schema's.
    """

    def __call__(
        self, buf: bytes, rank: tuple[int, ...] = ..., pending: bool = ...
    ) -> tuple[str, dict[str, object]]: ...


class Encoder(Protocol):
    """A compiled encoder: a JSON object -> Data bytes (``seq``, ``pending`` as for Decoder)."""

    def __call__(
        self, doc: dict[str, object], seq: tuple[int, ...] = ..., pending: bool = ...
    ) -> bytes: ...


class TextEncoder(Protocol):
    """The accelerator's encoder: a stored document's JSON text -> Data bytes, as an
    :class:`Encoder` gives for the parsed document, or ``Fallback``."""

    def __call__(self, document: str, seq: tuple[int, ...] = ..., pending: bool = ...) -> bytes: ...


#: (rank, seq, pending) of a write order: see :meth:`SchemaPlan.order_numbers`.
OrderNumbers = tuple[tuple[int, ...], tuple[int, ...], bool]


class SchemaPlan:
    """A schema's layout, worked out once (see the module's notes).

    Attributes (read-only once built):
        schema: the client's Schema.
        names: every field name, in schema (name) order.
        fixed: the number fields of the fixed-size section as one struct (gaps
            padded), or None; ``fixed_names`` names them in order, ``fixed_types``
            gives their Python types.
        float_slots: (slot in ``fixed``, position, size) of each float number.
        bools: (name, byte position, bit) of each BOOLEAN.
        scalar_fields / bool_fields: the fixed-size fields / the BOOLEAN ones.
        var_fields: the variable-size fields (schema order); ``var`` as
            (name, offset-table index, kind); ``var_names`` their names.
        tables: the offset table's struct by entry size (1, 2 or 4 bytes).
        json_fields: (name, item or None when the value is JSON as it is, is array).
        clash: a field name that is also a reserved JSON key, or None.
        flat: every field is fixed-size or a single variable-size scalar (no array,
            no nested record), and no name clashes: the compiled codec applies.
        slot_format / slot_positions / slot_codes / bool_masks: the fixed-size
            section as the compiled codec reads it (boolean bytes included).
        decoder / encoder: the compiled functions, once :mod:`sidecar.codec.compiled`
            built them (``compiled`` is then True; None for a schema that is not flat).
        text_encoder: the accelerator's encoder of a document's text, when it runs.
    """

    __slots__ = (
        "bool_fields",
        "bool_masks",
        "bools",
        "clash",
        "compiled",
        "decoder",
        "encoder",
        "fixed",
        "fixed_names",
        "fixed_types",
        "flat",
        "float_slots",
        "json_fields",
        "names",
        "numbers",
        "orders",
        "scalar_fields",
        "schema",
        "schema_id",
        "schema_order",
        "slot_codes",
        "slot_format",
        "slot_positions",
        "tables",
        "text_encoder",
        "type_name",
        "var",
        "var_fields",
        "var_names",
    )

    def __init__(self, schema: Any) -> None:
        self.schema = schema
        self.schema_id: int = schema.schema_id
        self.type_name: str = schema.type_name
        fields: list[Any] = list(schema.fields)
        self.names: tuple[str, ...] = tuple(f.name for f in fields)

        numbers = sorted(
            (f for f in fields if f.kind is not FieldKind.BOOLEAN and KINDS[f.kind].fixed),
            key=lambda f: f.position,
        )
        fmt, at = ">", 0
        for field in numbers:
            item = ITEM_STRUCTS[KINDS[field.kind].item]
            fmt += "x" * (field.position - at) + item.format[-1]
            at = field.position + item.size
        self.fixed: struct.Struct | None = struct.Struct(fmt) if numbers else None
        self.fixed_names: tuple[str, ...] = tuple(f.name for f in numbers)
        self.fixed_types: tuple[type, ...] = tuple(
            float if KINDS[f.kind].item in FLOAT_ITEMS else int for f in numbers
        )
        self.float_slots: tuple[tuple[int, int, int], ...] = tuple(
            (slot, f.position, ITEM_STRUCTS[KINDS[f.kind].item].size)
            for slot, f in enumerate(numbers)
            if KINDS[f.kind].item in FLOAT_ITEMS
        )
        self.bool_fields: tuple[Any, ...] = tuple(f for f in fields if f.kind is FieldKind.BOOLEAN)
        self.bools: tuple[tuple[str, int, int], ...] = tuple(
            (f.name, f.position, f.bit_position) for f in self.bool_fields
        )
        self.scalar_fields: tuple[Any, ...] = tuple(f for f in fields if KINDS[f.kind].fixed)
        self.var_fields: tuple[Any, ...] = tuple(f for f in fields if KINDS[f.kind].variable)
        self.var: tuple[tuple[str, int, FieldKind], ...] = tuple(
            (f.name, f.index, f.kind) for f in self.var_fields
        )
        self.var_names: tuple[str, ...] = tuple(f.name for f in self.var_fields)
        #: The variable-size field numbers in schema order (0, 1, ...): ``rank`` and
        #: ``seq`` of a schema without a claimed order, this very object.
        self.schema_order: tuple[int, ...] = tuple(range(len(self.var_names)))
        count = len(self.var_fields)
        self.tables: dict[int, struct.Struct] = {
            entry.size: struct.Struct(f">{count}{entry.format[-1]}") for entry in (_U8, _U16, _I32)
        }
        #: Generic encoder: write orders met, and the variable-size fields in that order.
        self.orders: dict[tuple[str, ...], tuple[Any, ...]] = {}
        #: Compiled codec: (rank, seq, pending) by write order.
        self.numbers: dict[tuple[str, ...] | None, OrderNumbers] = {}

        self.json_fields: tuple[tuple[str, str | None, bool], ...] = tuple(
            (
                f.name,
                None if KINDS[f.kind].item in JSON_AS_IS_ITEMS else KINDS[f.kind].item,
                KINDS[f.kind].array,
            )
            for f in fields
        )
        self.clash: str | None = next((n for n in self.names if n in RESERVED_KEYS), None)
        self.flat = self.clash is None and all(
            KINDS[f.kind].fixed
            or (not KINDS[f.kind].array and KINDS[f.kind].item in _FLAT_VARIABLE_ITEMS)
            for f in fields
        )

        # The fixed-size section as one struct for the compiled codec: number fields at
        # their positions, each boolean byte as "B", zero padding for any gap.
        slots = [(f.position, ITEM_STRUCTS[KINDS[f.kind].item].format[-1]) for f in numbers]
        bool_bytes = sorted({f.position for f in self.bool_fields})
        slots += [(position, "B") for position in bool_bytes]
        slots.sort()
        fmt, at = ">", 0
        for position, code in slots:
            fmt += "x" * (position - at) + code
            at = position + struct.calcsize(code)
        fmt += "x" * (schema.fix_sized_fields_length - at)
        self.slot_format = fmt
        self.slot_positions: tuple[int, ...] = tuple(position for position, _ in slots)
        self.slot_codes: tuple[str, ...] = tuple(code for _, code in slots)
        #: Each boolean byte's used bits (the others must be zero).
        self.bool_masks: dict[int, int] = {
            position: sum(1 << f.bit_position for f in self.bool_fields if f.position == position)
            for position in bool_bytes
        }
        self.compiled = False
        self.decoder: Decoder | None = None
        self.encoder: Encoder | None = None
        self.text_encoder: TextEncoder | None = None

    def order_numbers(self, write_order: tuple[str, ...] | None) -> OrderNumbers:
        """(rank, seq, pending): a write order as the compiled functions take it.

        ``rank`` is each variable-size field's place (by its number in schema order)
        in the order a document without ``"@order"`` implies, the claimed write order
        or else schema order; ``seq`` the field numbers in that order; ``pending``
        whether the order is still to be claimed.
        """
        numbers = self.numbers.get(write_order)
        if numbers is None:
            if not write_order:
                numbers = (self.schema_order, self.schema_order, write_order == ())
            else:
                names = list(self.var_names)
                seq = tuple(names.index(name) for name in write_order)
                rank = tuple(write_order.index(name) for name in names)
                numbers = (rank, seq, False)
            if len(self.numbers) < MAX_ORDERS:
                self.numbers[write_order] = numbers
        return numbers


_PLANS: dict[int, SchemaPlan] = {}


def plan_of(schema: Any) -> SchemaPlan:
    """The plan of ``schema`` (cached by schema id, checked by identity)."""
    schema_id: int = schema.schema_id
    plan = _PLANS.get(schema_id)
    if plan is None or plan.schema is not schema:
        plan = _PLANS[schema_id] = SchemaPlan(schema)
    return plan
