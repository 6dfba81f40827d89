"""Map name → how the map is stored: store kind, initial load mode, event columns.

Routes are tried in configuration order and the first glob that matches wins.
An unrouted map is an error (FAILED_PRECONDITION), never a silent default:
a map persisted under the wrong semantics (an event log upserted, a view
appended) is worse than one that fails loudly.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, TypeVar

from sidecar.codec.data import (
    DecodedKey,
    DecodedValue,
    default_java_key_text,
    java_fields,
    reference_key_text,
)
from sidecar.codec.javaser import CLASS_KEY
from sidecar.codec.temporal import LocalDateTime, OffsetDateTime
from sidecar.config import (
    EventColumnsConfig,
    InitialLoadMode,
    MapRoute,
    PersistenceConfig,
    template_fields,
)
from sidecar.errors import DecodeError, KeyTemplateError, UnroutedMapError
from sidecar.providers.base import EventColumns, StoreEntry, StoreKind

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Route:
    """The resolved storage semantics of one map."""

    map_name: str
    kind: StoreKind
    initial_load_mode: InitialLoadMode
    columns: EventColumnsConfig
    key_pattern: re.Pattern[str] | None
    key_template: str | None = None
    #: The field names ``key_template`` names, parsed once.
    template_names: tuple[str, ...] = ()
    #: The event columns' sources, parsed once (see :func:`_sources`).
    sources: tuple[Sources, Sources, Sources, Sources, Sources] = ((), (), (), (), ())

    def java_key_text(self, document: Mapping[str, object]) -> str:
        """The stored text of a Java-serialized key of this map (see :mod:`sidecar.codec.data`).

        The reference's ``PartitionedSequenceKey`` always reads as
        ``seq:{sequence}|key:{partitionKey}``; another class follows the
        route's ``key-template`` when there is one.

        Raises:
            KeyTemplateError: the key lacks a field the template names.
        """
        if self.key_template is None:
            return default_java_key_text(document)
        reference = reference_key_text(document)
        if reference is not None:
            return reference
        values: dict[str, str] = {}
        for name in self.template_names:
            value = document.get(name)
            if name not in document or isinstance(value, dict | list):
                raise KeyTemplateError(
                    f"key of class {document.get(CLASS_KEY)!r} has no scalar field {name!r} "
                    f"for the route's key-template {self.key_template!r} (its fields: "
                    f"{', '.join(sorted(java_fields(document)))})",
                    map_name=self.map_name,
                )
            values[name] = "null" if value is None else _scalar_text(value)
        return self.key_template.format_map(values)

    def store_entry(self, key: DecodedKey, value: DecodedValue) -> StoreEntry:
        """The row of one decoded entry: event columns filled for an event map."""
        event = None
        if self.kind is StoreKind.EVENT:
            event = self.event_columns(key.stored.text, value.fields, key.fields)
        return StoreEntry(key=key.stored, value=value.stored, event=event)

    def event_columns(
        self,
        key_text: str,
        fields: Mapping[str, Any] | None,
        key_fields: Mapping[str, Any] | None = None,
    ) -> EventColumns:
        """Fill the reference's event columns from the value's and the key's fields.

        Each column takes the first of its configured sources that holds a value
        of the column's type; anything else leaves the column NULL (the full
        record is in ``event_data`` anyway).
        """
        value_fields = fields or _NO_FIELDS
        key_fields = key_fields or _NO_FIELDS
        aggregate_sources, sequence_sources, type_sources, time_sources, correlation_sources = (
            self.sources
        )
        aggregate_id = _first(aggregate_sources, value_fields, key_fields, _text)
        sequence = _first(sequence_sources, value_fields, key_fields, _integer)
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
            event_type=_first(type_sources, value_fields, key_fields, _text),
            timestamp_millis=_first(time_sources, value_fields, key_fields, _epoch_millis),
            correlation_id=_first(correlation_sources, value_fields, key_fields, _text),
        )


#: A column's sources, parsed once: (read from the key's fields, field name) each.
Sources = tuple[tuple[bool, str], ...]
_NO_FIELDS: Mapping[str, Any] = {}


def _sources(columns: EventColumnsConfig) -> tuple[Sources, Sources, Sources, Sources, Sources]:
    """The event columns' sources in the order :meth:`Route.event_columns` reads them."""

    def parse(names: tuple[str, ...]) -> Sources:
        return tuple((True, n[4:]) if n.startswith("key.") else (False, n) for n in names)

    return (
        parse(columns.aggregate_id),
        parse(columns.sequence),
        parse(columns.event_type),
        parse(columns.timestamp_millis),
        parse(columns.correlation_id),
    )


def _first(
    sources: Sources,
    value_fields: Mapping[str, Any],
    key_fields: Mapping[str, Any],
    convert: Callable[[Any], T | None],
) -> T | None:
    for from_key, name in sources:
        found = convert((key_fields if from_key else value_fields).get(name))
        if found is not None:
            return found
    return None


def _scalar_text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


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


def _epoch_millis(value: Any) -> int | None:
    """Epoch milliseconds of an INT64, a TIMESTAMP_WITH_TIMEZONE or a TIMESTAMP (as UTC).

    Date/time fields come as the codec's objects, or as their ISO text when a
    compiled decoder read them (so an ISO text in a STRING field is read the same
    way); anything else is no timestamp.
    """
    if isinstance(value, str):
        try:
            if _HAS_OFFSET.search(value):
                value = OffsetDateTime.parse(value)
            else:
                value = LocalDateTime.parse(value)
        except DecodeError:
            return None
    if isinstance(value, OffsetDateTime):
        return _millis(value.datetime, value.offset_seconds)
    if isinstance(value, LocalDateTime):
        return _millis(value, 0)
    return _integer(value)


def _millis(local: LocalDateTime, offset_seconds: int) -> int | None:
    date, time = local.date, local.time
    try:
        days = dt.date(date.year, date.month, date.day).toordinal() - _EPOCH_ORDINAL
    except ValueError:  # a year outside Python's 1..9999
        return None
    seconds = days * 86400 + time.hour * 3600 + time.minute * 60 + time.second - offset_seconds
    return _integer(seconds * 1000 + time.nano // 1_000_000)


_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
#: An ISO timestamp text with an offset (``...+02:00``, ``...Z``), as the codec writes it.
_HAS_OFFSET = re.compile(r"T.*(?:[+-]\d{2}:\d{2}(?::\d{2})?|Z)$")


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
            key_template=rule.key_template,
            template_names=template_fields(rule.key_template) if rule.key_template else (),
            sources=_sources(rule.event_columns),
        )
