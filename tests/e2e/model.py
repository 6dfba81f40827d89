"""Compact classes known to the Python client only (the member never has them)."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
from typing import Any

from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter


@dataclasses.dataclass
class OrderEvent:
    orderId: str
    sequence: int
    eventType: str
    timestampMillis: int
    correlationId: str
    amount: float


class OrderEventSerializer(CompactSerializer[OrderEvent]):
    def read(self, reader: CompactReader) -> OrderEvent:
        return OrderEvent(
            reader.read_string("orderId") or "",
            reader.read_int64("sequence"),
            reader.read_string("eventType") or "",
            reader.read_int64("timestampMillis"),
            reader.read_string("correlationId") or "",
            reader.read_float64("amount"),
        )

    def write(self, writer: CompactWriter, obj: OrderEvent) -> None:
        writer.write_string("orderId", obj.orderId)
        writer.write_int64("sequence", obj.sequence)
        writer.write_string("eventType", obj.eventType)
        writer.write_int64("timestampMillis", obj.timestampMillis)
        writer.write_string("correlationId", obj.correlationId)
        writer.write_float64("amount", obj.amount)

    def get_type_name(self) -> str:
        return "OrderEvent"

    def get_class(self) -> type[OrderEvent]:
        return OrderEvent


@dataclasses.dataclass(frozen=True)
class Address:
    """Also a key (hashable, as keys are in the client)."""

    city: str
    zip: int


class AddressSerializer(CompactSerializer[Address]):
    def read(self, reader: CompactReader) -> Address:
        return Address(reader.read_string("city") or "", reader.read_int32("zip"))

    def write(self, writer: CompactWriter, obj: Address) -> None:
        writer.write_string("city", obj.city)
        writer.write_int32("zip", obj.zip)

    def get_type_name(self) -> str:
        return "Address"

    def get_class(self) -> type[Address]:
        return Address


# Every Compact field kind: (field name, writer/reader suffix, sample value for index i).
def _samples(i: int) -> dict[str, Any]:
    d = datetime.date(2024, 1 + i % 12, 1 + i % 28)
    t = datetime.time(13, 45, i % 60, 123456)
    ts = datetime.datetime(2024, 5, 6, 7, 8, 9, 654321)
    tz = datetime.datetime(
        2024, 5, 6, 7, 8, 9, 1000, tzinfo=datetime.timezone(datetime.timedelta(hours=5, minutes=30))
    )
    return {
        "boolean": i % 2 == 0,
        "int8": -128 + i % 256,
        "int16": -32768 + i,
        "int32": 2**31 - 1 - i,
        "int64": -(2**63) + i,
        "float32": 1.5,
        "float64": -0.0 if i == 0 else 1e300 / (i + 1),
        "nullable_boolean": None if i % 3 == 0 else True,
        "nullable_int8": None if i % 3 == 0 else 7,
        "nullable_int16": None if i % 3 == 0 else -7,
        "nullable_int32": None if i % 3 == 0 else i,
        "nullable_int64": None if i % 3 == 0 else 2**40,
        "nullable_float32": None if i % 3 == 0 else 0.25,
        "nullable_float64": None if i % 3 == 0 else float("inf"),
        "string": f"ünïcødé {i}",
        "decimal": decimal.Decimal(f"{i}.50"),
        "time": t,
        "date": d,
        "timestamp": ts,
        "timestamp_with_timezone": tz,
        "compact": Address(f"city{i}", 10000 + i),
        "array_of_boolean": [True, False, True],
        "array_of_int8": [-1, 0, 127],
        "array_of_int16": [1, -2],
        "array_of_int32": [i, -i],
        "array_of_int64": [2**62],
        "array_of_float32": [0.5, -0.5],
        "array_of_float64": [0.1, -0.0],
        "array_of_nullable_boolean": [None, True],
        "array_of_nullable_int8": [None, 1],
        "array_of_nullable_int16": [None, 2],
        "array_of_nullable_int32": [None, 3],
        "array_of_nullable_int64": [None, 4],
        "array_of_nullable_float32": [None, 0.5],
        "array_of_nullable_float64": [None, 1.5],
        "array_of_string": ["a", None, "c"],
        "array_of_decimal": [decimal.Decimal("1.000"), None],
        "array_of_time": [t, None],
        "array_of_date": [d, None],
        "array_of_timestamp": [ts, None],
        "array_of_timestamp_with_timezone": [tz, None],
        "array_of_compact": [Address("x", 1), None, Address("y", 2)],
    }


KINDS = tuple(_samples(0))


@dataclasses.dataclass
class AllKinds:
    values: dict[str, Any]

    @classmethod
    def sample(cls, i: int) -> AllKinds:
        return cls(_samples(i))


class AllKindsSerializer(CompactSerializer[AllKinds]):
    def read(self, reader: CompactReader) -> AllKinds:
        return AllKinds({name: getattr(reader, f"read_{name}")(name) for name in KINDS})

    def write(self, writer: CompactWriter, obj: AllKinds) -> None:
        for name in KINDS:
            getattr(writer, f"write_{name}")(name, obj.values[name])

    def get_type_name(self) -> str:
        return "AllKinds"

    def get_class(self) -> type[AllKinds]:
        return AllKinds


@dataclasses.dataclass
class Node:
    depth: int
    next: Node | None


class NodeSerializer(CompactSerializer[Node]):
    def read(self, reader: CompactReader) -> Node:
        return Node(reader.read_int32("depth"), reader.read_compact("next"))

    def write(self, writer: CompactWriter, obj: Node) -> None:
        writer.write_int32("depth", obj.depth)
        writer.write_compact("next", obj.next)

    def get_type_name(self) -> str:
        return "Node"

    def get_class(self) -> type[Node]:
        return Node


def chain(length: int) -> Node:
    """A linked list of ``length`` records (deeper than 64: dead-lettered by default)."""
    node = None
    for depth in range(length):
        node = Node(depth, node)
    assert node is not None
    return node


def serializers() -> list[CompactSerializer[Any]]:
    return [OrderEventSerializer(), AddressSerializer(), AllKindsSerializer()]
