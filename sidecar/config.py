"""Configuration: one YAML file (plus environment overrides) into a typed model.

Keys are kebab-case, as in the reference framework's ``framework.persistence``
block, whose keys and defaults are kept exactly. An unknown key or a wrong
value is an error that names it (``maps[1].kind: ...``).

Environment variables override the file: ``HZ_SIDECAR_<PATH>``, with ``__``
between levels and ``_`` for ``-`` inside a key. The value of a string key is
taken as it is (``HZ_SIDECAR_LISTEN__SOCKET_MODE=0600`` stays ``"0600"``, a
token keeps its characters); other values are read as YAML (numbers, booleans,
``{...}``/``[...]``), and as a plain string when they are not YAML. For example
``HZ_SIDECAR_LISTEN__ADDRESS=unix:///run/hz.sock`` or
``HZ_SIDECAR_FRAMEWORK__PERSISTENCE__WRITE_DELAY_SECONDS=1``.

No error message repeats a value of the configuration that could be secret: a
YAML syntax error is reported by line and column without the offending text.
"""

from __future__ import annotations

import enum
import os
import re
import string
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from sidecar.errors import ConfigError
from sidecar.providers.base import StoreKind

ENV_PREFIX = "HZ_SIDECAR_"


def _kebab(name: str) -> str:
    return name.replace("_", "-")


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=_kebab, populate_by_name=True, extra="forbid", frozen=True
    )


class InitialLoadMode(enum.StrEnum):
    """Hazelcast's MapStoreConfig.InitialLoadMode."""

    LAZY = "LAZY"
    EAGER = "EAGER"


class MaxSizePolicy(enum.StrEnum):
    """Hazelcast's MaxSizePolicy values that apply to an IMap."""

    PER_NODE = "PER_NODE"
    PER_PARTITION = "PER_PARTITION"
    USED_HEAP_SIZE = "USED_HEAP_SIZE"
    USED_HEAP_PERCENTAGE = "USED_HEAP_PERCENTAGE"
    FREE_HEAP_SIZE = "FREE_HEAP_SIZE"
    FREE_HEAP_PERCENTAGE = "FREE_HEAP_PERCENTAGE"
    USED_NATIVE_MEMORY_SIZE = "USED_NATIVE_MEMORY_SIZE"
    USED_NATIVE_MEMORY_PERCENTAGE = "USED_NATIVE_MEMORY_PERCENTAGE"
    FREE_NATIVE_MEMORY_SIZE = "FREE_NATIVE_MEMORY_SIZE"
    FREE_NATIVE_MEMORY_PERCENTAGE = "FREE_NATIVE_MEMORY_PERCENTAGE"


class EvictionPolicy(enum.StrEnum):
    LRU = "LRU"
    LFU = "LFU"
    RANDOM = "RANDOM"
    NONE = "NONE"


class EvictionConfig(_Model):
    """The reference's ``event-store-eviction`` / ``view-store-eviction`` block."""

    enabled: bool = True
    max_size: int = Field(default=10000, ge=0)
    max_size_policy: MaxSizePolicy = MaxSizePolicy.PER_NODE
    eviction_policy: EvictionPolicy = EvictionPolicy.LRU
    max_idle_seconds: int = Field(default=0, ge=0)


class PersistenceConfig(_Model):
    """The reference framework's ``framework.persistence`` block, same keys and defaults."""

    enabled: bool = False
    write_delay_seconds: int = Field(default=5, ge=0)
    write_batch_size: int = Field(default=100, ge=1)
    write_coalescing: bool = False
    initial_load_mode: InitialLoadMode = InitialLoadMode.LAZY
    event_store_eviction: EvictionConfig = EvictionConfig()
    view_store_eviction: EvictionConfig = EvictionConfig(max_idle_seconds=3600)


class FrameworkConfig(_Model):
    persistence: PersistenceConfig = PersistenceConfig()


