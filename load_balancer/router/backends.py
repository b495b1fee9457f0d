"""Talking to the backends: pooled keep-alive connections, one forward with retry, active health checks."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
import urllib3
from urllib3.exceptions import HTTPError, NewConnectionError, ProtocolError
from urllib3.exceptions import TimeoutError as Urllib3Timeout

from load_balancer.router.lb_metrics import LB_BACKEND_UP
from load_balancer.router.state import RouterState

log = logging.getLogger(__name__)


class BackendFailure(Exception):
    """A backend did not answer usefully: kind is timeout, connect or http_5xx."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind


@dataclass(frozen=True)
class BackendAnswer:
    status: int
    body: bytes
    content_type: str
    model_version: str | None


@dataclass(frozen=True)
class RawAnswer:
    """A backend's whole answer, whatever its status."""

    status: int
    body: bytes
    content_type: str | None
    model_version: str | None


class _AnswerReader:
    """httptools' callbacks: the two headers the router passes on, the body, and where the message ends."""

    __slots__ = ("body", "complete", "content_type", "keep_alive", "model_version", "parser")

    def __init__(self) -> None:
        self.content_type: str | None = None
        self.model_version: str | None = None
        self.body: list[bytes] = []
        self.complete = False
        self.keep_alive = False
        self.parser = httptools.HttpResponseParser(self)

    def on_header(self, name: bytes, value: bytes) -> None:
        lowered = name.lower()
        if lowered == b"content-type":
            self.content_type = value.decode("latin-1")
        elif lowered == b"x-model-version":
            self.model_version = value.decode("latin-1")

    def on_body(self, chunk: bytes) -> None:
        self.body.append(chunk)

    def on_message_complete(self) -> None:
        self.complete = True
        # Asked here: once the message is complete, llhttp resets and no longer knows (it answers False).
        self.keep_alive = self.parser.should_keep_alive()


class _Broken(Exception):
    """The connection ended before a whole answer (closed, reset, or not HTTP): worth one fresh try."""


