"""Typed settings of the router (environment > `.env` > defaults).

LB_ADMIN_TOKEN wins when set; otherwise the router reads the token `movierec up` keeps in
`<data_dir>/secrets/admin-token` (load_balancer.router.admin_token).
"""

from __future__ import annotations

from typing import Self

from pydantic import field_validator, model_validator

from load_balancer.router.admin_schemas import DEFAULT_ALLOWED_BACKEND_HOSTS, parse_allowed_hosts
from load_balancer.router.admin_token import resolved_token
from movierec.base.serving import resolve_worker_class
from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting


class RouterSettings(EnvSettings):
    """`movierec lb`: where the backends are, how long to wait for them, who may administer."""

    common: CommonSettings = nested_common()
    host: str = setting("LB_HOST", "127.0.0.1")
    port: int = setting("LB_PORT", 8082, ge=0, le=65535)
    workers: int = setting("LB_WORKERS", 2, ge=1)
    threads: int = setting("LB_THREADS", 8, ge=1)
    worker_class: str = setting("LB_WORKER_CLASS", "")  # gunicorn's; "" = gthread with threads, else sync
    main_url: str = setting("LB_MAIN_URL", "http://127.0.0.1:8001")  # bootstrap only: the database knows no main
    nightly_url: str = setting("LB_NIGHTLY_URL", "")  # bootstrap only, may be empty
    canary_weight: float = setting("LB_CANARY_WEIGHT", 0.2, ge=0.0, le=1.0)
    backend_timeout_seconds: float = setting("LB_BACKEND_TIMEOUT_SECONDS", 0.3, gt=0)
    health_interval_seconds: float = setting("LB_HEALTH_INTERVAL_SECONDS", 1.0, gt=0)
    state_poll_seconds: float = setting("LB_STATE_POLL_SECONDS", 1.0, gt=0)
    admin_token: str = setting("LB_ADMIN_TOKEN", "", repr=False)
    online_eval_interval_seconds: float = setting("LB_ONLINE_EVAL_INTERVAL_SECONDS", 60.0, gt=0)
    hit_horizon_minutes: float = setting("RELEASE_HIT_HORIZON_MINUTES", 10.0, gt=0)
    alpha: float = setting("RELEASE_ALPHA", 0.05, gt=0.0, lt=1.0)  # of the per-arm intervals the router exports
    margin: float = setting("RELEASE_MARGIN", 0.03, ge=0.0)
    # spread of the mSPRT's normal mixture: the hit-rate difference the test is tuned to detect fastest
    tau: float = setting("RELEASE_MSPRT_TAU", 0.05, gt=0.0, le=1.0)
    # comma-separated in the environment (LB_BACKEND_ALLOWED_HOSTS)
    backend_allowed_hosts: str | tuple[str, ...] = setting(
        "LB_BACKEND_ALLOWED_HOSTS", ",".join(DEFAULT_ALLOWED_BACKEND_HOSTS))

    @field_validator("worker_class")
    @classmethod
    def _known_worker_class(cls, value: str) -> str:
        resolve_worker_class(value, 1)
        return value

    @field_validator("backend_allowed_hosts", mode="after")
    @classmethod
    def _hosts(cls, value: str | tuple[str, ...]) -> tuple[str, ...]:
        return parse_allowed_hosts(value) if isinstance(value, str) else tuple(value)

    @model_validator(mode="after")
    def _token(self) -> Self:
        self._set("admin_token", resolved_token(self.admin_token, self.common.data_dir))
        return self
