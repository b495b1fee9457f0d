"""The simulator's configuration, read once from the environment (see `.env.example`)."""

from __future__ import annotations

from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting


class SimulatorSettings(EnvSettings):
    common: CommonSettings = nested_common()
    recommend_url: str = setting("SIM_RECOMMEND_URL", "http://127.0.0.1:8082")
    request_timeout_seconds: float = setting("SIM_REQUEST_TIMEOUT_SECONDS", 0.8, gt=0)
    metrics_port: int = setting("SIM_METRICS_PORT", 9102, ge=0, le=65535)
    metrics_addr: str = setting("SIM_METRICS_ADDR", "127.0.0.1")
    users: int = setting("SIM_USERS", 1_000_000, ge=1)
    seed: int = setting("SIM_SEED", 0)
    rate_per_second: float = setting("SIM_RATE", 0.0, ge=0)
    speed: float = setting("SIM_SPEED", 1.0, ge=0)
    recommend_fraction: float = setting("SIM_RECOMMEND_FRACTION", 0.5, ge=0, le=1)
    sessions_per_user_day: float = setting("SIM_SESSIONS_PER_USER_DAY", 0.5, gt=0)
    output: str = setting("SIM_OUTPUT", "kafka")
    rank: int = setting("SIM_RANK", 24, ge=1)
