"""The one Prometheus helper every service uses (prometheus-client).

- `instrument_flask(app, service)` counts and times every request and serves `/metrics`.
- `start_metrics_server(port)` serves `/metrics` for processes without HTTP (parser, simulator).
Under gunicorn with several workers, `PROMETHEUS_MULTIPROC_DIR` is set by `movierec.base.serving`
and `/metrics` aggregates all workers.

Naming follows Prometheus conventions: `_total` counters, `_seconds` histograms, base units.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    start_http_server,
)

# Request latency buckets sized for a 25 ms p99 target and the 800 ms course budget.
LATENCY_BUCKETS_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.015, 0.025, 0.05, 0.1, 0.25, 0.5, 0.8, 1.0, 2.5, 5.0)

HTTP_REQUESTS = Counter(
    "movierec_http_requests_total", "HTTP requests served", ["service", "endpoint", "method", "status"]
)
HTTP_LATENCY = Histogram(
    "movierec_http_request_duration_seconds", "HTTP request latency", ["service", "endpoint"],
    buckets=LATENCY_BUCKETS_SECONDS,
)
BUILD_INFO = Gauge(
    "movierec_build_info", "Service identity (value is always 1)", ["service", "version"],
    multiprocess_mode="max",
)


def exposition() -> tuple[bytes, str]:
    """The metrics text for this process, or for all gunicorn workers in multiprocess mode."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


def instrument_flask(app: Any, service: str, version: str = "unversioned") -> None:
    """Time and count every request of a Flask app by route, and add the `/metrics` route."""
    from flask import Response, g, request

    BUILD_INFO.labels(service=service, version=version).set(1)

    @app.before_request
    def _start_timer() -> None:
        g._movierec_started = time.perf_counter()

    @app.after_request
    def _record(response: Any) -> Any:
        started = getattr(g, "_movierec_started", None)
        if started is not None:
            endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
            if endpoint != "/metrics":
                HTTP_LATENCY.labels(service, endpoint).observe(time.perf_counter() - started)
                HTTP_REQUESTS.labels(service, endpoint, request.method, str(response.status_code)).inc()
        return response

    def metrics() -> Any:
        body, content_type = exposition()
        return Response(body, content_type=content_type)

    app.add_url_rule("/metrics", "metrics", metrics)


def start_metrics_server(port: int, service: str, version: str = "unversioned", addr: str = "127.0.0.1") -> None:
    """Serve `/metrics` on its own small HTTP port (for loops that are not web apps)."""
    BUILD_INFO.labels(service=service, version=version).set(1)
    start_http_server(port, addr=addr)
