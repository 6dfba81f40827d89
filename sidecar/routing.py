"""Map name → how the map is stored: store kind, initial load mode, event columns.

Routes are tried in configuration order and the first glob that matches wins.
An unrouted map is an error (FAILED_PRECONDITION), never a silent default:
a map persisted under the wrong semantics (an event log upserted, a view
appended) is worse than one that fails loudly.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any

from sidecar.config import EventColumnsConfig, InitialLoadMode, MapRoute, PersistenceConfig
from sidecar.errors import UnroutedMapError
from sidecar.providers.base import EventColumns, StoreKind

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """The resolved storage semantics of one map."""

    map_name: str
    kind: StoreKind
    initial_load_mode: InitialLoadMode
    columns: EventColumnsConfig
    key_pattern: re.Pattern[str] | None

    def event_columns(self, key_text: str, fields: Mapping[str, Any] | None) -> EventColumns:
        """Fill the reference's event columns from the record's fields and the key.

        Only scalar fields of the expected type are taken; anything else leaves
        the column NULL (the full record is in ``event_data`` anyway).
        """
        fields = fields or {}
        aggregate_id = _text(fields.get(self.columns.aggregate_id))
        sequence = _integer(fields.get(self.columns.sequence))
        if self.key_pattern is not None and (aggregate_id is None or sequence is None):
            match = self.key_pattern.match(key_text)
            if match is not None:
                groups = match.groupdict()
                if aggregate_id is None:
                    aggregate_id = _text(groups.get("aggregate_id"))
                if sequence is None and groups.get("sequence") is not None:
                    sequence = _integer(int(groups["sequence"]))
        return EventColumns(
            aggregate_id=aggregate_id,
            sequence=sequence,
            event_type=_text(fields.get(self.columns.event_type)),
            timestamp_millis=_integer(fields.get(self.columns.timestamp_millis)),
            correlation_id=_text(fields.get(self.columns.correlation_id)),
        )


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and -(2**63) <= value < 2**63:
        return value
    return None


class Router:
    """Resolves map names against the configured routes, caching each answer."""

    def __init__(self, routes: Sequence[MapRoute], persistence: PersistenceConfig) -> None:
        self._routes = tuple(routes)
        self._persistence = persistence
        self._cache: dict[str, Route] = {}

    def route(self, map_name: str) -> Route:
        """Return the route of ``map_name``.

        Raises:
            UnroutedMapError: no configured pattern matches the name.
        """
        cached = self._cache.get(map_name)
        if cached is not None:
            return cached
        for rule in self._routes:
            if fnmatchcase(map_name, rule.pattern):
                resolved = self._resolve(map_name, rule)
                self._cache[map_name] = resolved
                log.info(
                    "Persistence enabled for %s (%s store, initial load %s, route %r)",
                    map_name,
                    resolved.kind.value,
                    resolved.initial_load_mode.value,
                    rule.pattern,
                )
                return resolved
        patterns = ", ".join(repr(r.pattern) for r in self._routes) or "none"
        raise UnroutedMapError(
            f"map '{map_name}' matches no route in the configuration (patterns: {patterns}); "
            "add a `maps` entry with its pattern and kind (event or view)",
            map_name=map_name,
        )

    def _resolve(self, map_name: str, rule: MapRoute) -> Route:
        if rule.initial_load_mode is not None:
            mode = rule.initial_load_mode
        elif rule.kind is StoreKind.VIEW:
            # The reference loads views EAGER on cold start, events LAZY
            # (framework.persistence.initial-load-mode, LAZY by default).
            mode = InitialLoadMode.EAGER
        else:
            mode = self._persistence.initial_load_mode
        pattern = (
            re.compile(rule.event_columns.key_pattern) if rule.event_columns.key_pattern else None
        )
        return Route(
            map_name=map_name,
            kind=rule.kind,
            initial_load_mode=mode,
            columns=rule.event_columns,
            key_pattern=pattern,
        )
