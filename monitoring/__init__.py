"""Monitoring as code: Prometheus/Alertmanager configs, alert rules, the Grafana dashboard, and the
local dashboard on :3000 that renders the same dashboard JSON from Prometheus."""

from pathlib import Path

MONITORING_DIR = Path(__file__).resolve().parent
DASHBOARD_JSON = MONITORING_DIR / "grafana" / "dashboards" / "movierec.json"
ALERT_RULES = MONITORING_DIR / "alert_rules.yml"
COMPOSE_PROMETHEUS = MONITORING_DIR / "prometheus.yml"
COMPOSE_ALERTMANAGER = MONITORING_DIR / "alertmanager.yml"
