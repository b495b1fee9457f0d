"""Loopback ports: a free one to listen on, and waiting until something listens."""

from __future__ import annotations

import contextlib
import socket

from movierec.base.waiting import wait_until


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout_seconds: float = 10.0) -> None:
    def listening() -> bool:
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return True
        return False

    if not wait_until(listening, timeout_seconds, 0.05):
        raise TimeoutError(f"nothing listens on {host}:{port} after {timeout_seconds}s")
