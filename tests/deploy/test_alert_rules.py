"""The Prometheus alerting rules (``deploy/prometheus/alerts.yaml``): valid for Prometheus, and
each alert fires when it should and stays quiet when it should not, shown by promtool's rule
unit tests (``deploy/prometheus/alerts.test.yaml``, series shaped like the sidecar's scrape).

promtool compares firing alerts only, and an ``alertname`` that no rule defines is simply
never firing, so the last tests check that the unit tests cover every alert both ways and
name no alert that does not exist."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.prerequisites import require_command

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
ALERTS = PROMETHEUS / "alerts.yaml"
ALERT_TESTS = PROMETHEUS / "alerts.test.yaml"


def promtool() -> str:
    return require_command(
        "promtool", "install Debian's prometheus package (apt-get install prometheus); .ci/run does"
    )


def run_promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [promtool(), *args], capture_output=True, text=True, timeout=60, cwd=PROMETHEUS
    )


def alert_names() -> list[str]:
    document = yaml.safe_load(ALERTS.read_text())
    return [rule["alert"] for group in document["groups"] for rule in group["rules"]]


def alert_rule_tests() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERT_TESTS.read_text())
    return [case for test in document["tests"] for case in test.get("alert_rule_test", [])]


def test_promtool_check_rules_accepts_the_alerts() -> None:
    done = run_promtool("check", "rules", ALERTS.name)
    assert done.returncode == 0, f"promtool check rules {ALERTS}:\n{done.stdout}{done.stderr}"


def test_promtool_rule_unit_tests_pass() -> None:
    done = run_promtool("test", "rules", ALERT_TESTS.name)
    assert done.returncode == 0, f"promtool test rules {ALERT_TESTS}:\n{done.stdout}{done.stderr}"


def test_the_unit_tests_load_the_alerts_file_itself() -> None:
    rule_files = yaml.safe_load(ALERT_TESTS.read_text())["rule_files"]
    assert [(ALERT_TESTS.parent / f).resolve() for f in rule_files] == [ALERTS]


@pytest.mark.parametrize("alert", alert_names())
def test_every_alert_has_a_firing_case_and_a_quiet_case(alert: str) -> None:
    cases = [case for case in alert_rule_tests() if case["alertname"] == alert]
    firing = [case["eval_time"] for case in cases if case.get("exp_alerts")]
    quiet = [case["eval_time"] for case in cases if not case.get("exp_alerts")]
    assert firing, f"{ALERT_TESTS.name} has no case where {alert} fires (non-empty exp_alerts)"
    assert quiet, f"{ALERT_TESTS.name} has no case where {alert} stays quiet (exp_alerts: [])"


def test_the_unit_tests_name_only_alerts_that_exist() -> None:
    # A misspelt alertname would pass every quiet case without testing anything.
    unknown = {case["alertname"] for case in alert_rule_tests()} - set(alert_names())
    assert not unknown, f"{ALERT_TESTS.name} tests alerts that {ALERTS.name} lacks: {unknown}"
