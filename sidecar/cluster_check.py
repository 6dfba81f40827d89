"""Refuse a per-sidecar store for a member that may be part of a cluster of several members.

Hazelcast calls ``loadAllKeys`` on one member and ``loadAll``/``store`` on each
partition's owner, and when a member is lost its write-behind entries are
flushed from the backups through the survivors' sidecars: every sidecar of a
cluster must see the same store. A provider whose class says ``shared = False``
(SQLite, memory) keeps its data beside one sidecar, so on a cluster each
member would persist and load a different slice of every map.

The check reads the member's own configuration (YAML, ``hazelcast:`` root) and
decides whether it *may* form a cluster of several members:

- a TCP-IP join whose member list names more than one address (IP or port
  ranges such as ``10.0.0.1-3`` or ``host:5701-5703`` count as several);
- multicast, or a cloud/Kubernetes/Eureka/discovery-SPI join, enabled;
- auto-detection left enabled (Hazelcast's default) while no other join is
  enabled: it detects cloud environments and otherwise falls back to multicast.

At run time the shim sends its member's cluster size with every call
(``x-hz-cluster-size``), and the service refuses writes through a per-sidecar
store from a member of a cluster of several with FAILED_PRECONDITION
(:func:`check_cluster_size`): the member's write-behind queue keeps the
entries, and the member log names the cause.

Hazelcast references:
https://docs.hazelcast.com/hazelcast/latest/clusters/discovery-mechanisms ,
https://docs.hazelcast.com/hazelcast/latest/clusters/discovering-by-tcp .
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import yaml

from sidecar.errors import ConfigError
from sidecar.providers import provider_class
from sidecar.providers.base import Provider

#: The gRPC header in which the shim sends its member's current cluster size.
CLUSTER_SIZE_HEADER: Final = "x-hz-cluster-size"

# Join mechanisms other than tcp-ip and multicast, each ``<name>: {enabled: true}``.
_DISCOVERY_JOINS = ("aws", "gcp", "azure", "kubernetes", "eureka")


def _enabled(block: Any, *, default: bool = False) -> bool:
    if not isinstance(block, Mapping):
        return default
    value = block.get("enabled", default)
    if isinstance(value, str):
        return value.strip().lower() == "true"
    return bool(value)


def _range_size(text: str) -> int:
    """How many values ``a-b`` spans (1 for a plain value or a malformed range)."""
    low, dash, high = text.rpartition("-")
    if not dash or not low:
        return 1
    try:
        first, last = int(low.rsplit(".", 1)[-1]), int(high)
    except ValueError:
        return 1
    return max(1, last - first + 1)


def _addresses(entry: str) -> int:
    """How many member addresses one member-list entry names."""
    entry = entry.strip()
    if not entry:
        return 0
    host, colon, port = entry.rpartition(":")
    if colon and "]" not in port:
        return _range_size(host) * _range_size(port)
    return _range_size(entry)


def _member_list(tcp_ip: Mapping[str, Any]) -> list[str]:
    entries: list[str] = []
    for key in ("member-list", "members", "member"):
        value = tcp_ip.get(key)
        if isinstance(value, str):
            entries += value.split(",")
        elif isinstance(value, list):
            for item in value:
                entries += str(item).split(",")
    return [e.strip() for e in entries if e.strip()]


def cluster_reasons(document: Mapping[str, Any]) -> list[str]:
    """Why a member with this configuration may be one of several (empty: a single member).

    Args:
        document: the parsed member configuration, with its ``hazelcast`` root.
    """
    root = document.get("hazelcast")
    root = root if isinstance(root, Mapping) else {}
    advanced = root.get("advanced-network")
    network = advanced if _enabled(advanced) else root.get("network")
    network = network if isinstance(network, Mapping) else {}
    join = network.get("join")
    join = join if isinstance(join, Mapping) else {}
    reasons: list[str] = []
    others_enabled = False
    tcp_ip = join.get("tcp-ip")
    if _enabled(tcp_ip):
        assert isinstance(tcp_ip, Mapping)
        others_enabled = True
        entries = _member_list(tcp_ip)
        count = sum(_addresses(e) for e in entries)
        if count > 1:
            reasons.append(f"tcp-ip member-list names {count} members ({', '.join(entries)})")
    if _enabled(join.get("multicast")):
        others_enabled = True
        reasons.append("multicast discovery is enabled")
    for name in _DISCOVERY_JOINS:
        if _enabled(join.get(name)):
            others_enabled = True
            reasons.append(f"{name} discovery is enabled")
    strategies = join.get("discovery-strategies")
    if isinstance(strategies, Mapping):
        enabled = [
            str(s.get("class", "?"))
            for s in strategies.get("discovery-strategies") or []
            if isinstance(s, Mapping) and _enabled(s, default=True)
        ]
        if enabled:
            others_enabled = True
            reasons.append(f"discovery strategies are configured ({', '.join(enabled)})")
    if not others_enabled and _enabled(join.get("auto-detection"), default=True):
        reasons.append(
            "auto-detection is enabled (Hazelcast's default when no other join is enabled: "
            "it discovers cloud members, otherwise falls back to multicast)"
        )
    return reasons


def read_member_config(path: str | Path) -> dict[str, Any]:
    """The member configuration file parsed (YAML only; a Hazelcast XML file is refused)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"--member-config: cannot read {path}: {exc}") from exc
    if text.lstrip().startswith("<"):
        raise ConfigError(f"--member-config: {path} looks like XML; give the YAML configuration")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"--member-config: {path} is not valid YAML: {exc}") from exc
    if not isinstance(document, dict) or not isinstance(document.get("hazelcast"), dict):
        raise ConfigError(f"--member-config: {path} has no 'hazelcast:' root mapping")
    return document


