"""Poison entries: what the service does with an entry it cannot decode.

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

Only the service imports this module; the metric hook is a value it passes in.
Listing, replaying and purging the kept entries is the operator's command,
``hz-sidecar dlq`` (:mod:`sidecar.cli.dlq`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import grpc

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.config import OnPoison
from sidecar.providers.base import DeadLetter, Provider

log = logging.getLogger(__name__)

#: Called once per kept dead letter with its map name: the metric hook (the service
#: passes its call's recorder, which counts ``persistence.store.dead_lettered``).
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

    def __bool__(self) -> bool:
        """Whether the call has dead letters to keep."""
        return bool(self._letters)

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