#: Where a column's value is looked up: ``field`` (the value's top-level field) or
#: ``key.field`` (a field of a record-like key: Java-serialized or Compact).
_SOURCE = re.compile(r"(key\.)?[A-Za-z_$][A-Za-z0-9_$]*")
_TEMPLATE_FIELD = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*")


def _sources(value: object) -> object:
    # One name or a list of names, tried in order.
    return (value,) if isinstance(value, str) else value


class EventColumnsConfig(_Model):
    """Which fields fill the reference's event columns.

    Each column lists its sources, tried in order until one holds a value of
    the column's type: ``eventType`` names a top-level field of the value,
    ``key.partitionKey`` a field of the key (a Java-serialized key such as the
    reference framework's ``PartitionedSequenceKey``, or a Compact key). A
    column none of whose sources holds a value stays NULL. ``timestamp-millis``
    takes an INT64 of epoch milliseconds, a TIMESTAMP_WITH_TIMEZONE, or a
    TIMESTAMP (read as UTC). ``key-pattern`` is a regular expression matched
    against the key text whose named groups ``aggregate_id`` and ``sequence``
    fill those columns when no source does.
    """

    event_type: tuple[str, ...] = ("eventType",)
    timestamp_millis: tuple[str, ...] = ("timestampMillis", "timestamp")
    correlation_id: tuple[str, ...] = ("correlationId",)
    aggregate_id: tuple[str, ...] = ("key.partitionKey", "aggregateId")
    sequence: tuple[str, ...] = ("key.sequence", "sequence")
    key_pattern: str | None = None

    @field_validator(
        "event_type",
        "timestamp_millis",
        "correlation_id",
        "aggregate_id",
        "sequence",
        mode="before",
    )
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return _sources(value)

    @field_validator("event_type", "timestamp_millis", "correlation_id", "aggregate_id", "sequence")
    @classmethod
    def _names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for name in value:
            if _SOURCE.fullmatch(name) is None:
                raise ValueError(
                    f"{name!r} is not a field name ('field' of the value, 'key.field' of the key)"
                )
        return value

    @field_validator("key_pattern")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


def template_fields(template: str) -> tuple[str, ...]:
    """The field names of a key template (``{region}/{number}``), in order.

    Raises:
        ValueError: braces that do not pair, a conversion or format spec, a
            name that is not a Java field name, or no field at all.
    """
    names: list[str] = []
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ValueError(f"key-template {template!r}: {exc}") from None
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or _TEMPLATE_FIELD.fullmatch(name) is None:
            raise ValueError(
                f"key-template {template!r}: '{{{name}{'!' + conversion if conversion else ''}"
                f"{':' + spec if spec else ''}}}' must be a plain field name in braces"
            )
        names.append(name)
    if not names:
        raise ValueError(f"key-template {template!r} names no key field")
    return tuple(names)


