"""Asks the platform for recommendations (`GET <base>/recommend/<user>`) and measures the answer."""

from __future__ import annotations

import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import requests

from simulator.events import server_token


@dataclass(frozen=True, slots=True)
class RecommendResponse:
    status: int  # HTTP status, 0 when no answer came (timeout, refused connection)
    results: tuple[str, ...]
    response_ms: int
    model_version: str | None
    server: str  # `<model_version>@<host>:<port>` of the address that answered
    error: str | None = None  # "timeout" / "connection_error" when status is 0

    @property
    def outcome(self) -> str:
        """Metric label: the status code, or the kind of failure."""
        return self.error or str(self.status)


def parse_recommendations(body: str, limit: int = 20) -> tuple[str, ...]:
    """The movie ids of a `/recommend` body: one line, comma-separated, best first."""
    items = (item.strip() for item in body.strip().split(","))
    return tuple(item for item in items if item)[:limit]


class RecommendClient:
    """One keep-alive HTTP session to the load balancer (or an inference service)."""

    def __init__(self, base_url: str, timeout_seconds: float = 0.8) -> None:
        self.base_url = base_url.rstrip("/")
        parts = urlsplit(self.base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.timeout_seconds = timeout_seconds
        self._session = requests.Session()

    def recommend(self, user_id: int) -> RecommendResponse:
        """Ask for `user_id`'s list; never raises for HTTP or network failures."""
        started = time.perf_counter()
        try:
            response = self._session.get(f"{self.base_url}/recommend/{user_id}", timeout=self.timeout_seconds)
        except requests.Timeout:
            return self._failure("timeout", started)
        except requests.RequestException:
            return self._failure("connection_error", started)
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        version = response.headers.get("X-Model-Version") or None
        results = parse_recommendations(response.text) if response.status_code == 200 else ()
        return RecommendResponse(
            response.status_code, results, elapsed_ms, version, server_token(version, self.host, self.port)
        )

    def _failure(self, error: str, started: float) -> RecommendResponse:
        elapsed_ms = round((time.perf_counter() - started) * 1000)
        return RecommendResponse(0, (), elapsed_ms, None, server_token(None, self.host, self.port), error)

    def close(self) -> None:
        self._session.close()
