"""The conformance suite: the behaviour every provider must show, written as tests.

This module needs pytest and pytest-asyncio (``pip install pytest pytest-asyncio``);
nothing else in the ``sidecar`` package imports it, so a deployment never needs them.

Two contracts, each a class to subclass in a provider's test module:

* :class:`ProviderConformance` calls the provider directly, through the interface of
  :mod:`sidecar.providers.base` only (as the service does): semantics per store kind,
  key identity, schemas, the optional capabilities (skipped when the provider raises
  ``NotImplementedError`` for them), ``async with``, ``pool_stats``, and an
  abandoned ``load_all_keys`` stream.
* :class:`WriterConformance` drives the provider only through :class:`sidecar.writer.Writer`,
  the one write path of every provider, and shows what a provider gets from it
  without code of its own: group commit, chunking, deadlines, retries of what the
  provider's own ``is_transient`` calls transient, and the order and key identity
  of merged calls. Faults are injected by :class:`ObservedProvider`, a transparent
  wrapper around the provider under test, so the provider's real storage is
  checked too.

Subclass either or both and override the ``provider`` fixture to yield an opened
provider on an empty store::

    from sidecar.conformance import ProviderConformance, WriterConformance

    class TestMyProvider(ProviderConformance, WriterConformance):
        @pytest.fixture
        async def provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
            async with MyProvider({"path": str(tmp_path / "store")}) as provider:
                yield provider

Every test is a coroutine marked for pytest-asyncio; with ``asyncio_mode = "strict"``
declare the ``provider`` fixture with ``@pytest_asyncio.fixture`` (``auto`` mode takes
``@pytest.fixture``). pytest explains a failed assertion (the values compared) only in
the modules it rewrites: name this one in a ``conftest.py``, before it is imported, with
``pytest.register_assert_rewrite("sidecar.conformance")``.

The other fixtures a subclass may override:

* ``unopened_provider``: a second, not yet opened instance for the ``async with``
  test; by default ``type(provider)(provider.settings)``. Override it when the
  store cannot be opened twice at once (a provider that locks its files, say).
* ``transient_error`` / ``permanent_error``: an exception that the provider's
  ``is_transient`` calls transient / not transient, for the retry tests. By default
  the first of a few common failures (:data:`TRANSIENT_CANDIDATES`) that the
  provider classifies as transient; a provider that classifies none skips them.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import errno
import json
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

import pytest
import pytest_asyncio

from sidecar.deadline import deadline_scope
from sidecar.errors import StoreTimeoutError, StoreUnavailableError
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
from sidecar.retry import RetryPolicy
from sidecar.writer import Writer

__all__ = [
    "TRANSIENT_CANDIDATES",
    "Gate",
    "InjectedFault",
    "ObservedProvider",
    "ProviderCall",
    "ProviderConformance",
    "RetryLog",
    "WriterConformance",
    "all_keys",
    "caused_by",
    "doc",
    "entry",
    "fields_of",
    "key",
]

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW

#: How long a test waits for something that should happen at once before it fails.
_PATIENCE_SECONDS = 10.0


def key(text: str, fmt: str = "string") -> StoredKey:
    """A stored key of that text and format."""
    return StoredKey(text=text, format=fmt)


def doc(**fields: object) -> StoredValue:
    """A Compact value (type ``Order``) whose document holds ``fields``."""
    return StoredValue(
        format="compact", document=json.dumps(fields), type_name="Order", schema_id=-42
    )


def entry(text: str, fmt: str = "string", **fields: object) -> StoreEntry:
    """An entry: the key of that text and format, a :func:`doc` of ``fields``."""
    return StoreEntry(key=key(text, fmt), value=doc(**fields))


async def all_keys(provider: Provider, map_name: str, kind: StoreKind, batch: int) -> list[str]:
    """The texts of every key ``load_all_keys`` streams, checking each batch's size."""
    texts: list[str] = []
    async for keys in provider.load_all_keys(map_name, kind, batch):
        assert 0 < len(keys) <= batch
        texts.extend(k.text for k in keys)
    return texts


