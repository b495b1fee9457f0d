"""Settings of the local dashboard and of the local Prometheus/Alertmanager (`.env.example`, ## monitoring)."""

from __future__ import annotations

from pathlib import Path

from monitoring import DASHBOARD_JSON
from movierec.base.settings import EnvSettings, setting


class DashboardSettings(EnvSettings):
    host: str = setting("DASHBOARD_HOST", "127.0.0.1")
    port: int = setting("DASHBOARD_PORT", 3000, ge=0, le=65535)
    prometheus_url: str = setting("PROMETHEUS_URL", "http://127.0.0.1:9090")
    dashboard_path: Path = setting("DASHBOARD_JSON", DASHBOARD_JSON)
    # what Grafana calls the datasource's scrape interval
    scrape_interval_seconds: int = setting("DASHBOARD_SCRAPE_INTERVAL_SECONDS", 15, ge=1)
    default_range: str = setting("DASHBOARD_DEFAULT_RANGE", "1h")
    query_timeout_seconds: float = setting("DASHBOARD_QUERY_TIMEOUT_SECONDS", 10.0, gt=0)
    workers: int = setting("DASHBOARD_WORKERS", 1, ge=1)


class LocalMonitoringSettings(EnvSettings):
    """Local Prometheus/Alertmanager (Debian binaries) and where alerts go."""

    prometheus_binary: str = setting("PROMETHEUS_BINARY", "prometheus")
    alertmanager_binary: str = setting("ALERTMANAGER_BINARY", "prometheus-alertmanager")
    slack_webhook_url: str = setting("SLACK_WEBHOOK_URL", "", repr=False)
    slack_channel: str = setting("ALERT_SLACK_CHANNEL", "#movierec-alerts")
    scrape_interval: str = setting("PROMETHEUS_SCRAPE_INTERVAL", "15s")
    evaluation_interval: str = setting("PROMETHEUS_EVALUATION_INTERVAL", "15s")
