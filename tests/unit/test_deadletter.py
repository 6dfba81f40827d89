"""Poison entries: the provider default, and the fallback when a provider keeps no dead letters."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.config import OnPoison
from sidecar.deadletter import PoisonEntries
from sidecar.providers.base import DeadLetter, Provider
from sidecar.providers.memory import MemoryProvider


class NoDeadLetters(MemoryProvider):
    """A provider that does not override the dead-letter methods of the base class."""

    put_dead_letters = Provider.put_dead_letters  # type: ignore[assignment]
    list_dead_letters = Provider.list_dead_letters  # type: ignore[assignment]
    delete_dead_letters = Provider.delete_dead_letters  # type: ignore[assignment]


async def test_dead_letter_methods_default_to_not_implemented_naming_the_class() -> None:
    provider = NoDeadLetters({})
    letter = DeadLetter("A_VIEW", b"k", b"v", "bad", 1)
    with pytest.raises(NotImplementedError, match="NoDeadLetters does not keep dead letters"):
        await provider.put_dead_letters([letter])
    with pytest.raises(NotImplementedError, match="NoDeadLetters"):
        await provider.list_dead_letters()
    with pytest.raises(NotImplementedError, match="NoDeadLetters"):
        await provider.delete_dead_letters([1])


async def test_poison_entries_fail_when_the_provider_keeps_no_dead_letters() -> None:
    poison = PoisonEntries(OnPoison.DEAD_LETTER)
    result = poison.add("A_VIEW", 0, b"k", b"v", "cannot be decoded")
    assert result.status == pb.ENTRY_STATUS_DEAD_LETTERED
    await poison.keep(NoDeadLetters({}))
    assert result.status == pb.ENTRY_STATUS_FAILED
    assert result.code == 3  # INVALID_ARGUMENT
    assert "not dead-lettered" in result.message


async def test_poison_entries_are_kept_logged_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    counted: list[str] = []
    provider = MemoryProvider({})
    poison = PoisonEntries(OnPoison.DEAD_LETTER, counted.append)
    results = [poison.add("A_VIEW", i, b"k%d" % i, b"v", f"bad {i}") for i in range(3)]
    await poison.keep(provider)
    kept: Sequence[DeadLetter] = await provider.list_dead_letters(map_name="A_VIEW")
    assert [d.key for d in kept] == [b"k0", b"k1", b"k2"]
    assert [r.status for r in results] == [pb.ENTRY_STATUS_DEAD_LETTERED] * 3
    assert counted == ["A_VIEW"] * 3
    assert caplog.text.count("dead-lettered map=A_VIEW") == 3


def test_reject_policy_answers_failed_invalid_argument() -> None:
    result = PoisonEntries(OnPoison.REJECT).add("A_VIEW", 0, b"k", b"v", "bad")
    assert (result.status, result.code, result.message) == (pb.ENTRY_STATUS_FAILED, 3, "bad")
