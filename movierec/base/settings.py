"""Configuration is data: typed settings read once from the environment and the `.env` file.

One mechanism for every command: pydantic-settings. A settings class derives from `EnvSettings`
and declares each field with `setting("VARIABLE", default)`; `Cls.from_env()` reads the process
environment first, then the `.env` file, then the default (an empty value means "the default").
`Cls.from_env(mapping)` reads only that mapping (tests, subprocess environments).

Where `.env` is looked for: `$MOVIEREC_ENV_FILE` when set, else `.env` in the current directory
(the repository root for README's commands; the git hook runs from the repository). The `movierec`
command exports the absolute path of the file it found as MOVIEREC_ENV_FILE, so its child
processes read the same file whatever their working directory.

A value that does not fit its field raises `ConfigError` with one line naming the variable and the
expected form; `movierec` prints that line and exits 2. Every variable is documented with its
default in `.env.example`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Any, Self

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticUndefined
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    EnvSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)
from pydantic_settings.sources.utils import parse_env_vars

ENV_FILE_VARIABLE = "MOVIEREC_ENV_FILE"


class ConfigError(ValueError):
    """An environment variable holds a value that cannot be used."""


def env_file_path() -> Path:
    """The `.env` file every command reads (it may not exist)."""
    return Path(os.environ.get(ENV_FILE_VARIABLE) or ".env")


def export_env_file_location() -> None:
    """Make child processes read the same `.env` as this one, whatever their working directory."""
    path = env_file_path()
    if ENV_FILE_VARIABLE not in os.environ and path.is_file():
        os.environ[ENV_FILE_VARIABLE] = str(path.resolve())


@lru_cache(maxsize=8)
def _dotenv_values(path: str, mtime_ns: int) -> dict[str, str]:
    from dotenv import dotenv_values

    return {k: v for k, v in dotenv_values(path).items() if v is not None}


def dotenv_values() -> dict[str, str]:
    """The variables of the `.env` file ({} when there is none)."""
    path = env_file_path()
    try:
        return _dotenv_values(str(path), path.stat().st_mtime_ns)
    except OSError:
        return {}


def environment() -> dict[str, str]:
    """The process environment over the `.env` file (for code that builds an explicit mapping)."""
    return {**dotenv_values(), **os.environ}


# --- the settings base class --------------------------------------------------------------------

# The mapping `from_env(mapping)` reads instead of the environment and `.env` (None: those two).
_EXPLICIT: ContextVar[Mapping[str, str] | None] = ContextVar("movierec_settings_environ", default=None)


class _MappingSource(EnvSettingsSource):
    """pydantic-settings' environment source, reading a given mapping instead of os.environ."""

    def __init__(self, settings_cls: type[BaseSettings], environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(settings_cls)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        return parse_env_vars(self._environ, self.case_sensitive, self.env_ignore_empty, self.env_parse_none_str)


def setting(variable: str, default: Any = PydanticUndefined, **constraints: Any) -> Any:
    """A field read from `variable` (constraints: ge, le, gt, repr, default_factory, ...)."""
    return Field(default, validation_alias=variable, **constraints)


_BOUNDS = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
_FORMS = {"int_parsing": "an integer", "int_from_float": "an integer", "float_parsing": "a number",
          "bool_parsing": "a boolean (1/0, true/false, yes/no, on/off)"}


def _expected(error: Any) -> str:
    """The expected form of a value, in words (pydantic's message when there is no better one)."""
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind in _FORMS:
        return f"expected {_FORMS[kind]}"
    if kind in _BOUNDS:
        bound = next(iter(ctx.values()), "?")
        return f"expected a number {_BOUNDS[kind]} {bound}"
    message = str(error["msg"])
    return message.replace("Input should be", "expected", 1) if message.startswith("Input should be") else message


def describe_error(exc: ValidationError) -> str:
    """One line: every bad variable, the value it holds and the expected form."""
    parts = []
    for error in exc.errors(include_url=False):
        variable = ".".join(str(part) for part in error.get("loc", ())) or "settings"
        value = error.get("input")
        shown = f"={value!r}" if isinstance(value, str | int | float) else ""
        parts.append(f"{variable}{shown}: {_expected(error)}")
    return "; ".join(parts)


class EnvSettings(BaseSettings):
    """Base of every settings class: environment > `.env` > default; frozen; one-line errors."""

    model_config = SettingsConfigDict(
        case_sensitive=True, env_ignore_empty=True, extra="ignore", frozen=True, validate_by_name=True,
        validate_by_alias=True,
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        explicit = _EXPLICIT.get()
        if explicit is not None:
            return init_settings, _MappingSource(settings_cls, explicit)
        return init_settings, env_settings, DotEnvSettingsSource(settings_cls, env_file=env_file_path())

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Self:
        """Read the settings (from `environ` only, when given); ConfigError on a bad value."""
        token = _EXPLICIT.set(environ)
        try:
            return cls()
        except ValidationError as exc:
            raise ConfigError(describe_error(exc)) from None
        finally:
            _EXPLICIT.reset(token)

    def replace(self, **changes: Any) -> Self:
        """A copy with some attributes changed (like dataclasses.replace)."""
        return self.model_copy(update=changes)

    def _set(self, name: str, value: Any) -> None:
        """Fill a derived default after validation (the model is frozen)."""
        object.__setattr__(self, name, value)


def nested_common() -> Any:
    """A `common: CommonSettings` field read from the same source as its parent."""
    return Field(default_factory=lambda: CommonSettings.from_env(_EXPLICIT.get()))


# --- what every process needs --------------------------------------------------------------------


class CommonSettings(EnvSettings):
    """What every process of the platform needs to find the others."""

    data_dir: Path = setting("MOVIEREC_DATA_DIR", Path("./var"))
    database_url: str = setting("DATABASE_URL", "")  # "" -> SQLite in the data dir
    kafka_bootstrap: str = setting("KAFKA_BOOTSTRAP", "127.0.0.1:9092")
    kafka_topic: str = setting("KAFKA_TOPIC", "movielog")
    chroma_url: str = setting("CHROMA_URL", "")
    chroma_collection: str = setting("CHROMA_COLLECTION", "movies")
    log_level: str = setting("LOG_LEVEL", "INFO")

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @field_validator("log_level")
    @classmethod
    def _upper(cls, value: str) -> str:
        return value.upper()

    @model_validator(mode="after")
    def _default_database(self) -> Self:
        if not self.database_url:
            self._set("database_url", f"sqlite:///{self.data_dir / 'movierec.db'}")
        return self

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
