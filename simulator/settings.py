"""The simulator's configuration, read once from the environment (see `.env.example`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from movierec.settings import CommonSettings, env_float, env_int, env_str


@dataclass(frozen=True)
class SimulatorSettings:
    common: CommonSettings
    recommend_url: str
    request_timeout_seconds: float
    metrics_port: int
    metrics_addr: str
    users: int
    seed: int
    rate_per_second: float
    speed: float
    recommend_fraction: float
    sessions_per_user_day: float
    output: str
    rank: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SimulatorSettings:
        return cls(
            common=CommonSettings.from_env(environ),
            recommend_url=env_str("SIM_RECOMMEND_URL", "http://127.0.0.1:8082", environ),
            request_timeout_seconds=env_float("SIM_REQUEST_TIMEOUT_SECONDS", 0.8, environ),
            metrics_port=env_int("SIM_METRICS_PORT", 9102, environ),
            metrics_addr=env_str("SIM_METRICS_ADDR", "127.0.0.1", environ),
            users=env_int("SIM_USERS", 1_000_000, environ),
            seed=env_int("SIM_SEED", 0, environ),
            rate_per_second=env_float("SIM_RATE", 0.0, environ),
            speed=env_float("SIM_SPEED", 1.0, environ),
            recommend_fraction=env_float("SIM_RECOMMEND_FRACTION", 0.5, environ),
            sessions_per_user_day=env_float("SIM_SESSIONS_PER_USER_DAY", 0.5, environ),
            output=env_str("SIM_OUTPUT", "kafka", environ),
            rank=env_int("SIM_RANK", 24, environ),
        )