class MapRoute(_Model):
    """A route: maps whose name matches ``pattern`` (shell glob) and how they are stored.

    ``key-template`` makes the stored key text of Java-serialized keys of other
    classes than the reference's ``PartitionedSequenceKey`` from their fields
    (``"{region}/{number}"``); without it such a key's text is its readable
    document as compact JSON.

    ``write-coalescing`` is for the member only (``hz-sidecar member-config``
    renders it; :func:`sidecar.member_config.write_coalescing` resolves it when
    unset). The sidecar stores whatever the member hands it either way.
    """

    pattern: str = Field(min_length=1)
    kind: StoreKind
    initial_load_mode: InitialLoadMode | None = None
    write_coalescing: bool | None = None
    event_columns: EventColumnsConfig = EventColumnsConfig()
    key_template: str | None = None

    @field_validator("key_template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            template_fields(value)
        return value


def _default_routes() -> tuple[MapRoute, ...]:
    return (
        MapRoute(pattern="*_ES", kind=StoreKind.EVENT),
        MapRoute(pattern="*_VIEW", kind=StoreKind.VIEW),
    )


class ListenConfig(_Model):
    """Where the gRPC server listens and its transport limits."""

    address: str = "127.0.0.1:50051"
    socket_mode: str = "0660"
    max_message_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)
    graceful_shutdown_seconds: float = Field(default=30.0, ge=0)
    health_check_interval_seconds: float = Field(default=5.0, gt=0)
    #: A provider that does not answer its probe within this is NOT_SERVING.
    health_check_timeout_seconds: float = Field(default=2.0, gt=0)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        if value.startswith("unix://"):
            if not value.removeprefix("unix://"):
                raise ValueError("unix:// address needs a socket path")
            return value
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"expected host:port or unix:///path, got {value!r}")
        return value

    @field_validator("socket_mode", mode="before")
    @classmethod
    def _mode_is_text(cls, value: object) -> object:
        # YAML reads an unquoted 0600 as the number 384: which digits were meant is lost.
        if isinstance(value, int) and not isinstance(value, bool):
            raise ValueError('expected an octal file mode as a quoted string such as "0660"')
        return value

    @field_validator("socket_mode")
    @classmethod
    def _mode(cls, value: str) -> str:
        if not re.fullmatch(r"0?[0-7]{3}", value):
            raise ValueError(f"expected an octal file mode such as 0660, got {value!r}")
        return value

    @property
    def unix_path(self) -> str | None:
        """The socket path for a ``unix://`` address, else None."""
        if self.address.startswith("unix://"):
            return self.address.removeprefix("unix://")
        return None


class ProviderConfig(_Model):
    """The provider by name (memory, sqlite, postgres, or an entry point) and its settings."""

    name: str = "sqlite"
    # Each provider has its own defaults (SQLite's path is data/hz-sidecar.db): a block
    # without settings (PostgreSQL from the PG* environment variables) gets those.
    settings: dict[str, Any] = Field(default_factory=dict)


class LoggingConfig(_Model):
    level: str = "INFO"
    format: str = "text"

    @field_validator("level")
    @classmethod
    def _level(cls, value: str) -> str:
        upper = value.upper()
        if upper not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError(f"unknown log level {value!r}")
        return upper

    @field_validator("format")
    @classmethod
    def _format(cls, value: str) -> str:
        if value not in {"text", "json"}:
            raise ValueError(f"expected 'text' or 'json', got {value!r}")
        return value


class OnPoison(enum.StrEnum):
    """What a Store call does with an entry whose bytes cannot be decoded."""

    DEAD_LETTER = "dead-letter"
    REJECT = "reject"


class LimitsConfig(_Model):
    """Bounds on what one call may ask for (``listen.max-message-bytes`` bounds its size),
    and on the work the sidecar takes on at once (:mod:`sidecar.admission`)."""

    max_entries_per_call: int = Field(default=100_000, ge=1)
    max_nesting_depth: int = Field(default=64, ge=1, le=256)
    # A Store costs about 4.5 times its request bytes while it is decoded and written
    # (64 MiB of entries peak near 340 MB RSS), so 64 MiB in flight, with the process's
    # own ~80 MB, fits the 512Mi container of deploy/k8s.
    max_in_flight_bytes: int = Field(default=64 * 1024 * 1024, ge=1)
    max_calls_in_flight: int = Field(default=64, ge=1)
    max_schemas_per_call: int = Field(default=1_000, ge=1)
    max_schemas: int = Field(default=100_000, ge=1)
    max_fields_per_schema: int = Field(default=10_000, ge=1)