def fields_of(entries: list[StoreEntry]) -> dict[str, dict[str, object]]:
    """Each entry's document, by key text."""
    return {e.key.text: json.loads(e.value.document) for e in entries}


class _ProviderUnderTest:
    """The fixtures both contracts share; a subclass overrides ``provider``."""

    pytestmark = [pytest.mark.asyncio]

    @pytest_asyncio.fixture
    async def provider(self) -> AsyncIterator[Provider]:
        raise NotImplementedError("override the provider fixture")
        yield  # pragma: no cover

    @pytest_asyncio.fixture
    async def unopened_provider(self, provider: Provider) -> AsyncIterator[Provider]:
        second = type(provider)(provider.settings)
        yield second
        await second.close()


# -- the provider, called directly ----------------------------------------------------


class ProviderConformance(_ProviderUnderTest):
    """The provider interface, called directly: subclass and override ``provider``."""

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
        try:
            await provider.list_dead_letters()
        except NotImplementedError as exc:
            _names_its_class(provider, exc)  # an optional capability left out, and said so
            return
        hostile = "x'); DROP TABLE hz_sidecar_dead_letters; --_VIEW"
        letters = [
            DeadLetter("A_VIEW", b"\x00\x01\xff", b"", "truncated", 1_700_000_000_000),
            DeadLetter(hostile, b"", bytes(range(256)) * 4, "bad 'utf-8' \u00e9", 2),
            DeadLetter("A_VIEW", b"k2", b"v2", "again", 3),
        ]
        await provider.put_dead_letters(letters)
        kept = await provider.list_dead_letters()
        assert [dataclasses.replace(d, id=None) for d in kept] == letters
        ids = [d.id for d in kept if isinstance(d.id, int)]
        assert len(set(ids)) == 3
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
        except NotImplementedError as exc:
            _names_its_class(provider, exc)  # an optional capability left out, and said so
            return
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
        except NotImplementedError as exc:
            _names_its_class(provider, exc)  # an optional capability left out, and said so
            return
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
        except NotImplementedError as exc:
            _names_its_class(provider, exc)  # an optional capability left out, and said so
            return
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

    # -- the lifecycle and the optional capabilities of the interface ------------------

    async def test_async_with_opens_the_provider_and_closing_stays_idempotent(
        self, unopened_provider: Provider
    ) -> None:
        async with asyncio.timeout(_PATIENCE_SECONDS):
            async with unopened_provider as opened:
                assert opened is unopened_provider
                await opened.open()  # a second open changes nothing
                assert await opened.is_available() is True
                await opened.store("With_VIEW", VIEW, [entry("k", n=1)])
                assert fields_of(await opened.load("With_VIEW", VIEW, [key("k")])) == {
                    "k": {"n": 1}
                }
            await unopened_provider.close()  # already closed by the block: nothing happens

    async def test_pool_stats_is_none_or_a_mapping_of_counts(self, provider: Provider) -> None:
        stats = provider.pool_stats()
        if stats is not None:
            assert isinstance(stats, Mapping)
            assert all(isinstance(k, str) and type(v) is int for k, v in stats.items()), stats

    async def test_cancellation_and_programming_errors_are_never_transient(
        self, provider: Provider
    ) -> None:
        assert provider.is_transient(asyncio.CancelledError()) is False
        assert provider.is_transient(TypeError("a bug")) is False

    async def test_a_load_all_keys_stream_closed_midway_holds_nothing_back(
        self, provider: Provider
    ) -> None:
        await provider.store("Abandoned_VIEW", VIEW, [entry(f"k{i:02d}", i=i) for i in range(30)])
        async with asyncio.timeout(_PATIENCE_SECONDS):
            # More abandoned streams than any pool has connections: one held by each
            # stream would make the next call wait for a connection that never comes.
            for _ in range(40):
                batches = provider.load_all_keys("Abandoned_VIEW", VIEW, 5)
                assert len(await anext(batches)) == 5
                await batches.aclose()
            await provider.store("Abandoned_VIEW", VIEW, [entry("after", n=1)])
            assert len(await all_keys(provider, "Abandoned_VIEW", VIEW, 7)) == 31
            await provider.close()


