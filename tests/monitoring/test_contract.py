"""No panel or alert references a metric that no service in the tree exports.

The services declare their metrics with prometheus-client (`Counter("movierec_...", ...)`); this
test looks for each name used by the dashboard JSON and the alert rules in their source code.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from monitoring import ALERT_RULES
from monitoring.panels import load_dashboard, metric_names

REPO = Path(__file__).resolve().parents[2]
SERVICE_PACKAGES = ("movierec", "data_parsing", "inference", "load_balancer", "simulator", "vectordb_scripts")
BUILTIN = {"up"}  # set by Prometheus itself for every scrape target


def exported_names() -> set[str]:
    """Metric names declared as string literals in the services' Python code."""
    names: set[str] = set()
    for package in SERVICE_PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for name in re.findall(r"[\"'](movierec_[a-z0-9_]+)[\"']", path.read_text(errors="replace")):
                names.add(name)
                # prometheus-client appends `_total` to counters declared without it
                names.add(f"{name}_total")
    return names


def panel_metrics() -> dict[str, set[str]]:
    return {f"panel {p.id} {t.ref_id} ({p.title})": metric_names(t.expr)
            for p in load_dashboard().panels for t in p.targets}


def alert_metrics() -> dict[str, set[str]]:
    document = yaml.safe_load(ALERT_RULES.read_text())
    return {f"alert {r['alert']}": metric_names(r["expr"]) for g in document["groups"] for r in g["rules"]}


def test_every_query_references_some_metric() -> None:
    for where, names in {**panel_metrics(), **alert_metrics()}.items():
        assert names, f"{where} references no metric"


def test_no_panel_or_alert_references_a_metric_nobody_exports() -> None:
    exported = exported_names() | BUILTIN
    missing = {where: sorted(names - exported) for where, names in {**panel_metrics(), **alert_metrics()}.items()
               if names - exported}
    assert not missing, f"metrics used by monitoring but exported by no service: {missing}"
