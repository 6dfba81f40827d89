"""``hz-sidecar adopt [--dry-run]``: the reference framework's rows rewritten in place
(:mod:`sidecar.adopt` says how, and why it is safe while members are up)."""

from __future__ import annotations

from typing import TextIO

from sidecar.adopt import DEFAULT_BATCH, adopt
from sidecar.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from sidecar.cli.store import opened_provider
from sidecar.codec import DataCodec, SchemaRegistry
from sidecar.config import SidecarConfig
from sidecar.errors import ConfigError
from sidecar.providers.base import StoreKind


async def adopt_command(
    config: SidecarConfig,
    *,
    dry_run: bool,
    batch_size: int = DEFAULT_BATCH,
    map_name: str | None = None,
    out: TextIO | None = None,
) -> int:
    """Rewrite (``dry_run``: count) the framework's rows; print the counts per table.

    Returns:
        EXIT_OK, or EXIT_FAILURE when some row could not be read.

    Raises:
        ConfigError: ``batch_size`` below 1.
    """
    if batch_size < 1:
        raise ConfigError("adopt --batch-size must be at least 1")
    async with opened_provider(config) as provider:
        registry = SchemaRegistry()
        for record in await provider.get_schemas():
            registry.add(record)
        codec = DataCodec(registry, max_depth=config.limits.max_nesting_depth)
        counts = await adopt(
            provider, codec, dry_run=dry_run, batch_size=batch_size, map_name=map_name
        )
    for kind, table in ((StoreKind.EVENT, "domain_events"), (StoreKind.VIEW, "domain_views")):
        done = (
            f"{counts.converted[kind]} would be rewritten"
            if dry_run
            else f"{counts.rewritten[kind]} rewritten"
        )
        print(
            f"{table}: {counts.found[kind]} row(s) of the reference framework, {done}, "
            f"{counts.unreadable[kind]} unreadable (left as they are)",
            file=out,
        )
    return EXIT_FAILURE if any(counts.unreadable.values()) else EXIT_OK
