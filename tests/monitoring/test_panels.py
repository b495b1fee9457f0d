"""The dashboard JSON as data and the Grafana semantics of the local renderer (pure functions)."""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring import DASHBOARD_JSON, MONITORING_DIR
from monitoring.panels import (
    DashboardError,
    InvalidRange,
    Series,
    UnknownPanel,
    choose_step,
    expand_variables,
    format_legend,
    load_dashboard,
    metric_names,
    parse_dashboard,
    parse_range,
    series_from_matrix,
)
from monitoring.plot import format_value, interval_pairs, render_png


def test_dashboard_json_has_the_required_panels() -> None:
    dashboard = load_dashboard()
    assert dashboard.uid == "movierec"
    titles = " | ".join(p.title for p in dashboard.panels).lower()
    for needle in ("requests/s by version", "p50 / p99 by version", "5xx ratio", "ingest events/s by type",
                   "consumer lag", "dead letters", "online hit rate by arm", "release decisions",
                   "simulator hit rate vs best achievable"):
        assert needle in titles
    assert len({p.id for p in dashboard.panels}) == len(dashboard.panels)


def test_panels_use_the_provisioned_datasource() -> None:
    provisioned = yaml.safe_load((MONITORING_DIR / "grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = provisioned["datasources"][0]["uid"]
    document = json.loads(DASHBOARD_JSON.read_text())
    for panel in document["panels"]:
        assert panel["datasource"]["uid"] == uid
        assert all(t["datasource"]["uid"] == uid for t in panel["targets"])
    providers = yaml.safe_load((MONITORING_DIR / "grafana/provisioning/dashboards/dashboards.yml").read_text())
    assert providers["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_every_panel_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each expression (after Grafana's variables are expanded) as a recording rule."""
    from monitoring.local import find_binary

    promtool = find_binary("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install -y prometheus)")
    rules = []
    for panel in load_dashboard().panels:
        for target in panel.targets:
            expr = expand_variables(target.expr, step_seconds=15, scrape_interval_seconds=15, range_seconds=3600)
            rules.append({"record": f"panel_{panel.id}_{target.ref_id}", "expr": expr})
    path = tmp_path / "panels.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]}))
    result = subprocess.run([str(promtool), "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_parse_range() -> None:
    assert parse_range("15m") == 900
    assert parse_range("30s") == 30
    assert parse_range("6h") == 21600
    assert parse_range("2d") == 172800
    for bad in ("", "15", "m", "-5m", "0s", "9w", "1y"):
        with pytest.raises(InvalidRange):
            parse_range(bad)


def test_choose_step() -> None:
    assert choose_step(900, 15) == 15
    assert choose_step(86400, 15) == 360
    assert choose_step(60, 1) == 1
    assert choose_step(3600, 1, max_points=100) == 36


def test_expand_variables_like_grafana() -> None:
    expr = "rate(x[$__rate_interval]) + rate(y[${__interval}]) + increase(z[$__range])"
    assert expand_variables(expr, step_seconds=15, scrape_interval_seconds=15, range_seconds=3600) == \
        "rate(x[60s]) + rate(y[15s]) + increase(z[3600s])"
    # a coarse step widens the rate window: max(step + scrape, 4 x scrape)
    assert expand_variables("rate(x[$__rate_interval])", step_seconds=360, scrape_interval_seconds=15,
                            range_seconds=86400) == "rate(x[375s])"


def test_format_legend() -> None:
    labels = {"__name__": "m", "version": "blend-v1", "arm": "main"}
    assert format_legend("p99 {{version}}", labels) == "p99 blend-v1"
    assert format_legend("{{ arm }}/{{missing}}", labels) == "main/"
    assert format_legend("", labels) == 'm{arm="main", version="blend-v1"}'
    assert format_legend("", {}) == "{}"


def test_series_from_matrix_drops_nan() -> None:
    result = [
        {"metric": {"version": "a"}, "values": [[1.0, "0.5"], [2.0, "NaN"], [3.0, "+Inf"], [4.0, "1"]]},
        {"metric": {"version": "b"}, "values": []},
    ]
    series = series_from_matrix(result, "v={{version}}")
    assert [s.name for s in series] == ["v=a", "v=b"]
    assert series[0].points == [(1.0, 0.5), (4.0, 1.0)]
    assert series[0].to_json()["points"] == [[1.0, 0.5], [4.0, 1.0]]


def test_metric_names_fold_histogram_suffixes_and_ignore_label_values() -> None:
    expr = ('histogram_quantile(0.99, sum by (le) (rate(movierec_recommend_duration_seconds_bucket[1m]))) '
            '/ movierec_http_requests_total{endpoint="movierec_not_a_metric"} + up')
    assert metric_names(expr) == {"movierec_recommend_duration_seconds", "movierec_http_requests_total", "up"}


def test_parse_dashboard_rejects_bad_documents() -> None:
    with pytest.raises(DashboardError):
        parse_dashboard({"panels": [{"id": 1, "title": "t", "type": "timeseries", "targets": []}]})
    panel = {"id": 1, "title": "t", "type": "timeseries", "targets": [{"refId": "A", "expr": "up"}]}
    with pytest.raises(DashboardError):
        parse_dashboard({"panels": [panel, panel]})
    with pytest.raises(UnknownPanel):
        parse_dashboard({"panels": [panel]}).panel(2)


def test_render_png_draws_series_and_empty_panels() -> None:
    series = [Series("p99 a", {}, [(1000.0 + i, math.sin(i) + 1) for i in range(50)])]
    png = render_png("latency", "s", series, start=1000.0, end=1060.0)
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) > 5000
    empty = render_png("latency", "s", [], start=1000.0, end=1060.0)
    assert empty.startswith(b"\x89PNG") and empty != png


def test_interval_bounds_pair_up_and_are_shaded() -> None:
    points = [(1000.0 + i, 0.5) for i in range(10)]
    series = [Series("hit rate main", {}, points),
              Series("interval main lower", {}, [(t, v - 0.1) for t, v in points]),
              Series("interval main upper", {}, [(t, v + 0.1) for t, v in points[2:]]),
              Series("interval nightly lower", {}, points)]  # no upper: nothing to shade
    [(times, low, high)] = interval_pairs(series)
    assert times == [t for t, _ in points[2:]] and low == [0.4] * 8 and high == [0.6] * 8
    shaded = render_png("hit rate", "percentunit", series, start=1000.0, end=1010.0)
    plain = render_png("hit rate", "percentunit", series[:1], start=1000.0, end=1010.0)
    assert shaded.startswith(b"\x89PNG") and shaded != plain


def test_the_canary_panel_shows_each_arms_interval() -> None:
    panel = next(p for p in load_dashboard().panels if "Online hit rate" in p.title)
    exprs = " ".join(t.expr for t in panel.targets)
    for name in ("movierec_online_hit_rate", "movierec_online_hit_rate_lower", "movierec_online_hit_rate_upper"):
        assert f"({name})" in exprs


def test_format_value_by_unit() -> None:
    assert format_value(0.0123, "s") == "12 ms"
    assert format_value(2.5, "s") == "2.50 s"
    assert format_value(0.25, "percentunit") == "25%"
    assert format_value(3.0, "unknown-unit") == "3"
