"""The router's forwarding against a real socket server that closes kept-alive connections."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from load_balancer.router import backends
from load_balancer.router.backends import BackendFailure, SessionPool, fetch

BODY = b'{"ok": true}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nConnection: keep-alive\r\n"
          b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)


def accept_in_background(listener: socket.socket, serve: Callable[[socket.socket], None], seen: dict[str, int]) -> None:
    """Accept connections until the listener closes, counting them in `seen` and serving each in a thread."""

    def accept() -> None:
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            seen["connections"] += 1
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()


@contextmanager
def closing_backend(answers_per_connection: int,
                    address: tuple[str, int] = ("127.0.0.1", 0)) -> Iterator[tuple[str, dict[str, int]]]:
    """An HTTP/1.1 server that answers `answers_per_connection` requests on a connection, then reads the
    next request and closes without answering (as a backend draining on a graceful stop does)."""
    seen = {"connections": 0, "requests": 0}
    listener = socket.create_server(address)
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

    accept_in_background(listener, serve, seen)
    try:
        yield f"http://{address[0]}:{listener.getsockname()[1]}", seen
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


def test_a_name_with_two_addresses_is_answered_by_the_second_when_the_first_drains_or_refuses(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A service scaled to two containers during a redeploy: the name resolves to both, and the old one, first in
    the resolver's answer, accepts connections it closes unanswered while it drains (or refuses them once its
    listener is closed). The request is answered by the other, not failed."""
    pool = SessionPool(pool_size=1)
    with scripted_backend(ANSWER) as (url, new_seen, heads):
        port = int(url.rsplit(":", 1)[1])
        with closing_backend(0, ("127.0.0.2", port)) as (_, old_seen):
            monkeypatch.setattr(backends, "resolve", lambda host, p: [(socket.AF_INET, ("127.0.0.2", p)),
                                                                      (socket.AF_INET, ("127.0.0.1", p))])
            answer = fetch(pool, f"http://inference-main:{port}", "/recommend/1", 5.0)
        assert answer.status == 200 and answer.body == BODY
        assert old_seen == {"connections": 1, "requests": 1} and new_seen["connections"] == 1
        assert heads[0].startswith(b"GET /recommend/1 HTTP/1.1\r\nHost: inference-main:")
        # The old one has stopped listening: refused, then the next address.
        monkeypatch.setattr(backends, "resolve", lambda host, p: [(socket.AF_INET, ("127.0.0.3", p)),
                                                                  (socket.AF_INET, ("127.0.0.1", p))])
        assert fetch(SessionPool(pool_size=1), f"http://inference-main:{port}", "/recommend/2", 5.0).status == 200


def test_an_unknown_host_name_is_a_connect_failure() -> None:
    with pytest.raises(BackendFailure) as failure:
        fetch(SessionPool(pool_size=1), "http://no-such-backend.invalid:8001", "/recommend/1", 1.0)
    assert failure.value.kind == "connect"


@contextmanager
def scripted_backend(answer: bytes | None) -> Iterator[tuple[str, dict[str, int], list[bytes]]]:
    """An HTTP/1.1 server that sends `answer` to every request (None: never answers), keeping the
    connection open unless the answer says `Connection: close`; it records the requests' heads."""
    seen = {"connections": 0}
    heads: list[bytes] = []
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            buffered = b""
            while True:
                while b"\r\n\r\n" not in buffered:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buffered += chunk
                head, _, buffered = buffered.partition(b"\r\n\r\n")
                heads.append(head)
                if answer is None:
                    continue
                conn.sendall(answer)
                if b"Connection: close" in answer:
                    return

    accept_in_background(listener, serve, seen)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}", seen, heads
    finally:
        listener.close()


def test_answers_come_back_on_one_kept_alive_connection_with_the_forwarded_headers() -> None:
    pool = SessionPool(pool_size=2)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nX-Model-Version: v7\r\nContent-Length: 3\r\n\r\n1 2")
    with scripted_backend(answer) as (url, seen, heads):
        answers = [fetch(pool, url + "/prefix/", f"/recommend/{i}", 5.0, headers={"Accept": "text/plain"})
                   for i in range(3)]
    assert [(a.status, a.body, a.content_type, a.model_version) for a in answers] == [(200, b"1 2", "text/plain",
                                                                                         "v7")] * 3
    assert seen["connections"] == 1
    assert heads[0].startswith(b"GET /prefix/recommend/0 HTTP/1.1\r\nHost: 127.0.0.1:")
    assert b"\r\nAccept: text/plain" in heads[0]


def test_a_chunked_answer_that_closes_its_connection_is_read_whole_and_not_reused() -> None:
    pool = SessionPool(pool_size=2)
    answer = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n"
              b"Connection: close\r\n\r\n4\r\n{\"a\"\r\n3\r\n: 1\r\n1\r\n}\r\n0\r\n\r\n")
    with scripted_backend(answer) as (url, seen, _):
        bodies = [fetch(pool, url, "/recommend/1", 5.0).body for _ in range(2)]
    assert bodies == [b'{"a": 1}'] * 2
    assert seen["connections"] == 2


def test_a_5xx_a_silent_backend_and_a_refused_connection_fail_by_kind() -> None:
    pool = SessionPool(pool_size=1)
    with scripted_backend(b"HTTP/1.1 503 Unavailable\r\nContent-Length: 0\r\n\r\n") as (url, _, _), \
            pytest.raises(BackendFailure) as failure:
        fetch(pool, url, "/recommend/1", 5.0)
    assert failure.value.kind == "http_5xx"
    with scripted_backend(None) as (url, _, _), pytest.raises(BackendFailure) as failure:
        fetch(pool, url, "/recommend/1", 0.2)
    assert failure.value.kind == "timeout"
    closed = socket.create_server(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()
    with pytest.raises(BackendFailure) as failure:
        fetch(pool, f"http://127.0.0.1:{port}", "/recommend/1", 1.0)
    assert failure.value.kind == "connect"


def test_a_header_value_that_would_split_the_request_is_not_sent() -> None:
    pool = SessionPool(pool_size=1)
    with scripted_backend(ANSWER) as (url, _, heads):
        fetch(pool, url, "/recommend/1", 5.0, headers={"Accept": "text/plain\r\nX-Evil: 1"})
    assert b"X-Evil" not in heads[0]


def test_backends_that_left_have_their_idle_connections_closed() -> None:
    pool = SessionPool(pool_size=1)
    with scripted_backend(ANSWER) as (url, seen, _):
        urls = [f"{url}/v{i}" for i in range(SessionPool.MAX_BACKENDS + 1)]  # one backend per release URL
        for backend_url in urls:
            fetch(pool, backend_url, "/recommend/1", 5.0)
        assert seen["connections"] == SessionPool.MAX_BACKENDS + 1
        fetch(pool, urls[-1], "/recommend/1", 5.0)  # the newest keeps its kept-alive connection
        assert seen["connections"] == SessionPool.MAX_BACKENDS + 1
        fetch(pool, urls[0], "/recommend/1", 5.0)  # the oldest was dropped: a new connection
        assert seen["connections"] == SessionPool.MAX_BACKENDS + 2
