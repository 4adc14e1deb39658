"""The alerting and recording rules: valid for Debian's Prometheus 2.42, and every alert has a
`promtool test rules` scenario where it fires and one where it does not."""

from __future__ import annotations

import subprocess

import pytest
import yaml

from .conftest import RULE_TESTS, RULES

RULE_TEST_FILES = sorted(RULE_TESTS.glob("*_test.yml"))


def alerts() -> list[str]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule]


def test_promtool_checks_the_rules(deploy_tools):
    done = subprocess.run([deploy_tools["promtool"], "check", "rules", str(RULES)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 19 rules found" in done.stdout


@pytest.mark.parametrize("path", RULE_TEST_FILES, ids=lambda p: p.name)
def test_promtool_unit_scenarios_pass(deploy_tools, path):
    done = subprocess.run([deploy_tools["promtool"], "test", "rules", path.name],
                          cwd=path.parent, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_every_alert_has_a_firing_and_a_quiet_scenario():
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in RULE_TEST_FILES:
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert len(alerts()) == 7
    assert firing == set(alerts())
    assert quiet == set(alerts())


def test_a_weaker_drop_rule_fails_its_scenarios(deploy_tools, tmp_path):
    """The scenarios can fail: with the Wilson bound at 50% of the baseline instead of 80%,
    the real drop no longer fires and promtool says so."""
    rules = tmp_path / "rules"
    tests = tmp_path / "tests"
    rules.mkdir()
    tests.mkdir()
    text = RULES.read_text()
    assert text.count("< 0.8 * xsell:repeat_purchase_rate_30d:baseline_4w") == 1
    (rules / RULES.name).write_text(
        text.replace("< 0.8 * xsell:repeat", "< 0.5 * xsell:repeat"))
    scenario = RULE_TESTS / "repeat_purchase_rate_test.yml"
    (tests / scenario.name).write_text(scenario.read_text())
    done = subprocess.run([deploy_tools["promtool"], "test", "rules", scenario.name], cwd=tests,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert "alertname: XsellRepeatPurchaseRateDropped, time: 33d2h" in done.stderr
