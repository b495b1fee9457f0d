"""Settings of the local dashboard and of the local Prometheus/Alertmanager (`.env.example`, ## monitoring)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from monitoring import DASHBOARD_JSON
from movierec.settings import env_float, env_int, env_str


@dataclass(frozen=True)
class DashboardSettings:
    host: str
    port: int
    prometheus_url: str
    dashboard_path: Path
    scrape_interval_seconds: int  # what Grafana calls the datasource's scrape interval
    default_range: str
    query_timeout_seconds: float
    workers: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DashboardSettings:
        return cls(
            host=env_str("DASHBOARD_HOST", "127.0.0.1", environ),
            port=env_int("DASHBOARD_PORT", 3000, environ),
            prometheus_url=env_str("PROMETHEUS_URL", "http://127.0.0.1:9090", environ),
            dashboard_path=Path(env_str("DASHBOARD_JSON", str(DASHBOARD_JSON), environ)),
            scrape_interval_seconds=env_int("DASHBOARD_SCRAPE_INTERVAL_SECONDS", 15, environ),
            default_range=env_str("DASHBOARD_DEFAULT_RANGE", "1h", environ),
            query_timeout_seconds=env_float("DASHBOARD_QUERY_TIMEOUT_SECONDS", 10.0, environ),
            workers=env_int("DASHBOARD_WORKERS", 1, environ),
        )


@dataclass(frozen=True)
class LocalMonitoringSettings:
    """Local Prometheus/Alertmanager (Debian binaries) and where alerts go."""

    prometheus_binary: str
    alertmanager_binary: str
    slack_webhook_url: str
    slack_channel: str
    scrape_interval: str
    evaluation_interval: str

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> LocalMonitoringSettings:
        return cls(
            prometheus_binary=env_str("PROMETHEUS_BINARY", "prometheus", environ),
            alertmanager_binary=env_str("ALERTMANAGER_BINARY", "prometheus-alertmanager", environ),
            slack_webhook_url=env_str("SLACK_WEBHOOK_URL", "", environ),
            slack_channel=env_str("ALERT_SLACK_CHANNEL", "#movierec-alerts", environ),
            scrape_interval=env_str("PROMETHEUS_SCRAPE_INTERVAL", "15s", environ),
            evaluation_interval=env_str("PROMETHEUS_EVALUATION_INTERVAL", "15s", environ),
        )
