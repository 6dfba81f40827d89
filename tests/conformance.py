"""The provider conformance suite: the behaviour every provider must show.

A provider's test module subclasses :class:`ProviderConformance` and overrides
the ``provider`` fixture to yield an opened provider on an empty store::

    class TestMyProvider(ProviderConformance):
        @pytest.fixture
        async def provider(self) -> AsyncIterator[Provider]:
            p = MyProvider({...})
            await p.open()
            yield p
            await p.close()

The suite talks to the provider only through the interface of
``sidecar.providers.base`` (as the service does).
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator

import pytest

from sidecar.providers.base import (
    DeadLetter,
    EventColumns,
    Provider,
    SchemaRecord,
    StoredKey,
    StoredValue,
    StoreEntry,
    StoreKind,
    UnreadableRow,
)

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW


def key(text: str, fmt: str = "string") -> StoredKey:
    return StoredKey(text=text, format=fmt)


def doc(**fields: object) -> StoredValue:
    return StoredValue(
        format="compact", document=json.dumps(fields), type_name="Order", schema_id=-42
    )


def entry(text: str, **fields: object) -> StoreEntry:
    return StoreEntry(key=key(text), value=doc(**fields))


async def all_keys(provider: Provider, map_name: str, kind: StoreKind, batch: int) -> list[str]:
    texts: list[str] = []
    async for keys in provider.load_all_keys(map_name, kind, batch):
        assert 0 < len(keys) <= batch
        texts.extend(k.text for k in keys)
    return texts


def fields_of(entries: list[StoreEntry]) -> dict[str, dict[str, object]]:
    return {e.key.text: json.loads(e.value.document) for e in entries}


class ProviderConformance:
    """Subclass and override ``provider``."""

    @pytest.fixture
    async def provider(self) -> AsyncIterator[Provider]:
        raise NotImplementedError("override the provider fixture")
        yield  # pragma: no cover

    async def test_is_available_when_open(self, provider: Provider) -> None:
        assert await provider.is_available() is True

    async def test_view_store_then_load_returns_the_same_value(self, provider: Provider) -> None:
        await provider.store("Customer_VIEW", VIEW, [entry("c1", name="Ada", amount=12.5)])
        [loaded] = await provider.load("Customer_VIEW", VIEW, [key("c1")])
        assert loaded.key == key("c1")
        assert json.loads(loaded.value.document) == {"name": "Ada", "amount": 12.5}
        assert (loaded.value.format, loaded.value.type_name, loaded.value.schema_id) == (
            "compact",
            "Order",
            -42,
        )

    async def test_view_upsert_latest_write_wins(self, provider: Provider) -> None:
        await provider.store("V_VIEW", VIEW, [entry("k", version=1)])
        await provider.store("V_VIEW", VIEW, [entry("k", version=2)])
        assert fields_of(await provider.load("V_VIEW", VIEW, [key("k")])) == {"k": {"version": 2}}

    async def test_event_store_keeps_the_first_write_and_retry_is_idempotent(
        self, provider: Provider
    ) -> None:
        batch = [entry(f"e{i}", n=i) for i in range(10)]
        await provider.store("Orders_ES", EVENT, batch)
        await provider.store("Orders_ES", EVENT, batch)  # a retried batch
        await provider.store("Orders_ES", EVENT, [entry("e0", n=999)])
        loaded = fields_of(
            await provider.load("Orders_ES", EVENT, [key(f"e{i}") for i in range(10)])
        )
        assert loaded == {f"e{i}": {"n": i} for i in range(10)}
        assert sorted(await all_keys(provider, "Orders_ES", EVENT, 100)) == sorted(loaded)

    async def test_event_columns_are_accepted(self, provider: Provider) -> None:
        columns = EventColumns(
            aggregate_id="order-1",
            sequence=3,
            event_type="OrderPlaced",
            timestamp_millis=1_700_000_000_000,
            correlation_id="corr",
        )
        await provider.store(
            "Orders_ES", EVENT, [StoreEntry(key=key("order-1:3"), value=doc(a=1), event=columns)]
        )
        assert fields_of(await provider.load("Orders_ES", EVENT, [key("order-1:3")])) == {
            "order-1:3": {"a": 1}
        }

    async def test_load_of_missing_keys_returns_only_present_ones(self, provider: Provider) -> None:
        await provider.store("M_VIEW", VIEW, [entry("present", x=1)])
        loaded = await provider.load("M_VIEW", VIEW, [key("absent"), key("present"), key("gone")])
        assert [e.key.text for e in loaded] == ["present"]
        assert await provider.load("M_VIEW", VIEW, []) == []

    async def test_maps_and_store_kinds_are_isolated(self, provider: Provider) -> None:
        await provider.store("A_VIEW", VIEW, [entry("k", m="A")])
        await provider.store("B_VIEW", VIEW, [entry("k", m="B")])
        await provider.store("A_ES", EVENT, [entry("k", m="A_ES")])
        assert fields_of(await provider.load("A_VIEW", VIEW, [key("k")])) == {"k": {"m": "A"}}
        assert fields_of(await provider.load("B_VIEW", VIEW, [key("k")])) == {"k": {"m": "B"}}
        assert fields_of(await provider.load("A_ES", EVENT, [key("k")])) == {"k": {"m": "A_ES"}}
        assert await provider.load("A_VIEW", EVENT, [key("k")]) == []

    async def test_delete_removes_rows_and_counts_present_keys(self, provider: Provider) -> None:
        await provider.store("D_VIEW", VIEW, [entry(f"k{i}", i=i) for i in range(5)])
        assert await provider.delete("D_VIEW", VIEW, [key("k1"), key("k2"), key("nope")]) == 2
        assert await provider.delete("D_VIEW", VIEW, [key("k1")]) == 0
        assert await provider.delete("D_VIEW", VIEW, []) == 0
        remaining = await provider.load("D_VIEW", VIEW, [key(f"k{i}") for i in range(5)])
        assert sorted(e.key.text for e in remaining) == ["k0", "k3", "k4"]

    async def test_load_all_keys_streams_every_key_in_bounded_batches(
        self, provider: Provider
    ) -> None:
        texts = [f"key-{i:05d}" for i in range(2345)]
        await provider.store("Big_VIEW", VIEW, [entry(t, i=i) for i, t in enumerate(texts)])
        streamed = await all_keys(provider, "Big_VIEW", VIEW, 500)
        assert sorted(streamed) == sorted(texts)
        assert len(streamed) == len(set(streamed))
        assert await all_keys(provider, "Empty_VIEW", VIEW, 500) == []

    async def test_large_batch_and_large_load(self, provider: Provider) -> None:
        batch = [entry(f"k{i}", payload="x" * 200, i=i) for i in range(5000)]
        await provider.store("Large_ES", EVENT, batch)
        loaded = await provider.load("Large_ES", EVENT, [key(f"k{i}") for i in range(0, 5000, 2)])
        assert len(loaded) == 2500
        assert all(json.loads(e.value.document)["i"] % 2 == 0 for e in loaded)

    async def test_key_format_and_awkward_texts_round_trip(self, provider: Provider) -> None:
        texts = ["", " ", "ünïcødé ✓", "quote'd", 'dq"', "semi;colon", "a\nb", "%_like"]
        entries = [StoreEntry(key=key(t, "string"), value=doc(t=t)) for t in texts] + [
            StoreEntry(key=key("42", "int64"), value=doc(t=42))
        ]
        await provider.store("Odd_VIEW", VIEW, entries)
        loaded = await provider.load("Odd_VIEW", VIEW, [e.key for e in entries])
        assert {(e.key.text, e.key.format) for e in loaded} == {
            (e.key.text, e.key.format) for e in entries
        }
        assert sorted(await all_keys(provider, "Odd_VIEW", VIEW, 3)) == sorted(
            e.key.text for e in entries
        )

    async def test_hostile_map_names_are_data_not_sql(self, provider: Provider) -> None:
        name = "x'); DROP TABLE domain_views; --_VIEW"
        await provider.store(name, VIEW, [entry("k", ok=True)])
        await provider.store("Safe_VIEW", VIEW, [entry("k", ok=True)])
        assert len(await provider.load(name, VIEW, [key("k")])) == 1
        assert len(await provider.load("Safe_VIEW", VIEW, [key("k")])) == 1

    async def test_non_compact_values_keep_their_format(self, provider: Provider) -> None:
        value = StoredValue(format="string", document=json.dumps("plain"))
        await provider.store("S_VIEW", VIEW, [StoreEntry(key=key("k"), value=value)])
        [loaded] = await provider.load("S_VIEW", VIEW, [key("k")])
        assert loaded.value.format == "string"
        assert json.loads(loaded.value.document) == "plain"
        assert loaded.value.type_name is None and loaded.value.schema_id is None

    async def test_schemas_are_persisted_idempotently(self, provider: Provider) -> None:
        first = SchemaRecord(schema_id=7, type_name="Order", fields=(("amount", 12), ("id", 8)))
        second = SchemaRecord(schema_id=-9, type_name="Line", fields=())
        await provider.put_schemas([first])
        await provider.put_schemas([first, second])
        assert sorted(await provider.get_schemas(), key=lambda s: s.schema_id) == [second, first]

    async def test_dead_letters_keep_raw_bytes_and_can_be_listed_and_deleted(
        self, provider: Provider
    ) -> None:
        hostile = "x'); DROP TABLE hz_sidecar_dead_letters; --_VIEW"
        letters = [
            DeadLetter("A_VIEW", b"\x00\x01\xff", b"", "truncated", 1_700_000_000_000),
            DeadLetter(hostile, b"", bytes(range(256)) * 4, "bad 'utf-8' \u00e9", 2),
            DeadLetter("A_VIEW", b"k2", b"v2", "again", 3),
        ]
        await provider.put_dead_letters(letters)
        kept = await provider.list_dead_letters()
        assert [dataclasses.replace(d, id=None) for d in kept] == letters
        ids = [d.id for d in kept]
        assert all(isinstance(i, int) for i in ids) and len(set(ids)) == 3
        assert [d.key for d in await provider.list_dead_letters(map_name="A_VIEW")] == [
            b"\x00\x01\xff",
            b"k2",
        ]
        assert [d.map_name for d in await provider.list_dead_letters(letter_id=ids[1])] == [hostile]
        assert await provider.delete_dead_letters([ids[0], ids[0], 10**12]) == 1
        assert [d.id for d in await provider.list_dead_letters()] == ids[1:]

    # -- key bytes, rows of the reference framework, unreadable rows -----------------

    async def test_key_bytes_come_back_from_load_and_load_all_keys(
        self, provider: Provider
    ) -> None:
        java_key = StoredKey("seq:7|key:c1", "java", b"\x01\x02\x00\xff" * 40)
        for kind, name in ((EVENT, "Bytes_ES"), (VIEW, "Bytes_VIEW")):
            await provider.store(
                name, kind, [StoreEntry(key=java_key, value=doc(n=1)), entry("plain", n=2)]
            )
            loaded = {e.key.text: e.key for e in await provider.load(name, kind, [java_key])}
            assert loaded == {java_key.text: java_key}
            streamed: dict[str, StoredKey] = {}
            async for keys in provider.load_all_keys(name, kind, 1):
                streamed.update((k.text, k) for k in keys)
            assert streamed == {java_key.text: java_key, "plain": key("plain")}

    async def _framework_rows(self, provider: Provider, kind: StoreKind, map_name: str) -> None:
        """Rows as the reference framework wrote them: its key form (""), no value format."""
        framework = [
            StoreEntry(
                key=StoredKey(f"seq:{i}|key:c{i % 2}", ""),
                value=StoredValue("", json.dumps({"_schemaType": "T", "_fields": {"i": i}})),
            )
            for i in range(5)
        ]
        await provider.store(map_name, kind, [*framework, entry("sidecar-row", n=1)])

    async def test_rows_without_value_format_are_paged_then_rewritten_once(
        self, provider: Provider
    ) -> None:
        try:
            await provider.rows_without_format(EVENT, after=None, limit=1)
        except NotImplementedError:
            pytest.skip(f"{type(provider).__name__} holds no rows of the reference framework")
        await self._framework_rows(provider, EVENT, "Legacy_ES")
        [first] = await provider.load("Legacy_ES", EVENT, [key("seq:0|key:c0", "")])
        assert (first.key.format, first.value.format) == ("", "")
        seen: list[tuple[str, StoreEntry]] = []
        after = None
        while page := await provider.rows_without_format(EVENT, after=after, limit=2):
            assert len(page) <= 2
            seen.extend(page)
            after = (page[-1][0], page[-1][1].key.text, page[-1][1].key.format)
        assert [e.key.text for _, e in seen] == sorted(f"seq:{i}|key:c{i % 2}" for i in range(5))
        assert {name for name, _ in seen} == {"Legacy_ES"}
        rewritten = [
            (name, dataclasses.replace(e, value=StoredValue("compact", '{"i": 1}', "T", 99)))
            for name, e in seen
        ]
        assert await provider.rewrite_rows(EVENT, rewritten) == 5
        assert await provider.rewrite_rows(EVENT, rewritten) == 0  # already rewritten
        assert await provider.rows_without_format(EVENT, after=None, limit=10) == []
        [loaded] = await provider.load("Legacy_ES", EVENT, [key("seq:3|key:c1", "")])
        assert loaded.key == StoredKey("seq:3|key:c1", "")
        assert (loaded.value.format, loaded.value.schema_id) == ("compact", 99)

    async def test_rewrite_keeps_a_row_a_sidecar_wrote_since(self, provider: Provider) -> None:
        try:
            await provider.rows_without_format(VIEW, after=None, limit=1)
        except NotImplementedError:
            pytest.skip(f"{type(provider).__name__} holds no rows of the reference framework")
        await self._framework_rows(provider, VIEW, "Legacy_VIEW")
        page = await provider.rows_without_format(VIEW, after=None, limit=10, map_name="Nope")
        assert page == []
        page = await provider.rows_without_format(VIEW, after=None, limit=10)
        newer = StoreEntry(key=StoredKey("seq:0|key:c0", ""), value=doc(newer=True))
        await provider.store("Legacy_VIEW", VIEW, [newer])
        stale = [(n, dataclasses.replace(e, value=doc(stale=True))) for n, e in page]
        assert await provider.rewrite_rows(VIEW, stale) == 4
        [loaded] = await provider.load("Legacy_VIEW", VIEW, [key("seq:0|key:c0", "")])
        assert json.loads(loaded.value.document) == {"newer": True}

    async def test_a_key_is_its_text_and_its_format(self, provider: Provider) -> None:
        keys = [key("1", fmt) for fmt in ("int32", "int64", "string", "")] + [
            key("true", "boolean"),
            key("true", "string"),
        ]
        for kind, name in ((EVENT, "Identity_ES"), (VIEW, "Identity_VIEW")):
            await provider.store(name, kind, [StoreEntry(k, doc(n=i)) for i, k in enumerate(keys)])
            loaded = await provider.load(name, kind, keys)
            assert {
                (e.key.text, e.key.format): json.loads(e.value.document)["n"] for e in loaded
            } == {(k.text, k.format): i for i, k in enumerate(keys)}
            # An event store keeps the first write of each identity, not of each text.
            await provider.store(name, kind, [StoreEntry(key("1", "int64"), doc(n=99))])
            [again] = await provider.load(name, kind, [key("1", "int64")])
            assert json.loads(again.value.document)["n"] == (1 if kind is EVENT else 99)
            # Deleting one identity leaves the others; a missing one counts nothing.
            assert await provider.delete(name, kind, [key("1", "int64"), key("1", "int16")]) == 1
            left = {(e.key.text, e.key.format) for e in await provider.load(name, kind, keys)}
            assert left == {(k.text, k.format) for k in keys} - {("1", "int64")}
            streamed = [
                (k.text, k.format)
                async for batch in provider.load_all_keys(name, kind, 2)
                for k in batch
            ]
            assert sorted(streamed) == sorted(left) and len(streamed) == len(left)

    async def test_unreadable_rows_are_recorded_once_listed_and_purged(
        self, provider: Provider
    ) -> None:
        try:
            await provider.list_unreadable_rows()
        except NotImplementedError:
            pytest.skip(f"{type(provider).__name__} does not record unreadable rows")
        first = UnreadableRow("A_VIEW", "k1", "", "DecodeError: broken", 1000)
        same_text = UnreadableRow("A_VIEW", "k1", "int32", "other format", 1500)
        again = dataclasses.replace(first, error="later", seen_at_millis=2000)
        other = UnreadableRow("B_VIEW", "k'; DROP TABLE x; --", "zz", "unknown format", 3000)
        await provider.put_unreadable_rows([first, other, same_text])
        await provider.put_unreadable_rows([again])
        assert await provider.list_unreadable_rows() == [first, same_text, other]
        assert await provider.list_unreadable_rows(map_name="B_VIEW") == [other]
        assert await provider.delete_unreadable_rows(map_name="A_VIEW") == 2
        assert await provider.list_unreadable_rows() == [other]
