"""The write order belongs to the schema: documents of Java-serialized records carry no "@order".

A Java serializer writes variable-size data in its own order (call order, declaration
order); the codec claims that order once for the schema (the first record that needs
one), and a document names an order only when its record differs from the claimed one
(a GenericRecord or a Python client writing the same schema in schema order). Legacy
schemas (persisted before orders were kept) keep their documents as they were.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import pytest
from hazelcast.serialization.api import FieldKind
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.codec import CompactRecord, DataCodec, SchemaRegistry, encode_compact
from sidecar.codec.jsonmap import record_from_json, record_to_json
from sidecar.codec.schemas import build_schema, settle_write_orders, to_record
from sidecar.errors import DecodeError, SchemaMismatchError, WriteOrderNeeded
from sidecar.providers.base import StoredKey, StoredValue
from sidecar.providers.memory import MemoryProvider

from .codec_client import ClientObject, ClientWorld
from .strategies import LEAF_KINDS, records, schemas

K = FieldKind
FRAME = struct.pack(">ii", 0, -55)
#: Declaration order (what a Java class writes): zeta, alpha, mid; schema order: alpha, mid, zeta.
ORDER_FIELDS = [("zeta", K.STRING), ("alpha", K.STRING), ("mid", K.NULLABLE_INT32)]
JAVA_ORDER = ("zeta", "alpha", "mid")
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


class Sidecar:
    """One sidecar's registry and codec over a store that may be shared with others."""

    def __init__(self, provider: MemoryProvider, *, compiled: bool = True) -> None:
        self.provider = provider
        self.registry = SchemaRegistry()
        self.codec = DataCodec(self.registry, compiled=compiled)

    async def refresh(self) -> None:
        for record in await self.provider.get_schemas():
            self.registry.add(record)

    async def settle(self, step: Any) -> Any:
        return await settle_write_orders(step, self.registry, self.provider)


async def pending_sidecar(
    schemas: list[Any], provider: MemoryProvider | None = None, *, compiled: bool = True
) -> Sidecar:
    """A sidecar whose store has ``schemas`` persisted by this version: orders pending."""
    provider = provider or MemoryProvider({})
    await provider.put_schemas([to_record(schema, ()) for schema in schemas])
    sidecar = Sidecar(provider, compiled=compiled)
    await sidecar.refresh()
    return sidecar


def java_order_world() -> tuple[ClientWorld, type[ClientObject]]:
    world = ClientWorld()
    return world, world.define("Order", ORDER_FIELDS)


def schema_order_bytes(schema: Any, **values: object) -> bytes:
    """The bytes a GenericRecord (or a Python client) writes: data in schema order."""
    return FRAME + encode_compact(CompactRecord(schema.type_name, schema, dict(values)))[0]


def document(text: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(text)
    return loaded


# -- one schema, its Java serializer and others -----------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_a_java_record_claims_the_order_and_its_document_has_no_order(
    compiled: bool,
) -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    sidecar = await pending_sidecar([schema])
    decode = sidecar.codec.decode_for_store if compiled else sidecar.codec.decode_value
    with pytest.raises(WriteOrderNeeded) as raised:
        decode(data)
    assert raised.value.schema_id == schema.schema_id
    assert raised.value.order == JAVA_ORDER
    decoded = await sidecar.settle(lambda: decode(data))
    assert (decoded.record is None) == compiled  # the strategy asked for was taken
    assert [r.write_order for r in await sidecar.provider.get_schemas()] == [JAVA_ORDER]
    assert sidecar.registry.write_order(schema.schema_id) == JAVA_ORDER
    assert document(decoded.stored.document) == {"alpha": "a", "mid": 7, "zeta": "z"}
    # Both strategies write the same text, and the bytes come back exactly.
    assert decoded.stored == sidecar.codec.decode_value(data).stored
    assert sidecar.codec.decode_for_store(data).stored == decoded.stored
    assert sidecar.codec.encode_value(decoded.stored).data == data
    generic = record_from_json(document(decoded.stored.document), sidecar.registry, schema)
    assert FRAME + encode_compact(generic)[0] == data


