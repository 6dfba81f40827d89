"""Rewriting the reference framework's rows into the sidecar's form (``hz-sidecar adopt``).

The sidecar reads rows that the reference framework's own MapStores wrote as
they are (:meth:`sidecar.codec.DataCodec.resolve_key`,
:meth:`~sidecar.codec.DataCodec.rebuild_framework_value`), so adopting it needs
no migration. Adopting is for operators who want to finish one: each
``domain_events`` / ``domain_views`` row without value format gets the value
columns the sidecar writes (value format, type name, schema id), and its
``_schemaType`` / ``_fieldKinds`` / ``_fields`` document becomes the sidecar's
plain document of the same record. Keys and event columns are kept as they are:
the framework's key form is the sidecar's own for those keys (format ``""``).

It is safe while members and sidecars are up, and resumable:

* rows are read in pages by (map, key) and each page is rewritten in one
  transaction that skips a row a sidecar has written since (its value format
  is no longer NULL: that write is newer and is kept);
* the schemas the rewritten rows use are made durable before the rows;
* a row already rewritten is no longer selected, so a second run, or a run
  after an interruption, only does what is left;
* a row that cannot be read is left as it is, counted, and recorded like a
  load would (``hz-sidecar unreadable list``).

``dry_run`` reads and converts every row and reports the counts without
writing anything. The command itself, which opens the configured provider, is
:mod:`sidecar.cli.adopt`.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field

from sidecar.codec import DataCodec
from sidecar.codec.jsonmap import dumps, record_to_json
from sidecar.codec.schemas import settle_write_orders
from sidecar.errors import SidecarError, WriteOrderNeeded
from sidecar.providers.base import Provider, StoredValue, StoreEntry, StoreKind
from sidecar.unreadable import UnreadableRows

log = logging.getLogger(__name__)

DEFAULT_BATCH = 500


@dataclass(slots=True)
class AdoptionCounts:
    """What one run found and did, per store kind."""

    found: dict[StoreKind, int] = field(default_factory=lambda: dict.fromkeys(StoreKind, 0))
    converted: dict[StoreKind, int] = field(default_factory=lambda: dict.fromkeys(StoreKind, 0))
    rewritten: dict[StoreKind, int] = field(default_factory=lambda: dict.fromkeys(StoreKind, 0))
    unreadable: dict[StoreKind, int] = field(default_factory=lambda: dict.fromkeys(StoreKind, 0))


def convert(
    codec: DataCodec, kind: StoreKind, entry: StoreEntry
) -> tuple[StoreEntry, frozenset[int]]:
    """The sidecar's form of one row without value format, and the schema ids its value uses.

    Raises:
        SidecarError: the row cannot be read (the framework could not have
            loaded it either).
    """
    codec.resolve_key(kind, entry.key)  # a key the sidecar could not serve is unreadable
    value = entry.value
    schema_ids: frozenset[int] = frozenset()
    if not value.format:
        encoded, record = codec.rebuild_framework_value(value.document)
        schema_ids = encoded.schema_ids
        value = StoredValue(
            format="compact",
            # Against the registry: a schema whose write order a Java class claimed gets
            # this record's own (schema) order named in its document.
            document=dumps(record_to_json(record, codec.registry)),
            type_name=record.type_name,
            schema_id=record.schema_id,
        )
    return StoreEntry(key=entry.key, value=value, event=entry.event), schema_ids


async def adopt(
    provider: Provider,
    codec: DataCodec,
    *,
    dry_run: bool,
    batch_size: int = DEFAULT_BATCH,
    map_name: str | None = None,
) -> AdoptionCounts:
    """Rewrite (or, with ``dry_run``, only convert) every row without format."""
    counts = AdoptionCounts()
    unreadable = UnreadableRows(provider)
    persisted = {record.schema_id for record in await provider.get_schemas()}
    for kind in StoreKind:
        after: tuple[str, str, str] | None = None
        while True:
            page = await provider.rows_without_format(
                kind, after=after, limit=batch_size, map_name=map_name
            )
            if not page:
                break
            last_map, last = page[-1]
            after = (last_map, last.key.text, last.key.format)
            counts.found[kind] += len(page)
            rows: list[tuple[str, StoreEntry]] = []
            used: set[int] = set()
            for name, entry in page:
                step = functools.partial(convert, codec, kind, entry)
                try:
                    try:
                        converted, schema_ids = step()
                    except WriteOrderNeeded:
                        if dry_run:  # convertible once its schema's order is claimed
                            counts.converted[kind] += 1
                            continue
                        converted, schema_ids = await settle_write_orders(
                            step, codec.registry, provider
                        )
                except SidecarError as exc:
                    counts.unreadable[kind] += 1
                    if not dry_run:
                        await unreadable.report(name, entry.key, exc)
                    continue
                rows.append((name, converted))
                used |= schema_ids
            counts.converted[kind] += len(rows)
            if dry_run or not rows:
                continue
            # Schemas are made durable before any row that uses them.
            new = codec.new_schemas(frozenset(used - persisted))
            if new:
                await provider.put_schemas(new)
                persisted |= {r.schema_id for r in new}
            counts.rewritten[kind] += await provider.rewrite_rows(kind, rows)
            log.info(
                "adopt: %s rows rewritten so far: %d (last key %r of map %r)",
                kind.value,
                counts.rewritten[kind],
                after[1],
                after[0],
            )
    return counts
