"""Configuration: the example file, the reference defaults, errors that name the key."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from sidecar.codec.temporal import LocalDateTime, OffsetDateTime
from sidecar.config import InitialLoadMode, SidecarConfig, load_config, parse_config
from sidecar.errors import ConfigError, KeyTemplateError, UnroutedMapError
from sidecar.providers import create_provider
from sidecar.providers.base import EventColumns, StoreKind
from sidecar.routing import Route, Router

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "sidecar.yaml"


def test_example_config_is_valid() -> None:
    config = load_config(EXAMPLE, environ={})
    assert config.provider.name == "sqlite"
    assert config.persistence.enabled is True
    assert [r.pattern for r in config.maps] == ["*_ES", "*_VIEW"]


def test_reference_defaults_are_kept_exactly() -> None:
    p = parse_config({}, environ={}).persistence
    assert (p.enabled, p.write_delay_seconds, p.write_batch_size, p.write_coalescing) == (
        False,
        5,
        100,
        False,
    )
    assert p.initial_load_mode is InitialLoadMode.LAZY
    assert (p.event_store_eviction.max_size, p.event_store_eviction.max_idle_seconds) == (10000, 0)
    assert p.view_store_eviction.max_idle_seconds == 3600
    assert p.view_store_eviction.eviction_policy.value == "LRU"
    assert p.view_store_eviction.max_size_policy.value == "PER_NODE"


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"listen": {"adress": "x"}}, "listen.adress"),
        ({"listen": {"address": "nohost"}}, "listen.address"),
        (
            {"maps": [{"pattern": "*_ES", "kind": "event"}, {"pattern": "x", "kind": "log"}]},
            "maps[1].kind",
        ),
        (
            {"framework": {"persistence": {"write-batch-size": 0}}},
            "framework.persistence.write-batch-size",
        ),
        (
            {"framework": {"persistence": {"view-store-eviction": {"eviction-policy": "MRU"}}}},
            "framework.persistence.view-store-eviction.eviction-policy",
        ),
        ({"logging": {"level": "LOUD"}}, "logging.level"),
        (
            {"maps": [{"pattern": "*", "kind": "event", "event-columns": {"key-pattern": "("}}]},
            "key-pattern",
        ),
    ],
)
def test_a_wrong_key_or_value_is_an_error_that_names_it(
    data: dict[str, object], named: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ={})
    assert named in str(info.value)


def test_environment_overrides_the_file() -> None:
    config = parse_config(
        {"listen": {"address": "127.0.0.1:1"}},
        environ={
            "HZ_SIDECAR_LISTEN__ADDRESS": "unix:///tmp/x.sock",
            "HZ_SIDECAR_FRAMEWORK__PERSISTENCE__WRITE_DELAY_SECONDS": "1",
            "HZ_SIDECAR_FRAMEWORK__PERSISTENCE__ENABLED": "true",
            "HZ_SIDECAR_PROVIDER__SETTINGS__PATH": "/var/lib/hz/db.sqlite",
            "UNRELATED": "x",
        },
    )
    assert config.listen.unix_path == "/tmp/x.sock"
    assert config.persistence.write_delay_seconds == 1
    assert config.persistence.enabled is True
    assert config.provider.settings == {"path": "/var/lib/hz/db.sqlite"}


def test_environment_override_with_a_wrong_value_names_the_key() -> None:
    with pytest.raises(ConfigError, match="write-delay-seconds"):
        parse_config({}, environ={"HZ_SIDECAR_FRAMEWORK__PERSISTENCE__WRITE_DELAY_SECONDS": "soon"})


def test_unreadable_or_non_mapping_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(tmp_path / "missing.yaml", environ={})
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(bad, environ={})
    broken = tmp_path / "broken.yaml"
    broken.write_text("listen: {address: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken, environ={})


def test_routes_first_match_wins_and_defaults_follow_the_reference() -> None:
    config = parse_config(
        {
            "maps": [
                {"pattern": "Audit_*", "kind": "event", "initial-load-mode": "EAGER"},
                {"pattern": "*_ES", "kind": "event"},
                {"pattern": "*_VIEW", "kind": "view"},
            ]
        },
        environ={},
    )
    router = Router(config.maps, config.persistence)
    assert router.route("Orders_ES").kind is StoreKind.EVENT
    assert router.route("Orders_ES").initial_load_mode is InitialLoadMode.LAZY
    assert router.route("Customer_VIEW").initial_load_mode is InitialLoadMode.EAGER
    assert router.route("Audit_ES").initial_load_mode is InitialLoadMode.EAGER
    with pytest.raises(UnroutedMapError, match="'orders_es' matches no route"):
        router.route("orders_es")


def test_event_columns_come_from_fields_then_the_key_pattern() -> None:
    config = parse_config(
        {
            "maps": [
                {
                    "pattern": "*_ES",
                    "kind": "event",
                    "event-columns": {
                        "key-pattern": r"^(?P<aggregate_id>[^:]+):(?P<sequence>\d+)$"
                    },
                }
            ]
        },
        environ={},
    )
    route = Router(config.maps, config.persistence).route("Orders_ES")
    columns = route.event_columns(
        "order-7:12",
        {"eventType": "OrderPlaced", "timestampMillis": 1_700_000_000_000, "correlationId": "c-1"},
    )
    assert (columns.aggregate_id, columns.sequence) == ("order-7", 12)
    assert (columns.event_type, columns.timestamp_millis, columns.correlation_id) == (
        "OrderPlaced",
        1_700_000_000_000,
        "c-1",
    )
    from_fields = route.event_columns(
        "order-7:12", {"aggregateId": "A", "sequence": 3, "eventType": 5}
    )
    assert (from_fields.aggregate_id, from_fields.sequence, from_fields.event_type) == ("A", 3, "5")
    assert route.event_columns("no-match", None).aggregate_id is None


def _route(maps: list[dict[str, object]], name: str) -> Route:
    config = parse_config({"maps": maps}, environ={})
    return Router(config.maps, config.persistence).route(name)


def test_default_event_columns_cover_the_reference_framework_shapes() -> None:
    route = _route([{"pattern": "*_ES", "kind": "event"}], "Customer_ES")
    key_fields = {"sequence": 1_000_007, "partitionKey": "cust-7"}
    value = {
        "eventType": "CustomerCreatedEvent",
        "timestamp": 1_700_000_000_007,
        "correlationId": "corr-1",
        "key": "cust-7",
    }
    columns = route.event_columns("seq:1000007|key:cust-7", value, key_fields)
    assert columns == EventColumns(
        "cust-7", 1_000_007, "CustomerCreatedEvent", 1_700_000_000_007, "corr-1"
    )
    # timestampMillis wins over timestamp; the key's fields over the value's.
    both = {**value, "timestampMillis": 5, "aggregateId": "other", "sequence": 9}
    columns = route.event_columns("k", both, key_fields)
    assert (columns.timestamp_millis, columns.aggregate_id, columns.sequence) == (
        5,
        "cust-7",
        1_000_007,
    )
    # Without a key record, the value's own fields.
    columns = route.event_columns("k", both, None)
    assert (columns.aggregate_id, columns.sequence) == ("other", 9)


@pytest.mark.parametrize(
    ("value", "millis"),
    [
        (OffsetDateTime.parse("2023-11-14T22:13:20.007+02:00"), 1_699_992_800_007),
        ("2023-11-14T22:13:20.007123456+02:00", 1_699_992_800_007),
        ("2023-11-14T20:13:20.007Z", 1_699_992_800_007),
        (LocalDateTime.parse("2023-11-14T20:13:20.007"), 1_699_992_800_007),
        ("2023-11-14T20:13:20.007", 1_699_992_800_007),
        ("1970-01-01T00:00:00-00:00:01", 1000),
        ("not a time", None),
        (True, None),
        (12.5, None),
    ],
)
def test_timestamp_millis_reads_int64_and_date_time_kinds(
    value: object, millis: int | None
) -> None:
    route = _route([{"pattern": "*_ES", "kind": "event"}], "A_ES")
    assert route.event_columns("k", {"timestamp": value}).timestamp_millis == millis


def test_event_columns_sources_are_configurable_per_column() -> None:
    route = _route(
        [
            {
                "pattern": "*_ES",
                "kind": "event",
                "event-columns": {
                    "aggregate-id": ["key.customer", "customerId"],
                    "sequence": "key.line",
                    "event-type": "kind",
                },
            }
        ],
        "Orders_ES",
    )
    columns = route.event_columns("x", {"kind": "Shipped", "customerId": "c9"}, {"line": 4})
    assert (columns.aggregate_id, columns.sequence, columns.event_type) == ("c9", 4, "Shipped")
    with pytest.raises(ConfigError, match=r"event-columns\.sequence"):
        parse_config(
            {"maps": [{"pattern": "*", "kind": "event", "event-columns": {"sequence": "key."}}]},
            environ={},
        )


def test_java_key_text_is_the_reference_form_or_the_route_template() -> None:
    psk = {
        "@class": "com.theyawns.framework.store.PartitionedSequenceKey",
        "sequence": -3,
        "partitionKey": "a|b",
    }
    order = {
        "@class": "com.acme.OrderKey",
        "region": "eu",
        "number": 12,
        "rush": True,
        "note": None,
    }
    plain = _route([{"pattern": "*", "kind": "view"}], "X_VIEW")
    assert plain.java_key_text(psk) == "seq:-3|key:a|b"
    assert plain.java_key_text(order).startswith('{"@class":"com.acme.OrderKey"')
    templated = _route(
        [{"pattern": "*", "kind": "event", "key-template": "{region}/{number}/{rush}/{note}"}],
        "Orders_ES",
    )
    assert templated.java_key_text(order) == "eu/12/true/null"
    assert templated.java_key_text(psk) == "seq:-3|key:a|b"
    with pytest.raises(KeyTemplateError, match=r"'com\.acme\.Other' has no scalar field 'region'"):
        templated.java_key_text({"@class": "com.acme.Other", "id": 1})


@pytest.mark.parametrize("template", ["{region", "plain text", "{0}", "{a!r}", "{a:>5}", "{a.b}"])
def test_a_key_template_that_is_not_plain_field_names_is_refused(template: str) -> None:
    with pytest.raises(ConfigError, match="key-template"):
        parse_config(
            {"maps": [{"pattern": "*", "kind": "event", "key-template": template}]}, environ={}
        )


@pytest.mark.parametrize("name", ["memory", "postgres", "sqlite"])
def test_a_provider_block_without_settings_takes_the_providers_defaults(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL from the PG* environment variables alone: no settings at all.
    monkeypatch.chdir(tmp_path)
    config = SidecarConfig.model_validate({"provider": {"name": name}})
    assert config.provider.settings == {}
    provider = create_provider(name, config.provider.settings)
    assert provider.name == name
    if name == "sqlite":

        async def open_and_close() -> None:
            async with provider:
                pass

        asyncio.run(open_and_close())
        assert (tmp_path / "data" / "hz-sidecar.db").is_file()