async def test_a_zero_config_style_record_with_nulls_keeps_the_claimed_order() -> None:
    world, cls = java_order_world()
    first, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    sidecar = await pending_sidecar([schema])
    await sidecar.settle(lambda: sidecar.codec.decode_for_store(first))
    for values in ({"zeta": None, "alpha": "a", "mid": 1}, {"zeta": "z", "alpha": None, "mid": 2}):
        data, _ = world.to_bytes(cls(**values))
        for decoded in (sidecar.codec.decode_for_store(data), sidecar.codec.decode_value(data)):
            assert document(decoded.stored.document) == values
            assert sidecar.codec.encode_value(decoded.stored).data == data


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_a_schema_order_record_after_the_claim_names_its_order(compiled: bool) -> None:
    world, cls = java_order_world()
    java, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    sidecar = await pending_sidecar([schema])
    await sidecar.settle(lambda: sidecar.codec.decode_value(java))
    generic = schema_order_bytes(schema, zeta="z", alpha="a", mid=7)
    decode = sidecar.codec.decode_for_store if compiled else sidecar.codec.decode_value
    stored = decode(generic).stored
    assert document(stored.document)["@order"] == ["alpha", "mid", "zeta"]
    assert stored == sidecar.codec.decode_value(generic).stored
    assert sidecar.codec.encode_value(stored).data == generic
    # The other writer never changes the claimed order.
    assert sidecar.registry.write_order(schema.schema_id) == JAVA_ORDER


async def test_a_schema_order_record_first_claims_schema_order_and_java_records_name_theirs() -> (
    None
):
    world, cls = java_order_world()
    java, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    sidecar = await pending_sidecar([schema])
    generic = schema_order_bytes(schema, zeta="z", alpha="a", mid=7)
    first = await sidecar.settle(lambda: sidecar.codec.decode_for_store(generic))
    assert "@order" not in document(first.stored.document)
    assert sidecar.registry.write_order(schema.schema_id) == ("alpha", "mid", "zeta")
    stored = sidecar.codec.decode_for_store(java).stored
    assert document(stored.document)["@order"] == list(JAVA_ORDER)
    assert sidecar.codec.encode_value(stored).data == java
    assert sidecar.codec.encode_value(first.stored).data == generic


async def test_documents_written_before_with_order_keep_loading() -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    old = StoredValue(
        "compact",
        json.dumps({"alpha": "a", "mid": 7, "zeta": "z", "@order": list(JAVA_ORDER)}),
        "Order",
        schema.schema_id,
    )
    legacy = Sidecar(MemoryProvider({}))
    await legacy.provider.put_schemas([to_record(schema)])  # persisted before: no order
    await legacy.refresh()
    assert legacy.registry.write_order(schema.schema_id) is None
    assert legacy.codec.encode_value(old).data == data
    claimed = await pending_sidecar([schema])
    await claimed.settle(lambda: claimed.codec.decode_value(data))
    assert claimed.codec.encode_value(old).data == data  # "@order" wins
    # A schema-order document of old (no "@order") of a legacy schema: schema order.
    generic = schema_order_bytes(schema, zeta="z", alpha="a", mid=7)
    assert legacy.codec.encode_value(legacy.codec.decode_value(generic).stored).data == generic


