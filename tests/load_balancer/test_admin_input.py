"""What a hostile token holder sends to the admin API: every invalid body is a 400 with a message,
an oversized body a 413, and only http(s) backends on allowed hosts can be registered."""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
import yaml
from sqlalchemy import Engine

from load_balancer.router.admin_schemas import (
    ADMIN_MAX_BODY_BYTES,
    DEFAULT_ALLOWED_BACKEND_HOSTS,
    BodyError,
    CanaryWeightBody,
    RegisterBackendBody,
    check_backend_url,
    parse_allowed_hosts,
    parse_body,
)
from load_balancer.router.settings import RouterSettings
from tests.load_balancer.helpers import auth, router_settings

REPO = Path(__file__).resolve().parents[2]

# ---- pure: the schemas and the URL allow-list -------------------------------------------------


@pytest.mark.parametrize("raw", [b'{"weight": true}', b'{"weight": "0.5"}', b'{"weight": 1.5}', b'{"weight": -0.1}',
                                 b'{"weight": NaN}', b'{"weight": 1e400}', b'{}', b'[0.5]', b'0.5', b'not json',
                                 b'{"weight": 0.5, "wieght": 0.5}'])
def test_canary_weight_body_rejects_everything_but_a_number_in_range(raw: bytes) -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(CanaryWeightBody, raw)
    assert caught.value.status == 400 and str(caught.value).startswith("invalid body: ")


@pytest.mark.parametrize("raw", [b'{"weight": 0}', b'{"weight": 1}', b'{"weight": 0.25}'])
def test_canary_weight_body_accepts_numbers_in_range(raw: bytes) -> None:
    assert parse_body(CanaryWeightBody, raw).weight == json.loads(raw)["weight"]


def test_register_body_names_every_wrong_field() -> None:
    with pytest.raises(BodyError) as caught:
        parse_body(RegisterBackendBody, json.dumps({"name": "nightly", "url": "http://127.0.0.1:1", "weight": "abc",
                                                    "details": "zz", "git_ref": {"a": 1}}).encode())
    message = str(caught.value)
    assert "weight" in message and "details" in message and "git_ref" in message


@pytest.mark.parametrize("url", ["http://169.254.169.254/latest/meta-data", "file:///etc/passwd", "not a url",
                                 "gopher://127.0.0.1:70", "http://127.0.0.1:99999", "http://user:pw@127.0.0.1:8001",
                                 "http://127.0.0.1:8001/?next=x", "http://evil.example", "http://127.0.0.1.nip.io",
                                 "http:///nohost", "http://localhost:0"])
def test_backend_urls_outside_the_allow_list_are_refused(url: str) -> None:
    with pytest.raises(BodyError, match="url"):
        check_backend_url(url, DEFAULT_ALLOWED_BACKEND_HOSTS)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8001/", "https://localhost:8443", "http://[::1]:8001",
                                 "http://inference-nightly:8002", "http://movierec-nightly-r42:8002",
                                 "http://INFERENCE-MAIN:8001"])
def test_backend_urls_on_allowed_hosts_are_kept_without_trailing_slash(url: str) -> None:
    assert check_backend_url(url, DEFAULT_ALLOWED_BACKEND_HOSTS) == url.rstrip("/")


def test_allow_list_setting_and_its_default_cover_the_compose_backends() -> None:
    assert RouterSettings.from_env({}).backend_allowed_hosts == DEFAULT_ALLOWED_BACKEND_HOSTS
    settings = RouterSettings.from_env({"LB_BACKEND_ALLOWED_HOSTS": " 10.0.0.5 , Infer-* "})
    assert settings.backend_allowed_hosts == ("10.0.0.5", "infer-*")
    assert parse_allowed_hosts("") == ()
    with open(REPO / "docker-compose.yml") as handle:
        router_env = yaml.safe_load(handle)["services"]["router"]["environment"]
    for key in ("LB_MAIN_URL", "LB_NIGHTLY_URL"):
        check_backend_url(router_env[key], DEFAULT_ALLOWED_BACKEND_HOSTS)
    with open(REPO / ".env.example") as handle:
        documented = dict(line.strip().split("=", 1) for line in handle if line.startswith("LB_BACKEND_ALLOWED_HOSTS="))
    assert parse_allowed_hosts(documented["LB_BACKEND_ALLOWED_HOSTS"]) == DEFAULT_ALLOWED_BACKEND_HOSTS


# ---- live: the router's admin API on a loopback port ------------------------------------------


