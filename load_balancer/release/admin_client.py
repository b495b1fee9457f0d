"""A small client of the router's admin API (used by the release pipeline)."""

from __future__ import annotations

from typing import Any

import requests


class AdminError(Exception):
    """The router refused or could not be reached."""


class AdminClient:
    def __init__(self, base_url: str, token: str, timeout_seconds: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {token}"}
        self._timeout = timeout_seconds

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        try:
            response = requests.request(method, f"{self.base_url}/admin{path}", json=body, headers=self._headers,
                                        timeout=self._timeout)
        except requests.RequestException as exc:
            raise AdminError(f"router admin API unreachable at {self.base_url}: {exc}") from exc
        if response.status_code >= 300:
            raise AdminError(f"{method} /admin{path} -> {response.status_code}: {response.text[:300]}")
        return response.json()

    def backends(self) -> dict[str, Any]:
        return self._call("GET", "/backends")

    def register(self, **body: Any) -> dict[str, Any]:
        return self._call("POST", "/backends", body)

    def deregister(self, name: str) -> dict[str, Any]:
        return self._call("DELETE", f"/backends/{name}")

    def set_canary_weight(self, weight: float) -> dict[str, Any]:
        return self._call("PUT", "/canary-weight", {"weight": weight})

    def promote(self, metrics: dict[str, Any] | None = None, note: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/promote", {"metrics": metrics or {}, "note": note})

    def rollback(self, metrics: dict[str, Any] | None = None, note: str | None = None) -> dict[str, Any]:
        return self._call("POST", "/rollback", {"metrics": metrics or {}, "note": note})