async def test_a_legacy_schema_keeps_the_documents_of_before() -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    legacy = Sidecar(MemoryProvider({}))
    await legacy.provider.put_schemas([to_record(schema)])
    await legacy.refresh()
    for decoded in (legacy.codec.decode_for_store(data), legacy.codec.decode_value(data)):
        assert document(decoded.stored.document)["@order"] == list(JAVA_ORDER)
        assert legacy.codec.encode_value(decoded.stored).data == data
    assert [r.write_order for r in await legacy.provider.get_schemas()] == [None]


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_only_a_record_with_every_field_present_claims_the_order(compiled: bool) -> None:
    world = ClientWorld()
    # Java writes zeta, mid, alpha; the first record has no mid.
    cls = world.define("Late", [("zeta", K.STRING), ("mid", K.NULLABLE_INT32), ("alpha", K.STRING)])
    first, (schema,) = world.to_bytes(cls(zeta="z", mid=None, alpha="a"))
    sidecar = await pending_sidecar([schema], compiled=compiled)
    stored_first = (await sidecar.settle(lambda: sidecar.codec.decode_for_store(first))).stored
    # Part of the order seen: nothing claimed, the document names its own order.
    assert sidecar.registry.write_order(schema.schema_id) == ()
    assert [r.write_order for r in await sidecar.provider.get_schemas()] == [()]
    assert document(stored_first.document)["@order"] == ["zeta", "alpha"]
    assert sidecar.codec.encode_value(stored_first).data == first
    # The first complete record claims the whole order; from then on no "@order".
    later, _ = world.to_bytes(cls(zeta="z", mid=5, alpha="a"))
    stored = (await sidecar.settle(lambda: sidecar.codec.decode_for_store(later))).stored
    assert sidecar.registry.write_order(schema.schema_id) == ("zeta", "mid", "alpha")
    assert "@order" not in document(stored.document)
    assert sidecar.codec.encode_value(stored).data == later
    again = (await sidecar.settle(lambda: sidecar.codec.decode_for_store(first))).stored
    assert "@order" not in document(again.document)
    assert sidecar.codec.encode_value(again).data == first
    # The early document keeps loading exactly: its "@order" wins.
    assert sidecar.codec.encode_value(stored_first).data == first


async def test_a_record_with_at_most_one_variable_size_value_claims_nothing() -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta=None, alpha="a", mid=None))
    sidecar = await pending_sidecar([schema])
    for decoded in (sidecar.codec.decode_for_store(data), sidecar.codec.decode_value(data)):
        assert document(decoded.stored.document) == {"alpha": "a", "mid": None, "zeta": None}
        assert sidecar.codec.encode_value(decoded.stored).data == data
    assert sidecar.registry.write_order(schema.schema_id) == ()
    assert [r.write_order for r in await sidecar.provider.get_schemas()] == [()]


# -- several sidecars sharing one store ---------------------------------------------------


@pytest.mark.parametrize("compiled", [True, False], ids=["compiled", "generic"])
async def test_another_sidecar_encoding_a_document_refreshes_the_claimed_order(
    compiled: bool,
) -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    writer = await pending_sidecar([schema])
    reader = await pending_sidecar([schema], writer.provider)
    stored = (await writer.settle(lambda: writer.codec.decode_for_store(data))).stored
    if not compiled:
        reader.codec.compiled = False
    with pytest.raises(WriteOrderNeeded) as raised:
        reader.codec.encode_value(stored)
    assert raised.value.schema_id == schema.schema_id and raised.value.order is None
    encoded = await reader.settle(lambda: reader.codec.encode_value(stored))
    assert encoded.data == data
    assert reader.registry.write_order(schema.schema_id) == JAVA_ORDER


async def test_two_sidecars_claiming_at_once_agree_on_the_first_claim() -> None:
    world, cls = java_order_world()
    java, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    generic = schema_order_bytes(schema, zeta="z", alpha="a", mid=7)
    one = await pending_sidecar([schema])
    two = await pending_sidecar([schema], one.provider)
    with pytest.raises(WriteOrderNeeded):
        one.codec.decode_value(java)
    first = await one.settle(lambda: one.codec.decode_for_store(java))
    # The second sidecar saw schema order but the store keeps the first claim.
    second = await two.settle(lambda: two.codec.decode_for_store(generic))
    assert two.registry.write_order(schema.schema_id) == JAVA_ORDER
    assert "@order" not in document(first.stored.document)
    assert document(second.stored.document)["@order"] == ["alpha", "mid", "zeta"]
    for sidecar in (one, two):
        assert sidecar.codec.encode_value(first.stored).data == java
        assert sidecar.codec.encode_value(second.stored).data == generic


async def test_a_document_without_order_of_a_schema_still_pending_is_not_guessed() -> None:
    world, cls = java_order_world()
    _, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    sidecar = await pending_sidecar([schema])
    stored = StoredValue(
        "compact", '{"alpha": "a", "mid": 7, "zeta": "z"}', "Order", schema.schema_id
    )
    with pytest.raises(WriteOrderNeeded) as raised:
        await sidecar.settle(lambda: sidecar.codec.encode_value(stored))
    assert not isinstance(raised.value, DecodeError)
    assert raised.value.status.name == "FAILED_PRECONDITION"