def _refusal(provider_name: str, where: str, reasons: list[str]) -> ConfigError:
    return ConfigError(
        f"provider.name: '{provider_name}' keeps its data beside this one sidecar, but "
        f"{where} ({'; '.join(reasons)}). In a cluster every sidecar must see the same store: "
        "Hazelcast calls loadAllKeys on one member and loadAll/store on each partition's "
        "owner, and a lost member's write-behind entries are flushed by its backups through "
        "the other members' sidecars, so a per-sidecar store would hold a different slice of "
        "each map on each member. Fix: use a shared provider (provider.name: postgres) for "
        "a cluster, or make this a single-member cluster (a tcp-ip member-list of one "
        "address, multicast, auto-detection and discovery disabled)."
    )


def check_store_for_cluster(provider_name: str, member_config: str | Path) -> None:
    """Refuse a non-shared provider when the member configuration may form a cluster.

    Raises:
        ConfigError: the provider keeps its data per sidecar (``shared = False``) and the
            member may join others; the message says why that loses data and names the fix.
    """
    if provider_class(provider_name).shared:
        return
    reasons = cluster_reasons(read_member_config(member_config))
    if reasons:
        where = f"the member configuration {member_config} may form a cluster of several members"
        raise _refusal(provider_name, where, reasons)


def check_cluster_size(provider: type[Provider], metadata: Iterable[tuple[str, Any]]) -> None:
    """Refuse a write through a non-shared provider from a member of a cluster of several.

    The shim sends the member's current cluster size in the ``x-hz-cluster-size`` header of
    every call; a call without it (an older shim, a test client) is let through.

    Raises:
        ConfigError: (FAILED_PRECONDITION) the provider is per-sidecar and the member
            reports more than one member.
    """
    if provider.shared:
        return
    for key, value in metadata:
        if key != CLUSTER_SIZE_HEADER:
            continue
        try:
            members = int(value)
        except (TypeError, ValueError):
            return
        if members > 1:
            where = f"the calling member is one of a cluster of {members} members"
            raise _refusal(provider.name, where, [f"{CLUSTER_SIZE_HEADER}: {members}"])
        return
