"""The provider interface: what a backing store must do for the sidecar.

A provider sees decoded, store-ready entries (readable JSON plus what an exact
round trip needs), never Hazelcast bytes: the codec sits in front of it. Every
method is a coroutine and must not block the event loop. A provider is opened
once (``open``) on the loop that will use it and closed once (``close``); both
are idempotent.

Semantics per store kind (the reference's persistence guide):

* ``StoreKind.EVENT`` (``*_ES`` maps): append-only. Storing an entry whose key
  already exists keeps the first one and is not an error, so a retried batch
  neither duplicates nor fails. ``load_all_keys`` is only called when the map
  is configured EAGER.
* ``StoreKind.VIEW`` (``*_VIEW`` maps): upsert, the latest write wins.

Third-party providers subclass :class:`Provider` and register the class in the
``hz_sidecar.providers`` entry point group; the conformance suite,
:mod:`sidecar.conformance`, states the behaviour they must show. A provider writes
no retry, batching or deadline code: the sidecar's writer (:mod:`sidecar.writer`)
gives every provider group commit, chunking, deadlines and retries, asking the
provider only which of its errors are transient (:meth:`Provider.is_transient`).
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, ClassVar, Protocol, Self, TypeVar

T = TypeVar("T")
E = TypeVar("E", bound=BaseException)


class StoreKind(enum.StrEnum):
    """How a map's entries are written: the reference's two store types."""

    EVENT = "event"
    VIEW = "view"


@dataclass(frozen=True, slots=True)
class StoredKey:
    """A map key as stored.

    ``text`` is the readable canonical form (the ``map_key`` / ``view_key``
    column); ``format`` tells the codec how to turn it back into the member's
    ``Data`` bytes. Text and format together identify a key within a map:
    Integer 1 (``int32``) and String "1" are two keys. ``data`` holds those bytes for the
    formats whose text alone cannot rebuild them (a Java-serialized key read
    through a key template, say); providers keep it in their ``key_data``
    column and give it back from ``load_all_keys``. The format ``""`` is the
    reference framework's own key form (a String key of a view map, a
    ``PartitionedSequenceKey<String>`` of an event map): rows the framework
    wrote and the sidecar's rows of those keys are the same rows.
    """

    text: str
    format: str
    data: bytes | None = None


@dataclass(frozen=True, slots=True)
class StoredValue:
    """A map value as stored.

    ``document`` is JSON text a person can read (``{"amount": 12.5, ...}``);
    together with ``format`` and, for Compact values, the schema named by
    ``schema_id``, it converts back to the exact bytes the member sent.
    """

    format: str
    document: str
    type_name: str | None = None
    schema_id: int | None = None


@dataclass(frozen=True, slots=True)
class EventColumns:
    """The reference's event columns, extracted from an event record by the router."""

    aggregate_id: str | None = None
    sequence: int | None = None
    event_type: str | None = None
    timestamp_millis: int | None = None
    correlation_id: str | None = None


@dataclass(frozen=True, slots=True)
class StoreEntry:
    """One entry of a store call."""

    key: StoredKey
    value: StoredValue
    event: EventColumns | None = None


@dataclass(frozen=True, slots=True)
class SchemaRecord:
    """A Compact schema as persisted: its id, type name and (name, FieldKind id) pairs.

    ``write_order`` is the order in which the schema's Java serializer writes its
    variable-size fields, kept with the schema so that documents need not carry
    it (see :mod:`sidecar.codec.jsonmap`):

    * None: a legacy schema (persisted before write orders were kept, or by a
      provider without :attr:`Provider.supports_write_order`). Nothing is claimed;
      a document carries ``"@order"`` whenever its record is not in schema order.
    * ``()``: pending, no order claimed yet; the first record that needs one
      claims it (:meth:`Provider.claim_write_order`).
    * the names of all the schema's variable-size fields, in the claimed order.
    """

    schema_id: int
    type_name: str
    fields: tuple[tuple[str, int], ...]
    write_order: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An entry of a Store call whose bytes could not be decoded, kept as the member sent it.

    ``id`` is assigned by the provider (None before it is stored);
    ``dead_lettered_at_millis`` is the Unix time in milliseconds.
    """

    map_name: str
    key: bytes
    value: bytes
    error: str
    dead_lettered_at_millis: int
    id: int | None = None


@dataclass(frozen=True, slots=True)
class UnreadableRow:
    """A stored row that cannot be turned back into the member's bytes.

    Loads skip such a row (every other entry of the map still loads); the
    provider keeps one record of it per map and key so that an operator can
    list it (``hz-sidecar unreadable list``). ``seen_at_millis`` is the Unix
    time in milliseconds when it was first met.
    """

    map_name: str
    key_text: str
    key_format: str
    error: str
    seen_at_millis: int


def raised_by(exc: BaseException, kind: type[E]) -> E | None:
    """``exc`` itself or the first of its causes (``raise ... from``) that is a ``kind``.

    What a provider's :meth:`Provider.is_transient` looks for: the driver's error,
    raised as it is or as the cause of the provider's own
    :class:`~sidecar.errors.SidecarError`.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, kind):
            return seen
        seen = seen.__cause__
    return None


