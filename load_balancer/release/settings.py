"""Typed settings of the release pipeline (environment > `.env` > defaults).

LB_ADMIN_TOKEN wins when set; otherwise the pipeline reads the token `movierec up` keeps in
`<data_dir>/secrets/admin-token` (load_balancer.router.admin_token), as the router does.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal, Self

from pydantic import field_validator, model_validator

from load_balancer.router.admin_token import resolved_token
from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting


class ReleaseSettings(EnvSettings):
    """`movierec release`, `movierec eval online`, `movierec scheduler`: gate, deploy, decide."""

    common: CommonSettings = nested_common()
    python: str = setting("RELEASE_PYTHON", sys.executable)  # interpreter that runs the ref's code
    repo_dir: str = setting("RELEASE_REPO_DIR", "")  # "" = the current directory's repository
    admin_url: str = setting("LB_ADMIN_URL", "")  # "" -> the router of `movierec up` (UP_ROUTER_PORT)
    up_router_port: int = setting("UP_ROUTER_PORT", 8082, ge=1, le=65535)
    admin_token: str = setting("LB_ADMIN_TOKEN", "", repr=False)
    backend: Literal["process", "docker"] = setting("RELEASE_BACKEND", "process")
    nightly_port: int = setting("RELEASE_NIGHTLY_PORT", 8002, ge=0, le=65535)
    nightly_host: str = setting("RELEASE_NIGHTLY_HOST", "127.0.0.1")  # address the router uses to reach it
    gate_strategy: str = setting("RELEASE_GATE_STRATEGY", "blend")
    gate_min_hit_rate: float = setting("RELEASE_GATE_MIN_HR", 0.0, ge=0.0)
    gate_extra_args: str = setting("RELEASE_GATE_ARGS", "")  # more `eval offline` options, shell-quoted
    serve_strategy: str = setting("RELEASE_STRATEGY", "")
    canary_weight: float = setting("LB_CANARY_WEIGHT", 0.2, ge=0.0, le=1.0)
    window_minutes: float = setting("RELEASE_WINDOW_MINUTES", 720.0, ge=1)  # the maximum window: the last look decides
    look_minutes: float = setting("RELEASE_LOOK_MINUTES", 30.0, ge=1)  # between looks (cron resolution)
    hit_horizon_minutes: float = setting("RELEASE_HIT_HORIZON_MINUTES", 10.0, gt=0)
    min_users_per_arm: int = setting("RELEASE_MIN_USERS_PER_ARM", 30, ge=1)
    alpha: float = setting("RELEASE_ALPHA", 0.05, gt=0.0, lt=1.0)
    margin: float = setting("RELEASE_MARGIN", 0.03, ge=0.0)
    # spread of the mSPRT's normal mixture: the hit-rate difference the test is tuned to detect fastest
    tau: float = setting("RELEASE_MSPRT_TAU", 0.05, gt=0.0, le=1.0)
    min_nightly_serve_share: float = setting("RELEASE_MIN_NIGHTLY_SERVE_SHARE", 0.95, ge=0.0, le=1.0)
    start_timeout_seconds: float = setting("RELEASE_START_TIMEOUT_SECONDS", 120.0, gt=0)
    image_namespace: str = setting("MOVIEREC_IMAGE_NAMESPACE", "movierec")
    # "" -> <MOVIEREC_IMAGE_NAMESPACE>/movierec-inference: the scheme of docker-compose.yml and .gitlab-ci.yml
    docker_image: str = setting("RELEASE_DOCKER_IMAGE", "")
    docker_network: str = setting("RELEASE_DOCKER_NETWORK", "")  # "" = publish the port on the host
    # "volume:/path" mounts of the nightly container (the data volume), comma-separated
    docker_volumes: str | tuple[str, ...] = setting("RELEASE_DOCKER_VOLUMES", "")
    repo_url: str = setting("RELEASE_REPO_URL", "")  # a repository mirrored into releases/repo.git first
    slack_webhook_url: str = setting("SLACK_WEBHOOK_URL", "", repr=False)
    scheduler_tick_seconds: float = setting("SCHEDULER_TICK_SECONDS", 5.0, gt=0)
    # cron expression of `release model` (train, gate, canary); "" (or off/none/never) = no retraining
    retrain_schedule: str = setting("RETRAIN_SCHEDULE", "0 3 * * *")
    retrain_ref: str = setting("RETRAIN_REF", "HEAD")  # git ref whose code serves the retrained model

    @field_validator("retrain_schedule", mode="after")
    @classmethod
    def _schedule(cls, value: str) -> str:
        return "" if value.strip().lower() in {"off", "none", "never"} else value.strip()

    @field_validator("docker_volumes", mode="after")
    @classmethod
    def _volumes(cls, value: str | tuple[str, ...]) -> tuple[str, ...]:
        items = value.split(",") if isinstance(value, str) else value
        return tuple(v.strip() for v in items if v.strip())

    @model_validator(mode="after")
    def _derived(self) -> Self:
        if not self.docker_image:
            self._set("docker_image", f"{self.image_namespace}/movierec-inference")
        self._set("admin_url", (self.admin_url or f"http://127.0.0.1:{self.up_router_port}").rstrip("/"))
        self._set("admin_token", resolved_token(self.admin_token, self.common.data_dir))
        return self

    @property
    def releases_dir(self) -> Path:
        return self.common.data_dir / "releases"

    @property
    def crontab_path(self) -> Path:
        return self.common.data_dir / "crontab"
