"""``hz-sidecar unreadable list|purge``: the stored rows that loads skipped
(:mod:`sidecar.unreadable`), listed, or their records forgotten."""

from __future__ import annotations

import sys
import time
from typing import TextIO

from sidecar.cli.exit_codes import EXIT_FAILURE, EXIT_OK
from sidecar.cli.store import opened_provider
from sidecar.config import SidecarConfig


async def unreadable_command(
    config: SidecarConfig,
    action: str,
    *,
    map_name: str | None = None,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """List the recorded rows (``list``) or forget the records (``purge``; the rows
    themselves are left as they are).

    Returns:
        EXIT_OK, or EXIT_FAILURE when the provider records no unreadable rows.
    """
    try:
        async with opened_provider(config) as provider:
            if action == "purge":
                count = await provider.delete_unreadable_rows(map_name=map_name)
                print(f"purged {count} record(s) of unreadable rows", file=out)
                return EXIT_OK
            rows = await provider.list_unreadable_rows(map_name=map_name)
    except NotImplementedError as exc:
        print(
            f"hz-sidecar: {exc}: unreadable rows are only logged",
            file=sys.stderr if err is None else err,
        )
        return EXIT_FAILURE
    for row in rows:
        at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row.seen_at_millis / 1000))
        print(
            f"map={row.map_name!r} key={row.key_text!r} format={row.key_format or None!r} "
            f"first_seen={at}Z error={row.error!r}",
            file=out,
        )
    print(f"{len(rows)} unreadable row(s)", file=out)
    return EXIT_OK
