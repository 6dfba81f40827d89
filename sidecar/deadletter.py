"""Poison entries: the dead-letter store, and replaying what it keeps.

An entry of a valid Store call whose key or value bytes cannot be decoded
(corrupt, inconsistent with its schema, nested deeper than
``limits.max-nesting-depth``) must not stall Hazelcast's write-behind queue:
a MapStore that throws for it is called again with it forever
(https://github.com/hazelcast/hazelcast/issues/26303). With ``on-poison:
dead-letter`` (the default) the sidecar keeps the raw bytes and the error in
the provider's dead-letter table and answers ENTRY_STATUS_DEAD_LETTERED, which
the shim treats as finished; ``on-poison: reject`` answers ENTRY_STATUS_FAILED
with INVALID_ARGUMENT instead (not retried by the shim either, but the member
logs it and the entry stays in the map only).

``hz-sidecar dlq replay`` decodes kept entries again (after the schema or the
limit that was missing has been fixed) and stores those that now decode.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

import grpc

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.config import OnPoison, SidecarConfig
from sidecar.errors import ConfigError, SidecarError
from sidecar.providers import create_provider
from sidecar.providers.base import DeadLetter, Provider, StoreEntry, StoreKind
from sidecar.routing import Router

log = logging.getLogger(__name__)

#: Name of the counter of dead-lettered entries (attributes: mapName), for telemetry.
DEAD_LETTERED_METRIC = "persistence.store.dead_lettered"

#: Called once per kept dead letter with its map name: the metric hook.
DeadLetterCounter = Callable[[str], None]


def count_nothing(map_name: str) -> None:
    """Default metric hook: nothing to count into."""


def _bytes_repr(data: bytes) -> str:
    return data[:24].hex() + ("..." if len(data) > 24 else "")


class PoisonEntries:
    """The poison entries of one Store call: their results, then their fate.

    :meth:`add` answers the entry's :class:`EntryResult` at once (it is placed in
    the response in request order); :meth:`keep` then stores the dead letters.
    If the provider keeps no dead letters, those results become FAILED.
    """

    def __init__(self, policy: OnPoison, counter: DeadLetterCounter = count_nothing) -> None:
        self._policy = policy
        self._counter = counter
        self._letters: list[tuple[DeadLetter, int, pb.EntryResult]] = []

    def add(
        self, map_name: str, index: int, key: bytes, value: bytes, error: str
    ) -> pb.EntryResult:
        if self._policy is OnPoison.REJECT:
            log.warning("Store rejected one entry: %s", error)
            return pb.EntryResult(
                status=pb.ENTRY_STATUS_FAILED,
                code=grpc.StatusCode.INVALID_ARGUMENT.value[0],
                message=error,
            )
        letter = DeadLetter(
            map_name=map_name,
            key=bytes(key),
            value=bytes(value),
            error=error,
            dead_lettered_at_millis=time.time_ns() // 1_000_000,
        )
        result = pb.EntryResult(status=pb.ENTRY_STATUS_DEAD_LETTERED, message=error)
        self._letters.append((letter, index, result))
        return result

    async def keep(self, provider: Provider) -> None:
        """Store the dead letters durably (before the call answers), log and count each."""
        if not self._letters:
            return
        try:
            await provider.put_dead_letters([letter for letter, _, _ in self._letters])
        except NotImplementedError as exc:
            log.error("cannot dead-letter %d entries: %s", len(self._letters), exc)
            for _, _, result in self._letters:
                result.status = pb.ENTRY_STATUS_FAILED
                result.code = grpc.StatusCode.INVALID_ARGUMENT.value[0]
                result.message = f"{result.message} (not dead-lettered: {exc})"
            return
        for letter, index, _ in self._letters:
            log.warning(
                "dead-lettered map=%s entry=#%d key=%s value_bytes=%d: %s",
                letter.map_name,
                index,
                _bytes_repr(letter.key),
                len(letter.value),
                letter.error,
            )
            self._counter(letter.map_name)


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    """What replaying one dead letter did: ``stored`` and removed, or why not."""

    letter: DeadLetter
    stored: bool
    reason: str = ""


async def replay(
    provider: Provider, codec: DataCodec, router: Router, letters: Sequence[DeadLetter]
) -> list[ReplayOutcome]:
    """Decode each letter again; store and remove those that decode now.

    Each letter is stored on its own, so one that still fails does not hold
    back the others. The store and the removal are two steps: a crash between
    them leaves the letter to be replayed again, which stores the same entry
    again (idempotent for both store kinds).
    """
    outcomes: list[ReplayOutcome] = []
    for letter in letters:
        assert letter.id is not None
        try:
            route = router.route(letter.map_name)
            key = codec.decode_key_fields(letter.key, route.java_key_text)
            decoded = codec.decode_value(letter.value)
        except SidecarError as exc:
            outcomes.append(ReplayOutcome(letter, False, str(exc)))
            continue
        event = None
        if route.kind is StoreKind.EVENT:
            event = route.event_columns(key.stored.text, decoded.fields, key.fields)
        entry = StoreEntry(key=key.stored, value=decoded.stored, event=event)
        await provider.store(letter.map_name, route.kind, [entry])
        await provider.delete_dead_letters([letter.id])
        outcomes.append(ReplayOutcome(letter, True))
    return outcomes


# -- hz-sidecar dlq ------------------------------------------------------------------


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
    out: TextIO = sys.stdout,
) -> int:
    """``hz-sidecar dlq list|replay|purge``: exit code 0, or 1 when some letter was not replayed.

    Raises:
        ConfigError: ``purge`` without ``--map``, ``--id`` or ``--all``.
    """
    if action == "purge" and map_name is None and letter_id is None and not purge_all:
        raise ConfigError("dlq purge: name the letters with --map and/or --id, or pass --all")
    provider = create_provider(config.provider.name, config.provider.settings)
    await provider.open()
    try:
        letters = await provider.list_dead_letters(map_name=map_name, letter_id=letter_id)
        if action == "list":
            for letter in letters:
                print(describe(letter), file=out)
            print(f"{len(letters)} dead letter(s)", file=out)
            return 0
        if action == "purge":
            deleted = await provider.delete_dead_letters(
                [d.id for d in letters if d.id is not None]
            )
            print(f"purged {deleted} dead letter(s)", file=out)
            return 0
        registry = SchemaRegistry()
        for record in await provider.get_schemas():
            registry.add(record)
        codec = DataCodec(registry, max_depth=config.limits.max_nesting_depth)
        outcomes = await replay(provider, codec, Router(config.maps, config.persistence), letters)
        for outcome in outcomes:
            verdict = "stored" if outcome.stored else f"still undecodable: {outcome.reason}"
            print(f"id={outcome.letter.id} map={outcome.letter.map_name!r}: {verdict}", file=out)
        stored = sum(o.stored for o in outcomes)
        print(f"replayed {stored} of {len(outcomes)} dead letter(s)", file=out)
        return 0 if stored == len(outcomes) else 1
    finally:
        await provider.close()
