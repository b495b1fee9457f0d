"""Admin API under `/admin` (bearer token from LB_ADMIN_TOKEN): backends, weight, promote, roll back.

Every change is written to the `deployments` table; this worker reloads at once, the others
within LB_STATE_POLL_SECONDS. Without a configured token the admin API is disabled.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from flask import Blueprint, abort, jsonify, make_response, request
from werkzeug.exceptions import RequestEntityTooLarge

from load_balancer.router import state as deployments
from load_balancer.router.admin_schemas import (
    ADMIN_MAX_BODY_BYTES,
    Body,
    BodyError,
    CanaryWeightBody,
    DecisionBody,
    RegisterBackendBody,
    check_backend_url,
    parse_body,
)
from load_balancer.router.context import context
from load_balancer.router.lb_metrics import RELEASE_DECISIONS

log = logging.getLogger(__name__)
admin = Blueprint("admin", __name__)


def _deny(status: int, message: str) -> None:
    response = make_response(jsonify({"error": message}), status)
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="movierec-admin"'
    abort(response)


@admin.before_request
def _authorise() -> None:
    token = context().settings.admin_token
    if not token:
        _deny(403, "admin API disabled: no admin token (`movierec up` creates one; or set LB_ADMIN_TOKEN)")
    header = request.headers.get("Authorization", "")
    scheme, _, presented = header.partition(" ")
    if scheme.lower() != "bearer" or not presented:
        _deny(401, "missing bearer token (Authorization: Bearer <LB_ADMIN_TOKEN>)")
    if not hmac.compare_digest(presented.strip().encode(), token.encode()):
        _deny(401, "wrong admin token")


def _body(model: type[Body]) -> Body:
    """The request body validated by `model` (admin_schemas); 413 past the size limit, 400 if invalid."""
    try:
        if request.content_length is not None:
            if request.content_length > ADMIN_MAX_BODY_BYTES:
                raise RequestEntityTooLarge()
        else:
            # Chunked (no Content-Length): werkzeug cuts the stream one byte over the limit.
            request.max_content_length = ADMIN_MAX_BODY_BYTES + 1
        raw = request.get_data(cache=True)
        if len(raw) > ADMIN_MAX_BODY_BYTES:
            raise RequestEntityTooLarge()
        return parse_body(model, raw)
    except RequestEntityTooLarge:
        _deny(413, f"body larger than {ADMIN_MAX_BODY_BYTES} bytes")
    except BodyError as exc:
        _deny(exc.status, str(exc))
    raise AssertionError("unreachable")  # _deny always raises


def _apply(change: Any) -> Any:
    """Run a state change in a session, reload this worker, answer with the new state."""
    ctx = context()
    with ctx.sessions() as session:
        try:
            result = change(session)
        except deployments.StateError as exc:
            session.rollback()
            _deny(409, str(exc))
    ctx.reload()
    return result, ctx


def _listing(ctx: Any) -> dict[str, Any]:
    listing = ctx.state.as_dict()
    for name in ("main", "nightly"):
        backend = ctx.state.backend(name)
        if backend is not None:
            listing[name]["up"] = ctx.health.is_up(backend.url)
            listing[name]["observed_version"] = ctx.health.observed_version(backend.url)
    return listing


@admin.get("/backends")
def list_backends() -> Any:
    ctx = context()
    ctx.reload()
    return jsonify(_listing(ctx))


@admin.route("/canary-weight", methods=["PUT", "POST"])
def put_canary_weight() -> Any:
    weight = _body(CanaryWeightBody).weight
    _, ctx = _apply(lambda s: deployments.set_canary_weight(s, weight))
    log.info("admin canary_weight=%s", weight)
    return jsonify(_listing(ctx))


@admin.post("/backends")
def register() -> Any:
    body = _body(RegisterBackendBody)
    try:
        url = check_backend_url(body.url, context().settings.backend_allowed_hosts)
    except BodyError as exc:
        _deny(exc.status, str(exc))
    _, ctx = _apply(lambda s: deployments.register_backend(
        s, body.name, url, body.version or "", git_ref=body.git_ref, release_id=body.release_id,
        weight=body.weight, salt=body.salt, details=body.details))
    log.info("admin register name=%s url=%s version=%s", body.name, url, body.version)
    return jsonify(_listing(ctx)), 201


@admin.delete("/backends/<name>")
def deregister(name: str) -> Any:
    if name not in deployments.ROLES:
        _deny(400, f"backend name must be main or nightly, got {name[:40]!r}")
    _, ctx = _apply(lambda s: deployments.deregister_backend(s, name))
    log.info("admin deregister name=%s", name)
    return jsonify(_listing(ctx))


@admin.post("/promote")
def promote() -> Any:
    body = _body(DecisionBody)
    (old_main, new_main), ctx = _apply(lambda s: deployments.promote(s, body.metrics, body.note))
    RELEASE_DECISIONS.labels("promote").inc()
    log.info("admin promote version=%s", new_main.version)
    return jsonify({"state": _listing(ctx), "old_main": _describe(old_main), "new_main": _describe(new_main)})


@admin.post("/rollback")
def rollback() -> Any:
    body = _body(DecisionBody)
    rolled_back, ctx = _apply(lambda s: deployments.rollback(s, body.metrics, body.note))
    RELEASE_DECISIONS.labels("rollback").inc()
    log.info("admin rollback version=%s", rolled_back.version)
    return jsonify({"state": _listing(ctx), "rolled_back": _describe(rolled_back)})


def _describe(backend: deployments.Backend | None) -> dict[str, Any] | None:
    if backend is None:
        return None
    return {"deployment_id": backend.deployment_id, "url": backend.url, "version": backend.version,
            "release_id": backend.release_id, "details": backend.details}
