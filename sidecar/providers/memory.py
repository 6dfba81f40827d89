"""In-memory provider, for tests and trials: nothing survives the process.

It implements the exact semantics of the durable providers (first write kept
for events, latest wins for views), so the conformance suite holds for it too.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from sidecar.errors import ConfigError, UnknownSchemaError
from sidecar.providers.base import (
    DeadLetter,
    Provider,
    SchemaRecord,
    StoredKey,
    StoreEntry,
    StoreKind,
    UnreadableRow,
)


class MemoryProvider(Provider):
    """Dictionaries per (store kind, map); no settings."""

    name = "memory"
    supports_write_order = True

    def __init__(self, settings: Mapping[str, Any]) -> None:
        super().__init__(settings)
        if self.settings:
            raise ConfigError(
                f"provider.settings: the memory provider takes no settings, got "
                f"{', '.join(sorted(self.settings))}"
            )
        # Per map, entries by key identity: (text, format).
        self._maps: dict[tuple[StoreKind, str], dict[tuple[str, str], StoreEntry]] = {}
        self._schemas: dict[int, SchemaRecord] = {}
        self._dead_letters: dict[int, DeadLetter] = {}
        self._next_dead_letter = 1
        self._unreadable: dict[tuple[str, str, str], UnreadableRow] = {}

    async def is_available(self) -> bool:
        return True

    def _map(self, kind: StoreKind, map_name: str) -> dict[tuple[str, str], StoreEntry]:
        return self._maps.setdefault((kind, map_name), {})

    async def store(self, map_name: str, kind: StoreKind, entries: Sequence[StoreEntry]) -> None:
        table = self._map(kind, map_name)
        for entry in entries:
            identity = (entry.key.text, entry.key.format)
            if kind is StoreKind.EVENT:
                table.setdefault(identity, entry)
            else:
                table[identity] = entry

    async def load(
        self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]
    ) -> list[StoreEntry]:
        table = self._map(kind, map_name)
        found = (table.get((key.text, key.format)) for key in keys)
        return [entry for entry in found if entry is not None]

    async def delete(self, map_name: str, kind: StoreKind, keys: Sequence[StoredKey]) -> int:
        table = self._map(kind, map_name)
        return sum(
            table.pop(identity, None) is not None for identity in {(k.text, k.format) for k in keys}
        )

    async def load_all_keys(
        self, map_name: str, kind: StoreKind, batch_size: int
    ) -> AsyncGenerator[list[StoredKey], None]:
        keys = [entry.key for entry in self._map(kind, map_name).values()]
        for start in range(0, len(keys), batch_size):
            yield keys[start : start + batch_size]

    async def put_schemas(self, schemas: Sequence[SchemaRecord]) -> None:
        for schema in schemas:
            self._schemas.setdefault(schema.schema_id, schema)

    async def get_schemas(self) -> list[SchemaRecord]:
        return list(self._schemas.values())

    async def claim_write_order(
        self, schema_id: int, order: tuple[str, ...]
    ) -> tuple[str, ...] | None:
        if not order:
            raise ValueError("a claimed write order names the schema's variable-size fields")
        schema = self._schemas.get(schema_id)
        if schema is None:
            raise UnknownSchemaError(schema_id)
        if schema.write_order == ():
            schema = self._schemas[schema_id] = dataclasses.replace(schema, write_order=order)
        return schema.write_order

    async def put_dead_letters(self, letters: Sequence[DeadLetter]) -> None:
        for letter in letters:
            letter_id = self._next_dead_letter
            self._next_dead_letter += 1
            self._dead_letters[letter_id] = dataclasses.replace(letter, id=letter_id)

    async def list_dead_letters(
        self, *, map_name: str | None = None, letter_id: int | None = None
    ) -> list[DeadLetter]:
        return [
            letter
            for letter in self._dead_letters.values()
            if (map_name is None or letter.map_name == map_name)
            and (letter_id is None or letter.id == letter_id)
        ]

    async def delete_dead_letters(self, ids: Sequence[int]) -> int:
        return sum(self._dead_letters.pop(i, None) is not None for i in set(ids))

    async def put_unreadable_rows(self, rows: Sequence[UnreadableRow]) -> None:
        for row in rows:
            self._unreadable.setdefault((row.map_name, row.key_text, row.key_format), row)

    async def list_unreadable_rows(self, *, map_name: str | None = None) -> list[UnreadableRow]:
        return [
            row
            for _, row in sorted(self._unreadable.items())
            if map_name is None or row.map_name == map_name
        ]

    async def delete_unreadable_rows(self, *, map_name: str | None = None) -> int:
        doomed = [k for k in self._unreadable if map_name is None or k[0] == map_name]
        for k in doomed:
            del self._unreadable[k]
        return len(doomed)
