"""``hz-sidecar``: run the sidecar, check a configuration, apply migrations, and the
operator's commands (dead letters, unreadable rows, adopting the reference
framework's rows, the members' map configuration).

The top of the layering (DESIGN.md): this package may import every other module of
the sidecar, and none imports it. One module per command family; this one parses
the arguments and maps errors to exit codes (:mod:`sidecar.cli.exit_codes`).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sidecar.cli.adopt import adopt_command
from sidecar.cli.dlq import dlq_command
from sidecar.cli.exit_codes import EXIT_CONFIG, EXIT_FAILURE, EXIT_OK, EXIT_UNAVAILABLE
from sidecar.cli.logs import configure_logging
from sidecar.cli.store import check_command, migrate_command
from sidecar.cli.unreadable import unreadable_command
from sidecar.cluster_check import check_store_for_cluster
from sidecar.config import SidecarConfig, load_config
from sidecar.errors import ConfigError, SidecarError, StoreError, StoreUnavailableError
from sidecar.member_config import DEFAULT_DEADLINE_MS, render_member_yaml

__all__ = [
    "EXIT_CONFIG",
    "EXIT_FAILURE",
    "EXIT_OK",
    "EXIT_UNAVAILABLE",
    "configure_logging",
    "main",
]

#: A command, bound to its parsed arguments, run with the loaded configuration.
Command = Callable[[SidecarConfig], Coroutine[Any, Any, int]]


def _version() -> str:
    try:
        return version("hz-sidecar")
    except PackageNotFoundError:
        return "unknown"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hz-sidecar",
        description="Persistence sidecar for Hazelcast IMaps (MapStore over gRPC).",
        epilog="Exit codes: 0 ok, 1 failure, 2 invalid configuration, 3 store unreachable.",
    )
    parser.add_argument("--version", action="version", version=f"hz-sidecar {_version()}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument(
            "--config",
            "-c",
            metavar="FILE",
            help="YAML configuration file (default: built-in defaults plus HZ_SIDECAR_* "
            "environment variables)",
        )
        sub.add_argument("--log-level", help="override logging.level")
        return sub

    for sub in (
        command("run", "Serve the MapStore gRPC service until SIGTERM/SIGINT."),
        command(
            "check",
            "Validate the configuration and reach the provider; list the migrations "
            "`migrate` would apply. Changes nothing.",
        ),
    ):
        sub.add_argument(
            "--member-config",
            metavar="FILE",
            help="the Hazelcast member's YAML configuration: refuse a per-sidecar store "
            "(SQLite, memory) when it may form a cluster of several members",
        )
    command("migrate", "Apply the provider's pending schema migrations.")
    dlq = command(
        "dlq",
        "Dead letters (entries whose bytes could not be decoded): list them, replay them "
        "(decode again and store those that now decode, unless the key holds another value "
        "now or has no row), or purge them.",
    )
    dlq.add_argument("action", choices=("list", "replay", "purge"))
    dlq.add_argument("--map", dest="map_name", metavar="NAME", help="only this map's letters")
    dlq.add_argument("--id", dest="letter_id", type=int, metavar="N", help="only letter N")
    dlq.add_argument("--all", dest="purge_all", action="store_true", help="purge: every letter")
    dlq.add_argument(
        "--include-missing",
        action="store_true",
        help="replay: also store letters whose key has no row (it may have been deleted since: "
        "storing it brings it back)",
    )
    adopt = command(
        "adopt",
        "Rewrite the rows that the reference framework's own MapStores wrote into the "
        "sidecar's form, in batches; safe while members are up, resumable. The sidecar "
        "reads those rows as they are: this only finishes a migration.",
    )
    adopt.add_argument("--dry-run", action="store_true", help="count and convert, write nothing")
    adopt.add_argument("--map", dest="map_name", metavar="NAME", help="only this map's rows")
    adopt.add_argument(
        "--batch-size", type=int, default=500, metavar="N", help="rows per transaction (500)"
    )
    unreadable = command(
        "unreadable",
        "Stored rows that loads skipped because they cannot be read: list them, or purge "
        "the records (the rows themselves are left as they are).",
    )
    unreadable.add_argument("action", choices=("list", "purge"))
    unreadable.add_argument("--map", dest="map_name", metavar="NAME", help="only this map's rows")
    member = command(
        "member-config",
        "Render the Hazelcast member's map configuration (YAML) from the sidecar configuration.",
    )
    member.add_argument("--out", "-o", metavar="FILE", help="write to FILE (default: stdout)")
    member.add_argument(
        "--address",
        metavar="ADDR",
        help="address the member's shim dials (default: listen.address, a wildcard host "
        "replaced by loopback)",
    )
    member.add_argument(
        "--deadline-ms",
        type=int,
        default=DEFAULT_DEADLINE_MS,
        metavar="MS",
        help=f"the shim's per-call deadline (default: {DEFAULT_DEADLINE_MS})",
    )
    return parser


def _load(args: argparse.Namespace) -> SidecarConfig:
    config = load_config(args.config)
    level = args.log_level.upper() if args.log_level else config.logging.level
    configure_logging(level, config.logging.format)
    return config


async def _run(config: SidecarConfig) -> int:
    # Imported here: the other commands need neither the server nor gRPC's servers.
    from sidecar.server import serve

    await serve(config)
    return EXIT_OK


def _member_config(args: argparse.Namespace) -> Command:
    async def render(config: SidecarConfig) -> int:
        text = render_member_yaml(
            config, address=args.address, deadline_ms=args.deadline_ms, source=args.config
        )
        if args.out is None:
            sys.stdout.write(text)
            return EXIT_OK
        try:
            await asyncio.to_thread(Path(args.out).write_text, text, encoding="utf-8")
        except OSError as exc:
            print(f"hz-sidecar: cannot write {args.out}: {exc}", file=sys.stderr)
            return EXIT_FAILURE
        return EXIT_OK

    return render


def _command(args: argparse.Namespace) -> Command:
    """The handler of the parsed command, bound to its arguments."""
    name = args.command
    if name == "run":
        return _run
    if name == "check":
        return check_command
    if name == "migrate":
        return migrate_command
    if name == "member-config":
        return _member_config(args)
    if name == "dlq":
        return lambda config: dlq_command(
            config,
            args.action,
            map_name=args.map_name,
            letter_id=args.letter_id,
            purge_all=args.purge_all,
            include_missing=args.include_missing,
        )
    if name == "adopt":
        return lambda config: adopt_command(
            config, dry_run=args.dry_run, batch_size=args.batch_size, map_name=args.map_name
        )
    if name == "unreadable":
        return lambda config: unreadable_command(config, args.action, map_name=args.map_name)
    raise AssertionError(f"unhandled command {name!r}")  # argparse allows only the above


def main(argv: Sequence[str] | None = None) -> int:
    """The ``hz-sidecar`` console script: parse ``argv``, run the command, its exit code."""
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
        if getattr(args, "member_config", None) is not None:
            check_store_for_cluster(config.provider.name, args.member_config)
        return asyncio.run(_command(args)(config))
    except ConfigError as exc:
        print(f"hz-sidecar: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StoreUnavailableError as exc:
        print(f"hz-sidecar: store unavailable: {exc}", file=sys.stderr)
        return EXIT_UNAVAILABLE
    except (StoreError, SidecarError) as exc:
        print(f"hz-sidecar: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