def resolve(host: str, port: int) -> list[tuple[int, tuple]]:
    """The (family, socket address) pairs `host` resolves to, in the resolver's order."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:  # socket.gaierror: the name is unknown (a container not yet, or no longer, there)
        raise BackendFailure("connect", f"resolving {host}: {exc}") from exc
    return [(family, address) for family, _, _, _, address in infos]


class _PlainHttpBackend:
    """Keep-alive HTTP/1.1 connections to one `http://` backend, parsed by httptools (llhttp, in C).

    The router's hot path is one GET per request. urllib3 on http.client cost ~450 us of client CPU per
    GET on a 2.45 GHz Zen 3 core, mostly in layers the router does not need (its pool and response
    objects, header parsing through `email.parser`); a socket from a LIFO of idle ones, one `sendall`
    and llhttp's parser cost ~85 us (bench/forward.py), about a fifth of the router's CPU per request.
    """

    def __init__(self, host: str, port: int, prefix: str, max_idle: int) -> None:
        self._address = (host, port)
        self._head = f"Host: {f'[{host}]' if ':' in host else host}:{port}\r\n".encode()  # IPv6 in brackets
        self._prefix = prefix
        self._max_idle = max_idle
        self._idle: list[socket.socket] = []
        self._lock = threading.Lock()

    def _connect(self, family: int, address: tuple, timeout_seconds: float) -> socket.socket:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(timeout_seconds)
        try:
            sock.connect(address)
        except TimeoutError as exc:
            sock.close()
            raise BackendFailure("timeout", f"connecting to {address[0]}:{address[1]}: {exc}") from exc
        except OSError as exc:
            sock.close()
            raise BackendFailure("connect", f"connecting to {address[0]}:{address[1]}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock

    def close(self) -> None:
        """Close the idle connections (the backend left the router's state)."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()

    def _release(self, sock: socket.socket) -> None:
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(sock)
                return
        sock.close()

    def get(self, path: str, timeout_seconds: float, headers: dict[str, str] | None) -> RawAnswer:
        extra = "".join(f"{name}: {value}\r\n" for name, value in (headers or {}).items()
                        if "\r" not in value and "\n" not in value)
        request = f"GET {self._prefix}{path} HTTP/1.1\r\n".encode() + self._head + extra.encode("latin-1") + b"\r\n"
        where = f"{self._address[0]}:{self._address[1]}"
        with self._lock:
            sock = self._idle.pop() if self._idle else None
        if sock is not None:
            answer = self._answer_on(sock, request, timeout_seconds)
            if not isinstance(answer, _Broken):
                return answer
            log.info("backend %s closed a kept-alive connection before answering (%s): sent again", where, answer)
        # Fresh connections: each address the name resolves to, in the resolver's order, until one answers
        # (a service scaled to two containers during a redeploy has both; the old one may still accept
        # connections it will close unanswered while it drains). Two tries at least, as for one address.
        addresses = resolve(*self._address)
        if sock is None and len(addresses) == 1:
            addresses = addresses * 2
        failure: BackendFailure | None = None
        for family, address in addresses:
            try:
                fresh = self._connect(family, address, timeout_seconds)
            except BackendFailure as exc:
                if exc.kind == "timeout":
                    raise
                failure = exc
                continue
            answer = self._answer_on(fresh, request, timeout_seconds)
            if not isinstance(answer, _Broken):
                return answer
            failure = BackendFailure("connect", f"{address[0]}:{address[1]}: {answer}")
            log.info("backend %s at %s closed a fresh connection before answering (%s)", where, address[0], answer)
        assert failure is not None
        raise failure

    def _answer_on(self, sock: socket.socket, request: bytes, timeout_seconds: float) -> RawAnswer | _Broken:
        """The answer on `sock`, or the error when the connection ended before one (the socket is then closed);
        no answer within the timeout raises BackendFailure (timeout)."""
        try:
            return self._exchange(sock, request, timeout_seconds)
        except _Broken as exc:
            sock.close()
            return exc
        except TimeoutError as exc:
            sock.close()
            raise BackendFailure("timeout", f"{self._address[0]}:{self._address[1]}: no answer in "
                                            f"{timeout_seconds} s") from exc
        except BaseException:
            sock.close()
            raise

    def _exchange(self, sock: socket.socket, request: bytes, timeout_seconds: float) -> RawAnswer:
        reader = _AnswerReader()
        parser = reader.parser
        sock.settimeout(timeout_seconds)
        try:
            sock.sendall(request)
            while not reader.complete:
                chunk = sock.recv(65536)
                if not chunk:
                    raise _Broken("connection closed")
                parser.feed_data(chunk)
        except TimeoutError:
            raise
        except (OSError, httptools.HttpParserError) as exc:  # closed, reset, or not an HTTP answer
            raise _Broken(f"{type(exc).__name__}: {exc}") from exc
        answer = RawAnswer(parser.get_status_code(), b"".join(reader.body), reader.content_type,
                           reader.model_version)
        if reader.keep_alive:
            self._release(sock)
        else:
            sock.close()
        return answer


class SessionPool:
    """Keep-alive connections to the backends, shared by the threads of this worker.

    Plain `http://` backends (the platform's own, on loopback or the compose network) go through
    `_PlainHttpBackend`; `https://` ones through urllib3's pool (TLS), which is slower but rare. Either
    way: one GET, sent once more on a fresh connection when a kept-alive one turns out closed (the backend
    restarted or drained it), failures raised as BackendFailure (connect / timeout). Plain backends also try
    each address their name resolves to before failing (urllib3 connects to the first that accepts).
    """

    # Backends remembered (with their idle connections) at once: main, nightly and the ones just replaced;
    # each release brings a new URL, so the oldest is dropped and its connections closed.
    MAX_BACKENDS = 8

    def __init__(self, pool_size: int = 16) -> None:
        self._pool_size = pool_size
        self._plain: dict[str, _PlainHttpBackend] = {}  # in the order first used
        self._manager: urllib3.PoolManager | None = None
        self._timeouts: dict[float, urllib3.Timeout] = {}

    def get(self, base_url: str, path: str, timeout_seconds: float,
            headers: dict[str, str] | None = None) -> RawAnswer:
        """GET `path` (already escaped, query included) on the backend at `base_url`."""
        backend = self._plain.get(base_url)
        if backend is None:
            parts = urlsplit(base_url)
            if parts.scheme != "http":
                return self._get_tls(base_url, path, timeout_seconds, headers)
            backend = _PlainHttpBackend(parts.hostname or "127.0.0.1", parts.port or 80, parts.path.rstrip("/"),
                                        self._pool_size)
            while len(self._plain) >= self.MAX_BACKENDS:
                self._plain.pop(next(iter(self._plain))).close()
            self._plain[base_url] = backend
        return backend.get(path, timeout_seconds, headers)

    def _get_tls(self, base_url: str, path: str, timeout_seconds: float,
                 headers: dict[str, str] | None) -> RawAnswer:
        if self._manager is None:
            self._manager = urllib3.PoolManager(num_pools=8, maxsize=self._pool_size, block=False, retries=False)
        timeout = self._timeouts.get(timeout_seconds)
        if timeout is None:
            timeout = self._timeouts[timeout_seconds] = urllib3.Timeout(connect=timeout_seconds, read=timeout_seconds)
        for attempt in (1, 2):
            try:
                response = self._manager.request("GET", base_url.rstrip("/") + path, headers=headers, retries=False,
                                                 timeout=timeout, redirect=False)
                return RawAnswer(response.status, response.data, response.headers.get("Content-Type"),
                                 response.headers.get("X-Model-Version"))
            except NewConnectionError as exc:  # a subclass of the timeout errors: test it first
                raise BackendFailure("connect", str(exc)) from exc
            except Urllib3Timeout as exc:
                raise BackendFailure("timeout", str(exc)) from exc
            except ProtocolError as exc:
                if attempt == 2:
                    raise BackendFailure("connect", str(exc)) from exc
                log.info("backend %s closed a connection before answering (%s): sent again", base_url, exc)
            except HTTPError as exc:
                raise BackendFailure("connect", str(exc)) from exc
        raise AssertionError("unreachable")  # pragma: no cover


def fetch(pool: SessionPool, base_url: str, path: str, timeout_seconds: float,
          headers: dict[str, str] | None = None) -> BackendAnswer:
    """GET `path` on the backend at `base_url`; raise BackendFailure on timeout, refused connection
    or a 5xx answer.

    A connection that breaks before any answer (the backend closed a kept-alive connection: a graceful
    stop or restart of its container) is not the backend's answer: the GET, idempotent, is sent once
    more on a fresh connection (as a reverse proxy's "next upstream on error" does), so a redeploy that
    drains the old backend costs no failed request."""
    answer = pool.get(base_url, path, timeout_seconds, headers)
    if answer.status >= 500:
        raise BackendFailure("http_5xx", f"status {answer.status}")
    return BackendAnswer(answer.status, answer.body, answer.content_type or "text/plain; charset=utf-8",
                         answer.model_version)


class HealthChecker:
    """Polls `/health` of the current backends; a failing backend is out until it answers again."""

    def __init__(self, state: Callable[[], RouterState], interval_seconds: float, timeout_seconds: float = 1.0) -> None:
        self._state = state
        self._interval = interval_seconds
        self._timeout = timeout_seconds
        self._up: dict[str, bool] = {}
        self._versions: dict[str, str] = {}
        self._pool = SessionPool(pool_size=2)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def is_up(self, url: str | None) -> bool:
        # Unknown URLs count as up until the first check says otherwise.
        return bool(url) and self._up.get(url or "", True)

    def observed_version(self, url: str | None) -> str | None:
        return self._versions.get(url or "")

    def mark_down(self, url: str) -> None:
        """Passive check: a refused connection takes the backend out until the next good check."""
        self._up[url] = False

    def check_once(self) -> None:
        state = self._state()
        for name in ("main", "nightly"):
            backend = state.backend(name)
            if backend is None:
                LB_BACKEND_UP.labels(name).set(0)
                continue
            up = False
            try:
                answer = self._pool.get(backend.url, "/health", self._timeout)
                up = answer.status == 200
                if answer.model_version:
                    self._versions[backend.url] = answer.model_version
            except BackendFailure:
                up = False
            if self._up.get(backend.url) != up:
                log.info("backend=%s url=%s up=%s", name, backend.url, up)
            self._up[backend.url] = up
            LB_BACKEND_UP.labels(name).set(1 if up else 0)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.check_once()
            except Exception:  # the checker must outlive any surprise
                log.exception("health check failed")
            self._stop.wait(self._interval)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="lb-health", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()


def periodic(name: str, interval_seconds: float, task: Callable[[], None], stop: threading.Event,
             first_delay_seconds: float = 0.0) -> threading.Thread:
    """Run `task` every `interval_seconds` in a daemon thread until `stop` is set."""

    def loop() -> None:
        if stop.wait(first_delay_seconds):
            return
        while True:
            started = time.monotonic()
            try:
                task()
            except Exception:
                log.exception("periodic task %s failed", name)
            if stop.wait(max(0.0, interval_seconds - (time.monotonic() - started))):
                return

    thread = threading.Thread(target=loop, name=name, daemon=True)
    thread.start()
    return thread
