"""``hz-sidecar dlq list|replay|purge``: the dead letters an operator manages.

The sidecar keeps an entry whose bytes it cannot decode as a dead letter
(:mod:`sidecar.deadletter`, on the service side). ``dlq replay`` decodes kept
entries again (after the schema or the limit that was missing has been fixed) and
stores those that now decode, unless that would undo what the map holds now (see
:func:`replay`).
"""

from __future__ import annotations

import enum
import functools
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TextIO

from sidecar.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from sidecar.cli.store import opened_provider
from sidecar.codec import DataCodec, DecodedKey, DecodedValue, SchemaRegistry
from sidecar.codec.schemas import settle_write_orders
from sidecar.config import SidecarConfig
from sidecar.errors import ConfigError, SidecarError
from sidecar.providers.base import DeadLetter, Provider, StoredValue, StoreEntry, StoreKind
from sidecar.routing import Router


def _bytes_repr(data: bytes) -> str:
    return data[:24].hex() + ("..." if len(data) > 24 else "")


class Verdict(enum.StrEnum):
    """What replaying one dead letter did."""

    STORED = "stored"
    #: The map holds the letter's value already: nothing to write.
    ALREADY_STORED = "already stored"
    #: The key holds another value: a view's newer write, or an event map's first write.
    SKIPPED_ROW_DIFFERS = "skipped: newer row"
    #: No row: deleted since, or never stored; only ``--include-missing`` stores it.
    SKIPPED_NO_ROW = "skipped: no row, use --include-missing"
    #: Another letter of the same key is the one to replay.
    SKIPPED_SUPERSEDED = "skipped: superseded"
    UNDECODABLE = "still undecodable"

    @property
    def replayed(self) -> bool:
        """Whether the letter is done with (and removed from the table)."""
        return self in (Verdict.STORED, Verdict.ALREADY_STORED)

    @property
    def label(self) -> str:
        """The verdict in the summary: ``skipped (no row)``."""
        verdict, _, why = self.value.partition(": ")
        return f"{verdict} ({why.partition(',')[0]})" if why else verdict


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What replaying one dead letter did, and why."""

    letter: DeadLetter
    verdict: Verdict
    reason: str = ""

    def describe(self) -> str:
        """One line for ``dlq replay``."""
        text = f"id={self.letter.id} map={self.letter.map_name!r}: {self.verdict.value}"
        return f"{text} ({self.reason})" if self.reason else text


@dataclass(frozen=True, slots=True)
class _Decoded:
    """A letter whose key decodes now, its place in the list, and its value if that does."""

    index: int
    letter: DeadLetter
    key: DecodedKey
    value: DecodedValue | None  # None: the value still cannot be decoded
    error: str = ""

    @property
    def identity(self) -> tuple[str, str, str]:
        return (self.letter.map_name, self.key.stored.text, self.key.stored.format)

    @property
    def order(self) -> tuple[int, int]:
        return (self.letter.dead_lettered_at_millis, self.index)


async def replay(
    provider: Provider,
    codec: DataCodec,
    router: Router,
    letters: Sequence[DeadLetter],
    *,
    include_missing: bool = False,
) -> list[ReplayOutcome]:
    """Decode each letter again, and store it unless the map holds something it must keep.

    A letter is an entry the member wrote at the time it was dead-lettered; since
    then its key may have been written again, or deleted. So, for each key:

    * Of several letters of one key, only one is replayed: the latest for a view
      map (the latest write wins), the earliest for an event map (the first write
      is kept); the others are superseded.
    * What the key holds now is loaded. A row whose value differs from the letter's
      is kept (SKIPPED_ROW_DIFFERS): for a view it is taken as a newer write, for an
      event map it is the first write, which the map keeps anyway. The row's value
      is compared as the member's bytes (what a load would give back), because the
      providers do not offer the row's write time: a view row older than the letter
      (every write of the key since was dead-lettered too) is therefore kept as
      well; the member still holds the letter's value and its next write of the key
      stores it.
    * A row with the letter's value: nothing to write (ALREADY_STORED).
    * No row: the key was deleted since, or was never stored, which the store
      cannot tell apart; storing it could bring a deleted key back, so it is only
      stored with ``include_missing`` (SKIPPED_NO_ROW otherwise).

    Replayed letters (stored, or already stored) are removed; the others stay in the
    table for ``dlq list`` / ``dlq purge``. Each letter is stored on its own, so one
    that fails does not hold back the others. The check and the write are two steps:
    a sidecar that writes the key between them is overwritten (run replay while
    the map is quiet, or with the members stopped, to rule that out). A crash
    between the write and the removal leaves the letter, which a second replay
    finds already stored.
    """
    outcomes: list[ReplayOutcome | None] = [None] * len(letters)
    candidates: dict[tuple[str, str, str], _Decoded] = {}
    superseded: list[_Decoded] = []
    for index, letter in enumerate(letters):
        try:
            route = router.route(letter.map_name)
            key = await settle_write_orders(
                functools.partial(
                    codec.decode_key_fields, letter.key, route.java_key_text, route.kind
                ),
                codec.registry,
                provider,
            )
        except SidecarError as exc:
            outcomes[index] = ReplayOutcome(letter, Verdict.UNDECODABLE, str(exc))
            continue
        try:
            value = await settle_write_orders(
                functools.partial(codec.decode_value, letter.value), codec.registry, provider
            )
            decoded = _Decoded(index, letter, key, value)
        except SidecarError as exc:
            decoded = _Decoded(index, letter, key, None, str(exc))
        other = candidates.setdefault(decoded.identity, decoded)
        if other is decoded:
            continue
        # A view replays its latest letter of a key, an event map its earliest.
        if (decoded.order > other.order) == (route.kind is StoreKind.VIEW):
            candidates[decoded.identity] = decoded
            superseded.append(other)
        else:
            superseded.append(decoded)
    for decoded in superseded:
        winner = candidates[decoded.identity]
        kind = router.route(decoded.letter.map_name).kind
        why = "the latest" if kind is StoreKind.VIEW else "the first (an event map keeps it)"
        reason = f"letter {winner.letter.id} of the same key is {why}; letter kept"
        outcomes[decoded.index] = ReplayOutcome(decoded.letter, Verdict.SKIPPED_SUPERSEDED, reason)
    for decoded in candidates.values():
        outcome = await _replay_one(provider, codec, router, decoded, include_missing)
        outcomes[decoded.index] = outcome
    return [outcome for outcome in outcomes if outcome is not None]


async def _replay_one(
    provider: Provider,
    codec: DataCodec,
    router: Router,
    decoded: _Decoded,
    include_missing: bool,
) -> ReplayOutcome:
    letter, key = decoded.letter, decoded.key
    assert letter.id is not None
    if decoded.value is None:
        return ReplayOutcome(letter, Verdict.UNDECODABLE, decoded.error)
    value = decoded.value
    route = router.route(letter.map_name)
    found = await provider.load(letter.map_name, route.kind, [key.stored])
    rows = [r for r in found if (r.key.text, r.key.format) == (key.stored.text, key.stored.format)]
    if rows:
        if await _same_value(codec, provider, rows[0], value):
            await provider.delete_dead_letters([letter.id])
            return ReplayOutcome(letter, Verdict.ALREADY_STORED)
        reason = (
            "the key holds another value, written since; letter kept"
            if route.kind is StoreKind.VIEW
            else "the key holds another event, and an event map keeps the first; letter kept"
        )
        return ReplayOutcome(letter, Verdict.SKIPPED_ROW_DIFFERS, reason)
    if not include_missing:
        return ReplayOutcome(
            letter, Verdict.SKIPPED_NO_ROW, "deleted since, or never stored; letter kept"
        )
    await provider.store(letter.map_name, route.kind, [route.store_entry(key, value)])
    await provider.delete_dead_letters([letter.id])
    return ReplayOutcome(letter, Verdict.STORED)


async def _same_value(
    codec: DataCodec, provider: Provider, row: StoreEntry, value: DecodedValue
) -> bool:
    """Whether a stored row holds ``value``: compared as the bytes a load would give back
    (a provider may hold the same document differently, PostgreSQL's JSONB reorders keys)."""
    if row.value == value.stored:
        return True

    async def encoded(stored: StoredValue) -> bytes:
        step = functools.partial(codec.encode_value, stored)
        return (await settle_write_orders(step, codec.registry, provider)).data

    try:
        return await encoded(row.value) == await encoded(value.stored)
    except SidecarError:
        return False  # a row that cannot be read is not the letter's value


def summary(outcomes: Sequence[ReplayOutcome]) -> str:
    """The last line of ``dlq replay``: how many were replayed, and what became of each."""
    counts = Counter(outcome.verdict for outcome in outcomes)
    replayed = sum(n for verdict, n in counts.items() if verdict.replayed)
    parts = [f"{counts[verdict]} {verdict.label}" for verdict in Verdict if counts[verdict]]
    text = f"replayed {replayed} of {len(outcomes)} dead letter(s)"
    if parts:
        text += ": " + ", ".join(parts)
    if replayed < len(outcomes):
        text += "; the others stay listed (hz-sidecar dlq list, dlq purge --id N)"
    return text


# -- the command ---------------------------------------------------------------------


def describe(letter: DeadLetter) -> str:
    """One line for ``dlq list``: id, map, time, key, value size, error."""
    at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(letter.dead_lettered_at_millis / 1000))
    return (
        f"id={letter.id} map={letter.map_name!r} at={at}Z key={_bytes_repr(letter.key)} "
        f"value_bytes={len(letter.value)} error={letter.error!r}"
    )


