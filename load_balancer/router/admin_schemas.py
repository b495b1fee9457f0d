"""What the admin API accepts: one pydantic model per body, and the backend URL allow-list (pure).

Strict types (`true` or "0.5" is not a weight), ranges, the column sizes of the `deployments` table,
no unknown fields. `parse_body` turns any violation into BodyError with a message for a 400;
the size limit (413) is applied by the edge before the body is read (ADMIN_MAX_BODY_BYTES).
"""

from __future__ import annotations

import fnmatch
from typing import Annotated, Any, Literal, TypeVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

ADMIN_MAX_BODY_BYTES = 64 * 1024  # a registration with its release details is well under 4 KiB
MAX_URL_LENGTH = 255  # deployments.url
# Loopback, and the compose services the router may forward to (docker-compose.yml; release
# containers are named movierec-nightly-<release id> by load_balancer/release/deploy.py).
DEFAULT_ALLOWED_BACKEND_HOSTS = ("127.0.0.1", "localhost", "::1", "inference-main", "inference-nightly",
                                 "movierec-nightly-*")

Weight = Annotated[float, Field(ge=0.0, le=1.0, description="share of users, in [0, 1]")]


class BodyError(ValueError):
    """An admin request body that is not what the endpoint accepts (answered with `status`)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class _Body(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, str_strip_whitespace=False)


class CanaryWeightBody(_Body):
    """`PUT /admin/canary-weight`."""

    weight: Weight


def _no_control_characters(text: str) -> str:
    if not text.isprintable():
        raise ValueError("must be printable text")
    return text


def _no_nul(text: str) -> str:
    if "\x00" in text:  # PostgreSQL text cannot hold NUL
        raise ValueError("must not contain NUL characters")
    return text


Printable = Annotated[str, AfterValidator(_no_control_characters)]


class RegisterBackendBody(_Body):
    """`POST /admin/backends`: make `url` the main or the nightly backend."""

    name: Literal["main", "nightly"]
    url: Annotated[Printable, Field(min_length=1, max_length=MAX_URL_LENGTH)]
    version: Annotated[Printable, Field(max_length=128)] | None = None
    git_ref: Annotated[Printable, Field(max_length=255)] | None = None
    release_id: Annotated[Printable, Field(min_length=1, max_length=64)] | None = None
    weight: Weight | None = None
    salt: Annotated[Printable, Field(min_length=1, max_length=64)] | None = None
    details: dict[str, Any] | None = None


class DecisionBody(_Body):
    """`POST /admin/promote` and `POST /admin/rollback`: what the decision was based on."""

    metrics: dict[str, Any] | None = None
    note: Annotated[str, Field(max_length=4000), AfterValidator(_no_nul)] | None = None


Body = TypeVar("Body", bound=_Body)


def parse_body(model: type[Body], raw: bytes) -> Body:
    """The body as `model`, or BodyError naming every field that is wrong. An empty body is `{}`."""
    try:
        return model.model_validate_json(raw.strip() or b"{}")
    except ValidationError as exc:
        problems = []
        for error in exc.errors(include_url=False):
            where = ".".join(str(part) for part in error["loc"]) or "body"
            problems.append(f"{where}: {error['msg']}")
        raise BodyError("invalid body: " + "; ".join(problems)) from None


def parse_allowed_hosts(text: str) -> tuple[str, ...]:
    """`LB_BACKEND_ALLOWED_HOSTS`: comma-separated host names, addresses or shell patterns."""
    return tuple(host.strip().lower() for host in text.split(",") if host.strip())


def check_backend_url(url: str, allowed_hosts: tuple[str, ...]) -> str:
    """`url` without a trailing slash when it is http(s) to an allowed host; else BodyError (400)."""
    try:
        parts = urlsplit(url)
        port = parts.port  # raises on a port that is not a number in range
    except ValueError as exc:
        raise BodyError(f"url: not a valid URL ({exc})") from None
    if parts.scheme not in {"http", "https"}:
        raise BodyError(f"url: only http and https backends are allowed, got {parts.scheme or 'no'} scheme")
    host = (parts.hostname or "").lower()
    if not host:
        raise BodyError("url: no host")
    if parts.username is not None or parts.password is not None:
        raise BodyError("url: credentials in the URL are not allowed")
    if parts.query or parts.fragment or "?" in url or "#" in url:
        raise BodyError("url: a backend URL has no query or fragment")
    if port == 0:
        raise BodyError("url: port 0")
    if not any(fnmatch.fnmatchcase(host, pattern) for pattern in allowed_hosts):
        raise BodyError(f"url: host {host!r} is not in LB_BACKEND_ALLOWED_HOSTS ({', '.join(allowed_hosts)})")
    return url.rstrip("/")
