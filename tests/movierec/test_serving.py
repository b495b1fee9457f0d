"""movierec.base.serving: the gunicorn options each service runs with (pure; nothing started)."""

from __future__ import annotations

import pytest

from movierec.base.serving import UnknownWorkerClass, gunicorn_options, resolve_worker_class
from movierec.base.settings import ConfigError


def test_empty_worker_class_follows_the_threads() -> None:
    assert resolve_worker_class("", 4) == "gthread"
    assert resolve_worker_class("", 1) == "sync"
    assert resolve_worker_class("sync", 4) == "sync"
    assert resolve_worker_class("gthread", 1) == "gthread"


def test_unknown_worker_class_is_refused() -> None:
    with pytest.raises(UnknownWorkerClass, match="choose one of"):
        resolve_worker_class("eventlet", 1)


def test_options_carry_the_chosen_shape() -> None:
    options = gunicorn_options("127.0.0.1:1", workers=3, threads=1, worker_class="sync")
    assert (options["workers"], options["threads"], options["worker_class"]) == (3, 1, "sync")
    assert options["accesslog"] is None and options["keepalive"] == 5


def test_worker_class_settings_are_checked_at_start() -> None:
    from inference.settings import InferenceSettings
    from load_balancer.router.settings import RouterSettings

    assert InferenceSettings.from_env({"INFERENCE_WORKER_CLASS": "sync"}).worker_class == "sync"
    with pytest.raises(ConfigError, match="INFERENCE_WORKER_CLASS"):
        InferenceSettings.from_env({"INFERENCE_WORKER_CLASS": "bogus"})
    with pytest.raises(ConfigError, match="LB_WORKER_CLASS"):
        RouterSettings.from_env({"LB_WORKER_CLASS": "bogus"})
