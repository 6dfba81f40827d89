"""Rendering the Hazelcast member's map configuration from the sidecar configuration."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from sidecar.cli import EXIT_CONFIG, EXIT_OK, main
from sidecar.config import SidecarConfig, load_config, parse_config
from sidecar.errors import ConfigError
from sidecar.member_config import FACTORY_CLASS_NAME, render_member_config, render_member_yaml
from sidecar.routing import Router

ROOT = Path(__file__).resolve().parents[2]


def config(**data: Any) -> SidecarConfig:
    data.setdefault("framework", {"persistence": {"enabled": True}})
    return parse_config(data, environ={})


def maps(cfg: SidecarConfig, **kwargs: Any) -> dict[str, Any]:
    rendered: dict[str, Any] = render_member_config(cfg, **kwargs)["hazelcast"]["map"]
    return rendered


def test_example_config_renders_the_reference_table_for_events_and_views() -> None:
    rendered = maps(load_config(ROOT / "config" / "sidecar.yaml", environ={}))
    assert list(rendered) == ["*_ES", "*_VIEW"]
    events, views = rendered["*_ES"], rendered["*_VIEW"]
    assert events["map-store"] == {
        "enabled": True,
        "factory-class-name": FACTORY_CLASS_NAME,
        "write-delay-seconds": 5,
        "write-batch-size": 100,
        "write-coalescing": False,
        "initial-mode": "LAZY",
        "properties": {"sidecar.address": "127.0.0.1:50051", "sidecar.deadline-ms": 10000},
    }
    assert views["map-store"]["write-coalescing"] is True
    assert views["map-store"]["initial-mode"] == "EAGER"
    assert events["eviction"] == {
        "eviction-policy": "LRU",
        "max-size-policy": "PER_NODE",
        "size": 10000,
    }
    assert events["max-idle-seconds"] == 0
    assert views["max-idle-seconds"] == 3600


def test_initial_mode_agrees_with_the_router_for_every_route() -> None:
    cfg = config(
        maps=[
            {"pattern": "Audit_*", "kind": "event", "initial-load-mode": "EAGER"},
            {"pattern": "ColdView_*", "kind": "view", "initial-load-mode": "LAZY"},
            {"pattern": "*_ES", "kind": "event"},
            {"pattern": "*_VIEW", "kind": "view"},
        ],
        framework={"persistence": {"enabled": True, "initial-load-mode": "EAGER"}},
    )
    router = Router(cfg.maps, cfg.persistence)
    rendered = maps(cfg)
    for name, pattern in [
        ("Audit_x", "Audit_*"),
        ("Orders_ES", "*_ES"),
        ("ColdView_x", "ColdView_*"),
        ("Customer_VIEW", "*_VIEW"),
    ]:
        mode = rendered[pattern]["map-store"]["initial-mode"]
        assert mode == router.route(name).initial_load_mode.value, name


def test_event_maps_take_the_framework_coalescing_and_views_coalesce_by_default() -> None:
    cfg = config(framework={"persistence": {"enabled": True, "write-coalescing": True}})
    assert maps(cfg)["*_ES"]["map-store"]["write-coalescing"] is True
    cfg = config(framework={"persistence": {"enabled": True, "write-coalescing": False}})
    assert maps(cfg)["*_ES"]["map-store"]["write-coalescing"] is False
    assert maps(cfg)["*_VIEW"]["map-store"]["write-coalescing"] is True


def coalescing_routes(**persistence: Any) -> SidecarConfig:
    return config(
        maps=[
            {"pattern": "Ledger_ES", "kind": "event", "write-coalescing": True},
            {"pattern": "Audit_*", "kind": "view", "write-coalescing": False},
            {"pattern": "*_ES", "kind": "event"},
            {"pattern": "*_VIEW", "kind": "view"},
        ],
        framework={"persistence": {"enabled": True, **persistence}},
    )


def test_route_write_coalescing_is_rendered_and_unset_routes_keep_the_defaults() -> None:
    rendered = maps(coalescing_routes())
    coalescing = {name: block["map-store"]["write-coalescing"] for name, block in rendered.items()}
    assert coalescing == {"Ledger_ES": True, "Audit_*": False, "*_ES": False, "*_VIEW": True}


def test_route_write_coalescing_overrides_the_framework_default_for_its_maps_only() -> None:
    cfg = config(
        maps=[
            {"pattern": "Orders_ES", "kind": "event", "write-coalescing": False},
            {"pattern": "*_ES", "kind": "event"},
        ],
        framework={"persistence": {"enabled": True, "write-coalescing": True}},
    )
    rendered = maps(cfg)
    assert rendered["Orders_ES"]["map-store"]["write-coalescing"] is False
    assert rendered["*_ES"]["map-store"]["write-coalescing"] is True


def test_coalescing_on_a_write_through_map_is_refused_naming_the_route_key() -> None:
    with pytest.raises(ConfigError, match=r"maps\[0\]\.write-coalescing.*write-delay-seconds is 0"):
        render_member_config(coalescing_routes(**{"write-delay-seconds": 0}))


def test_write_through_accepts_coalescing_false_and_the_defaults() -> None:
    cfg = config(
        maps=[
            {"pattern": "Ledger_ES", "kind": "event", "write-coalescing": False},
            {"pattern": "*_ES", "kind": "event"},
            {"pattern": "*_VIEW", "kind": "view"},
        ],
        framework={"persistence": {"enabled": True, "write-delay-seconds": 0}},
    )
    rendered = maps(cfg)
    assert rendered["Ledger_ES"]["map-store"]["write-coalescing"] is False
    assert rendered["*_VIEW"]["map-store"]["write-coalescing"] is True  # ignored by Hazelcast


def test_rendered_file_names_each_coalescing_event_route_and_the_key_that_asked() -> None:
    text = render_member_yaml(coalescing_routes())
    notes = [line for line in text.splitlines() if "write-coalescing true" in line]
    assert len(notes) == 1
    assert notes[0].startswith("# Ledger_ES: ")
    assert "(maps[0].write-coalescing)" in notes[0]
    assert "a key of its own" in notes[0]
    text = render_member_yaml(config(framework={"persistence": {"write-coalescing": True}}))
    assert "# *_ES: event maps with write-coalescing true (framework.persistence." in text


def test_default_rendering_coalesces_no_event_map_and_says_nothing_about_it() -> None:
    text = render_member_yaml(load_config(ROOT / "config" / "sidecar.yaml", environ={}))
    assert "write-coalescing true" not in text
    events = yaml.safe_load(text)["hazelcast"]["map"]["*_ES"]
    assert events["map-store"]["write-coalescing"] is False


@pytest.mark.parametrize("value", ["sometimes", 2, [True]])
def test_route_write_coalescing_must_be_a_boolean(value: object) -> None:
    with pytest.raises(ConfigError, match=r"maps\[0\]\.write-coalescing"):
        config(maps=[{"pattern": "*_ES", "kind": "event", "write-coalescing": value}])


def test_route_write_coalescing_is_unset_unless_given() -> None:
    assert all(route.write_coalescing is None for route in config().maps)


def test_cli_refuses_coalescing_on_write_through_as_a_configuration_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("HZ_SIDECAR_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "sidecar.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "maps": [{"pattern": "*_ES", "kind": "event", "write-coalescing": True}],
                "framework": {"persistence": {"enabled": True, "write-delay-seconds": 0}},
            }
        )
    )
    assert main(["member-config", "--config", str(path)]) == EXIT_CONFIG
    assert "maps[0].write-coalescing" in capsys.readouterr().err


def test_disabled_persistence_disables_the_store_and_renders_no_eviction() -> None:
    rendered = maps(config(framework={"persistence": {"enabled": False}}))
    for block in rendered.values():
        assert block["map-store"]["enabled"] is False
        assert "eviction" not in block
        assert "max-idle-seconds" not in block


def test_disabled_eviction_block_is_left_out() -> None:
    cfg = config(
        framework={"persistence": {"enabled": True, "view-store-eviction": {"enabled": False}}}
    )
    rendered = maps(cfg)
    assert "eviction" not in rendered["*_VIEW"]
    assert "eviction" in rendered["*_ES"]


def test_native_memory_size_policy_is_refused_with_its_key() -> None:
    cfg = config(
        framework={
            "persistence": {
                "enabled": True,
                "event-store-eviction": {"max-size-policy": "USED_NATIVE_MEMORY_SIZE"},
            }
        }
    )
    with pytest.raises(ConfigError, match=r"event-store-eviction\.max-size-policy"):
        render_member_config(cfg)


@pytest.mark.parametrize(
    ("listen", "dialled"),
    [
        ("127.0.0.1:6000", "127.0.0.1:6000"),
        ("0.0.0.0:50051", "127.0.0.1:50051"),
        ("[::]:50051", "[::1]:50051"),
        ("unix:///run/hz/sidecar.sock", "unix:///run/hz/sidecar.sock"),
    ],
)
def test_member_dials_the_listen_address_with_loopback_for_a_wildcard(
    listen: str, dialled: str
) -> None:
    rendered = maps(config(listen={"address": listen}))
    assert rendered["*_ES"]["map-store"]["properties"]["sidecar.address"] == dialled


def test_explicit_address_and_deadline_are_used() -> None:
    rendered = maps(config(), address="sidecar:50051", deadline_ms=2500)
    assert rendered["*_VIEW"]["map-store"]["properties"] == {
        "sidecar.address": "sidecar:50051",
        "sidecar.deadline-ms": 2500,
    }


def test_port_zero_cannot_be_given_to_the_member() -> None:
    with pytest.raises(ConfigError, match="port 0"):
        render_member_config(config(listen={"address": "127.0.0.1:0"}))


@pytest.mark.parametrize("pattern", ["Orders_?", "*_ES_*", "[AB]_ES"])
def test_globs_hazelcast_cannot_express_are_refused(pattern: str) -> None:
    cfg = config(
        maps=[{"pattern": "*_VIEW", "kind": "view"}, {"pattern": pattern, "kind": "event"}]
    )
    with pytest.raises(ConfigError, match=r"maps\[1\]\.pattern"):
        render_member_config(cfg)


def test_more_specific_later_route_that_hazelcast_would_pick_is_refused() -> None:
    cfg = config(
        maps=[{"pattern": "*_ES", "kind": "event"}, {"pattern": "Orders_*", "kind": "view"}]
    )
    with pytest.raises(ConfigError, match="list 'Orders_\\*' first"):
        render_member_config(cfg)


def test_more_specific_route_listed_first_is_accepted() -> None:
    cfg = config(
        maps=[{"pattern": "Orders_*", "kind": "view"}, {"pattern": "*_ES", "kind": "event"}]
    )
    assert list(maps(cfg)) == ["Orders_*", "*_ES"]


def test_exact_name_after_a_matching_wildcard_is_refused() -> None:
    cfg = config(
        maps=[{"pattern": "*_ES", "kind": "event"}, {"pattern": "Special_ES", "kind": "view"}]
    )
    with pytest.raises(ConfigError, match="Special_ES"):
        render_member_config(cfg)


def test_equally_specific_overlapping_wildcards_are_refused_as_ambiguous() -> None:
    cfg = config(maps=[{"pattern": "A*", "kind": "event"}, {"pattern": "*B", "kind": "event"}])
    with pytest.raises(ConfigError, match="ambiguous"):
        render_member_config(cfg)


def test_yaml_quotes_wildcard_names_and_round_trips() -> None:
    text = render_member_yaml(config(), source="sidecar.yaml")
    assert text.startswith("# Generated by `hz-sidecar member-config` from sidecar.yaml.")
    assert "'*_ES':" in text
    assert yaml.safe_load(text) == render_member_config(config())


def test_cli_writes_the_rendered_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [n for n in os.environ if n.startswith("HZ_SIDECAR_")]:
        monkeypatch.delenv(name)
    out = tmp_path / "maps.yaml"
    code = main(
        ["member-config", "--config", str(ROOT / "config" / "sidecar.yaml"), "--out", str(out)]
    )
    assert code == EXIT_OK
    assert set(yaml.safe_load(out.read_text())["hazelcast"]["map"]) == {"*_ES", "*_VIEW"}


def test_cli_reports_an_inexpressible_route_as_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "sidecar.yaml"
    path.write_text(yaml.safe_dump({"maps": [{"pattern": "a?", "kind": "event"}]}))
    assert main(["member-config", "--config", str(path)]) == EXIT_CONFIG