# -- the provider behind the one write path ----------------------------------------------


class InjectedFault(RuntimeError):
    """A failure injected by the suite; unknown to every provider, so never transient."""


#: Failures a provider's ``is_transient`` commonly calls transient; the ``transient_error``
#: fixture takes the first one the provider under test does.
TRANSIENT_CANDIDATES: tuple[Callable[[], BaseException], ...] = (
    lambda: StoreUnavailableError("injected: the store cannot be reached"),
    lambda: BlockingIOError(errno.EAGAIN, "injected: resource temporarily unavailable"),
    lambda: ConnectionResetError(errno.ECONNRESET, "injected: connection reset"),
    lambda: TimeoutError("injected: the store did not answer"),
)


def _names_its_class(provider: Provider, exc: NotImplementedError) -> None:
    """An optional capability a provider leaves out says which provider lacks it."""
    assert type(provider).__name__ in str(exc), (
        f"NotImplementedError of an optional capability must name the provider class: {exc}"
    )


class Gate:
    """Holds the provider calls it is injected into until :meth:`open`; never opened, a hang.

    ``reached`` is set when the first call arrives; ``cancelled`` when a held call is
    cancelled (the provider sees the cancellation).
    """

    def __init__(self) -> None:
        self.reached = asyncio.Event()
        self.cancelled = asyncio.Event()
        self._opened = asyncio.Event()

    def open(self) -> None:
        self._opened.set()

    async def __call__(self) -> None:
        self.reached.set()
        try:
            await self._opened.wait()
        except asyncio.CancelledError:
            self.cancelled.set()
            raise


@dataclasses.dataclass(frozen=True)
class ProviderCall:
    """One call that reached the provider: every attempt of a retried call is one."""

    operation: str
    map_name: str
    kind: StoreKind
    entries: tuple[StoreEntry, ...] = ()
    keys: tuple[StoredKey, ...] = ()


@dataclasses.dataclass
class _Fault:
    operation: str
    action: Callable[[], Awaitable[None]]
    times: int | None
    when: Callable[[ProviderCall], bool] | None


class ObservedProvider(Provider):
    """A transparent wrapper: the provider under test, its calls recorded, faults injected.

    Every call goes to the wrapped provider, whose storage and ``is_transient`` answer
    it; a fault injected for ``store``, ``load`` or ``delete`` runs first (it raises,
    or holds the call). Whatever else the interface declares is delegated as it is.
    """

    name = "observed"

    def __init__(self, inner: Provider) -> None:
        super().__init__(inner.settings)
        self.inner = inner
        self.retry_budget_seconds = inner.retry_budget_seconds
        #: Every call that reached the provider (each attempt of a retried one).
        self.calls: list[ProviderCall] = []
        #: The calls that the provider answered without an error.
        self.answered: list[ProviderCall] = []
        self._answer = asyncio.Condition()
        self._faults: collections.deque[_Fault] = collections.deque()

    def __repr__(self) -> str:
        return f"ObservedProvider({self.inner!r})"

    def __getattr__(self, attribute: str) -> Any:
        # What the interface does not declare (a provider's own extras) is the inner one's.
        if attribute == "inner":  # not set yet: no recursion
            raise AttributeError(attribute)
        return getattr(self.inner, attribute)

    def inject(
        self,
        operation: str,
        action: Callable[[], Awaitable[None]],
        *,
        times: int | None = 1,
        when: Callable[[ProviderCall], bool] | None = None,
    ) -> None:
        """Run ``action`` before the next ``times`` calls of ``operation`` (None: every one).

        ``when`` narrows it to the calls it accepts; faults run in the order injected.
        """
        self._faults.append(_Fault(operation, action, times, when))

    def fail(self, operation: str, error: BaseException, *, times: int | None = 1) -> None:
        """Fail the next ``times`` calls of ``operation`` with ``error``; nothing is done."""

        async def raise_it() -> None:
            raise error

        self.inject(operation, raise_it, times=times)

    def stores(self) -> list[ProviderCall]:
        """The ``store`` calls that reached the provider, every attempt included."""
        return [call for call in self.calls if call.operation == "store"]

    async def completed(self, matches: Callable[[ProviderCall], bool]) -> None:
        """Wait until the provider has answered a call that ``matches``."""
        async with self._answer:
            await self._answer.wait_for(lambda: any(map(matches, self.answered)))

    async def _answered(self, call: ProviderCall) -> None:
        async with self._answer:
            self.answered.append(call)
            self._answer.notify_all()

    async def _before(self, call: ProviderCall) -> None:
        self.calls.append(call)
        for fault in list(self._faults):
            if fault.operation != call.operation or (fault.when and not fault.when(call)):
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times == 0:
                    self._faults.remove(fault)
            await fault.action()

    # -- observed ----------------------------------------------------------------------

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        call = ProviderCall("store", map_name, kind, entries=tuple(entries))
        await self._before(call)
        await self.inner.store(map_name, kind, entries)
        await self._answered(call)

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        call = ProviderCall("load", map_name, kind, keys=tuple(keys))
        await self._before(call)
        loaded = await self.inner.load(map_name, kind, keys)
        await self._answered(call)
        return loaded

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        call = ProviderCall("delete", map_name, kind, keys=tuple(keys))
        await self._before(call)
        deleted = await self.inner.delete(map_name, kind, keys)
        await self._answered(call)
        return deleted

    # -- delegated (the abstract methods here, the others below the class) -------------

    async def is_available(self) -> bool:
        return await self.inner.is_available()

    def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        return self.inner.load_all_keys(map_name, kind, batch_size)

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        await self.inner.put_schemas(schemas)

    async def get_schemas(self) -> list[SchemaRecord]:
        return await self.inner.get_schemas()


