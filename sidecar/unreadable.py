"""Stored rows that cannot be turned back into the member's bytes: skipped, never fatal.

A row may be unreadable because something outside the sidecar wrote it (a
document the reference framework could not have rebuilt either, broken JSON,
a key format this version does not know) or because its schema is lost. One
such row must not take down the rest of its map: Load, loadAll and
LoadAllKeys skip it, and :class:`UnreadableRows` logs it once per process,
counts it (``hz_sidecar.load.unreadable``), and records it in the provider so
that ``hz-sidecar unreadable list`` shows it to an operator.
"""

from __future__ import annotations

import logging
import time

from sidecar.providers.base import Provider, StoredKey, UnreadableRow

log = logging.getLogger(__name__)

#: Distinct (map, key) pairs remembered as already logged and recorded; past it, a
#: row may be logged again (the provider keeps its first record either way).
_REMEMBERED = 100_000


class UnreadableRows:
    """Reports the unreadable rows that loads skip.

    Args:
        provider: where the rows are recorded (providers without the optional
            capability only log them).

    The caller counts every skipped row (its call's recorder); this logs and
    records each row once.
    """

    def __init__(self, provider: Provider) -> None:
        self._provider = provider
        self._seen: set[tuple[str, str, str]] = set()

    async def report(self, map_name: str, key: StoredKey, error: BaseException) -> None:
        """The first time a skipped row is met, log and record it. Never raises."""
        seen = (map_name, key.text, key.format)
        if seen in self._seen:
            return
        if len(self._seen) >= _REMEMBERED:
            self._seen.clear()
        self._seen.add(seen)
        log.error(
            "map '%s': stored row with key %r (key format %r) cannot be read and is skipped: %s",
            map_name,
            key.text,
            key.format or None,
            error,
        )
        row = UnreadableRow(
            map_name=map_name,
            key_text=key.text,
            key_format=key.format,
            error=f"{type(error).__name__}: {error}",
            seen_at_millis=time.time_ns() // 1_000_000,
        )
        try:
            await self._provider.put_unreadable_rows([row])
        except NotImplementedError:
            return
        except Exception:  # recording is best effort: the load itself goes on
            log.warning(
                "map '%s': the unreadable row %r could not be recorded",
                map_name,
                key.text,
                exc_info=True,
            )
