"""What a hostile client sends to the router: ids are validated before anything is forwarded, what is
forwarded is the canonical id, and the headers that change the answer (Accept, ?format=json) pass."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask, jsonify, request
from sqlalchemy import Engine

from db_utils.ids import MAX_USER_ID
from tests.inference.conftest import indexed_data_dir  # noqa: F401 (a session fixture: the real small index)
from tests.load_balancer.helpers import router_settings, serve_in_thread


@pytest.fixture
def db_url(pg_engine: Engine) -> str:
    return pg_engine.url.render_as_string(hide_password=False)


def raw_get(base: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str, str]:
    """GET `path` exactly as written (no client-side normalisation of %2e, ? or #)."""
    parts = urlsplit(base)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.getheader("Content-Type", ""), response.read().decode()
    finally:
        connection.close()


@pytest.fixture
def echo_backend() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A backend that records exactly what the router forwarded to it."""
    seen: list[dict[str, Any]] = []
    app = Flask("echo-backend")

    @app.get("/health")
    def health() -> Any:
        return jsonify(status="ok"), 200

    @app.get("/<path:anything>")
    def echo(anything: str) -> Any:
        seen.append({"path": request.path, "args": request.args.to_dict(), "accept": request.headers.get("Accept")})
        return jsonify(status="ok"), 200

    @app.get("/")
    def root() -> Any:
        seen.append({"path": "/", "args": request.args.to_dict(), "accept": request.headers.get("Accept")})
        return jsonify(service="echo", endpoints=["/recommend/<user_id>"]), 200

    server = serve_in_thread(app)
    yield server.url, seen
    server.stop()


HOSTILE_PATHS = [
    "/recommend/%2e%2e",  # was forwarded as /recommend/.. -> the backend's root JSON with 200
    "/recommend/1%3Fformat=json",  # was forwarded as a query string
    "/recommend/1%23frag",  # was forwarded as a fragment
    "/recommend/..%2Fhealth",
    "/recommend/1%2F2",
    "/recommend/1%20",
    "/recommend/abc",
    "/recommend/0",
    "/recommend/-5",
    "/recommend/%EF%BC%91",  # a full-width digit one: isdigit() in Unicode, not an id
    f"/recommend/{MAX_USER_ID + 1}",
    "/recommend/1%0A",  # found by schemathesis: werkzeug's path converter does not match a newline (was 404)
    "/recommend/%C3%9E%C3%AC%1D%01%0A",
    "/recommend/",
    "/recommend//1",
]


@pytest.mark.parametrize("path", HOSTILE_PATHS)
def test_router_answers_400_to_invalid_ids_and_forwards_nothing(path, db_url, data_dir, echo_backend,
                                                                start_router) -> None:
    backend_url, seen = echo_backend
    _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=backend_url))
    status, content_type, body = raw_get(router.url, path)
    assert status == 400, body
    assert content_type.startswith("text/plain") and "user id" in body
    status, content_type, body = raw_get(router.url, path, {"Accept": "application/json"})
    assert status == 400 and "user id" in json.loads(body)["error"]
    assert seen == []


def test_router_forwards_the_canonical_id_and_only_the_answer_changing_inputs(db_url, data_dir, echo_backend,
                                                                             start_router) -> None:
    backend_url, seen = echo_backend
    _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=backend_url))
    assert raw_get(router.url, "/recommend/007?format=json&debug=1", {"Accept": "application/json"})[0] == 200
    assert raw_get(router.url, f"/recommend/{MAX_USER_ID}")[0] == 200
    assert seen == [
        {"path": "/recommend/7", "args": {"format": "json"}, "accept": "application/json"},
        {"path": f"/recommend/{MAX_USER_ID}", "args": {}, "accept": None},
    ]


def test_json_from_the_real_inference_service_comes_through_the_router(
        db_url, data_dir, start_router, indexed_data_dir: Path, postgres_url: str) -> None:  # noqa: F811
    from inference.app import create_app
    from inference.settings import InferenceSettings

    settings = InferenceSettings.from_env({"MOVIEREC_DATA_DIR": str(indexed_data_dir), "DATABASE_URL": postgres_url,
                                           "CHROMA_URL": "", "INFERENCE_DB_RETRY_SECONDS": "0"})
    inference_app = create_app(settings)
    inference = serve_in_thread(inference_app)
    try:
        _, router = start_router(router_settings(db_url, data_dir, LB_MAIN_URL=inference.url))
        for headers, path in [({"Accept": "application/json"}, "/recommend/42"), ({}, "/recommend/42?format=json")]:
            status, content_type, body = raw_get(router.url, path, headers)
            assert status == 200 and content_type.startswith("application/json")
            answer = json.loads(body)
            assert answer["user_id"] == 42 and len(answer["recommendations"]) == 20
        status, content_type, body = raw_get(router.url, "/recommend/42")
        assert status == 200 and content_type.startswith("text/plain") and len(body.split(",")) == 20
        for path in ["/recommend/%2e%2e", "/recommend/1%3Fformat=json", "/recommend/1%23frag"]:
            assert raw_get(inference.url, path)[0] == 400  # the service alone agrees with the router
            assert raw_get(router.url, path)[0] == 400
    finally:
        inference.stop()
        inference_app.extensions["movierec_inference"].history.dispose()
