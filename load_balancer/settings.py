"""Typed settings of the router and the release pipeline, read once from the environment."""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from movierec.settings import CommonSettings, ConfigError, env_float, env_int, env_str


@dataclass(frozen=True)
class RouterSettings:
    """`movierec lb`: where the backends are, how long to wait for them, who may administer."""

    common: CommonSettings
    host: str
    port: int
    workers: int
    threads: int
    main_url: str  # bootstrap only: used when the database knows no main yet
    nightly_url: str  # bootstrap only, may be empty
    canary_weight: float
    backend_timeout_seconds: float
    health_interval_seconds: float
    state_poll_seconds: float
    admin_token: str
    online_eval_interval_seconds: float
    hit_horizon_minutes: float

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> RouterSettings:
        weight = env_float("LB_CANARY_WEIGHT", 0.2, environ)
        if not 0.0 <= weight <= 1.0:
            raise ConfigError(f"LB_CANARY_WEIGHT must be within [0, 1], got {weight}")
        return cls(
            common=CommonSettings.from_env(environ),
            host=env_str("LB_HOST", "127.0.0.1", environ),
            port=env_int("LB_PORT", 8082, environ),
            workers=env_int("LB_WORKERS", 2, environ),
            threads=env_int("LB_THREADS", 8, environ),
            main_url=env_str("LB_MAIN_URL", "http://127.0.0.1:8001", environ),
            nightly_url=env_str("LB_NIGHTLY_URL", "", environ),
            canary_weight=weight,
            backend_timeout_seconds=env_float("LB_BACKEND_TIMEOUT_SECONDS", 0.3, environ),
            health_interval_seconds=env_float("LB_HEALTH_INTERVAL_SECONDS", 1.0, environ),
            state_poll_seconds=env_float("LB_STATE_POLL_SECONDS", 1.0, environ),
            admin_token=env_str("LB_ADMIN_TOKEN", "", environ),
            online_eval_interval_seconds=env_float("LB_ONLINE_EVAL_INTERVAL_SECONDS", 60.0, environ),
            hit_horizon_minutes=env_float("RELEASE_HIT_HORIZON_MINUTES", 30.0, environ),
        )


def default_docker_image(environ: Mapping[str, str] | None = None) -> str:
    """<MOVIEREC_IMAGE_NAMESPACE>/movierec-inference: the scheme of docker-compose.yml and .gitlab-ci.yml."""
    return f"{env_str('MOVIEREC_IMAGE_NAMESPACE', 'movierec', environ)}/movierec-inference"


@dataclass(frozen=True)
class ReleaseSettings:
    """`movierec release`, `movierec eval online`, `movierec scheduler`: gate, deploy, decide."""

    common: CommonSettings
    python: str  # interpreter that runs the ref's code (`-m movierec.cli ...`)
    repo_dir: str  # git repository the refs come from ("" = the current directory's repository)
    admin_url: str
    admin_token: str
    backend: str  # process | docker
    nightly_port: int
    nightly_host: str  # address the router uses to reach the nightly
    gate_strategy: str
    gate_min_hit_rate: float
    gate_extra_args: str  # more `eval offline` options, shell-quoted (e.g. "--max-users 500")
    serve_strategy: str
    canary_weight: float
    window_minutes: float
    hit_horizon_minutes: float
    min_users_per_arm: int
    alpha: float
    margin: float
    min_nightly_serve_share: float
    start_timeout_seconds: float
    docker_image: str
    docker_network: str  # compose network the nightly joins ("" = publish the port on the host)
    docker_volumes: tuple[str, ...]  # "volume:/path" mounts of the nightly container (the data volume)
    repo_url: str  # a repository to mirror into <data_dir>/releases/repo first ("" = use repo_dir as is)
    slack_webhook_url: str
    scheduler_tick_seconds: float

    @property
    def releases_dir(self) -> Path:
        return self.common.data_dir / "releases"

    @property
    def crontab_path(self) -> Path:
        return self.common.data_dir / "crontab"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ReleaseSettings:
        backend = env_str("RELEASE_BACKEND", "process", environ)
        if backend not in {"process", "docker"}:
            raise ConfigError(f"RELEASE_BACKEND must be process or docker, got {backend!r}")
        window = env_float("RELEASE_WINDOW_MINUTES", 720.0, environ)
        if window < 1:
            raise ConfigError(f"RELEASE_WINDOW_MINUTES must be at least 1 (cron resolution), got {window}")
        return cls(
            common=CommonSettings.from_env(environ),
            python=env_str("RELEASE_PYTHON", sys.executable, environ),
            repo_dir=env_str("RELEASE_REPO_DIR", "", environ),
            admin_url=env_str("LB_ADMIN_URL", "http://127.0.0.1:8082", environ).rstrip("/"),
            admin_token=env_str("LB_ADMIN_TOKEN", "", environ),
            backend=backend,
            nightly_port=env_int("RELEASE_NIGHTLY_PORT", 8002, environ),
            nightly_host=env_str("RELEASE_NIGHTLY_HOST", "127.0.0.1", environ),
            gate_strategy=env_str("RELEASE_GATE_STRATEGY", "blend", environ),
            gate_min_hit_rate=env_float("RELEASE_GATE_MIN_HR", 0.0, environ),
            gate_extra_args=env_str("RELEASE_GATE_ARGS", "", environ),
            serve_strategy=env_str("RELEASE_STRATEGY", "", environ),
            canary_weight=env_float("LB_CANARY_WEIGHT", 0.2, environ),
            window_minutes=window,
            hit_horizon_minutes=env_float("RELEASE_HIT_HORIZON_MINUTES", 30.0, environ),
            min_users_per_arm=env_int("RELEASE_MIN_USERS_PER_ARM", 30, environ),
            alpha=env_float("RELEASE_ALPHA", 0.05, environ),
            margin=env_float("RELEASE_MARGIN", 0.02, environ),
            min_nightly_serve_share=env_float("RELEASE_MIN_NIGHTLY_SERVE_SHARE", 0.95, environ),
            start_timeout_seconds=env_float("RELEASE_START_TIMEOUT_SECONDS", 120.0, environ),
            docker_image=env_str("RELEASE_DOCKER_IMAGE", default_docker_image(environ), environ),
            docker_network=env_str("RELEASE_DOCKER_NETWORK", "", environ),
            docker_volumes=tuple(v for v in env_str("RELEASE_DOCKER_VOLUMES", "", environ).split(",") if v.strip()),
            repo_url=env_str("RELEASE_REPO_URL", "", environ),
            slack_webhook_url=env_str("SLACK_WEBHOOK_URL", "", environ),
            scheduler_tick_seconds=env_float("SCHEDULER_TICK_SECONDS", 5.0, environ),
        )
