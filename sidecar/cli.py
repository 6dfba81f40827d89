"""``hz-sidecar``: run the sidecar, check a configuration, apply migrations.

Exit codes: 0 success; 1 unexpected failure; 2 invalid configuration or usage;
3 the provider cannot be reached (``check``, ``migrate``, or ``run`` at start).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from sidecar.cluster_check import check_store_for_cluster
from sidecar.config import SidecarConfig, load_config
from sidecar.errors import ConfigError, SidecarError, StoreError, StoreUnavailableError
from sidecar.member_config import DEFAULT_DEADLINE_MS, render_member_yaml
from sidecar.providers import create_provider

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
EXIT_UNAVAILABLE = 3

log = logging.getLogger("sidecar")


def _version() -> str:
    try:
        return version("hz-sidecar")
    except PackageNotFoundError:
        return "unknown"


class _JsonFormatter(logging.Formatter):
    """One JSON object per line; structured ``extra`` fields are kept."""

    _RESERVED = frozenset(vars(logging.makeLogRecord({})))

    def format(self, record: logging.LogRecord) -> str:
        document = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in self._RESERVED and not name.startswith("_"):
                document[name] = value
        if record.exc_info:
            document["exception"] = self.formatException(record.exc_info)
        return json.dumps(document, default=str)


def configure_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)


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
        command("check", "Validate the configuration and reach the provider."),
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


async def _check(config: SidecarConfig) -> int:
    provider = create_provider(config.provider.name, config.provider.settings)
    try:
        await provider.open()
        if not await provider.is_available():
            print(f"provider {config.provider.name}: not available", file=sys.stderr)
            return EXIT_UNAVAILABLE
    finally:
        await provider.close()
    routes = ", ".join(f"{r.pattern} -> {r.kind.value}" for r in config.maps)
    print(
        f"configuration OK; provider {config.provider.name} available; "
        f"listen {config.listen.address}; routes: {routes}; "
        f"persistence {'enabled' if config.persistence.enabled else 'disabled'}"
    )
    return EXIT_OK


async def _migrate(config: SidecarConfig) -> int:
    provider = create_provider(config.provider.name, config.provider.settings)
    try:
        applied = await provider.migrate()
    finally:
        await provider.close()
    print(f"applied migrations: {', '.join(applied)}" if applied else "schema is up to date")
    return EXIT_OK


async def _run(config: SidecarConfig) -> int:
    from sidecar.server import serve

    await serve(config)
    return EXIT_OK


def _dlq(args: argparse.Namespace) -> Callable[[SidecarConfig], Coroutine[Any, Any, int]]:
    from sidecar.deadletter import dlq_command

    async def run(config: SidecarConfig) -> int:
        return await dlq_command(
            config,
            args.action,
            map_name=args.map_name,
            letter_id=args.letter_id,
            purge_all=args.purge_all,
            include_missing=args.include_missing,
        )

    return run


def _adopt(args: argparse.Namespace) -> Callable[[SidecarConfig], Coroutine[Any, Any, int]]:
    from sidecar.adopt import adopt_command

    async def run(config: SidecarConfig) -> int:
        if args.batch_size < 1:
            raise ConfigError("adopt --batch-size must be at least 1")
        return await adopt_command(
            config, dry_run=args.dry_run, batch_size=args.batch_size, map_name=args.map_name
        )

    return run


def _unreadable(args: argparse.Namespace) -> Callable[[SidecarConfig], Coroutine[Any, Any, int]]:
    async def run(config: SidecarConfig) -> int:
        provider = create_provider(config.provider.name, config.provider.settings)
        await provider.open()
        try:
            if args.action == "purge":
                count = await provider.delete_unreadable_rows(map_name=args.map_name)
                print(f"purged {count} record(s) of unreadable rows")
                return EXIT_OK
            rows = await provider.list_unreadable_rows(map_name=args.map_name)
        except NotImplementedError as exc:
            print(f"hz-sidecar: {exc}: unreadable rows are only logged", file=sys.stderr)
            return EXIT_FAILURE
        finally:
            await provider.close()
        for row in rows:
            at = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(row.seen_at_millis / 1000))
            print(
                f"map={row.map_name!r} key={row.key_text!r} format={row.key_format or None!r} "
                f"first_seen={at}Z error={row.error!r}"
            )
        print(f"{len(rows)} unreadable row(s)")
        return EXIT_OK

    return run


def _member_config(args: argparse.Namespace) -> Callable[[SidecarConfig], Coroutine[Any, Any, int]]:
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


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        config = _load(args)
        if getattr(args, "member_config", None) is not None:
            check_store_for_cluster(config.provider.name, args.member_config)
        handler = {
            "run": _run,
            "check": _check,
            "migrate": _migrate,
            "member-config": _member_config(args),
            "dlq": _dlq(args),
            "adopt": _adopt(args),
            "unreadable": _unreadable(args),
        }[args.command]
        return asyncio.run(handler(config))
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


if __name__ == "__main__":
    sys.exit(main())
