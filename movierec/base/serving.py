"""Run a Flask application factory under gunicorn, programmatically (one place for every service).

Several workers share Prometheus metrics through PROMETHEUS_MULTIPROC_DIR, which is created
fresh here when the caller did not set one.
"""

from __future__ import annotations

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


def serve(
    factory: Callable[[], Any],
    *,
    bind: str,
    workers: int = 2,
    threads: int = 4,
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
    options: dict[str, Any] = {
        "bind": bind,
        "workers": workers,
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": timeout_seconds,
        "graceful_timeout": 10,
        "keepalive": 5,
        "child_exit": _child_exit,
        "accesslog": "-" if access_log else None,
        "errorlog": "-",
    }
    options.update(extra or {})
    try:
        _Application(factory, options).run()
    finally:
        if own_dir and os.getpid() == owner_pid:  # a gunicorn worker unwinds through here too
            shutil.rmtree(own_dir, ignore_errors=True)
