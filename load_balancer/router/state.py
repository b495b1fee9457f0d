"""The router's state in the `deployments` table: which version is main/nightly, URLs, weight, salt.

Every gunicorn worker and every restart reads the same rows, so no state lives only in memory.
Rows are never deleted: a replaced, rolled back or deregistered deployment becomes `retired`.
Release bookkeeping (release id, backend handle, evaluations, decision) lives in `metrics` (JSON).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from db_utils.models import Deployment

ROLES = ("main", "nightly")


class StateError(Exception):
    """A state change that cannot be applied (e.g. promoting without a nightly)."""


@dataclass(frozen=True)
class Backend:
    """A backend as the router sees it (a snapshot of one deployment row)."""

    name: str  # main | nightly
    deployment_id: int
    url: str
    version: str
    weight: float
    salt: str
    git_ref: str | None = None
    release_id: str | None = None
    status: str = "running"
    details: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True)
class RouterState:
    main: Backend | None = None
    nightly: Backend | None = None

    @property
    def canary_weight(self) -> float:
        return self.nightly.weight if self.nightly else 0.0

    @property
    def salt(self) -> str:
        return self.nightly.salt if self.nightly else ""

    def backend(self, name: str) -> Backend | None:
        return self.main if name == "main" else self.nightly if name == "nightly" else None

    def as_dict(self) -> dict[str, Any]:
        def one(b: Backend | None, share: float) -> dict[str, Any] | None:
            if b is None:
                return None
            return {"deployment_id": b.deployment_id, "url": b.url, "version": b.version, "weight": share,
                    "git_ref": b.git_ref, "release_id": b.release_id, "status": b.status}

        return {"main": one(self.main, 1.0 - self.canary_weight), "nightly": one(self.nightly, self.canary_weight),
                "canary_weight": self.canary_weight, "salt": self.salt}


def _backend(row: Deployment) -> Backend:
    metrics = row.metrics or {}
    return Backend(
        name=row.role, deployment_id=row.id, url=row.url or "", version=row.version or "",
        weight=float(row.weight or 0.0), salt=row.salt or "", git_ref=row.git_ref,
        release_id=metrics.get("release_id"), status=row.status, details=dict(metrics),
    )


def active_row(session: Session, role: str) -> Deployment | None:
    query = select(Deployment).where(Deployment.role == role).order_by(Deployment.id.desc()).limit(1)
    return session.scalars(query).first()


def load_state(session: Session) -> RouterState:
    """The current main and nightly (the newest row of each role)."""
    main, nightly = active_row(session, "main"), active_row(session, "nightly")
    return RouterState(main=_backend(main) if main else None, nightly=_backend(nightly) if nightly else None)


def bootstrap(session: Session, main_url: str, nightly_url: str, canary_weight: float) -> bool:
    """Seed main/nightly from the environment when the table has never held a deployment."""
    if session.scalars(select(Deployment.id).limit(1)).first() is not None:
        return False
    if main_url:
        session.add(Deployment(version="", role="main", status="running", url=main_url, weight=1.0,
                               note="bootstrap from LB_MAIN_URL", metrics={}))
    if nightly_url:
        session.add(Deployment(version="", role="nightly", status="running", url=nightly_url, weight=canary_weight,
                               salt=secrets.token_hex(8), note="bootstrap from LB_NIGHTLY_URL", metrics={}))
    session.commit()
    return True


def _retire(row: Deployment | None, status: str, note: str | None = None) -> None:
    if row is not None:
        row.role = "retired"
        row.status = status
        row.decided_at = row.decided_at or datetime.utcnow()
        if note:
            row.note = note


def register_backend(
    session: Session,
    name: str,
    url: str,
    version: str,
    *,
    git_ref: str | None = None,
    release_id: str | None = None,
    weight: float | None = None,
    salt: str | None = None,
    details: dict[str, Any] | None = None,
) -> Backend:
    """Make `url` the `name` backend; the deployment it replaces is retired."""
    if name not in ROLES:
        raise StateError(f"backend name must be main or nightly, got {name!r}")
    if not url:
        raise StateError("a backend needs a url")
    old = active_row(session, name)
    if weight is None:
        weight = (old.weight if old is not None else 0.2) if name == "nightly" else 1.0
    if not 0.0 <= weight <= 1.0:
        raise StateError(f"weight must be within [0, 1], got {weight}")
    _retire(old, "replaced")
    metrics = dict(details or {})
    if release_id:
        metrics["release_id"] = release_id
    row = Deployment(version=version, git_ref=git_ref, role=name, status="running", url=url, weight=weight,
                     salt=salt or release_id or secrets.token_hex(8), metrics=metrics)
    session.add(row)
    session.commit()
    return _backend(row)


def deregister_backend(session: Session, name: str) -> Backend:
    row = active_row(session, name) if name in ROLES else None
    if row is None:
        raise StateError(f"no {name} backend is registered")
    backend = _backend(row)
    _retire(row, "deregistered")
    session.commit()
    return backend


def set_canary_weight(session: Session, weight: float) -> Backend:
    """Set the share of users (by sticky hash) the nightly serves."""
    if not 0.0 <= weight <= 1.0:
        raise StateError(f"weight must be within [0, 1], got {weight}")
    row = active_row(session, "nightly")
    if row is None:
        raise StateError("no nightly backend is registered")
    row.weight = weight
    session.commit()
    return _backend(row)


def _merge_metrics(row: Deployment, metrics: dict[str, Any] | None) -> None:
    if metrics:
        row.metrics = {**(row.metrics or {}), **metrics}


def promote(session: Session, metrics: dict[str, Any] | None = None, note: str | None = None) -> tuple[
        Backend | None, Backend]:
    """The nightly becomes main; returns (old main, new main)."""
    nightly = active_row(session, "nightly")
    if nightly is None:
        raise StateError("no nightly backend to promote")
    main = active_row(session, "main")
    old = _backend(main) if main else None
    _retire(main, "replaced", f"replaced by deployment {nightly.id}")
    nightly.role, nightly.status, nightly.weight = "main", "promoted", 1.0
    nightly.decided_at = datetime.utcnow()
    nightly.note = note or nightly.note
    _merge_metrics(nightly, {**(metrics or {}), "decision": "promote"})
    session.commit()
    return old, _backend(nightly)


def rollback(session: Session, metrics: dict[str, Any] | None = None, note: str | None = None) -> Backend:
    """Take the nightly out (weight 0, retired); main keeps every user."""
    nightly = active_row(session, "nightly")
    if nightly is None:
        raise StateError("no nightly backend to roll back")
    backend = _backend(nightly)
    nightly.weight = 0.0
    _merge_metrics(nightly, {**(metrics or {}), "decision": "rollback"})
    _retire(nightly, "rolled_back", note)
    session.commit()
    return backend


def find_release(session: Session, release_id: str) -> Deployment | None:
    """The deployment row of a release (release ids live in the `metrics` JSON)."""
    rows = session.scalars(select(Deployment).order_by(Deployment.id.desc())).all()
    return next((r for r in rows if (r.metrics or {}).get("release_id") == release_id), None)


def record_release(
    session: Session,
    release_id: str,
    *,
    version: str = "",
    git_ref: str | None = None,
    status: str,
    metrics: dict[str, Any] | None = None,
    note: str | None = None,
) -> Deployment:
    """Create or update the bookkeeping row of a release that never reached the router."""
    row = find_release(session, release_id)
    if row is None:
        row = Deployment(version=version, git_ref=git_ref, role="retired", status=status, weight=0.0,
                         metrics={"release_id": release_id})
        session.add(row)
    row.status = status
    if note:
        row.note = note
    _merge_metrics(row, metrics)
    session.commit()
    return row


def update_release_metrics(session: Session, release_id: str, metrics: dict[str, Any],
                           status: str | None = None) -> Deployment:
    row = find_release(session, release_id)
    if row is None:
        raise StateError(f"unknown release {release_id!r}")
    _merge_metrics(row, metrics)
    if status:
        row.status = status
    session.commit()
    return row
