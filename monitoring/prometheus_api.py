"""The edge to Prometheus's HTTP API (requests): range queries for the local dashboard."""

from __future__ import annotations

from typing import Any

import requests


class PrometheusError(RuntimeError):
    """Prometheus could not be reached or rejected a query."""


def query_range(
    base_url: str, expr: str, *, start: float, end: float, step_seconds: int, timeout_seconds: float = 10.0,
    session: requests.Session | None = None,
) -> list[dict[str, Any]]:
    """`/api/v1/query_range` -> the list of matrix results ({"metric": {...}, "values": [[t, "v"], ...]})."""
    http = session or requests
    try:
        response = http.post(
            f"{base_url.rstrip('/')}/api/v1/query_range",
            data={"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_seconds}s"},
            timeout=timeout_seconds,
        )
    except requests.RequestException as exc:
        raise PrometheusError(f"Prometheus at {base_url} is unreachable: {exc}") from exc
    try:
        body = response.json()
    except ValueError as exc:
        raise PrometheusError(f"Prometheus answered HTTP {response.status_code} without JSON") from exc
    if body.get("status") != "success":
        raise PrometheusError(f"query failed ({body.get('errorType')}): {body.get('error')}")
    data = body.get("data", {})
    if data.get("resultType") != "matrix":
        raise PrometheusError(f"expected a matrix result, got {data.get('resultType')!r}")
    return list(data.get("result", []))
