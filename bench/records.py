"""The benchmark's record: a Compact ``BenchEvent`` of ~300 bytes with mixed field kinds.

Known to the Python client only (the member holds it as a GenericRecord), like the
applications the sidecar serves. The same fields are columns of the table the
GenericMapStore alternative writes, so every case stores the same information.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import json
import uuid
from typing import Any

from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter

TYPE_NAME = "BenchEvent"
_NOTE = (
    "shipped with express delivery; gift wrapped; "
    "leave at the front desk if absent, please; thank you so much"
)


@dataclasses.dataclass
class BenchEvent:
    orderId: str
    sequence: int
    eventType: str
    timestampMillis: int
    correlationId: str
    amount: float
    quantity: int
    price: decimal.Decimal
    currency: str
    active: bool
    customerName: str
    note: str
    discount: float | None
    createdDate: datetime.date


class BenchEventSerializer(CompactSerializer[BenchEvent]):
    def read(self, reader: CompactReader) -> BenchEvent:
        return BenchEvent(
            reader.read_string("orderId") or "",
            reader.read_int64("sequence"),
            reader.read_string("eventType") or "",
            reader.read_int64("timestampMillis"),
            reader.read_string("correlationId") or "",
            reader.read_float64("amount"),
            reader.read_int32("quantity"),
            reader.read_decimal("price") or decimal.Decimal(0),
            reader.read_string("currency") or "",
            reader.read_boolean("active"),
            reader.read_string("customerName") or "",
            reader.read_string("note") or "",
            reader.read_nullable_float64("discount"),
            reader.read_date("createdDate") or datetime.date(1970, 1, 1),
        )

    def write(self, writer: CompactWriter, obj: BenchEvent) -> None:
        writer.write_string("orderId", obj.orderId)
        writer.write_int64("sequence", obj.sequence)
        writer.write_string("eventType", obj.eventType)
        writer.write_int64("timestampMillis", obj.timestampMillis)
        writer.write_string("correlationId", obj.correlationId)
        writer.write_float64("amount", obj.amount)
        writer.write_int32("quantity", obj.quantity)
        writer.write_decimal("price", obj.price)
        writer.write_string("currency", obj.currency)
        writer.write_boolean("active", obj.active)
        writer.write_string("customerName", obj.customerName)
        writer.write_string("note", obj.note)
        writer.write_nullable_float64("discount", obj.discount)
        writer.write_date("createdDate", obj.createdDate)

    def get_type_name(self) -> str:
        return TYPE_NAME

    def get_class(self) -> type[BenchEvent]:
        return BenchEvent


def event(i: int) -> BenchEvent:
    """The ``i``-th record: deterministic, every field filled (discount null every 3rd)."""
    return BenchEvent(
        orderId=f"order-{i // 4:08d}",
        sequence=i,
        eventType=("OrderPlaced", "OrderPaid", "OrderShipped", "OrderDelivered")[i % 4],
        timestampMillis=1_764_000_000_000 + i,
        correlationId=str(uuid.UUID(int=i * 7919 + 1)),
        amount=round(10 + (i % 1000) * 1.25, 2),
        quantity=1 + i % 17,
        price=decimal.Decimal(f"{i % 10000}.{i % 100:02d}"),
        currency=("EUR", "USD", "GBP")[i % 3],
        active=i % 2 == 0,
        customerName=f"Customer Number {i % 50_000:06d}",
        note=_NOTE,
        discount=None if i % 3 == 0 else 0.05 * (i % 5),
        createdDate=datetime.date(2025, 1 + i % 12, 1 + i % 28),
    )


def key(i: int) -> str:
    return f"k{i:09d}"


def event_key(i: int) -> str:
    """The key of event ``i`` in an event map: its aggregate and its sequence, one key per event
    (the String form of the reference framework's ``PartitionedSequenceKey``)."""
    return f"order-{i // 4:08d}:{i}"


def document(i: int) -> str:
    """The JSON document the sidecar stores for record ``i`` (for the raw-database ceiling)."""
    e = event(i)
    fields: dict[str, Any] = dataclasses.asdict(e)
    fields["price"] = format(e.price, "f")
    fields["createdDate"] = e.createdDate.isoformat()
    return json.dumps(dict(sorted(fields.items())), ensure_ascii=False)


#: Columns of the GenericMapStore table, in the record's field order (PostgreSQL types).
SQL_COLUMNS: tuple[tuple[str, str], ...] = (
    ("orderId", "text"),
    ("sequence", "bigint"),
    ("eventType", "text"),
    ("timestampMillis", "bigint"),
    ("correlationId", "text"),
    ("amount", "double precision"),
    ("quantity", "integer"),
    ("price", "numeric"),
    ("currency", "text"),
    ("active", "boolean"),
    ("customerName", "text"),
    ("note", "text"),
    ("discount", "double precision"),
    ("createdDate", "date"),
)
