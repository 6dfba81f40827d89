"""Hazelcast bytes as the Python client produces them, for tests.

The client's own serialization service, with Compact serializers registered
for the test classes, is the independent producer of the bytes the codec and
the service must accept (the Java member writes the same format).
"""

from __future__ import annotations

import dataclasses
import typing

from hazelcast.config import Config
from hazelcast.errors import HazelcastSerializationError
from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter
from hazelcast.serialization.compact import Schema, SchemaNotReplicatedError
from hazelcast.serialization.data import Data
from hazelcast.serialization.service import SerializationServiceV1

from hzsidecar.v1 import mapstore_pb2 as pb


@dataclasses.dataclass
class Customer:
    name: str
    vip: bool


@dataclasses.dataclass
class Order:
    id: str
    amount: float
    quantity: int
    tags: list[str] | None
    customer: Customer | None


class CustomerSerializer(CompactSerializer[Customer]):
    def read(self, reader: CompactReader) -> Customer:
        return Customer(reader.read_string("name") or "", reader.read_boolean("vip"))

    def write(self, writer: CompactWriter, obj: Customer) -> None:
        writer.write_string("name", obj.name)
        writer.write_boolean("vip", obj.vip)

    def get_type_name(self) -> str:
        return "Customer"

    def get_class(self) -> type[Customer]:
        return Customer


class OrderSerializer(CompactSerializer[Order]):
    def read(self, reader: CompactReader) -> Order:
        return Order(
            reader.read_string("id") or "",
            reader.read_float64("amount"),
            reader.read_int32("quantity"),
            reader.read_array_of_string("tags"),  # type: ignore[arg-type]
            reader.read_compact("customer"),
        )

    def write(self, writer: CompactWriter, obj: Order) -> None:
        writer.write_string("id", obj.id)
        writer.write_float64("amount", obj.amount)
        writer.write_int32("quantity", obj.quantity)
        writer.write_array_of_string("tags", obj.tags)  # type: ignore[arg-type]
        writer.write_compact("customer", obj.customer)

    def get_type_name(self) -> str:
        return "Order"

    def get_class(self) -> type[Order]:
        return Order


class ClientSerialization:
    """The client's SerializationServiceV1 with the given Compact serializers."""

    def __init__(self, serializers: typing.Sequence[CompactSerializer[typing.Any]] = ()) -> None:
        config = Config()
        config.compact_serializers = list(serializers) or [OrderSerializer(), CustomerSerializer()]
        self.service = SerializationServiceV1(config)
        self._compact = self.service.compact_stream_serializer

    def to_bytes(self, obj: object) -> bytes:
        # The client refuses to write a schema the cluster has not seen yet
        # (SchemaNotReplicatedError); without a cluster, register it locally.
        for _ in range(16):
            try:
                return bytes(self.service.to_data(obj).buffer)
            except SchemaNotReplicatedError as exc:
                self._compact.register_schema_to_type(exc.schema, exc.clazz)
            except HazelcastSerializationError as exc:
                cause = exc.__cause__ or exc.__context__
                if not isinstance(cause, SchemaNotReplicatedError):
                    raise
                self._compact.register_schema_to_type(cause.schema, cause.clazz)
        raise AssertionError("schemas did not settle")

    def to_object(self, data: bytes) -> typing.Any:
        return self.service.to_object(Data(data))

    def register(self, schemas: typing.Iterable[pb.Schema]) -> None:
        from hazelcast.serialization.api import FieldKind
        from hazelcast.serialization.compact import FieldDescriptor

        for message in schemas:
            schema = Schema(
                message.type_name,
                [FieldDescriptor(f.name, FieldKind(f.kind)) for f in message.fields],
            )
            self._compact.register_schema_to_id(schema)

    def schemas(self) -> list[pb.Schema]:
        return [to_message(s) for s in self._compact.get_schemas()]


def to_message(schema: Schema) -> pb.Schema:
    return pb.Schema(
        type_name=schema.type_name,
        schema_id=schema.schema_id,
        fields=[pb.SchemaField(name=f.name, kind=int(f.kind)) for f in schema.fields],
    )
