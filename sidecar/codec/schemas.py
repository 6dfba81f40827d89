"""The table of Compact schemas the sidecar has been sent, by schema id.

A schema is rebuilt as hazelcast-python-client's own
:class:`hazelcast.serialization.compact.Schema`, which sorts the fields by name and
lays them out (fixed-size positions, boolean bits, variable-size indexes) exactly as
the Java member does, and computes the id as the Rabin fingerprint of the type name
and fields. A schema whose id is not that fingerprint is refused: it would make the
sidecar decode bytes with a layout the member did not use.

The registry is used from one asyncio thread; it holds no locks.
"""

from __future__ import annotations

from collections.abc import Iterable

from hazelcast.serialization.api import FieldKind
from hazelcast.serialization.compact import FIELD_OPERATIONS, FieldDescriptor, Schema

from sidecar.errors import SchemaMismatchError, UnknownSchemaError, UnsupportedFieldKindError
from sidecar.providers.base import SchemaRecord

#: FieldKind ids a Compact schema may use. CHAR (5), ARRAY_OF_CHAR (6), PORTABLE (31),
#: ARRAY_OF_PORTABLE (32) and NOT_AVAILABLE (0) exist in FieldKind for the
#: GenericRecord API but have no Compact encoding (no entry in FIELD_OPERATIONS).
COMPACT_FIELD_KINDS: frozenset[FieldKind] = frozenset(
    kind
    for kind in FieldKind
    if kind.value < len(FIELD_OPERATIONS) and FIELD_OPERATIONS[kind.value] is not None
)


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


def to_record(schema: Schema) -> SchemaRecord:
    """The persisted form of ``schema``: fields in the schema's (name-sorted) order."""
    return SchemaRecord(
        schema_id=schema.schema_id,
        type_name=schema.type_name,
        fields=tuple((field.name, int(field.kind)) for field in schema.fields),
    )


class SchemaRegistry:
    """Compact schemas by id: checked when added, looked up when decoding."""

    def __init__(self) -> None:
        self._schemas: dict[int, Schema] = {}
        self._records: dict[int, SchemaRecord] = {}

    def add(self, record: SchemaRecord) -> Schema:
        """Check ``record`` and remember it; return the client's Schema for it.

        Raises:
            UnsupportedFieldKindError: a field kind id Compact does not define.
            SchemaMismatchError: the id is not the Rabin fingerprint of the type
                name and fields (or a field name repeats).
        """
        schema = self.check(record)
        self.insert(schema)
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

    def insert(self, schema: Schema) -> None:
        """Remember a schema :meth:`check` returned (its id is its fingerprint)."""
        if schema.schema_id not in self._schemas:
            self._schemas[schema.schema_id] = schema
            self._records[schema.schema_id] = to_record(schema)

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
