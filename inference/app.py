"""The inference Flask application (factory `create_app`), served by gunicorn via movierec.base.serving.

GET /recommend/<user_id>  text/plain: one line of 20 comma-separated movie ids, best first (the
                          course contract); JSON (ids, scores, version) with `Accept: application/json`
                          or `?format=json` (`?format=text` forces text; any other format is a 400).
                          Header X-Model-Version on every answer.
GET /health               JSON status of the database and the index.
GET /metrics              Prometheus (movierec.base.metrics + the inference metrics).
GET /openapi.json         the contract (inference/openapi.yaml), validated by the tests.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, request

from inference.service import InvalidUserId, RecommendationService, parse_user_id
from inference.settings import InferenceSettings
from movierec.base.http import install_converters
from movierec.base.metrics import instrument_flask
from movierec.base.openapi import load_openapi

SERVICE_NAME = "inference"
bp = Blueprint("inference", __name__)


def _service() -> RecommendationService:
    return current_app.extensions["movierec_inference"]


FORMATS = ("json", "text")


# Accept headers whose answer is text without parsing them (most clients, the router's default).
PLAIN_ACCEPTS = frozenset(("", "*/*", "text/plain", "text/*"))


def _wants_json() -> bool:
    if request.query_string:
        answer_format = request.args.get("format")
        if answer_format in ("json", "text"):
            return answer_format == "json"
    if request.environ.get("HTTP_ACCEPT", "") in PLAIN_ACCEPTS:
        return False
    best = request.accept_mimetypes.best_match(["text/plain", "application/json"], default="text/plain")
    return best == "application/json"


def _bad_request(message: str) -> Any:
    if _wants_json():
        return jsonify(error=message), 400
    return Response(f"{message}\n", status=400, mimetype="text/plain")


@bp.get("/recommend/<anytext:raw_user_id>", merge_slashes=False)
def recommend(raw_user_id: str) -> Any:
    service = _service()
    answer_format = request.args.get("format") if request.query_string else None
    if answer_format is not None and answer_format not in FORMATS:
        return _bad_request(f"format must be json or text, got {answer_format[:20]!r}")
    try:
        user_id = parse_user_id(raw_user_id)
    except InvalidUserId as exc:
        return _bad_request(str(exc))
    answer = service.recommend(user_id)
    result = answer.recommendation
    if _wants_json():
        return jsonify(
            user_id=user_id,
            model_version=service.version,
            kind=result.kind,
            fallback_reason=result.fallback_reason,
            latency_ms=round(answer.latency_ms, 3),
            recommendations=[{"movie_id": m, "score": round(s, 6)}
                             for m, s in zip(result.movie_ids, result.scores, strict=True)],
        )
    return Response(",".join(result.movie_ids), mimetype="text/plain")


@bp.get("/health")
def health() -> Any:
    return jsonify(_service().health())


@bp.get("/")
def index() -> Any:
    service = _service()
    return jsonify(service="inference", version=service.version, strategy=service.settings.strategy,
                   endpoints=["/recommend/<user_id>", "/health", "/metrics", "/openapi.json"])


@bp.get("/openapi.json")
def openapi() -> Any:
    return jsonify(load_openapi("inference"))


def create_app(settings: InferenceSettings | None = None) -> Flask:
    """Build the app for one worker: the table, engine and strategy are loaded here, once."""
    settings = settings or InferenceSettings.from_env()
    service = RecommendationService.from_settings(settings)
    app = Flask(__name__)
    app.extensions["movierec_inference"] = service
    install_converters(app)
    app.register_blueprint(bp)
    instrument_flask(app, SERVICE_NAME, service.version)

    @app.after_request
    def _version_header(response: Response) -> Response:
        response.headers["X-Model-Version"] = service.version
        return response

    return app
