"""`movierec dashboard`: the local stand-in for Grafana on :3000.

It renders the panels of the SAME dashboard JSON that Grafana provisions, with data from
Prometheus's `/api/v1/query_range`: a page listing the panels, a JSON data endpoint per panel
(`/api/panels/<id>?range=15m`) and a server-side PNG per panel (matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import time
from typing import Any

import requests
from flask import Flask, Response, jsonify, render_template, request

from monitoring.panels import (
    Dashboard,
    DashboardError,
    Panel,
    Series,
    UnknownPanel,
    choose_step,
    expand_variables,
    load_dashboard,
    parse_range,
    series_from_matrix,
)
from monitoring.plot import render_png
from monitoring.prometheus_api import PrometheusError, query_range
from monitoring.settings import DashboardSettings
from movierec.base.metrics import instrument_flask

log = logging.getLogger(__name__)
RANGE_CHOICES = ("5m", "15m", "1h", "6h", "24h")


@dataclasses.dataclass
class PanelData:
    panel: Panel
    range_text: str
    start: float
    end: float
    step_seconds: int
    series: list[dict[str, Any]]
    errors: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.panel.id, "title": self.panel.title, "unit": self.panel.unit, "range": self.range_text,
            "start": self.start, "end": self.end, "step_seconds": self.step_seconds,
            "series": self.series, "errors": self.errors,
        }


def fetch_panel(
    settings: DashboardSettings, panel: Panel, range_text: str, *, now: float | None = None,
    session: requests.Session | None = None,
) -> PanelData:
    """Run every target of `panel` over the last `range_text`; a failing target becomes an error string."""
    range_seconds = parse_range(range_text)
    end = time.time() if now is None else now
    start = end - range_seconds
    step = choose_step(range_seconds, settings.scrape_interval_seconds)
    series: list[dict[str, Any]] = []
    errors: list[str] = []
    for target in panel.targets:
        expr = expand_variables(target.expr, step_seconds=step, range_seconds=range_seconds,
                                scrape_interval_seconds=settings.scrape_interval_seconds)
        try:
            result = query_range(settings.prometheus_url, expr, start=start, end=end, step_seconds=step,
                                 timeout_seconds=settings.query_timeout_seconds, session=session)
        except PrometheusError as exc:
            errors.append(f"{target.ref_id}: {exc}")
            continue
        for line in series_from_matrix(result, target.legend):
            series.append({"ref_id": target.ref_id, **line.to_json()})
    return PanelData(panel, range_text, start, end, step, series, errors)


def create_app(settings: DashboardSettings | None = None, dashboard: Dashboard | None = None) -> Flask:
    """The dashboard web app (Flask application factory)."""
    settings = settings or DashboardSettings.from_env()
    dashboard = dashboard or load_dashboard(settings.dashboard_path)
    app = Flask(__name__)
    app.config["DASHBOARD"] = dashboard
    session = requests.Session()
    instrument_flask(app, "dashboard")

    def requested_range() -> str:
        text = request.args.get("range", settings.default_range)
        parse_range(text)
        return text

    @app.errorhandler(DashboardError)
    def _bad_request(exc: DashboardError) -> Any:
        status = 404 if isinstance(exc, UnknownPanel) else 400
        return jsonify({"error": str(exc)}), status

    @app.get("/")
    def index() -> Any:
        return render_template(
            "dashboard.html", dashboard=dashboard, range=requested_range(), ranges=RANGE_CHOICES,
            prometheus_url=settings.prometheus_url,
        )

    @app.get("/api/panels")
    def panels() -> Any:
        return jsonify({
            "uid": dashboard.uid, "title": dashboard.title,
            "panels": [
                {"id": p.id, "title": p.title, "unit": p.unit,
                 "targets": [dataclasses.asdict(t) for t in p.targets],
                 "data_url": f"/api/panels/{p.id}", "png_url": f"/panels/{p.id}.png"}
                for p in dashboard.panels
            ],
        })

    @app.get("/api/panels/<int:panel_id>")
    def panel_data(panel_id: int) -> Any:
        data = fetch_panel(settings, dashboard.panel(panel_id), requested_range(), session=session)
        return jsonify(data.to_json())

    @app.get("/panels/<int:panel_id>.png")
    def panel_png(panel_id: int) -> Any:
        data = fetch_panel(settings, dashboard.panel(panel_id), requested_range(), session=session)
        lines = [Series(s["name"], s["labels"], [(t, v) for t, v in s["points"]]) for s in data.series]
        png = render_png(data.panel.title, data.panel.unit, lines, start=data.start, end=data.end,
                         error="; ".join(data.errors) or None)
        return Response(png, mimetype="image/png", headers={"Cache-Control": "no-store"})

    @app.get("/health")
    @app.get("/api/health")  # Grafana's health path: the compose healthcheck works on either
    def health() -> Any:
        try:
            ok = session.get(f"{settings.prometheus_url.rstrip('/')}/-/ready", timeout=1.0).ok
        except requests.RequestException:
            ok = False
        prometheus = "ready" if ok else "unreachable"
        return jsonify({"status": "ok", "panels": len(dashboard.panels), "prometheus": prometheus})

    return app


def parse_args(argv: list[str]) -> argparse.Namespace:
    env = DashboardSettings.from_env()
    parser = argparse.ArgumentParser(prog="movierec dashboard", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=env.host)
    parser.add_argument("--port", type=int, default=env.port)
    parser.add_argument("--prometheus-url", default=env.prometheus_url)
    parser.add_argument("--scrape-interval", type=int, default=env.scrape_interval_seconds,
                        help="Prometheus scrape interval in seconds (sizes $__rate_interval)")
    parser.add_argument("--workers", type=int, default=env.workers)
    args = parser.parse_args(argv)
    args.settings = env.replace(
        host=args.host, port=args.port, prometheus_url=args.prometheus_url,
        scrape_interval_seconds=args.scrape_interval, workers=args.workers,
    )
    return args


def main(argv: list[str]) -> int:
    """Serve the dashboard with gunicorn until interrupted (argv[0] is the command name)."""
    from movierec.base.serving import serve

    args = parse_args(argv[1:])
    settings: DashboardSettings = args.settings
    try:
        load_dashboard(settings.dashboard_path)  # fail fast on a broken dashboard file
    except DashboardError as exc:
        raise SystemExit(f"movierec dashboard: {exc}") from exc
    log.info("dashboard port=%s prometheus_url=%s", settings.port, settings.prometheus_url)
    serve(lambda: create_app(settings), bind=f"{settings.host}:{settings.port}", workers=settings.workers, threads=4)
    return 0
