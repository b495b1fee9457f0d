"""The router's forwarding against a real socket server that closes kept-alive connections."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from load_balancer.router.backends import BackendFailure, SessionPool, fetch

BODY = b'{"ok": true}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
          b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


@contextmanager
def closing_backend(answers_per_connection: int) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP/1.1 server that answers `answers_per_connection` requests on a connection, then reads the
    next request and closes without answering (as a backend draining on a graceful stop does)."""
    seen = {"connections": 0, "requests": 0}
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve(conn: socket.socket) -> None:
        with conn:
            answered = 0
            while not stop.is_set():
                request = b""
                while b"\r\n\r\n" not in request:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    request += chunk
                seen["requests"] += 1
                if answered == answers_per_connection:
                    return  # closed without an answer
                conn.sendall(ANSWER)
                answered += 1

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            seen["connections"] += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen
    finally:
        stop.set()
        listener.close()


def test_a_kept_alive_connection_the_backend_closed_is_sent_again_on_a_fresh_one() -> None:
    pool = SessionPool(pool_size=1)
    with closing_backend(answers_per_connection=1) as (url, seen):
        first = fetch(pool, url, "/recommend/1", 5.0)
        second = fetch(pool, url, "/recommend/2", 5.0)  # the pooled connection is closed under it
    assert first.status == second.status == 200 and second.body == BODY
    assert seen == {"connections": 2, "requests": 3}


def test_a_backend_that_never_answers_fails_after_one_more_try() -> None:
    pool = SessionPool(pool_size=1)
    with closing_backend(answers_per_connection=0) as (url, seen), pytest.raises(BackendFailure) as failure:
        fetch(pool, url, "/recommend/1", 5.0)
    assert failure.value.kind == "connect"
    assert seen == {"connections": 2, "requests": 2}
