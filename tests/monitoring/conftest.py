"""Fixtures for the monitoring tests: real Prometheus/Alertmanager binaries, a Slack receiver, live services."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

from monitoring.local import find_binary
from movierec.base.ports import free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]


def _require(*names: str) -> None:
    missing = [name for name in names if find_binary(name) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed (apt-get install -y prometheus prometheus-alertmanager)")


@pytest.fixture
def promtool() -> Path:
    _require("promtool")
    return find_binary("promtool")  # type: ignore[return-value]


@pytest.fixture
def amtool() -> Path:
    _require("amtool")
    return find_binary("amtool")  # type: ignore[return-value]


@pytest.fixture
def monitoring_binaries() -> None:
    _require("prometheus", "prometheus-alertmanager")


@dataclass
class SlackReceiver:
    """A loopback HTTP server that records every JSON body POSTed to it (the Slack stand-in)."""

    url: str
    payloads: list[dict[str, Any]] = field(default_factory=list)
    received: threading.Condition = field(default_factory=threading.Condition)

    def wait_for(self, predicate: Any, timeout_seconds: float) -> dict[str, Any] | None:
        with self.received:
            self.received.wait_for(lambda: any(predicate(p) for p in self.payloads), timeout=timeout_seconds)
            return next((p for p in self.payloads if predicate(p)), None)


@pytest.fixture
def slack_receiver() -> Iterator[SlackReceiver]:
    port = free_port()
    receiver = SlackReceiver(url=f"http://127.0.0.1:{port}/services/T000/B000/slack-webhook")

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with receiver.received:
                receiver.payloads.append({"path": self.path, "body": json.loads(body or b"{}")})
                receiver.received.notify_all()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()


@dataclass
class LiveProcess:
    name: str
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""


def start_movierec(
    name: str, args: list[str], port: int, log_dir: Path, env: dict[str, str] | None = None,
    health_path: str = "/metrics", timeout_seconds: float = 60.0,
) -> LiveProcess:
    """Run a `movierec` command as its own process (like the supervisor does) and wait for its HTTP port."""
    log_path = log_dir / f"{name}.log"
    full_env = {**os.environ, **(env or {})}
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "movierec.cli", *args], stdout=log,
                                   stderr=subprocess.STDOUT, env=full_env, cwd=REPO, start_new_session=True)
    live = LiveProcess(name, port, process, log_path)
    try:
        wait_for_port("127.0.0.1", port, timeout_seconds=timeout_seconds)
        requests.get(f"{live.url}{health_path}", timeout=10).raise_for_status()
    except Exception:
        live.stop()
        raise AssertionError(f"{name} did not start:\n{live.log_tail()}") from None
    return live
