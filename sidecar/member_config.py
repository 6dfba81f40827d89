"""The Hazelcast member's map configuration, rendered from the sidecar's configuration.

One YAML file drives both sides: for every route in ``maps`` the member gets a
map configuration of the same name (Hazelcast accepts one ``*`` wildcard in a
map configuration name, so ``*_ES`` configures every event map) with the shim
as its MapStore, the reference's write-behind settings, its initial load mode
and its eviction block. The result is a complete ``hazelcast:`` document that a
member configuration imports (``hazelcast.import``) or merges.

Decisions taken here, so that both sides agree:

- ``write-coalescing``: the route's ``write-coalescing`` when it is set; else
  view maps coalesce (only the latest state of a view matters, the sidecar
  UPSERTs it anyway) and event maps take ``framework.persistence.write-coalescing``,
  whose default (false) is the reference's "each event is unique". An event map
  coalesces only when a key asks for it, and the rendered file says which: a
  coalescing queue keeps the latest value of a key, so it is safe for events only
  when every event has a key of its own. ``write-coalescing: true`` on a route is
  refused with ``write-delay-seconds: 0``: Hazelcast applies it to write-behind
  only and ignores it on a write-through map, which calls ``store`` for every put.
- ``initial-mode``: the route's ``initial-load-mode``, else EAGER for views and
  ``framework.persistence.initial-load-mode`` for events, exactly as
  :class:`sidecar.routing.Router` resolves it.
- ``enabled``: ``framework.persistence.enabled``. Eviction is rendered only when
  persistence is enabled too: evicting entries that no store holds loses them.
- Patterns must be expressible in Hazelcast (at most one ``*``, no ``?`` or
  ``[...]``), and the sidecar's "first route wins" must pick the same route as
  Hazelcast's "most specific configuration wins" for every name, or it is an
  error: otherwise a map could be written by the sidecar as an event log while
  the member treats it as a view.

Hazelcast references:
https://docs.hazelcast.com/hazelcast/latest/configuration/using-wildcards ,
https://docs.hazelcast.com/hazelcast/latest/mapstore/configuration-guide ,
https://docs.hazelcast.com/hazelcast/latest/data-structures/managing-map-memory ,
https://docs.hazelcast.org/docs/latest/javadoc/com/hazelcast/config/MapStoreConfig.html#setWriteCoalescing(boolean)
(write-coalescing "is meaningful if you are using write-behind MapStore").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml

from sidecar.config import EvictionConfig, InitialLoadMode, MapRoute, MaxSizePolicy, SidecarConfig
from sidecar.errors import ConfigError
from sidecar.providers.base import StoreKind

FACTORY_CLASS_NAME = "io.github.hzsidecar.shim.SidecarMapStoreFactory"
"""The shim's MapStoreFactory (shim/src/main/java/io/github/hzsidecar/shim/)."""

DEFAULT_DEADLINE_MS = 10_000
"""The shim's own default for ``sidecar.deadline-ms``."""

# Native-memory size policies need in-memory-format NATIVE (Enterprise); Hazelcast
# refuses them at start for the default BINARY format of these maps.
_NATIVE_POLICIES = frozenset(p for p in MaxSizePolicy if "NATIVE" in p.value)

# Listen addresses that accept connections but cannot be dialled: the member
# reaches a wildcard listener through loopback.
_WILDCARD_HOSTS = {"0.0.0.0": "127.0.0.1", "[::]": "[::1]"}  # noqa: S104


@dataclass(frozen=True, slots=True)
class _Pattern:
    """A route pattern as Hazelcast reads it: exact name, or prefix ``*`` suffix."""

    text: str
    prefix: str
    suffix: str | None  # None: no wildcard, an exact name

    @property
    def specificity(self) -> float:
        """Hazelcast's matching point: an exact name beats any wildcard, then longer wins."""
        if self.suffix is None:
            return float("inf")
        return len(self.prefix) + len(self.suffix)

    def overlaps(self, other: _Pattern) -> bool:
        """Whether some map name matches both patterns."""
        if self.suffix is None and other.suffix is None:
            return self.text == other.text
        if self.suffix is None or other.suffix is None:
            exact, wild = (self, other) if self.suffix is None else (other, self)
            assert wild.suffix is not None
            name = exact.text
            return (
                len(name) >= len(wild.prefix) + len(wild.suffix)
                and name.startswith(wild.prefix)
                and name.endswith(wild.suffix)
            )
        return (self.prefix.startswith(other.prefix) or other.prefix.startswith(self.prefix)) and (
            self.suffix.endswith(other.suffix) or other.suffix.endswith(self.suffix)
        )

    def example(self, other: _Pattern) -> str:
        """A map name matching both (only meaningful when they overlap)."""
        if self.suffix is None:
            return self.text
        if other.suffix is None:
            return other.text
        prefix = max(self.prefix, other.prefix, key=len)
        suffix = max(self.suffix, other.suffix, key=len)
        return f"{prefix}x{suffix}"