class RetryHook(Protocol):
    """The sidecar's retry, as a provider receives it: run ``fn`` for ``operation``."""

    def __call__(self, operation: str, fn: Callable[[], Awaitable[T]]) -> Awaitable[T]: ...


async def _run_once(operation: str, fn: Callable[[], Awaitable[T]]) -> T:
    del operation
    return await fn()


class Provider(abc.ABC):
    """Base class of every provider.

    Args:
        settings: the provider's block of the configuration, as a mapping.
            A provider validates it in ``__init__`` and raises
            :class:`sidecar.errors.ConfigError` naming the offending key.
    """

    #: The name the configuration uses to select this provider.
    name: ClassVar[str]
    #: True when every sidecar of a cluster sees the same data (PostgreSQL);
    #: False for per-process stores (SQLite, memory), which the configuration
    #: check refuses for a cluster of several members.
    shared: ClassVar[bool] = False
    #: True when :meth:`put_schemas` keeps :attr:`SchemaRecord.write_order` and
    #: :meth:`claim_write_order` is implemented. Without it every schema is legacy
    #: (its documents carry ``"@order"`` when not in schema order).
    supports_write_order: ClassVar[bool] = False

    #: How long a call without a deadline retries transient failures (None: the
    #: sidecar's default). PostgreSQL takes it from its ``retry-seconds`` setting.
    retry_budget_seconds: float | None = None

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.settings = dict(settings)
        self.retry: RetryHook = _run_once

    async def open(self) -> None:  # noqa: B027 - optional hook, idempotent by contract
        """Acquire resources (pools, files, migrations). Idempotent."""

    async def close(self) -> None:  # noqa: B027 - optional hook, idempotent by contract
        """Release every resource. Idempotent; never hangs."""

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    # -- what the sidecar's writer relies on ------------------------------------------

    def is_transient(self, exc: BaseException) -> bool:
        """Whether ``exc`` is a failure that a later attempt may not meet.

        The sidecar's writer retries every store, delete and load that fails with
        such an error, within the call's deadline; a provider writes no retry loop
        of its own. The default: nothing is transient. ``exc`` may be one of the
        provider's own :class:`sidecar.errors.SidecarError` wrapping the driver's
        error as its ``__cause__``.
        """
        del exc
        return False

    def use_retry(self, hook: RetryHook) -> None:
        """Give the provider the sidecar's retry (a value, bound to :meth:`is_transient`).

        The writer retries whole calls already; a provider uses ``self.retry`` only
        for work the writer cannot repeat as a whole, such as one page of
        :meth:`load_all_keys` or its migrations at open. Until then it runs once.
        """
        self.retry = hook

    def pool_stats(self) -> Mapping[str, int] | None:
        """Gauges of the provider's connection pool (``pool_size``, ``pool_available``,
        ``requests_waiting``, as psycopg_pool names them), or None without a pool."""
        return None

    async def migrate(self) -> list[str]:
        """Apply pending schema migrations; return the versions applied now.

        Providers without migrations return an empty list.
        """
        return []

    async def pending_migrations(self) -> list[str]:
        """The versions :meth:`migrate` would apply now, read without changing anything.

        Works whether or not the provider is open, and never opens it for serving
        (``open`` may migrate): ``hz-sidecar check`` reaches the store through it.

        Raises:
            NotImplementedError: the provider cannot tell without opening (the default).
            StoreUnavailableError: the store cannot be reached.
        """
        raise NotImplementedError(f"{type(self).__name__} does not list pending migrations")

    @abc.abstractmethod
    async def is_available(self) -> bool:
        """Whether the store answers right now (drives the health service)."""

    @abc.abstractmethod
    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        """Write ``entries`` of one map in one transaction: all of them or none.

        Args:
            map_name: the IMap name.
            kind: EVENT (insert, first write kept) or VIEW (upsert, latest wins).
            entries: keys are unique within one call.

        Raises:
            StoreUnavailableError: the store cannot be reached; nothing written.
        """

    @abc.abstractmethod
    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        """Return the stored entries among ``keys``; missing keys are absent."""

    @abc.abstractmethod
    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        """Delete ``keys`` in one transaction; return how many were present."""

    @abc.abstractmethod
    def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        """Yield every stored key of the map in batches of at most ``batch_size``.

        An async generator: the caller closes it (``aclose()``) when it stops early
        (the member cancelled the stream), so it must hold no connection or
        transaction across a ``yield`` that a close could not release.
        """

    @abc.abstractmethod
    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        """Persist schemas (idempotent: a known id is kept as it is).

        A provider with :attr:`supports_write_order` keeps each record's
        ``write_order`` as given (None, ``()`` or an order); others ignore it.
        """

    @abc.abstractmethod
    async def get_schemas(self) -> list[SchemaRecord]:
        """Return every persisted schema (with its ``write_order``, or None without
        :attr:`supports_write_order`)."""

    async def claim_write_order(
        self, schema_id: int, order: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        """Set a schema's write order if it is still pending; return the order it now has.

        The first claim wins, atomically, also among sidecars sharing the store:
        a later claim changes nothing and returns the order claimed first. A
        legacy schema (write order None) stays legacy, and None is returned.

        Args:
            schema_id: a persisted schema.
            order: the names of all its variable-size fields, in write order
                (non-empty).

        Raises:
            NotImplementedError: the provider keeps no write orders
                (:attr:`supports_write_order` is False).
            UnknownSchemaError: no schema with this id is persisted.
        """
        raise NotImplementedError(f"{type(self).__name__} does not keep schema write orders")

    # -- dead letters (optional: ``on-poison: dead-letter`` needs them) -------------

    async def put_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        """Durably keep ``letters`` (their ``id`` is ignored) in one transaction.

        Raises:
            NotImplementedError: the provider keeps no dead letters.
            StoreUnavailableError: the store cannot be reached; nothing kept.
        """
        raise NotImplementedError(f"{type(self).__name__} does not keep dead letters")

    async def list_dead_letters(
        self, *, map_name: str | None = None, letter_id: int | None = None
    ) -> list[DeadLetter]:
        """The kept dead letters, oldest first, optionally of one map and/or one id."""
        raise NotImplementedError(f"{type(self).__name__} does not keep dead letters")

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        """Delete the dead letters with these ids; return how many existed."""
        raise NotImplementedError(f"{type(self).__name__} does not keep dead letters")

    # -- rows of the reference framework (optional: ``hz-sidecar adopt`` needs them) ---

    async def rows_without_format(
        self,
        kind: StoreKind,
        *,
        after: tuple[str, str, str] | None,
        limit: int,
        map_name: str | None = None,
    ) -> list[tuple[str, StoreEntry]]:
        """Up to ``limit`` rows that have no value format, as (map name, entry).

        Ordered by map name, key text and key format, starting after ``after``
        (that triple from the previous page), so a caller pages through them
        without holding anything between pages. Such rows were written by the
        reference framework itself; their value format is ``""``.

        Raises:
            NotImplementedError: the provider cannot hold such rows.
        """
        raise NotImplementedError(f"{type(self).__name__} holds no rows of the reference framework")

    async def rewrite_rows(self, kind: StoreKind, rows: Sequence[tuple[str, StoreEntry]]) -> int:
        """Give rows without value format their sidecar form, in one transaction.

        Only a row that still has no value format is rewritten (one that a
        sidecar wrote since is newer and kept); its value columns (format,
        document, type name, schema id) are set from the entry, its key and
        event columns are left as they are. Returns how many rows were rewritten.
        """
        raise NotImplementedError(f"{type(self).__name__} holds no rows of the reference framework")

    # -- unreadable rows (optional: without them, such rows are only logged) ---------

    async def put_unreadable_rows(self, rows: Sequence[UnreadableRow]) -> None:
        """Record ``rows``; a row already recorded for its map and key is kept as it is.

        Raises:
            NotImplementedError: the provider keeps no such records.
        """
        raise NotImplementedError(f"{type(self).__name__} does not record unreadable rows")

    async def list_unreadable_rows(self, *, map_name: str | None = None) -> list[UnreadableRow]:
        """The recorded unreadable rows, by map and key, optionally of one map."""
        raise NotImplementedError(f"{type(self).__name__} does not record unreadable rows")

    async def delete_unreadable_rows(self, *, map_name: str | None = None) -> int:
        """Forget the recorded unreadable rows (of one map, or all); return how many."""
        raise NotImplementedError(f"{type(self).__name__} does not record unreadable rows")
