"""Providers: the backing stores behind the sidecar, and how one is found by name.

Built-in providers are imported lazily, so that a deployment on SQLite never
imports psycopg. Third-party providers register their class in the
``hz_sidecar.providers`` entry point group of their distribution::

    [project.entry-points."hz_sidecar.providers"]
    cassandra = "hz_sidecar_cassandra:CassandraProvider"

The MySQL / MariaDB provider is registered the same way, by this distribution itself
(``mysql``, with the extra ``hz-sidecar[mysql]`` that installs its driver).
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from importlib.metadata import entry_points
from typing import Any

from sidecar.errors import ProviderLoadError
from sidecar.providers.base import (
    EventColumns,
    Provider,
    SchemaRecord,
    StoredKey,
    StoredValue,
    StoreEntry,
    StoreKind,
)

ENTRY_POINT_GROUP = "hz_sidecar.providers"
#: The providers of this distribution whose driver comes with an extra.
_EXTRAS = {"mysql": "mysql"}

_BUILT_IN = {
    "memory": "sidecar.providers.memory:MemoryProvider",
    "sqlite": "sidecar.providers.sqlite:SQLiteProvider",
    "postgres": "sidecar.providers.postgres:PostgresProvider",
}

__all__ = [
    "ENTRY_POINT_GROUP",
    "EventColumns",
    "Provider",
    "SchemaRecord",
    "StoreEntry",
    "StoreKind",
    "StoredKey",
    "StoredValue",
    "create_provider",
    "provider_class",
]


def _import(target: str, name: str) -> type[Provider]:
    module_name, _, attr = target.partition(":")
    try:
        module = importlib.import_module(module_name)
        cls = getattr(module, attr)
    except (ImportError, AttributeError) as exc:
        hint = _EXTRAS.get(name)
        extra = f"; install its driver: pip install 'hz-sidecar[{hint}]'" if hint else ""
        raise ProviderLoadError(
            f"provider '{name}' ({target}) cannot be imported: {exc}{extra}"
        ) from exc
    if not (isinstance(cls, type) and issubclass(cls, Provider)):
        raise ProviderLoadError(f"provider '{name}' ({target}) is not a sidecar Provider subclass")
    return cls


def provider_class(name: str) -> type[Provider]:
    """Find the provider class registered under ``name``."""
    if name in _BUILT_IN:
        return _import(_BUILT_IN[name], name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            return _import(ep.value, name)
    known = sorted({*_BUILT_IN, *(ep.name for ep in entry_points(group=ENTRY_POINT_GROUP))})
    raise ProviderLoadError(
        f"provider.name: unknown provider '{name}' (known: {', '.join(known)}); a third-party "
        f"provider must be installed and registered in the '{ENTRY_POINT_GROUP}' entry point group"
    )


def create_provider(name: str, settings: Mapping[str, Any]) -> Provider:
    """Instantiate the provider ``name`` with its settings (not opened yet)."""
    return provider_class(name)(settings)
