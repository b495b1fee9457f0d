"""Run a Flask application factory under gunicorn, programmatically (one place for every service).

Several workers share Prometheus metrics through PROMETHEUS_MULTIPROC_DIR, which is created
fresh here when the caller did not set one. The worker class is a setting of each service
(`worker_class`: "" picks gthread when a worker has several threads, else sync); the choice for
inference and the router was made by measurement (bench/recommend.py --configs, README).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
from collections.abc import Callable
from typing import Any

from gunicorn.app.base import BaseApplication


def _child_exit(_server: Any, worker: Any) -> None:
    # Runs in gunicorn's SIGCHLD handler: no imports here (an import there can deadlock or fail).
    _MULTIPROCESS["module"].mark_process_dead(worker.pid)


class _Application(BaseApplication):  # type: ignore[misc]
    def __init__(self, factory: Callable[[], Any], options: dict[str, Any]) -> None:
        self._factory = factory
        self._options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self._options.items():
            if key in self.cfg.settings and value is not None:
                self.cfg.set(key.lower(), value)

    def load(self) -> Any:
        return self._factory()


_PREPARED: dict[str, Any] = {}
_MULTIPROCESS: dict[str, Any] = {}


def prepare_multiprocess_metrics() -> None:
    """Set a fresh PROMETHEUS_MULTIPROC_DIR now, before prometheus_client is first imported.

    prometheus_client picks its value storage at import time: metrics created before the variable
    is set stay private to one process and the aggregated `/metrics` comes out empty. Commands
    that end in `serve` call this first (movierec.cli); `serve` removes the directory at exit.
    """
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        path = tempfile.mkdtemp(prefix="movierec-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = path
        _PREPARED["path"] = path


# gevent is not a dependency: it needs `pip install gevent` and measured no cheaper than gthread.
WORKER_CLASSES = ("sync", "gthread", "gevent")


class UnknownWorkerClass(ValueError):
    """A gunicorn worker class this platform does not serve with (or whose package is missing)."""


def resolve_worker_class(worker_class: str, threads: int) -> str:
    """The gunicorn worker class to run: `worker_class`, or (when empty) gthread with threads, else sync."""
    if not worker_class:
        return "gthread" if threads > 1 else "sync"
    if worker_class not in WORKER_CLASSES:
        raise UnknownWorkerClass(f"unknown worker class {worker_class!r}; choose one of {', '.join(WORKER_CLASSES)}")
    if worker_class == "gevent" and importlib.util.find_spec("gevent") is None:
        raise UnknownWorkerClass("worker class gevent needs the gevent package (pip install gevent)")
    return worker_class


def gunicorn_options(bind: str, workers: int, threads: int, worker_class: str = "", timeout_seconds: int = 30,
                     access_log: bool = False) -> dict[str, Any]:
    """gunicorn's settings for one service (pure: the tests read them without starting anything)."""
    return {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": resolve_worker_class(worker_class, threads),
        "timeout": timeout_seconds,
        "graceful_timeout": 10,
        "keepalive": 5,
        "child_exit": _child_exit,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
    }


def serve(
    factory: Callable[[], Any],
    *,
    bind: str,
    workers: int = 2,
    threads: int = 4,
    worker_class: str = "",
    timeout_seconds: int = 30,
    access_log: bool = False,
    extra: dict[str, Any] | None = None,
) -> None:
    """Serve `factory()` with gunicorn on `bind` until SIGTERM/SIGINT (the app is built per worker)."""
    own_dir = _PREPARED.get("path") if os.environ.get("PROMETHEUS_MULTIPROC_DIR") == _PREPARED.get("path") else None
    owner_pid = os.getpid()
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="movierec-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    from prometheus_client import multiprocess

    _MULTIPROCESS["module"] = multiprocess
    options = gunicorn_options(bind, workers, threads, worker_class, timeout_seconds, access_log)
    options.update(extra or {})
    try:
        _Application(factory, options).run()
    finally:
        if own_dir and os.getpid() == owner_pid:  # a gunicorn worker unwinds through here too
            shutil.rmtree(own_dir, ignore_errors=True)
