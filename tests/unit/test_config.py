"""Configuration: the example file, the reference defaults, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from sidecar.config import InitialLoadMode, load_config, parse_config
from sidecar.errors import ConfigError, UnroutedMapError
from sidecar.providers.base import StoreKind
from sidecar.routing import Router

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