# -- nested records -------------------------------------------------------------------------


def nested_world() -> tuple[ClientWorld, type[ClientObject], type[ClientObject]]:
    world = ClientWorld()
    inner = world.define("Address", [("street", K.STRING), ("city", K.STRING)])
    outer = world.define(
        "Customer", [("name", K.STRING), ("home", K.COMPACT), ("tags", K.ARRAY_OF_STRING)]
    )
    return world, outer, inner


async def test_nested_records_claim_their_own_orders_and_documents_have_none() -> None:
    world, outer, inner = nested_world()
    obj = outer(name="Kari", home=inner(street="Main 1", city="Oslo"), tags=["a", None])
    data, used = world.to_bytes(obj)
    schemas = {s.type_name: s for s in used}
    sidecar = await pending_sidecar(list(schemas.values()))
    with pytest.raises(WriteOrderNeeded) as raised:
        sidecar.codec.decode_value(data)
    assert raised.value.order == ("name", "home", "tags")  # the outer record first
    decoded = await sidecar.settle(lambda: sidecar.codec.decode_value(data))
    assert sidecar.registry.write_order(schemas["Address"].schema_id) == ("street", "city")
    text = decoded.stored.document
    assert "@order" not in text
    assert document(text)["home"] == {
        "@type": "Address",
        "@schemaId": str(schemas["Address"].schema_id),
        "city": "Oslo",
        "street": "Main 1",
    }
    assert sidecar.codec.encode_value(decoded.stored).data == data
    # A Compact key of the same type: its text has no order either, and comes back exactly.
    key = sidecar.codec.decode_key(data)
    assert "@order" not in key.text
    assert sidecar.codec.encode_key(key).data == data


async def test_a_pending_nested_schema_asks_for_its_own_order() -> None:
    world, outer, inner = nested_world()
    data, used = world.to_bytes(
        outer(name="Kari", home=inner(street="Main 1", city="Oslo"), tags=None)
    )
    schemas = {s.type_name: s for s in used}
    sidecar = await pending_sidecar([schemas["Address"]])
    await sidecar.provider.put_schemas([to_record(schemas["Customer"], ("name", "home", "tags"))])
    await sidecar.refresh()
    with pytest.raises(WriteOrderNeeded) as raised:
        sidecar.codec.decode_value(data)
    assert raised.value.schema_id == schemas["Address"].schema_id
    assert raised.value.order == ("street", "city")


async def test_a_nested_record_in_schema_order_names_its_order_alone() -> None:
    world, outer, inner = nested_world()
    java, used = world.to_bytes(outer(name="K", home=inner(street="s", city="c"), tags=["t"]))
    schemas = {s.type_name: s for s in used}
    sidecar = await pending_sidecar(list(schemas.values()))
    await sidecar.settle(lambda: sidecar.codec.decode_value(java))
    address = schemas["Address"]
    home = CompactRecord("Address", address, {"city": "c", "street": "s"})  # schema order
    record = CompactRecord(
        "Customer", schemas["Customer"], {"home": home, "name": "K", "tags": ["t"]}
    )
    record.write_order = ("name", "home", "tags")
    data = FRAME + encode_compact(record)[0]
    stored = sidecar.codec.decode_value(data).stored
    parsed = document(stored.document)
    assert "@order" not in parsed and parsed["home"]["@order"] == ["city", "street"]
    assert sidecar.codec.encode_value(stored).data == data


# -- the registry -----------------------------------------------------------------------------


