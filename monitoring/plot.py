"""Server-side PNG plots of a panel's series (matplotlib, object API: safe in threaded workers)."""

from __future__ import annotations

import io
from datetime import datetime

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.dates import DateFormatter
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter

from monitoring.panels import Series

# Grafana unit -> (axis label, value formatter)
_UNITS = {
    "s": ("seconds", lambda v: f"{v * 1000:.0f} ms" if abs(v) < 1 else f"{v:.2f} s"),
    "ms": ("ms", lambda v: f"{v:.0f} ms"),
    "percentunit": ("ratio", lambda v: f"{v * 100:.0f}%"),
    "reqps": ("requests/s", lambda v: f"{v:g}"),
    "ops": ("per second", lambda v: f"{v:g}"),
    "short": ("", lambda v: f"{v:g}"),
}


def format_value(value: float, unit: str) -> str:
    """A value as the panel's unit shows it (`0.0123` s -> `12 ms`)."""
    return _UNITS.get(unit, _UNITS["short"])[1](value)


def interval_pairs(series: list[Series]) -> list[tuple[list[float], list[float], list[float]]]:
    """(times, lower, upper) of every `<name> lower` / `<name> upper` pair, on their common timestamps."""
    by_name = {line.name: dict(line.points) for line in series}
    pairs = []
    for name, lower in by_name.items():
        upper = by_name.get(name.removesuffix(" lower") + " upper") if name.endswith(" lower") else None
        if upper:
            times = sorted(set(lower) & set(upper))
            pairs.append((times, [lower[t] for t in times], [upper[t] for t in times]))
    return pairs


def render_png(
    title: str, unit: str, series: list[Series], *, start: float, end: float,
    width_px: int = 640, height_px: int = 300, error: str | None = None,
) -> bytes:
    """One panel as a PNG: a line per series over [start, end], legend below, or a message when empty."""
    dpi = 100
    figure = Figure(figsize=(width_px / dpi, height_px / dpi), dpi=dpi)
    FigureCanvasAgg(figure)
    axes = figure.add_subplot(1, 1, 1)
    axes.set_title(title, fontsize=10, loc="left")
    drawn = 0
    for line in series:
        if not line.points:
            continue
        times = [datetime.fromtimestamp(t) for t, _ in line.points]
        values = [v for _, v in line.points]
        last = format_value(values[-1], unit)
        bound = line.name.endswith((" lower", " upper"))  # an interval's ends: dashed, shaded between
        axes.plot(times, values, linewidth=0.8 if bound else 1.2, linestyle="--" if bound else "-",
                  label=f"{line.name}  (last {last})")
        drawn += 1
    for times, low, high in interval_pairs(series):
        axes.fill_between([datetime.fromtimestamp(t) for t in times], low, high, alpha=0.15)
    axes.set_xlim(datetime.fromtimestamp(start), datetime.fromtimestamp(end))
    axes.xaxis.set_major_formatter(DateFormatter("%H:%M:%S" if end - start <= 3600 else "%d %H:%M"))
    axes.tick_params(labelsize=8)
    label, formatter = _UNITS.get(unit, _UNITS["short"])
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: formatter(v)))
    if label:
        axes.set_ylabel(label, fontsize=8)
    axes.grid(True, linewidth=0.3, alpha=0.6)
    if error:
        axes.text(0.5, 0.5, error, ha="center", va="center", transform=axes.transAxes, color="crimson", fontsize=9,
                  wrap=True)
    elif drawn == 0:
        axes.text(0.5, 0.5, "no data", ha="center", va="center", transform=axes.transAxes, color="gray")
    else:
        axes.legend(fontsize=7, loc="upper left", framealpha=0.7, ncol=1 if drawn <= 4 else 2)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
