"""The Docker backend against a local HTTP receiver speaking enough of the Docker Engine API
(DOCKER_HOST=tcp://127.0.0.1:PORT): create, start, inspect, stop and remove are recorded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask, jsonify, request

from load_balancer.release.deploy import start_docker, stop_backend
from load_balancer.release.settings import ReleaseSettings
from tests.load_balancer.conftest import serve_in_thread

CONTAINER_ID = "c0ffee" * 10 + "abcd"


def docker_engine(calls: list[dict[str, Any]]) -> Flask:
    app = Flask("docker-engine")

    @app.route("/<path:path>", methods=["GET", "POST", "DELETE"])
    def api(path: str) -> Any:
        endpoint = "/" + path.split("/", 1)[1] if path.startswith("v1.") else "/" + path
        calls.append({"method": request.method, "endpoint": endpoint, "args": request.args.to_dict(),
                      "body": request.get_json(silent=True)})
        if endpoint == "/version":
            return jsonify(ApiVersion="1.44", Version="26.0.0", MinAPIVersion="1.24")
        if endpoint == "/_ping":
            return "OK"
        if endpoint == "/containers/create":
            return jsonify(Id=CONTAINER_ID, Warnings=[]), 201
        if endpoint.endswith("/start") or endpoint.endswith("/stop"):
            return "", 204
        if endpoint == f"/containers/{CONTAINER_ID}/json":
            return jsonify(Id=CONTAINER_ID, Name="/movierec-nightly-r1", State={"Status": "running", "Running": True},
                           Config={"Image": "movierec/inference:abc123", "Labels": {}})
        if request.method == "DELETE" and endpoint == f"/containers/{CONTAINER_ID}":
            return "", 204
        return jsonify(message=f"unexpected {request.method} {endpoint}"), 404

    return app


@pytest.fixture
def engine_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    calls: list[dict[str, Any]] = []
    server = serve_in_thread(docker_engine(calls))
    monkeypatch.setenv("DOCKER_HOST", f"tcp://127.0.0.1:{server.port}")
    monkeypatch.delenv("DOCKER_TLS_VERIFY", raising=False)
    yield calls
    server.stop()


def test_docker_backend_creates_starts_and_stops_the_container(engine_calls, data_dir) -> None:
    settings = ReleaseSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir), "RELEASE_BACKEND": "docker",
                                         "DATABASE_URL": "postgresql+psycopg2://movierec@database/movierec",
                                         "RELEASE_DOCKER_IMAGE": "movierec/inference",
                                         "RELEASE_DOCKER_VOLUMES": "movierec-data:/data"})
    started = start_docker(settings, "r1", "abc123", "blend", "blend-r1", network="movierec_default")
    assert started.url == "http://movierec-nightly-r1:8002"
    assert started.handle == {"kind": "docker", "container_id": CONTAINER_ID, "name": "movierec-nightly-r1",
                              "port": 8002}
    create = next(c for c in engine_calls if c["endpoint"] == "/containers/create")
    assert create["args"]["name"] == "movierec-nightly-r1"
    body = create["body"]
    assert body["Image"] == "movierec/inference:abc123"
    assert body["Cmd"] == ["movierec", "inference", "--port", "8002", "--host", "0.0.0.0", "--strategy", "blend"]
    assert "MODEL_VERSION=blend-r1" in body["Env"] and "INFERENCE_STRATEGY=blend" in body["Env"]
    assert "DATABASE_URL=postgresql+psycopg2://movierec@database/movierec" in body["Env"]
    assert body["Labels"] == {"movierec.release": "r1", "movierec.role": "nightly"}
    assert body["HostConfig"]["NetworkMode"] == "movierec_default"
    assert body["HostConfig"]["Binds"] == ["movierec-data:/data"]  # the index the bootstrap job built
    assert any(c["endpoint"] == f"/containers/{CONTAINER_ID}/start" for c in engine_calls)

    assert stop_backend(started.handle, timeout_seconds=7)
    stop = next(c for c in engine_calls if c["endpoint"] == f"/containers/{CONTAINER_ID}/stop")
    assert stop["args"]["t"] == "7"
    assert any(c["method"] == "DELETE" and c["endpoint"] == f"/containers/{CONTAINER_ID}" for c in engine_calls)


def test_docker_backend_publishes_the_port_without_a_network(engine_calls, data_dir) -> None:
    settings = ReleaseSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir), "RELEASE_NIGHTLY_PORT": "8012",
                                         "RELEASE_NIGHTLY_HOST": "10.0.0.5"})
    started = start_docker(settings, "r2", "def456", "", "r2")
    assert started.url == "http://10.0.0.5:8012"
    body = next(c for c in engine_calls if c["endpoint"] == "/containers/create")["body"]
    # the image scheme of docker-compose.yml and .gitlab-ci.yml: <namespace>/movierec-inference:<sha12>
    assert body["Image"] == "movierec/movierec-inference:def456"
    assert body["HostConfig"]["PortBindings"] == {"8012/tcp": [{"HostIp": "", "HostPort": "8012"}]}
    assert body["Cmd"] == ["movierec", "inference", "--port", "8012", "--host", "0.0.0.0"]
