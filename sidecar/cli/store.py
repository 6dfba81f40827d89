"""``hz-sidecar check`` and ``hz-sidecar migrate``, and the provider the commands open.

``check`` changes nothing: it asks the provider which migrations it lacks
(:meth:`~sidecar.providers.base.Provider.pending_migrations`, a read-only query
that also proves the store answers) instead of opening it, since opening may apply
them (SQLite always does, PostgreSQL with ``migrate-on-start``). ``migrate`` is the
command that applies them.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator
from typing import TextIO

from sidecar.cli.exit_codes import EXIT_OK, EXIT_UNAVAILABLE
from sidecar.config import SidecarConfig
from sidecar.providers import Provider, create_provider


@contextlib.asynccontextmanager
async def opened_provider(config: SidecarConfig) -> AsyncIterator[Provider]:
    """The configured provider, opened (which applies its pending migrations), then closed."""
    provider = create_provider(config.provider.name, config.provider.settings)
    await provider.open()
    try:
        yield provider
    finally:
        await provider.close()


async def check_command(
    config: SidecarConfig, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """``hz-sidecar check``: the configuration is valid and the store answers; writes nothing.

    ``out`` and ``err`` default to the process's standard streams (``print``'s default).

    Prints what ``hz-sidecar migrate`` would apply. A provider that cannot list its
    pending migrations (the base class default) is opened and probed instead, as before:
    for one without migrations (memory) that changes nothing either.

    Returns:
        EXIT_OK, or EXIT_UNAVAILABLE when the store does not answer.

    Raises:
        StoreUnavailableError: the store cannot be reached.
    """
    name = config.provider.name
    provider = create_provider(name, config.provider.settings)
    pending: list[str] | None
    try:
        pending = await provider.pending_migrations()
    except NotImplementedError:
        pending = None
        await provider.open()
        try:
            available = await provider.is_available()
        finally:
            await provider.close()
        if not available:
            print(f"provider {name}: not available", file=sys.stderr if err is None else err)
            return EXIT_UNAVAILABLE
    routes = ", ".join(f"{r.pattern} -> {r.kind.value}" for r in config.maps)
    print(
        f"configuration OK; provider {name} available; "
        f"listen {config.listen.address}; routes: {routes}; "
        f"persistence {'enabled' if config.persistence.enabled else 'disabled'}",
        file=out,
    )
    if pending is None:
        kind = type(provider).__name__
        if type(provider).migrate is Provider.migrate:
            print(f"migrations: none ({kind} has no migrations)", file=out)
        else:
            print(
                f"migrations: {kind} cannot list its pending migrations without opening, "
                "which may have applied them",
                file=out,
            )
    elif pending:
        print(
            f"pending migrations: {', '.join(pending)} (`hz-sidecar migrate` would apply them; "
            "check applied nothing)",
            file=out,
        )
    else:
        print("migrations: none pending, the schema is up to date", file=out)
    return EXIT_OK


async def migrate_command(config: SidecarConfig, *, out: TextIO | None = None) -> int:
    """``hz-sidecar migrate``: apply the provider's pending migrations; say which."""
    provider = create_provider(config.provider.name, config.provider.settings)
    try:
        applied = await provider.migrate()
    finally:
        await provider.close()
    print(
        f"applied migrations: {', '.join(applied)}" if applied else "schema is up to date",
        file=out,
    )
    return EXIT_OK