def _delegate(method_name: str) -> Callable[..., Any]:
    def delegated(self: ObservedProvider, *args: Any, **kwargs: Any) -> Any:
        return getattr(self.inner, method_name)(*args, **kwargs)

    delegated.__name__ = method_name
    return delegated


def _delegate_the_rest() -> None:
    """Every other method the interface declares (open, close, is_transient, pool_stats,
    use_retry, the optional capabilities...) goes to the provider under test, so that
    the wrapper stays transparent as the interface grows."""
    for name, member in vars(Provider).items():
        if callable(member) and not name.startswith("_") and name not in vars(ObservedProvider):
            setattr(ObservedProvider, name, _delegate(name))


_delegate_the_rest()


class _MakeWriter(Protocol):
    def __call__(self, provider: Provider, **options: Any) -> Writer: ...


@dataclasses.dataclass
class RetryLog:
    """The ``on_retry`` hook of a writer: (operation, attempt, failure) of each retry."""

    retries: list[tuple[str, int, BaseException]] = dataclasses.field(default_factory=list)

    def __call__(self, operation: str, attempt: int, exc: BaseException) -> None:
        self.retries.append((operation, attempt, exc))


#: Retries quick enough for tests: the policy's shape is not what they check.
_QUICK_RETRY = RetryPolicy(initial_wait=0.001, max_wait=0.01, max_attempts=10)


