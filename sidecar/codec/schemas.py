"""The table of Compact schemas the sidecar has been sent, by schema id.

A schema is rebuilt as hazelcast-python-client's own
:class:`hazelcast.serialization.compact.Schema`, which sorts the fields by name and
lays them out (fixed-size positions, boolean bits, variable-size indexes) exactly as
the Java member does, and computes the id as the Rabin fingerprint of the type name
and fields. A schema whose id is not that fingerprint is refused: it would make the
sidecar decode bytes with a layout the member did not use.

The registry also keeps each schema's write order (:attr:`SchemaRecord.write_order`:
None legacy, ``()`` pending, else the claimed order of its variable-size fields),
which decides whether a document needs ``"@order"`` (see :mod:`sidecar.codec.jsonmap`).
A pending order only ever becomes a claimed one (or legacy, when the store says
so); a claimed order never changes, since the store keeps the first claim.

The registry is used from one asyncio thread; it holds no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from hazelcast.serialization.api import FieldKind
from hazelcast.serialization.compact import FieldDescriptor, Schema

from sidecar.codec.kinds import KINDS
from sidecar.errors import (
    SchemaMismatchError,
    UnknownSchemaError,
    UnsupportedFieldKindError,
    WriteOrderNeeded,
)
from sidecar.providers.base import Provider, SchemaRecord

T = TypeVar("T")

#: FieldKind ids a Compact schema may use (see :data:`sidecar.codec.kinds.KINDS`).
COMPACT_FIELD_KINDS: frozenset[FieldKind] = frozenset(KINDS)


def field_kind(type_name: str, field_name: str, kind_id: int) -> FieldKind:
    """The FieldKind of ``kind_id``, or UnsupportedFieldKindError naming the field."""
    try:
        kind = FieldKind(kind_id)
    except ValueError:
        raise UnsupportedFieldKindError(
            f"compact type {type_name!r} field {field_name!r}: field kind id {kind_id} "
            "is not a Hazelcast FieldKind (known ids are 0..46)"
        ) from None
    if kind not in COMPACT_FIELD_KINDS:
        raise UnsupportedFieldKindError(
            f"compact type {type_name!r} field {field_name!r}: field kind {kind.name} "
            f"(id {kind_id}) cannot be used in a Compact schema"
        )
    return kind


def check_field_names(type_name: str, names: Iterable[str]) -> None:
    """Refuse a field name given twice (SchemaMismatchError naming the type and the field).

    Linear in the number of fields (a set of the names seen): a schema comes from
    the network, and is checked on the event loop.
    """
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise SchemaMismatchError(
                f"compact type {type_name!r} has a duplicate field name {name!r}"
            )
        seen.add(name)


def build_schema(type_name: str, fields: list[tuple[str, int]]) -> Schema:
    """Build the client's Schema from (name, FieldKind id) pairs, checking each kind."""
    check_field_names(type_name, (name for name, _ in fields))
    descriptors = [
        FieldDescriptor(name, field_kind(type_name, name, kind)) for name, kind in fields
    ]
    return Schema(type_name, descriptors)


def to_record(schema: Schema, write_order: tuple[str, ...] | None = None) -> SchemaRecord:
    """The persisted form of ``schema``: fields in the schema's (name-sorted) order."""
    return SchemaRecord(
        schema_id=schema.schema_id,
        type_name=schema.type_name,
        fields=tuple((field.name, int(field.kind)) for field in schema.fields),
        write_order=write_order,
    )


def variable_size_names(schema: Schema) -> tuple[str, ...]:
    """The names of ``schema``'s variable-size fields, in schema order."""
    return tuple(f.name for f in schema.fields if f.index >= 0)


