"""The canary router: `GET /recommend/<user_id>` forwarded to main or nightly, sticky per user.

`create_app(settings)` builds one worker: a state snapshot reloaded from the database every
second or so (the hot path never queries the database), active health checks, keep-alive
sessions, and the admin API under `/admin`.
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any
from urllib.parse import quote, urlencode

from flask import Blueprint, Flask, Response, jsonify, request

from db_utils.engine import make_engine, make_session_factory
from db_utils.ids import InvalidUserId, parse_user_id
from load_balancer.router.admin import admin
from load_balancer.router.backends import BackendFailure, HealthChecker, SessionPool, fetch, periodic
from load_balancer.router.context import RouterContext, context
from load_balancer.router.lb_metrics import LB_BACKEND_ERRORS, LB_LATENCY, LB_REQUESTS, LB_RETRIES
from load_balancer.router.routing import assign_arm, route_order
from load_balancer.router.settings import RouterSettings
from load_balancer.router.state import bootstrap
from movierec.base.http import install_converters
from movierec.base.metrics import instrument_flask
from movierec.base.openapi import load_openapi

log = logging.getLogger(__name__)
router = Blueprint("router", __name__)

# What the client may change about the answer, passed on to the backend (inference's contract):
# JSON instead of text with `Accept: application/json` or `?format=json`.
FORWARDED_PARAMS = ("format",)
FORWARDED_HEADERS = ("Accept",)


def _wants_json() -> bool:
    answer_format = request.args.get("format")
    if answer_format in ("json", "text"):
        return answer_format == "json"
    return request.accept_mimetypes.best_match(["text/plain", "application/json"],
                                               default="text/plain") == "application/json"


def _invalid_user(exc: InvalidUserId) -> Response:
    """400 before anything is forwarded, in the shape the inference service uses."""
    LB_REQUESTS.labels("none", "", "400").inc()
    if _wants_json():
        return Response(json.dumps({"error": str(exc)}) + "\n", status=400, content_type="application/json")
    return Response(f"{exc}\n", status=400, content_type="text/plain; charset=utf-8")


@router.get("/recommend/<anytext:raw_user_id>", merge_slashes=False)
def recommend(raw_user_id: str) -> Response:
    ctx = context()
    started = time.perf_counter()
    try:
        user_id = str(parse_user_id(raw_user_id))  # canonical digits: the same user, the same arm
    except InvalidUserId as exc:
        return _invalid_user(exc)
    params = {name: value for name in FORWARDED_PARAMS if (value := request.args.get(name)) is not None} \
        if request.query_string else {}
    headers = {name: value for name in FORWARDED_HEADERS if (value := request.headers.get(name)) is not None}
    path = f"/recommend/{quote(user_id, safe='')}" + (f"?{urlencode(params)}" if params else "")
    state = ctx.state
    main, nightly = state.main, state.nightly
    assigned = assign_arm(user_id, state.salt, state.canary_weight) if nightly else "main"
    order = route_order(assigned, main is not None and ctx.health.is_up(main.url),
                        nightly is not None and ctx.health.is_up(nightly.url), nightly is not None)
    last_failure: BackendFailure | None = None
    tried: list[str] = []
    for name in order:
        backend = state.backend(name)
        if backend is None:
            continue
        if tried:
            LB_RETRIES.labels(tried[-1]).inc()
        tried.append(name)
        try:
            answer = fetch(ctx.pool, backend.url, path, ctx.settings.backend_timeout_seconds,
                           headers=headers or None)
        except BackendFailure as failure:
            last_failure = failure
            LB_BACKEND_ERRORS.labels(name, failure.kind).inc()
            if failure.kind == "connect":
                ctx.health.mark_down(backend.url)
            log.warning("backend=%s user=%s failure=%s", name, user_id, failure)
            continue
        version = answer.model_version or ctx.version_of(name)
        response = Response(answer.body, status=answer.status, content_type=answer.content_type)
        response.headers["X-Served-By"] = name
        if version:
            response.headers["X-Model-Version"] = version
        LB_REQUESTS.labels(name, version, str(answer.status)).inc()
        LB_LATENCY.labels(name).observe(time.perf_counter() - started)
        return response
    status = 504 if last_failure is not None and last_failure.kind == "timeout" else 502
    if not tried:
        status = 503
    LB_REQUESTS.labels("none", "", str(status)).inc()
    LB_LATENCY.labels("none").observe(time.perf_counter() - started)
    # The kind only: the failure's text names internal hosts, which the log has and clients need not.
    message = f"no backend answered ({last_failure.kind if last_failure else 'unknown'})" if tried \
        else "no backend registered"
    return Response(message + "\n", status=status, content_type="text/plain; charset=utf-8")


@router.get("/health")
def health() -> Any:
    ctx = context()
    state = ctx.state
    body = {
        "status": "ok" if state.main is not None else "degraded",
        "backends": {name: {"url": b.url, "up": ctx.health.is_up(b.url), "version": ctx.version_of(name)}
                     for name in ("main", "nightly") if (b := state.backend(name)) is not None},
        "canary_weight": state.canary_weight,
    }
    return jsonify(body), 200


@router.get("/openapi.json")
def openapi() -> Any:
    """The router's and the admin API's contract (load_balancer/openapi.yaml)."""
    return jsonify(load_openapi("load_balancer"))


def create_app(settings: RouterSettings | None = None, *, background: bool = True) -> Flask:
    """One router worker. `background=False` skips the polling threads (tests drive `reload`)."""
    settings = settings or RouterSettings.from_env()
    engine = make_engine(settings.common.database_url, pool_size=2)
    sessions = make_session_factory(engine)
    with sessions() as session:
        bootstrap(session, settings.main_url, settings.nightly_url, settings.canary_weight)
    app = Flask(__name__)
    ctx: RouterContext
    health_checker = HealthChecker(lambda: ctx.state, settings.health_interval_seconds,
                                   timeout_seconds=max(0.5, settings.backend_timeout_seconds * 3))
    ctx = RouterContext(settings=settings, sessions=sessions, pool=SessionPool(pool_size=max(4, settings.threads)),
                        health=health_checker)
    ctx.reload()
    app.extensions["movierec_lb"] = ctx
    install_converters(app)
    app.register_blueprint(router)
    app.register_blueprint(admin, url_prefix="/admin")
    instrument_flask(app, "router")
    if background:
        health_checker.start()
        periodic("lb-state", settings.state_poll_seconds, ctx.reload, ctx.stop, settings.state_poll_seconds)
        from load_balancer.router.online_hit_rate import refresh_hit_rate_gauge

        periodic("lb-online-hit-rate", settings.online_eval_interval_seconds,
                 lambda: refresh_hit_rate_gauge(ctx), ctx.stop, first_delay_seconds=5.0)
    return app
