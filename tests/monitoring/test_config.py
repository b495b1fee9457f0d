"""Prometheus/Alertmanager configuration: templates, committed compose variants, promtool/amtool checks."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import ALERT_RULES, COMPOSE_ALERTMANAGER, COMPOSE_PROMETHEUS
from monitoring.config import (
    COMPOSE_TARGETS,
    MonitoringConfigError,
    compose_alertmanager_config,
    compose_prometheus_config,
    render_alert_rules,
    render_alertmanager_config,
    render_prometheus_config,
)
from monitoring.local import write_local_configs

HERE = Path(__file__).resolve().parent
LOCAL_TARGETS = {"parser": ["127.0.0.1:19101"], "inference-main": ["127.0.0.1:18001"], "router": ["127.0.0.1:18082"]}


def run(*argv: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in argv], capture_output=True, text=True, timeout=60)


def test_committed_compose_files_are_the_rendered_templates() -> None:
    assert COMPOSE_PROMETHEUS.read_text() == compose_prometheus_config(), "run python -m monitoring.config"
    assert COMPOSE_ALERTMANAGER.read_text() == compose_alertmanager_config(), "run python -m monitoring.config"


def test_compose_prometheus_scrapes_every_service_by_compose_name() -> None:
    document = yaml.safe_load(COMPOSE_PROMETHEUS.read_text())
    jobs = {job["job_name"]: job["static_configs"][0]["targets"] for job in document["scrape_configs"]}
    assert jobs == COMPOSE_TARGETS
    assert jobs["inference-nightly"] == ["inference-nightly:8002"]
    assert document["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["alertmanager:9093"]
    assert document["rule_files"] == ["alert_rules.yml"]


def test_local_variant_uses_the_given_loopback_targets() -> None:
    text = render_prometheus_config(LOCAL_TARGETS, "127.0.0.1:19093", "/tmp/rules.yml", scrape_interval="1s",
                                    evaluation_interval="1s")
    document = yaml.safe_load(text)
    assert [job["job_name"] for job in document["scrape_configs"]] == list(LOCAL_TARGETS)
    assert document["scrape_configs"][2]["static_configs"][0]["targets"] == ["127.0.0.1:18082"]
    assert document["global"] == {"scrape_interval": "1s", "evaluation_interval": "1s"}
    assert document["rule_files"] == ["/tmp/rules.yml"]


def test_render_rejects_empty_targets() -> None:
    with pytest.raises(MonitoringConfigError):
        render_prometheus_config({}, None, "rules.yml")
    with pytest.raises(MonitoringConfigError):
        render_prometheus_config({"parser": []}, None, "rules.yml")
    with pytest.raises(MonitoringConfigError):
        render_alertmanager_config(slack_api_url="http://x", slack_api_url_file="/f")


def test_alertmanager_variants() -> None:
    inline = yaml.safe_load(render_alertmanager_config(slack_api_url="http://127.0.0.1:1/hook", group_wait="1s"))
    assert inline["route"]["receiver"] == "slack"
    assert inline["route"]["group_wait"] == "1s"
    assert inline["receivers"][0]["slack_configs"][0]["api_url"] == "http://127.0.0.1:1/hook"
    silent = yaml.safe_load(render_alertmanager_config())
    assert silent["receivers"] == [{"name": "log-only"}]
    compose = yaml.safe_load(COMPOSE_ALERTMANAGER.read_text())
    assert "api_url_file" in compose["receivers"][0]["slack_configs"][0]


def test_rules_have_severity_summary_and_for() -> None:
    document = yaml.safe_load(ALERT_RULES.read_text())
    alerts = [rule for group in document["groups"] for rule in group["rules"]]
    names = {rule["alert"] for rule in alerts}
    assert {"ServiceDown", "ServiceFailed", "High5xxRatio", "RecommendLatencyP99High", "ConsumerLagGrowing",
            "DeadLetterRateHigh", "CanaryHitRateBelowMain"} <= names
    for rule in alerts:
        assert rule["labels"]["severity"] in {"critical", "warning"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["for"], rule["alert"]


def test_for_override_changes_only_the_durations() -> None:
    original = yaml.safe_load(ALERT_RULES.read_text())
    fast = yaml.safe_load(render_alert_rules("2s"))
    for group, fast_group in zip(original["groups"], fast["groups"], strict=True):
        for rule, fast_rule in zip(group["rules"], fast_group["rules"], strict=True):
            assert fast_rule["for"] == "2s"
            assert {k: v for k, v in fast_rule.items() if k != "for"} == {k: v for k, v in rule.items() if k != "for"}


def test_promtool_checks_both_prometheus_variants(promtool: Path, tmp_path: Path) -> None:
    compose = run(promtool, "check", "config", COMPOSE_PROMETHEUS)
    assert compose.returncode == 0, compose.stdout + compose.stderr
    paths = write_local_configs(tmp_path, LOCAL_TARGETS, alertmanager="127.0.0.1:19093", alert_for="2s",
                                scrape_interval="1s", evaluation_interval="1s")
    local = run(promtool, "check", "config", paths.prometheus)
    assert local.returncode == 0, local.stdout + local.stderr
    assert "1 rule files found" in local.stdout + local.stderr


def test_promtool_checks_both_rule_variants(promtool: Path, tmp_path: Path) -> None:
    fast = tmp_path / "fast_rules.yml"
    fast.write_text(render_alert_rules("2s"))
    for path in (ALERT_RULES, fast):
        result = run(promtool, "check", "rules", path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "SUCCESS: 9 rules found" in result.stdout


def test_promtool_rejects_a_broken_rule(promtool: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.yml"
    broken.write_text(ALERT_RULES.read_text().replace("expr: up == 0", "expr: up == == 0"))
    assert run(promtool, "check", "rules", broken).returncode != 0


def test_alert_rules_unit_tests(promtool: Path) -> None:
    """Each alert fires on the series it is about and stays quiet otherwise (promtool test rules)."""
    result = run(promtool, "test", "rules", HERE / "alert_rules_test.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_amtool_checks_both_alertmanager_variants(amtool: Path, tmp_path: Path) -> None:
    compose = run(amtool, "check-config", COMPOSE_ALERTMANAGER)
    assert compose.returncode == 0, compose.stdout + compose.stderr
    paths = write_local_configs(tmp_path, LOCAL_TARGETS, alertmanager="127.0.0.1:19093",
                                slack_webhook_url="http://127.0.0.1:19999/hook")
    local = run(amtool, "check-config", paths.alertmanager)
    assert local.returncode == 0, local.stdout + local.stderr
    silent = write_local_configs(tmp_path / "silent", LOCAL_TARGETS, alertmanager=None)
    assert run(amtool, "check-config", silent.alertmanager).returncode == 0
