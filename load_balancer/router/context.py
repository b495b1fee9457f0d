"""The per-worker resources of the router (settings, sessions, state, health), shared by its blueprints.

`load_balancer.router.app` builds one `RouterContext` per worker and stores it on the Flask app;
the routes (app) and the admin API (admin) find it with `context()`.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from load_balancer.router.backends import HealthChecker, SessionPool
from load_balancer.router.lb_metrics import LB_CANARY_WEIGHT
from load_balancer.router.settings import RouterSettings
from load_balancer.router.state import RouterState, load_state

log = logging.getLogger(__name__)


@dataclass
class RouterContext:
    """Per-worker resources of the router."""

    settings: RouterSettings
    sessions: sessionmaker[Session]
    pool: SessionPool
    health: HealthChecker
    state: RouterState = field(default_factory=RouterState)
    stop: threading.Event = field(default_factory=threading.Event)
    # Read and swap under one lock: a poll that read the rows before an admin change committed must
    # not overwrite the state the admin request reloaded after it.
    reload_lock: threading.Lock = field(default_factory=threading.Lock)

    def reload(self) -> bool:
        """Re-read the deployments; True when the state changed."""
        with self.reload_lock:
            with self.sessions() as session:
                new = load_state(session)
            changed = new != self.state
            self.state = new
        if changed:
            log.info("router state: %s", new.as_dict())
        LB_CANARY_WEIGHT.set(new.canary_weight if new.nightly else 0.0)
        return changed

    def version_of(self, name: str) -> str:
        backend = self.state.backend(name)
        if backend is None:
            return ""
        return backend.version or self.health.observed_version(backend.url) or ""


def context() -> RouterContext:
    return current_app.extensions["movierec_lb"]
