"""Stopping a service makes ServiceDown fire in the real Prometheus and reach Slack through Alertmanager."""

from __future__ import annotations

from pathlib import Path

import requests

from monitoring.local import start_alertmanager, start_prometheus, write_local_configs
from movierec.base.ports import free_port
from tests.monitoring.conftest import SlackReceiver, start_movierec
from tests.support import wait_until


def instant(prometheus_url: str, expr: str) -> list[dict]:
    body = requests.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def test_stopping_a_service_fires_service_down_to_slack(
    monitoring_binaries: None, slack_receiver: SlackReceiver, tmp_path: Path,
) -> None:
    prometheus_port, alertmanager_port, dashboard_port = free_port(), free_port(), free_port()
    prometheus_url = f"http://127.0.0.1:{prometheus_port}"
    # The service we stop: the real dashboard process (instrumented with movierec.base.metrics).
    service = start_movierec("dashboard", ["dashboard", "--port", str(dashboard_port), "--prometheus-url",
                                           prometheus_url, "--scrape-interval", "1"], dashboard_port, tmp_path)
    targets = {
        "dashboard": [f"127.0.0.1:{dashboard_port}"],
        "prometheus": [f"127.0.0.1:{prometheus_port}"],
        "alertmanager": [f"127.0.0.1:{alertmanager_port}"],
    }
    paths = write_local_configs(
        tmp_path / "config", targets, alertmanager=f"127.0.0.1:{alertmanager_port}",
        slack_webhook_url=slack_receiver.url, slack_channel="#movierec-test",
        scrape_interval="1s", evaluation_interval="1s", alert_for="2s",
        group_wait="1s", group_interval="1s", repeat_interval="1h",
    )
    alertmanager = start_alertmanager(paths.alertmanager, alertmanager_port, tmp_path / "am-data")
    prometheus = start_prometheus(paths.prometheus, prometheus_port, tmp_path / "prom-data")
    try:
        wait_until(lambda: any(r["value"][1] == "1" for r in instant(prometheus_url, 'up{job="dashboard"}')),
                   30, "the first successful scrape of the dashboard")
        assert not slack_receiver.payloads, "nothing may fire while every service is up"

        service.stop()

        def is_dashboard_down(payload: dict) -> bool:
            attachment = payload["body"].get("attachments", [{}])[0]
            return "ServiceDown" in attachment.get("title", "") and "FIRING" in attachment.get("title", "")

        payload = slack_receiver.wait_for(is_dashboard_down, timeout_seconds=60)
        assert payload is not None, f"no ServiceDown reached Slack; got {slack_receiver.payloads}"
        assert payload["path"] == "/services/T000/B000/slack-webhook"
        body = payload["body"]
        assert body["channel"] == "#movierec-test"
        attachment = body["attachments"][0]
        assert attachment["title"] == "[FIRING:1] ServiceDown"
        assert f"*ServiceDown* (critical) dashboard (127.0.0.1:{dashboard_port}) is down" in attachment["text"]

        alerts = requests.get(f"{alertmanager.url}/api/v2/alerts", timeout=5).json()
        assert [a["labels"]["job"] for a in alerts if a["labels"]["alertname"] == "ServiceDown"] == ["dashboard"]
    finally:
        service.stop()
        prometheus.stop()
        alertmanager.stop()
