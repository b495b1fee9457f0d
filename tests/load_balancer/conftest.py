"""Real loopback servers for the router tests: small Flask backends, the router itself, a webhook
receiver that records what Slack would have received."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from load_balancer.router.settings import RouterSettings
from movierec.base.ports import free_port
from tests.support import wait_until  # noqa: F401 (re-exported by helpers.py)

ADMIN_TOKEN = "test-admin-token"


@dataclass
class LiveServer:
    url: str
    port: int
    stop: Callable[[], None]


def serve_in_thread(app: Flask, port: int | None = None) -> LiveServer:
    """A real threaded HTTP server on a loopback port, in this process."""
    port = port or free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()

    return LiveServer(f"http://127.0.0.1:{port}", port, stop)


@dataclass
class BackendBehaviour:
    """What a test backend does; tests flip it while it runs."""

    version: str
    mode: str = "ok"  # ok | error | hang | unhealthy
    hang_seconds: float = 2.0
    calls: list[str] = field(default_factory=list)


def backend_app(behaviour: BackendBehaviour) -> Flask:
    """A small recommendation backend: answers `/recommend/<id>` with a version header."""
    app = Flask(f"backend-{behaviour.version}")

    @app.get("/recommend/<user_id>")
    def recommend(user_id: str) -> Response:
        behaviour.calls.append(user_id)
        if behaviour.mode == "error":
            return Response("boom", status=500)
        if behaviour.mode == "hang":
            time.sleep(behaviour.hang_seconds)
        films = ",".join(f"{behaviour.version}-film-{i}" for i in range(3))
        return Response(films, headers={"X-Model-Version": behaviour.version}, content_type="text/plain")

    @app.get("/health")
    def health() -> Any:
        if behaviour.mode == "unhealthy":
            return jsonify(status="down"), 503
        return jsonify(status="ok", version=behaviour.version), 200, {"X-Model-Version": behaviour.version}

    return app


@pytest.fixture
def start_backend() -> Iterator[Callable[[str], tuple[BackendBehaviour, LiveServer]]]:
    servers: list[LiveServer] = []

    def start(version: str) -> tuple[BackendBehaviour, LiveServer]:
        behaviour = BackendBehaviour(version)
        server = serve_in_thread(backend_app(behaviour))
        servers.append(server)
        return behaviour, server

    yield start
    for server in servers:
        server.stop()


def router_settings(database_url: str, data_dir: Any, **overrides: Any) -> RouterSettings:
    environ = {"DATABASE_URL": database_url, "MOVIEREC_DATA_DIR": str(data_dir), "LB_ADMIN_TOKEN": ADMIN_TOKEN,
               "LB_HEALTH_INTERVAL_SECONDS": "0.2", "LB_STATE_POLL_SECONDS": "0.2",
               "LB_BACKEND_TIMEOUT_SECONDS": "0.3", "LB_ONLINE_EVAL_INTERVAL_SECONDS": "1"}
    environ.update({k: str(v) for k, v in overrides.items()})
    return RouterSettings.from_env(environ)


@pytest.fixture
def start_router() -> Iterator[Callable[..., tuple[Flask, LiveServer]]]:
    """The router app (create_app) on a loopback port in this process, background threads on."""
    running: list[tuple[Flask, LiveServer]] = []

    def start(settings: RouterSettings) -> tuple[Flask, LiveServer]:
        from load_balancer.router.app import create_app

        app = create_app(settings)
        server = serve_in_thread(app)
        running.append((app, server))
        return app, server

    yield start
    for app, server in running:
        ctx = app.extensions["movierec_lb"]
        ctx.stop.set()
        ctx.health.stop()
        server.stop()


@dataclass
class Webhook:
    url: str
    payloads: list[dict[str, Any]]


@pytest.fixture
def slack_receiver() -> Iterator[Webhook]:
    """A local HTTP receiver standing in for Slack's incoming webhook (records the JSON bodies)."""
    payloads: list[dict[str, Any]] = []
    app = Flask("slack-receiver")

    @app.post("/services/T000/B000/XXX")
    def receive() -> Any:
        payloads.append(json.loads(request.get_data()))
        return "ok", 200

    server = serve_in_thread(app)
    yield Webhook(f"{server.url}/services/T000/B000/XXX", payloads)
    server.stop()


def auth() -> dict[str, str]:
    return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

