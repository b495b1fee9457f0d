"""Bring back the release backends the router still names after their processes stopped.

A promoted nightly is main from then on, but it runs as a process of its release worktree, not as one
of `movierec up`'s services: `movierec down` stops it with the rest, and without this the next `up`
would find the router's main pointing at a port nobody listens on. `restore_backends` starts every
active main or nightly that a release started as a process (its worktree, strategy and version are in
the deployment row) and whose process is gone, waits until it is healthy and points the same row at
the new address, so the router follows at its next state poll. Containers are left to the engine's
restart policy.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import psutil

from db_utils.engine import make_engine, make_session_factory
from db_utils.models import Deployment
from load_balancer.release import deploy
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.state import ROLES, active_row

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Restored:
    ok: bool
    text: str


def process_running(handle: dict[str, Any], data_dir: Path) -> bool:
    """True when the handle's process is alive and belongs to this data dir (a pid may be reused)."""
    try:
        process = psutil.Process(int(handle["pid"]))
        return process.status() != psutil.STATUS_ZOMBIE and process.environ().get("MOVIEREC_DATA_DIR") == str(
            data_dir)
    except (psutil.Error, KeyError, ValueError):
        return False


def needs_restore(row: Deployment, data_dir: Path) -> bool:
    """An active row whose release process is gone, with the worktree it ran from still on disk."""
    metrics = row.metrics or {}
    handle = metrics.get("handle")
    if row.role not in ROLES or not isinstance(handle, dict) or handle.get("kind") != "process":
        return False
    worktree = metrics.get("worktree")
    return bool(worktree) and Path(worktree).is_dir() and not process_running(handle, data_dir)


def restore_backends(settings: ReleaseSettings) -> list[Restored]:
    """Restart the release processes the router still names; one entry per backend found stopped."""
    sessions = make_session_factory(make_engine(settings.common.database_url, pool_size=1))
    restored = []
    with sessions() as session:
        for row in filter(None, (active_row(session, role) for role in ROLES)):
            if not needs_restore(row, settings.common.data_dir):
                continue
            metrics = dict(row.metrics or {})
            worktree = Path(metrics["worktree"])
            model = metrics.get("model")
            extra_env = {"MODEL_ARTIFACT": model} if model else {}
            log_path = worktree.parent / "nightly.log"
            started = deploy.start_process(settings, worktree, metrics.get("strategy") or "", log_path,
                                           row.version, extra_env)
            try:
                deploy.wait_healthy(started.url, settings.start_timeout_seconds, started.handle)
            except deploy.DeployError as exc:
                deploy.stop_backend(started.handle)
                restored.append(Restored(False, f"{row.role} {row.version}: could not start again: {exc}"))
                continue
            old_url = row.url
            row.url = started.url
            row.metrics = {**metrics, "handle": started.handle,
                           "restored": [*metrics.get("restored", []),
                                        {"at": datetime.now().isoformat(timespec="seconds"), "from": old_url,
                                         "to": started.url}]}
            session.commit()
            log.info("restored %s %s at %s (was %s)", row.role, row.version, started.url, old_url)
            restored.append(Restored(True, f"{row.role} {row.version}: started again from {worktree} at "
                                           f"{started.url} (was {old_url})"))
    return restored
