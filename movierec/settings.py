"""Configuration is data: typed settings read once from the environment.

Every variable is documented with its default in `.env.example`. Services build their own
settings dataclass with the `env_*` readers below and embed `CommonSettings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def env_str(name: str, default: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value, or `default` when it is unset or empty."""
    value = (os.environ if environ is None else environ).get(name, "")
    return value if value != "" else default


def env_int(name: str, default: int, environ: Mapping[str, str] | None = None) -> int:
    raw = env_str(name, str(default), environ)
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def env_float(name: str, default: float, environ: Mapping[str, str] | None = None) -> float:
    raw = env_str(name, str(default), environ)
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


def env_bool(name: str, default: bool, environ: Mapping[str, str] | None = None) -> bool:
    raw = env_str(name, "1" if default else "0", environ).strip().lower()
    if raw in {"1", "true", "yes", "on"}:
        return True
    if raw in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be a boolean (1/0, true/false), got {raw!r}")


@dataclass(frozen=True)
class CommonSettings:
    """What every process of the platform needs to find the others."""

    data_dir: Path
    database_url: str
    kafka_bootstrap: str
    kafka_topic: str
    chroma_url: str
    chroma_collection: str
    log_level: str

    @property
    def chroma_path(self) -> Path:
        """Where the embedded ChromaDB (PersistentClient) keeps its files."""
        return self.data_dir / "chroma"

    @property
    def raw_dir(self) -> Path:
        """Data extracted from the downloaded data-carrier wheels."""
        return self.data_dir / "raw"

    @property
    def catalog_dir(self) -> Path:
        """The built catalogue and its MovieLens mapping."""
        return self.data_dir / "catalog"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> CommonSettings:
        data_dir = Path(env_str("MOVIEREC_DATA_DIR", "./var", environ)).expanduser().resolve()
        default_db = f"sqlite:///{data_dir / 'movierec.db'}"
        return cls(
            data_dir=data_dir,
            database_url=env_str("DATABASE_URL", default_db, environ),
            kafka_bootstrap=env_str("KAFKA_BOOTSTRAP", "127.0.0.1:9092", environ),
            kafka_topic=env_str("KAFKA_TOPIC", "movielog", environ),
            chroma_url=env_str("CHROMA_URL", "", environ),
            chroma_collection=env_str("CHROMA_COLLECTION", "movies", environ),
            log_level=env_str("LOG_LEVEL", "INFO", environ).upper(),
        )