async def dlq_command(
    config: SidecarConfig,
    action: str,
    *,
    map_name: str | None = None,
    letter_id: int | None = None,
    purge_all: bool = False,
    include_missing: bool = False,
    out: TextIO | None = None,
) -> int:
    """``hz-sidecar dlq list|replay|purge``: EXIT_OK, or EXIT_FAILURE when some letter was
    not replayed.

    ``include_missing``: replay also stores letters whose key has no row (see :func:`replay`).

    Raises:
        ConfigError: ``purge`` without ``--map``, ``--id`` or ``--all``.
    """
    if action == "purge" and map_name is None and letter_id is None and not purge_all:
        raise ConfigError("dlq purge: name the letters with --map and/or --id, or pass --all")
    async with opened_provider(config) as provider:
        letters = await provider.list_dead_letters(map_name=map_name, letter_id=letter_id)
        if action == "list":
            for letter in letters:
                print(describe(letter), file=out)
            print(f"{len(letters)} dead letter(s)", file=out)
            return EXIT_OK
        if action == "purge":
            deleted = await provider.delete_dead_letters(
                [d.id for d in letters if d.id is not None]
            )
            print(f"purged {deleted} dead letter(s)", file=out)
            return EXIT_OK
        registry = SchemaRegistry()
        for record in await provider.get_schemas():
            registry.add(record)
        codec = DataCodec(registry, max_depth=config.limits.max_nesting_depth)
        router = Router(config.maps, config.persistence)
        outcomes = await replay(provider, codec, router, letters, include_missing=include_missing)
    for outcome in outcomes:
        print(outcome.describe(), file=out)
    print(summary(outcomes), file=out)
    return EXIT_OK if all(o.verdict.replayed for o in outcomes) else EXIT_FAILURE