@pytest.fixture
def admin_url(pg_engine: Engine, data_dir, start_backend, start_router) -> str:
    _, main_server = start_backend("main-v1")
    url = pg_engine.url.render_as_string(hide_password=False)
    _, router = start_router(router_settings(url, data_dir, LB_MAIN_URL=main_server.url))
    return f"{router.url}/admin"


def _post(url: str, body: bytes, content_type: str = "application/json") -> requests.Response:
    return requests.post(url, data=body, headers={**auth(), "Content-Type": content_type}, timeout=5)


@pytest.mark.parametrize("body", [
    {"name": "nightly", "url": "http://127.0.0.1:9", "weight": "abc"},
    {"name": "nightly", "url": "http://127.0.0.1:9", "details": "zz"},
    {"name": "nightly", "url": "http://127.0.0.1:9", "git_ref": {"a": 1}},
    {"name": "nightly", "url": "http://127.0.0.1:9", "weight": True},
    {"name": "nightly", "url": "http://127.0.0.1:9", "weight": "0.5"},
    {"name": "nightly", "url": "http://127.0.0.1:9", "weight": 1.01},
    {"name": "nightly", "url": "http://127.0.0.1:9", "release_id": "r" * 65},
    {"name": "nightly", "url": "http://127.0.0.1:9", "version": "v\x00"},
    {"name": "nightly", "url": "http://169.254.169.254/latest/meta-data"},
    {"name": "nightly", "url": "file:///etc/passwd"},
    {"name": "nightly", "url": "not a url"},
    {"name": "canary", "url": "http://127.0.0.1:9"},
    {"url": "http://127.0.0.1:9"},
    ["nightly"],
])
def test_invalid_registrations_get_400_with_a_message_and_change_nothing(admin_url: str, body) -> None:
    before = _registered(admin_url)
    answer = _post(f"{admin_url}/backends", json.dumps(body).encode())
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]
    assert _registered(admin_url) == before


def _registered(admin_url: str) -> dict:
    """The router's state as the admin API set it, without what health checks observe meanwhile."""
    state = requests.get(f"{admin_url}/backends", headers=auth(), timeout=5).json()
    for name in ("main", "nightly"):
        if isinstance(state.get(name), dict):
            state[name].pop("up", None)
            state[name].pop("observed_version", None)
    return state


def test_invalid_weights_and_decisions_get_400(admin_url: str) -> None:
    assert _post(f"{admin_url}/backends", b'{"name": "nightly", "url": "http://127.0.0.1:9"}').status_code == 201
    for raw in [b'{"weight": true}', b'{"weight": "0.5"}', b'{"weight": 2}', b'{"weight": -1}', b"{", b""]:
        answer = requests.put(f"{admin_url}/canary-weight", data=raw, headers=auth(), timeout=5)
        assert answer.status_code == 400 and "weight" in answer.json()["error"] or raw == b"{", (raw, answer.text)
    for path in ("promote", "rollback"):
        answer = _post(f"{admin_url}/{path}", b'{"metrics": [1], "note": 5}')
        assert answer.status_code == 400 and "metrics" in answer.json()["error"] and "note" in answer.json()["error"]
    assert requests.delete(f"{admin_url}/backends/..", headers=auth(), timeout=5).status_code in {400, 404}
    assert requests.delete(f"{admin_url}/backends/canary", headers=auth(), timeout=5).status_code == 400
    listing = requests.get(f"{admin_url}/backends", headers=auth(), timeout=5).json()
    assert listing["canary_weight"] == 0.2  # nothing above changed the state
    assert requests.put(f"{admin_url}/canary-weight", json={"weight": 1}, headers=auth(), timeout=5).status_code == 200


def test_bodies_over_the_limit_get_413_declared_or_chunked(admin_url: str) -> None:
    big = json.dumps({"name": "nightly", "url": "http://127.0.0.1:9", "details": {"x": "y" * ADMIN_MAX_BODY_BYTES}})
    answer = _post(f"{admin_url}/backends", big.encode())
    assert answer.status_code == 413 and "larger than" in answer.json()["error"]
    parts = urlsplit(admin_url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=5)
    try:  # no Content-Length: the limit applies to what is read
        connection.request("POST", f"{parts.path}/backends", body=iter([big.encode()[i:i + 4096]
                                                                         for i in range(0, len(big), 4096)]),
                           headers={**auth(), "Content-Type": "application/json"}, encode_chunked=True)
        response = connection.getresponse()
        assert response.status == 413, response.read()
    finally:
        connection.close()
    assert requests.get(f"{admin_url}/backends", headers=auth(), timeout=5).json()["nightly"] is None