class TlsConfig(_Model):
    """TLS on a TCP listener: on when ``cert-file`` is set; mutual when ``client-ca-file`` is.

    The files are re-read when they change (checked at each new connection),
    so a rotated certificate takes effect without a restart.
    """

    cert_file: str | None = None
    key_file: str | None = None
    client_ca_file: str | None = None

    @model_validator(mode="after")
    def _pairs(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert-file and key-file go together")
        if self.client_ca_file is not None and self.cert_file is None:
            raise ValueError("client-ca-file (mutual TLS) needs cert-file and key-file")
        return self

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


class SecurityConfig(_Model):
    """Who may call the sidecar: an optional bearer token, and TLS on TCP."""

    token: SecretStr | None = None
    token_file: str | None = None
    tls: TlsConfig = TlsConfig()

    @model_validator(mode="after")
    def _one_token(self) -> SecurityConfig:
        if self.token is not None and self.token_file is not None:
            raise ValueError("set token or token-file, not both")
        if self.token is not None and not self.token.get_secret_value():
            raise ValueError("token is empty")
        return self


class PrometheusConfig(_Model):
    """The Prometheus scrape endpoint (``GET /metrics``), served by the sidecar itself."""

    enabled: bool = False
    # Loopback unless told otherwise: a scraper in another container or pod needs 0.0.0.0.
    host: str = "127.0.0.1"
    port: int = Field(default=9464, ge=0, le=65535)


class OtlpConfig(_Model):
    """OTLP/gRPC export of metrics and spans to a collector."""

    enabled: bool = False
    endpoint: str = "http://localhost:4317"
    insecure: bool = True
    metrics: bool = True
    traces: bool = True
    export_interval_seconds: float = Field(default=15.0, gt=0)


class TelemetryConfig(_Model):
    """Metrics and traces (OpenTelemetry); everything off by default, and then free."""

    service_name: str = Field(default="hz-sidecar", min_length=1)
    prometheus: PrometheusConfig = PrometheusConfig()
    otlp: OtlpConfig = OtlpConfig()
    span_file: str | None = None

    @property
    def metrics_enabled(self) -> bool:
        return self.prometheus.enabled or (self.otlp.enabled and self.otlp.metrics)

    @property
    def tracing_enabled(self) -> bool:
        return self.span_file is not None or (self.otlp.enabled and self.otlp.traces)


class BatchingConfig(_Model):
    """Group commit (:mod:`sidecar.writer`): concurrent Store calls of a map share one commit."""

    enabled: bool = True
    max_rows: int = Field(default=1000, ge=1)
    max_wait_ms: float = Field(default=2.0, ge=0, le=1000)


class CodecAccelerator(enum.StrEnum):
    """Whether flat Compact records decode through the compiled accelerator (``codec.accel``)."""

    AUTO = "auto"  # when it is built
    DISABLED = "disabled"  # the pure-Python codec, even when it is built
    REQUIRED = "required"  # refuse to start without it


class CodecConfig(_Model):
    """The codec: which implementation decodes flat Compact records."""

    accelerator: CodecAccelerator = CodecAccelerator.AUTO


class SidecarConfig(_Model):
    """The whole configuration file."""

    listen: ListenConfig = ListenConfig()
    provider: ProviderConfig = ProviderConfig()
    maps: tuple[MapRoute, ...] = Field(default_factory=_default_routes)
    framework: FrameworkConfig = FrameworkConfig()
    logging: LoggingConfig = LoggingConfig()
    on_poison: OnPoison = OnPoison.DEAD_LETTER
    limits: LimitsConfig = LimitsConfig()
    security: SecurityConfig = SecurityConfig()
    telemetry: TelemetryConfig = TelemetryConfig()
    batching: BatchingConfig = BatchingConfig()
    codec: CodecConfig = CodecConfig()

    @field_validator("maps")
    @classmethod
    def _routes(cls, routes: tuple[MapRoute, ...]) -> tuple[MapRoute, ...]:
        if not routes:
            raise ValueError(
                "no route: every map would be refused; list at least one pattern and kind "
                "(or leave `maps` out for the defaults *_ES and *_VIEW)"
            )
        first: dict[str, int] = {}
        for index, route in enumerate(routes):
            if route.pattern in first:
                raise ValueError(
                    f"maps[{index}].pattern {route.pattern!r} repeats maps[{first[route.pattern]}]"
                    " (the first matching route wins, so this one would never apply)"
                )
            first[route.pattern] = index
        return routes

    @property
    def persistence(self) -> PersistenceConfig:
        return self.framework.persistence


def _target_type(path: list[str]) -> Any:
    """The annotation of the key at ``path`` (kebab-case), or None when the model has no such key.

    Below a free-form mapping (``provider.settings``) the type is ``Any``.
    """
    annotation: Any = SidecarConfig
    for part in path:
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return Any
        field = next(
            (f for name, f in annotation.model_fields.items() if (f.alias or name) == part), None
        )
        if field is None:
            return None
        annotation = field.annotation
        options = [a for a in typing.get_args(annotation) if a is not type(None)]
        if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(options) == 1:
            annotation = options[0]
    return annotation


def _env_value(path: list[str], raw: str) -> Any:
    """An environment value for the key at ``path``: a string key's text as it is, else YAML.

    YAML alone would turn ``0600`` into 384 and ``OFF`` into false, and could echo a
    token in its error message.
    """
    if not raw or _target_type(path) in (str, SecretStr):
        return raw
    try:
        value = yaml.safe_load(raw)
    except yaml.YAMLError:
        return raw  # not YAML: a string (the model names the key if it wants something else)
    if isinstance(value, dict | list) and not raw.lstrip().startswith(("{", "[")):
        return raw  # "a: b" is text (a DSN, say), not a mapping, unless written as {a: b}
    return value


#: Quoted text in a YAML error message other than a token name such as '<stream end>'.
_QUOTED = re.compile(r"'(?!<)[^']*'|\"(?!<)[^\"]*\"")


def _yaml_error(exc: yaml.YAMLError) -> str:
    """A YAML syntax error without the document's text (which may hold a secret)."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return type(exc).__name__
    parts = [_QUOTED.sub("'...'", text) for text in (exc.context, exc.problem) if text]
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"{', '.join(parts) or 'syntax error'}{where}"


def _env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    for name in sorted(environ):
        if not name.startswith(ENV_PREFIX):
            continue
        path = [p.lower().replace("_", "-") for p in name[len(ENV_PREFIX) :].split("__")]
        if not all(path):
            raise ConfigError(f"environment variable {name}: empty key segment")
        node: dict[str, Any] = data
        for part in path[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                raise ConfigError(
                    f"environment variable {name}: {part!r} is not a mapping in the configuration"
                )
            node = child
        node[path[-1]] = _env_value(path, environ[name])
    return data


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        loc = ""
        for part in err["loc"]:
            loc += f"[{part}]" if isinstance(part, int) else (f".{part}" if loc else str(part))
        lines.append(f"{loc or '<root>'}: {err['msg']}")
    return "; ".join(lines)


def parse_config(
    data: Mapping[str, Any] | None, *, environ: Mapping[str, str] | None = None
) -> SidecarConfig:
    """Validate a configuration mapping (as loaded from YAML) with environment overrides."""
    raw: dict[str, Any] = dict(data or {})
    raw = _env_overrides(raw, os.environ if environ is None else environ)
    try:
        return SidecarConfig.model_validate(raw)
    except ValidationError as exc:
        # Not chained: a ValidationError's text repeats every input, secrets included.
        raise ConfigError(f"invalid configuration: {_describe(exc)}") from None


def load_config(
    path: str | Path | None, *, environ: Mapping[str, str] | None = None
) -> SidecarConfig:
    """Read and validate the YAML file at ``path`` (None: defaults and environment only)."""
    data: Any = {}
    if path is not None:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"cannot read configuration file {path}: {exc}") from exc
        try:
            data = yaml.safe_load(text) or {}
        except yaml.YAMLError as exc:
            raise ConfigError(f"{path}: not valid YAML: {_yaml_error(exc)}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path}: the top level must be a mapping")
    try:
        return parse_config(data, environ=environ)
    except ConfigError as exc:
        raise ConfigError(f"{path or 'configuration'}: {exc}") from exc