def caused_by(exc: BaseException | None, cause: BaseException) -> bool:
    """Whether ``cause`` is ``exc`` or in the chain of causes that led to it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        if exc is cause:
            return True
        seen.add(id(exc))
        exc = exc.__cause__ or exc.__context__
    return False


async def _ended(*calls: Awaitable[Any]) -> list[Any]:
    """The results of ``calls`` (coroutines or tasks); the first error is raised.

    A call that has not ended within the patience fails the test instead of hanging it.
    The calls are waited for, not cancelled: the writer shields a started write from its
    caller, so cancelling the caller would not end it sooner.
    """
    tasks = [asyncio.ensure_future(call) for call in calls]
    _, pending = await asyncio.wait(tasks, timeout=_PATIENCE_SECONDS)
    if pending:
        pytest.fail(
            f"{len(pending)} of {len(tasks)} writer calls still running after "
            f"{_PATIENCE_SECONDS:.0f} s",
            pytrace=False,
        )
    return [task.result() for task in tasks]


def _unique_identities(call: ProviderCall) -> bool:
    """Whether every key of a store call is there once (the provider's contract)."""
    identities = [(e.key.text, e.key.format) for e in call.entries]
    return len(identities) == len(set(identities))


class WriterConformance(_ProviderUnderTest):
    """What a provider gets from :class:`sidecar.writer.Writer` without code of its own.

    Subclass and override ``provider`` (and, for a provider whose transient failures
    are none of :data:`TRANSIENT_CANDIDATES`, ``transient_error``).
    """

    @pytest_asyncio.fixture
    async def observed(self, provider: Provider) -> ObservedProvider:
        return ObservedProvider(provider)

    @pytest_asyncio.fixture
    async def make_writer(self, provider: Provider) -> AsyncIterator[_MakeWriter]:
        """Writers made by a test, closed before the provider is (hence ``provider``)."""
        del provider
        writers: list[Writer] = []

        def make(provider: Provider, **options: Any) -> Writer:
            writers.append(Writer(provider, **options))
            return writers[-1]

        yield make
        for writer in writers:
            await writer.close()

    @pytest_asyncio.fixture
    async def transient_error(self, provider: Provider) -> BaseException:
        for candidate in TRANSIENT_CANDIDATES:
            error = candidate()
            if provider.is_transient(error):
                return error
        pytest.skip(
            f"{type(provider).__name__}.is_transient calls none of the usual failures "
            "transient; override the transient_error fixture to return one it does"
        )

    @pytest_asyncio.fixture
    async def permanent_error(self, provider: Provider) -> BaseException:
        error = InjectedFault("injected: a failure no attempt will get past")
        if provider.is_transient(error):
            pytest.skip(f"{type(provider).__name__}.is_transient calls every failure transient")
        return error

    async def _queue_behind(
        self, writer: Writer, observed: ObservedProvider, map_name: str, kind: StoreKind
    ) -> tuple[Gate, asyncio.Task[object]]:
        """Hold a first write of ``map_name`` in the provider; calls made meanwhile queue."""
        gate = Gate()
        observed.inject("store", gate)
        first = asyncio.create_task(writer.store(map_name, kind, [entry("gate", n=0)]))
        async with asyncio.timeout(_PATIENCE_SECONDS):
            await gate.reached.wait()
        return gate, first

    @staticmethod
    async def _start_in_order(*calls: Awaitable[Any]) -> list[asyncio.Future[Any]]:
        """Start ``calls`` one after another, each reaching the writer before the next."""
        tasks: list[asyncio.Future[Any]] = []
        for call in calls:
            tasks.append(asyncio.ensure_future(call))
            await asyncio.sleep(0.005)
        return tasks

    # -- group commit --------------------------------------------------------------------

    async def test_calls_queued_behind_a_write_of_their_map_share_one_transaction(
        self, observed: ObservedProvider, make_writer: _MakeWriter
    ) -> None:
        writer = make_writer(observed, max_wait_seconds=0)
        gate, first = await self._queue_behind(writer, observed, "Group_VIEW", VIEW)
        queued = await self._start_in_order(
            *(writer.store("Group_VIEW", VIEW, [entry(f"k{i}", n=i)]) for i in range(8))
        )
        gate.open()
        outcomes = await _ended(first, *queued)
        assert all(outcome.failed == {} for outcome in outcomes)
        # The held write, then the eight calls that queued behind it in one transaction.
        sizes = [len(call.entries) for call in observed.stores()]
        assert sizes == [1, 8], f"rows of each provider.store: {sizes}"
        loaded = await observed.inner.load("Group_VIEW", VIEW, [key(f"k{i}") for i in range(8)])
        assert fields_of(loaded) == {f"k{i}": {"n": i} for i in range(8)}

    async def test_a_shared_transaction_holds_at_most_max_rows(
        self, observed: ObservedProvider, make_writer: _MakeWriter
    ) -> None:
        writer = make_writer(observed, max_rows=7, max_wait_seconds=0)
        gate, first = await self._queue_behind(writer, observed, "Bounded_ES", EVENT)
        queued = await self._start_in_order(
            *(
                writer.store("Bounded_ES", EVENT, [entry(f"c{c}-{i}", c=c) for i in range(3)])
                for c in range(6)
            )
        )
        gate.open()
        await _ended(first, *queued)
        sizes = [len(call.entries) for call in observed.stores()[1:]]
        # Merged within the bound: two calls (6 rows) a transaction.
        assert all(size <= 7 for size in sizes) and len(sizes) < 6, sizes
        assert sum(sizes) == 18, sizes
        keys = [key(f"c{c}-{i}") for c in range(6) for i in range(3)]
        assert len(await observed.inner.load("Bounded_ES", EVENT, keys)) == 18

    # -- chunking --------------------------------------------------------------------------

    async def test_a_call_larger_than_chunk_rows_reaches_the_provider_in_chunks(
        self, observed: ObservedProvider, make_writer: _MakeWriter
    ) -> None:
        # max_rows as small as a chunk: group commit may otherwise merge the chunks
        # queued behind the first one into one transaction (up to max_rows).
        writer = make_writer(observed, chunk_rows=10, max_rows=10)
        entries = [entry(f"k{i:02d}", i=i) for i in range(35)]
        outcome = await writer.store("Chunked_ES", EVENT, entries)
        assert outcome.failed == {}
        sizes = [len(call.entries) for call in observed.stores()]
        assert sizes == [10, 10, 10, 5], f"rows of each provider.store: {sizes}"
        loaded = await observed.inner.load("Chunked_ES", EVENT, [e.key for e in entries])
        assert fields_of(loaded) == {f"k{i:02d}": {"i": i} for i in range(35)}

    async def test_a_failed_chunk_fails_only_its_own_entries(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        permanent_error: BaseException,
    ) -> None:
        writer = make_writer(observed, chunk_rows=10, retry=_QUICK_RETRY)
        entries = [entry(f"k{i:02d}", i=i) for i in range(30)]

        async def refuse() -> None:
            raise permanent_error

        poisoned = key("k15")
        observed.inject(
            "store", refuse, times=None, when=lambda call: poisoned in (e.key for e in call.entries)
        )
        outcome = await writer.store("Partial_VIEW", VIEW, entries)
        assert 15 in outcome.failed and len(outcome.failed) <= 10, sorted(outcome.failed)
        assert all(caused_by(exc, permanent_error) for exc in outcome.failed.values())
        loaded = await observed.inner.load("Partial_VIEW", VIEW, [e.key for e in entries])
        assert {e.key.text for e in loaded} == {
            e.key.text for i, e in enumerate(entries) if i not in outcome.failed
        }

    # -- deadlines -------------------------------------------------------------------------

    async def test_a_write_that_outlives_its_deadline_is_cancelled_with_store_timeout(
        self, observed: ObservedProvider, make_writer: _MakeWriter
    ) -> None:
        writer = make_writer(observed)
        hang = Gate()  # never opened
        observed.inject("store", hang)
        started = time.monotonic()
        with deadline_scope(0.2), pytest.raises(StoreTimeoutError):
            await _ended(writer.store("Slow_VIEW", VIEW, [entry("k", n=1)]))
        async with asyncio.timeout(_PATIENCE_SECONDS):
            await hang.cancelled.wait()  # the provider saw its write cancelled
        assert 0.2 <= time.monotonic() - started < 0.2 + _PATIENCE_SECONDS
        # Nothing of the cancelled write stays in the way of the map's next one.
        with deadline_scope(_PATIENCE_SECONDS):
            assert (await writer.store("Slow_VIEW", VIEW, [entry("k", n=2)])).failed == {}
        assert fields_of(await observed.inner.load("Slow_VIEW", VIEW, [key("k")])) == {
            "k": {"n": 2}
        }

    async def test_a_started_write_survives_the_cancellation_of_its_caller(
        self, observed: ObservedProvider, make_writer: _MakeWriter
    ) -> None:
        writer = make_writer(observed)
        gate = Gate()
        observed.inject("store", gate)
        caller = asyncio.create_task(writer.store("Shielded_ES", EVENT, [entry("k", n=1)]))
        async with asyncio.timeout(_PATIENCE_SECONDS):
            await gate.reached.wait()
        caller.cancel()
        await asyncio.sleep(0.05)
        assert not gate.cancelled.is_set()  # the caller gave up; its write goes on
        gate.open()
        with pytest.raises(asyncio.CancelledError):
            await _ended(caller)
        async with asyncio.timeout(_PATIENCE_SECONDS):
            await observed.completed(lambda call: call.operation == "store")
        assert not gate.cancelled.is_set()
        assert fields_of(await observed.inner.load("Shielded_ES", EVENT, [key("k")])) == {
            "k": {"n": 1}
        }

    # -- retries ---------------------------------------------------------------------------

    async def test_transient_store_failures_are_retried_until_the_rows_are_stored(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        transient_error: BaseException,
    ) -> None:
        on_retry = RetryLog()
        writer = make_writer(observed, retry=_QUICK_RETRY, on_retry=on_retry)
        observed.fail("store", transient_error, times=2)
        with deadline_scope(_PATIENCE_SECONDS):
            outcome = await writer.store("Flaky_ES", EVENT, [entry("e1", n=1), entry("e2", n=2)])
        assert outcome.failed == {}
        assert len(observed.stores()) == 3, observed.stores()
        assert [attempt for _, attempt, _ in on_retry.retries] == [1, 2], on_retry.retries
        assert all(caused_by(exc, transient_error) for _, _, exc in on_retry.retries)
        loaded = await observed.inner.load("Flaky_ES", EVENT, [key("e1"), key("e2")])
        assert fields_of(loaded) == {"e1": {"n": 1}, "e2": {"n": 2}}

    async def test_a_failure_the_provider_calls_permanent_is_not_retried(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        permanent_error: BaseException,
    ) -> None:
        on_retry = RetryLog()
        writer = make_writer(observed, retry=_QUICK_RETRY, on_retry=on_retry)
        observed.fail("store", permanent_error)
        with deadline_scope(_PATIENCE_SECONDS), pytest.raises(BaseException) as raised:
            await writer.store("Broken_VIEW", VIEW, [entry("k", n=1)])
        assert caused_by(raised.value, permanent_error), raised.value
        assert len(observed.stores()) == 1, observed.stores()
        assert on_retry.retries == []
        assert await observed.inner.load("Broken_VIEW", VIEW, [key("k")]) == []

    async def test_retries_end_at_the_calls_deadline(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        transient_error: BaseException,
    ) -> None:
        patient = RetryPolicy(initial_wait=0.01, max_wait=0.05, max_attempts=100_000)
        writer = make_writer(observed, retry=patient)
        observed.fail("store", transient_error, times=None)
        started = time.monotonic()
        with deadline_scope(0.3), pytest.raises(BaseException) as raised:
            await _ended(writer.store("Down_VIEW", VIEW, [entry("k", n=1)]))
        elapsed = time.monotonic() - started
        assert isinstance(raised.value, StoreTimeoutError) or caused_by(
            raised.value, transient_error
        )
        assert len(observed.stores()) > 1, observed.stores()
        assert elapsed < 0.3 + 2.0, f"retried for {elapsed:.3f} s past a 0.3 s deadline"

    async def test_loads_and_deletes_are_retried_too(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        transient_error: BaseException,
    ) -> None:
        on_retry = RetryLog()
        writer = make_writer(observed, retry=_QUICK_RETRY, on_retry=on_retry)
        await observed.inner.store("Reads_VIEW", VIEW, [entry("a", n=1), entry("b", n=2)])
        observed.fail("load", transient_error)
        observed.fail("delete", transient_error)
        with deadline_scope(_PATIENCE_SECONDS):
            loaded = await writer.run(
                "load", lambda: observed.load("Reads_VIEW", VIEW, [key("a"), key("b")])
            )
            assert fields_of(loaded) == {"a": {"n": 1}, "b": {"n": 2}}
            assert await writer.delete("Reads_VIEW", VIEW, [key("a")]) == 1
        assert len(on_retry.retries) == 2, on_retry.retries
        assert [e.key.text for e in await observed.inner.load("Reads_VIEW", VIEW, [key("a")])] == []

    # -- what merging keeps ------------------------------------------------------------------

    @pytest.mark.parametrize(("kind", "kept"), [(EVENT, 1), (VIEW, 3)])
    async def test_merged_calls_keep_the_first_event_and_the_latest_view(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        kind: StoreKind,
        kept: int,
    ) -> None:
        writer = make_writer(observed, max_wait_seconds=0)
        name = f"Merged_{'ES' if kind is EVENT else 'VIEW'}"
        gate, first = await self._queue_behind(writer, observed, name, kind)
        queued = await self._start_in_order(
            *(writer.store(name, kind, [entry("k", n=n)]) for n in (1, 2, 3))
        )
        gate.open()
        await _ended(first, *queued)
        assert all(_unique_identities(call) for call in observed.stores())
        assert fields_of(await observed.inner.load(name, kind, [key("k")])) == {"k": {"n": kept}}

    @pytest.mark.parametrize(("kind", "kept"), [(EVENT, 1), (VIEW, 2)])
    async def test_a_call_may_repeat_a_key(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        kind: StoreKind,
        kept: int,
    ) -> None:
        writer = make_writer(observed)
        name = f"Repeat_{'ES' if kind is EVENT else 'VIEW'}"
        outcome = await writer.store(
            name, kind, [entry("k", n=1), entry("other", n=0), entry("k", n=2)]
        )
        assert outcome.failed == {}
        assert all(_unique_identities(call) for call in observed.stores())
        loaded = await observed.inner.load(name, kind, [key("k"), key("other")])
        assert fields_of(loaded) == {"k": {"n": kept}, "other": {"n": 0}}

    @pytest.mark.parametrize(("kind", "int32_kept"), [(EVENT, "a"), (VIEW, "c")])
    async def test_merged_calls_tell_keys_of_one_text_apart_by_format(
        self,
        observed: ObservedProvider,
        make_writer: _MakeWriter,
        kind: StoreKind,
        int32_kept: str,
    ) -> None:
        writer = make_writer(observed, max_wait_seconds=0)
        name = f"Formats_{'ES' if kind is EVENT else 'VIEW'}"
        gate, first = await self._queue_behind(writer, observed, name, kind)
        queued = await self._start_in_order(
            writer.store(name, kind, [entry("1", "int32", v="a")]),
            writer.store(name, kind, [entry("1", "string", v="b")]),
            writer.store(name, kind, [entry("1", "int32", v="c")]),
        )
        gate.open()
        await _ended(first, *queued)
        assert all(_unique_identities(call) for call in observed.stores())
        loaded = await observed.inner.load(name, kind, [key("1", "int32"), key("1", "string")])
        assert {(e.key.format, json.loads(e.value.document)["v"]) for e in loaded} == {
            ("int32", int32_kept),
            ("string", "b"),
        }

    @pytest.mark.parametrize("kind", [EVENT, VIEW])
    async def test_queued_stores_and_deletes_of_a_map_take_effect_in_arrival_order(
        self, observed: ObservedProvider, make_writer: _MakeWriter, kind: StoreKind
    ) -> None:
        writer = make_writer(observed, max_wait_seconds=0)
        name = f"Ordered_{'ES' if kind is EVENT else 'VIEW'}"
        gate, first = await self._queue_behind(writer, observed, name, kind)
        queued = await self._start_in_order(
            writer.store(name, kind, [entry("k", n=1)]),
            writer.delete(name, kind, [key("k")]),
            writer.store(name, kind, [entry("k", n=2)]),
        )
        gate.open()
        _, _, deleted, _ = await _ended(first, *queued)
        assert deleted == 1
        assert fields_of(await observed.inner.load(name, kind, [key("k")])) == {"k": {"n": 2}}