def check_write_order(schema: Schema, order: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """``order`` as a write order of ``schema``: None, ``()``, or all its variable-size
    fields each once; SchemaMismatchError naming the type otherwise."""
    if order is None or order == ():
        return order
    order = tuple(order)
    if sorted(order) != sorted(variable_size_names(schema)):
        raise SchemaMismatchError(
            f"compact type {schema.type_name!r} (schema id {schema.schema_id}): write order "
            f"{list(order)} does not name each of its variable-size fields once "
            f"({sorted(variable_size_names(schema))})"
        )
    return order


class SchemaRegistry:
    """Compact schemas by id: checked when added, looked up when decoding."""

    def __init__(self) -> None:
        self._schemas: dict[int, Schema] = {}
        self._records: dict[int, SchemaRecord] = {}

    def add(self, record: SchemaRecord) -> Schema:
        """Check ``record`` and remember it; return the client's Schema for it.

        A schema already known keeps its Schema; its write order is taken from
        ``record`` if it was pending (see :meth:`insert`), so adding every record a
        provider returns refreshes the orders claimed since.

        Raises:
            UnsupportedFieldKindError: a field kind id Compact does not define.
            SchemaMismatchError: the id is not the Rabin fingerprint of the type
                name and fields (or a field name repeats, or the write order does
                not name each variable-size field once).
        """
        schema = self.check(record)
        self.insert(schema, record.write_order)
        return schema

    def check(self, record: SchemaRecord) -> Schema:
        """The client's Schema for ``record``, checked as :meth:`add` does, not remembered."""
        known = self._records.get(record.schema_id)
        if known is not None and (
            known.type_name == record.type_name and sorted(known.fields) == sorted(record.fields)
        ):
            return self._schemas[record.schema_id]
        schema = build_schema(record.type_name, list(record.fields))
        if schema.schema_id != record.schema_id:
            raise SchemaMismatchError(
                f"compact schema for type {record.type_name!r} claims id {record.schema_id} "
                f"but its fields fingerprint to {schema.schema_id}: the type name or a "
                "field name/kind differs from what the member registered"
            )
        return schema

    def insert(self, schema: Schema, write_order: tuple[str, ...] | None = None) -> None:
        """Remember a schema :meth:`check` returned (its id is its fingerprint).

        ``write_order`` as :attr:`SchemaRecord.write_order`. For a schema already
        known it only replaces a pending order (``()``): a claimed or legacy order
        stays.

        Raises:
            SchemaMismatchError: ``write_order`` does not name each variable-size
                field of the schema once.
        """
        write_order = check_write_order(schema, write_order)
        known = self._records.get(schema.schema_id)
        if known is None:
            self._schemas[schema.schema_id] = schema
            self._records[schema.schema_id] = to_record(schema, write_order)
        elif known.write_order == () and write_order != ():
            self._records[schema.schema_id] = to_record(
                self._schemas[schema.schema_id], write_order
            )

    def set_write_order(self, schema_id: int, write_order: tuple[str, ...] | None) -> None:
        """Record the write order the store holds for a schema (what a claim returned).

        Raises:
            UnknownSchemaError: the schema was never added.
            SchemaMismatchError: the order does not name each variable-size field once.
        """
        schema = self.get(schema_id)
        self._records[schema_id] = to_record(schema, check_write_order(schema, write_order))

    def write_order(self, schema_id: int) -> tuple[str, ...] | None:
        """The schema's write order: None legacy, ``()`` pending, else the claimed order.

        Raises:
            UnknownSchemaError: the schema was never added.
        """
        record = self._records.get(schema_id)
        if record is None:
            raise UnknownSchemaError(schema_id)
        return record.write_order

    def record(self, schema_id: int) -> SchemaRecord:
        """The persisted form of a known schema, with its write order."""
        record = self._records.get(schema_id)
        if record is None:
            raise UnknownSchemaError(schema_id)
        return record

    def add_schema(self, schema: Schema) -> Schema:
        """Add a client Schema (checked like :meth:`add`)."""
        return self.add(to_record(schema))

    def get(self, schema_id: int) -> Schema:
        """The schema with ``schema_id``; UnknownSchemaError when it was never added."""
        schema = self._schemas.get(schema_id)
        if schema is None:
            raise UnknownSchemaError(schema_id)
        return schema

    def __contains__(self, schema_id: object) -> bool:
        return schema_id in self._schemas

    def __len__(self) -> int:
        return len(self._schemas)

    def records(self) -> list[SchemaRecord]:
        """Every known schema in its persisted form."""
        return list(self._records.values())

    @staticmethod
    def to_record(schema: Schema) -> SchemaRecord:
        """The persisted form of ``schema``."""
        return to_record(schema)


async def settle_write_orders(
    step: Callable[[], T], registry: SchemaRegistry, provider: Provider
) -> T:
    """Run a codec step, settling the write orders it needs first; return its result.

    On :class:`~sidecar.errors.WriteOrderNeeded` with an order (a record was being
    decoded), the order is claimed in ``provider`` (the first claim wins, so the
    order recorded may be another sidecar's) and recorded in ``registry``; without
    one (a document was being encoded), ``registry`` is refreshed from the
    provider's schemas, where another sidecar claimed it. Then the step runs
    again. Each schema is settled at most once: a schema that still needs an order
    after that re-raises (a document without ``"@order"`` of a schema still
    pending in the store cannot be read). A provider that keeps no write orders
    makes the schema legacy.
    """
    settled: set[int] = set()
    while True:
        try:
            return step()
        except WriteOrderNeeded as exc:
            if exc.schema_id in settled:
                raise
            settled.add(exc.schema_id)
            if not provider.supports_write_order:
                registry.set_write_order(exc.schema_id, None)
            elif exc.order is None:
                for record in await provider.get_schemas():
                    registry.add(record)
            else:
                claimed = await provider.claim_write_order(exc.schema_id, exc.order)
                registry.set_write_order(exc.schema_id, claimed)