def _parse_pattern(index: int, pattern: str) -> _Pattern:
    if "?" in pattern or "[" in pattern or pattern.count("*") > 1:
        raise ConfigError(
            f"maps[{index}].pattern: {pattern!r} cannot be a Hazelcast map configuration name "
            "(Hazelcast accepts a single '*' wildcard and no '?' or '[...]'); "
            "split it into several routes"
        )
    prefix, star, suffix = pattern.partition("*")
    return _Pattern(pattern, prefix, suffix if star else None)


def member_address(config: SidecarConfig) -> str:
    """The address the member's shim dials: ``listen.address``, loopback for a wildcard host.

    A ``unix://`` address is passed as is (the shim accepts both forms).
    """
    address = config.listen.address
    if config.listen.unix_path is not None:
        return address
    host, _, port = address.rpartition(":")
    if int(port) == 0:
        raise ConfigError(
            "listen.address: port 0 (any free port) cannot be given to the member; "
            "choose a port or pass --address"
        )
    return f"{_WILDCARD_HOSTS.get(host, host)}:{port}"


def initial_load_mode(route: MapRoute, config: SidecarConfig) -> InitialLoadMode:
    """The initial load mode of a route, resolved as :class:`sidecar.routing.Router` does."""
    if route.initial_load_mode is not None:
        return route.initial_load_mode
    if route.kind is StoreKind.VIEW:
        return InitialLoadMode.EAGER
    return config.persistence.initial_load_mode


def write_coalescing(route: MapRoute, config: SidecarConfig) -> bool:
    """Whether a route's maps coalesce their write-behind queue (Hazelcast's ``write-coalescing``).

    The route's own ``write-coalescing``; unset, views coalesce and events take
    ``framework.persistence.write-coalescing`` (default false, the reference's
    "each event is unique").
    """
    if route.write_coalescing is not None:
        return route.write_coalescing
    if route.kind is StoreKind.VIEW:
        return True
    return config.persistence.write_coalescing


def _coalescing_source(index: int, route: MapRoute) -> str:
    """The key that made a route coalesce (only meaningful when it does)."""
    if route.write_coalescing is not None:
        return f"maps[{index}].write-coalescing"
    return "framework.persistence.write-coalescing"


def _check_coalescing(index: int, route: MapRoute, config: SidecarConfig) -> None:
    if route.write_coalescing and config.persistence.write_delay_seconds == 0:
        raise ConfigError(
            f"maps[{index}].write-coalescing: true needs write-behind, but "
            "framework.persistence.write-delay-seconds is 0 (write-through), where Hazelcast "
            "ignores write-coalescing and calls store() for every put; remove the key or set "
            "a write delay"
        )


def _eviction(key: str, eviction: EvictionConfig) -> dict[str, Any]:
    if eviction.max_size_policy in _NATIVE_POLICIES:
        raise ConfigError(
            f"framework.persistence.{key}.max-size-policy: {eviction.max_size_policy.value} "
            "needs in-memory-format NATIVE, which these maps do not use"
        )
    return {
        "eviction": {
            "eviction-policy": eviction.eviction_policy.value,
            "max-size-policy": eviction.max_size_policy.value,
            "size": eviction.max_size,
        },
        "max-idle-seconds": eviction.max_idle_seconds,
    }


