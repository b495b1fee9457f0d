"""The Grafana dashboard JSON as plain data, and the Grafana semantics the local renderer needs.

Pure functions: read the panels and their PromQL targets, expand Grafana's interval variables,
choose a query step, format legends (`{{label}}`), and turn a Prometheus matrix into series.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitoring import DASHBOARD_JSON

_RANGE_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_RANGE_RE = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_LEGEND_RE = re.compile(r"\{\{\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_METRIC_RE = re.compile(r"\b(movierec_[a-z0-9_]+|up)\b")
_HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")
MAX_RANGE_SECONDS = 7 * 86400


class DashboardError(ValueError):
    """The dashboard JSON or a request about it cannot be used."""


class InvalidRange(DashboardError):
    """A time range like `15m` could not be parsed or is out of bounds."""


class UnknownPanel(DashboardError):
    """No panel has the requested id."""


@dataclass(frozen=True)
class Target:
    """One PromQL query of a panel (Grafana `targets[]`)."""

    ref_id: str
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    id: int
    title: str
    unit: str
    targets: tuple[Target, ...]


@dataclass(frozen=True)
class Dashboard:
    uid: str
    title: str
    panels: tuple[Panel, ...]
    refresh_seconds: int

    def panel(self, panel_id: int) -> Panel:
        for panel in self.panels:
            if panel.id == panel_id:
                return panel
        raise UnknownPanel(f"no panel with id {panel_id}")


@dataclass
class Series:
    """One line of a plot: a legend and (unix seconds, value) points; NaN values are dropped."""

    name: str
    labels: dict[str, str]
    points: list[tuple[float, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "labels": self.labels, "points": [[t, v] for t, v in self.points]}


def parse_dashboard(document: Mapping[str, Any]) -> Dashboard:
    """The panels of a Grafana dashboard document (timeseries panels with PromQL targets)."""
    panels = []
    for raw in document.get("panels", []):
        if raw.get("type") == "row":
            continue
        targets = tuple(
            Target(ref_id=str(t.get("refId", "A")), expr=str(t["expr"]), legend=str(t.get("legendFormat", "")))
            for t in raw.get("targets", [])
            if t.get("expr") and not t.get("hide", False)
        )
        if not targets:
            raise DashboardError(f"panel {raw.get('title')!r} has no PromQL target")
        unit = raw.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
        panels.append(Panel(id=int(raw["id"]), title=str(raw["title"]), unit=str(unit), targets=targets))
    ids = [p.id for p in panels]
    if len(set(ids)) != len(ids):
        raise DashboardError("panel ids must be unique")
    refresh = document.get("refresh") or "30s"
    return Dashboard(
        uid=str(document.get("uid", "")),
        title=str(document.get("title", "dashboard")),
        panels=tuple(panels),
        refresh_seconds=parse_range(refresh) if refresh else 30,
    )


def load_dashboard(path: Path = DASHBOARD_JSON) -> Dashboard:
    """Read and parse the dashboard JSON file (the same file Grafana provisions)."""
    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DashboardError(f"cannot read dashboard {path}: {exc}") from exc
    return parse_dashboard(document)


def parse_range(text: str) -> int:
    """`15m` -> 900 seconds; units s, m, h, d, w; bounded by a week."""
    match = _RANGE_RE.match(str(text))
    if not match:
        raise InvalidRange(f"range must look like 30s, 15m, 6h or 2d, got {text!r}")
    seconds = int(match.group(1)) * _RANGE_UNITS[match.group(2)]
    if not 0 < seconds <= MAX_RANGE_SECONDS:
        raise InvalidRange(f"range must be between 1s and 7d, got {text!r}")
    return seconds


def choose_step(range_seconds: int, scrape_interval_seconds: int, max_points: int = 240) -> int:
    """Query step: about `max_points` points over the range, never finer than the scrape interval."""
    return max(scrape_interval_seconds, math.ceil(range_seconds / max_points), 1)


def expand_variables(expr: str, *, step_seconds: int, scrape_interval_seconds: int, range_seconds: int) -> str:
    """Replace Grafana's built-in variables the way Grafana does for a Prometheus datasource.

    `$__rate_interval` = max(step + scrape interval, 4 x scrape interval); `$__interval` = step;
    `$__range` = the whole range.
    """
    rate_interval = max(step_seconds + scrape_interval_seconds, 4 * scrape_interval_seconds)
    replacements = {
        "$__rate_interval": f"{rate_interval}s",
        "${__rate_interval}": f"{rate_interval}s",
        "$__interval": f"{step_seconds}s",
        "${__interval}": f"{step_seconds}s",
        "$__range": f"{range_seconds}s",
        "${__range}": f"{range_seconds}s",
    }
    # Longest names first so `$__rate_interval` is not eaten by `$__interval`-like prefixes.
    for name in sorted(replacements, key=len, reverse=True):
        expr = expr.replace(name, replacements[name])
    return expr


def format_legend(template: str, labels: Mapping[str, str]) -> str:
    """Grafana legend formatting: `{{label}}` placeholders; empty template -> `{a="b", ...}`."""
    if template.strip():
        return _LEGEND_RE.sub(lambda m: labels.get(m.group(1), ""), template).strip()
    name = labels.get("__name__", "")
    rest = ", ".join(f'{k}="{v}"' for k, v in sorted(labels.items()) if k != "__name__")
    return f"{name}{{{rest}}}" if rest or not name else name


def series_from_matrix(result: Iterable[Mapping[str, Any]], legend: str) -> list[Series]:
    """Prometheus `query_range` result (resultType matrix) -> named series without NaN/Inf points."""
    series = []
    for item in result:
        labels = {str(k): str(v) for k, v in item.get("metric", {}).items()}
        points = []
        for timestamp, raw_value in item.get("values", []):
            value = float(raw_value)
            if math.isfinite(value):
                points.append((float(timestamp), value))
        series.append(Series(name=format_legend(legend, labels), labels=labels, points=points))
    return series


def metric_names(expr: str) -> set[str]:
    """Metric names referenced by a PromQL expression, histogram suffixes folded to the family."""
    names = set()
    without_strings = re.sub(r'"[^"]*"', '""', expr)
    for name in _METRIC_RE.findall(without_strings):
        for suffix in _HISTOGRAM_SUFFIXES:
            if name.endswith(suffix):
                name = name[: -len(suffix)]
                break
        names.add(name)
    return names