def test_the_registry_turns_a_pending_order_into_the_store_s_and_keeps_it() -> None:
    schema = build_schema("T", [("a", int(K.STRING)), ("b", int(K.STRING)), ("n", int(K.INT32))])
    registry = SchemaRegistry()
    registry.add(to_record(schema, ()))
    registry.add(to_record(schema, ("b", "a")))
    assert registry.write_order(schema.schema_id) == ("b", "a")
    registry.add(to_record(schema, ()))  # an older copy: the claim stays
    registry.add(to_record(schema, ("a", "b")))  # a claimed order never changes
    assert registry.write_order(schema.schema_id) == ("b", "a")
    assert registry.record(schema.schema_id).write_order == ("b", "a")
    legacy = SchemaRegistry()
    legacy.add(to_record(schema))
    legacy.add(to_record(schema, ()))
    assert legacy.write_order(schema.schema_id) is None
    pending = SchemaRegistry()
    pending.insert(schema, ())
    pending.add(to_record(schema))  # the store says legacy
    assert pending.write_order(schema.schema_id) is None


@pytest.mark.parametrize("order", [("a",), ("a", "b", "n"), ("a", "a"), ("a", "c")])
def test_a_write_order_must_name_each_variable_size_field_once(order: tuple[str, ...]) -> None:
    schema = build_schema("T", [("a", int(K.STRING)), ("b", int(K.STRING)), ("n", int(K.INT32))])
    registry = SchemaRegistry()
    with pytest.raises(SchemaMismatchError, match="write order"):
        registry.add(to_record(schema, order))
    registry.add(to_record(schema, ()))
    with pytest.raises(SchemaMismatchError, match="write order"):
        registry.set_write_order(schema.schema_id, order)


def test_without_a_registry_every_schema_is_legacy() -> None:
    world, cls = java_order_world()
    data, (schema,) = world.to_bytes(cls(zeta="z", alpha="a", mid=7))
    registry = SchemaRegistry()
    registry.insert(schema, JAVA_ORDER)
    record = DataCodec(registry).decode_value(data).record
    assert record is not None and record.write_order == JAVA_ORDER
    assert record_to_json(record)["@order"] == list(JAVA_ORDER)
    assert "@order" not in record_to_json(record, registry)


# -- properties: both strategies, any claimed order ---------------------------------------------

FLAT_KINDS = [k for k in LEAF_KINDS if not k.name.startswith("ARRAY_OF_")]


def _claim(draw: st.DataObject, schema: Any) -> tuple[str, ...]:
    names = [f.name for f in schema.fields if f.index >= 0]
    return tuple(draw.draw(st.permutations(names))) if names else ()


@SETTINGS
@given(st.data())
def test_compiled_and_generic_documents_agree_under_any_claimed_order(draw: st.DataObject) -> None:
    schema = draw.draw(schemas(FLAT_KINDS, "Flat"))
    record: CompactRecord = draw.draw(records(schema))
    claimed = _claim(draw, schema)
    registry = SchemaRegistry()
    registry.insert(schema, claimed or None)
    codec = DataCodec(registry)
    data = FRAME + encode_compact(record)[0]
    generic = codec.decode_value(data)
    compiled = codec.decode_for_store(data)
    assert compiled.stored == generic.stored
    parsed = document(generic.stored.document)
    values = record.fields
    observed = record.write_order or tuple(
        f.name for f in schema.fields if f.index >= 0 and values[f.name] is not None
    )
    implied = tuple(name for name in claimed if values[name] is not None)
    assert ("@order" in parsed) == (observed != implied)
    assert codec.encode_value(generic.stored).data == data
    rebuilt = record_from_json(parsed, registry, schema)
    assert FRAME + encode_compact(rebuilt)[0] == data


@SETTINGS
@given(st.data())
def test_nested_records_round_trip_exactly_under_any_claimed_orders(draw: st.DataObject) -> None:
    child = draw.draw(schemas(LEAF_KINDS, "Child"))
    parent = draw.draw(schemas([*LEAF_KINDS, K.COMPACT, K.ARRAY_OF_COMPACT], "Parent"))
    record: CompactRecord = draw.draw(records(parent, child))
    registry = SchemaRegistry()
    for schema in (child, parent):
        registry.insert(schema, _claim(draw, schema) or None)
    codec = DataCodec(registry)
    data = FRAME + encode_compact(record)[0]
    decoded = codec.decode_value(data)
    assert codec.encode_value(decoded.stored).data == data
    key = codec.decode_key(data)
    assert codec.encode_key(key).data == data
    assert codec.encode_key(StoredKey(key.text, key.format)).data == data