def map_config(
    route: MapRoute, config: SidecarConfig, *, address: str, deadline_ms: int
) -> dict[str, Any]:
    """The Hazelcast map configuration (the value under ``hazelcast.map.<pattern>``) of a route."""
    persistence = config.persistence
    block: dict[str, Any] = {
        "map-store": {
            "enabled": persistence.enabled,
            "factory-class-name": FACTORY_CLASS_NAME,
            "write-delay-seconds": persistence.write_delay_seconds,
            "write-batch-size": persistence.write_batch_size,
            "write-coalescing": write_coalescing(route, config),
            "initial-mode": initial_load_mode(route, config).value,
            "properties": {"sidecar.address": address, "sidecar.deadline-ms": deadline_ms},
        }
    }
    if route.kind is StoreKind.VIEW:
        key, eviction = "view-store-eviction", persistence.view_store_eviction
    else:
        key, eviction = "event-store-eviction", persistence.event_store_eviction
    if persistence.enabled and eviction.enabled:
        block.update(_eviction(key, eviction))
    return block


def _check_precedence(config: SidecarConfig, blocks: list[dict[str, Any]]) -> None:
    """Refuse routes on which the sidecar (first match) and Hazelcast (most specific) disagree."""
    patterns = [_parse_pattern(i, route.pattern) for i, route in enumerate(config.maps)]
    for j, later in enumerate(patterns):
        for i, earlier in enumerate(patterns[:j]):
            if earlier.text == later.text or not earlier.overlaps(later):
                continue
            name = earlier.example(later)
            if later.specificity == earlier.specificity:
                raise ConfigError(
                    f"maps[{i}].pattern {earlier.text!r} and maps[{j}].pattern {later.text!r} "
                    f"both match names such as {name!r} and are equally specific: Hazelcast "
                    "refuses such a map as ambiguous; make one of them more specific"
                )
            if later.specificity > earlier.specificity and blocks[i] != blocks[j]:
                raise ConfigError(
                    f"maps[{i}].pattern {earlier.text!r} and maps[{j}].pattern {later.text!r} "
                    f"both match names such as {name!r}: the sidecar takes the first route, "
                    f"Hazelcast the most specific one ({later.text!r}); list {later.text!r} first"
                )


def render_member_config(
    config: SidecarConfig,
    *,
    address: str | None = None,
    deadline_ms: int = DEFAULT_DEADLINE_MS,
) -> dict[str, Any]:
    """The member configuration document (``{"hazelcast": {"map": {...}}}``) for ``config``.

    Args:
        config: the sidecar configuration whose routes and ``framework.persistence`` block
            are rendered.
        address: the address the shim dials; by default :func:`member_address`.
        deadline_ms: the shim's per-call deadline (``sidecar.deadline-ms``).

    Raises:
        ConfigError: a route or setting that Hazelcast cannot express or would ignore
            (``write-coalescing`` on a write-through map), or routes on which the sidecar
            and Hazelcast would pick different configurations.
    """
    if deadline_ms <= 0:
        raise ConfigError(f"deadline: must be positive, got {deadline_ms} ms")
    target = address if address is not None else member_address(config)
    for i, route in enumerate(config.maps):
        _parse_pattern(i, route.pattern)
        _check_coalescing(i, route, config)
    blocks = [
        map_config(route, config, address=target, deadline_ms=deadline_ms) for route in config.maps
    ]
    _check_precedence(config, blocks)
    maps: dict[str, Any] = {}
    for route, block in zip(config.maps, blocks, strict=True):
        # A repeated pattern never wins in the sidecar either: the first one is kept.
        maps.setdefault(route.pattern, block)
    return {"hazelcast": {"map": maps}}


def render_member_yaml(
    config: SidecarConfig,
    *,
    address: str | None = None,
    deadline_ms: int = DEFAULT_DEADLINE_MS,
    source: str | None = None,
) -> str:
    """:func:`render_member_config` as YAML text, with a header naming its source.

    The header also names every event route rendered with ``write-coalescing: true``
    and the key that asked for it, since such a map is safe only with one key per event.
    """
    document = render_member_config(config, address=address, deadline_ms=deadline_ms)
    header = (
        f"# Generated by `hz-sidecar member-config` from {source or 'the default configuration'}."
        "\n# Do not edit: change the sidecar configuration and render again.\n"
    )
    for i, route in enumerate(config.maps):
        if route.kind is StoreKind.EVENT and write_coalescing(route, config):
            header += (
                f"# {route.pattern}: event maps with write-coalescing true "
                f"({_coalescing_source(i, route)}): each event needs a key of its own; of the "
                "events queued under one key, only the last reaches the store.\n"
            )
    return header + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)
