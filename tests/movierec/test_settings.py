"""Settings: environment > `.env` > default for every command; a bad value is one line and exit 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.settings import RouterSettings
from movierec.base.settings import CommonSettings, ConfigError
from movierec.services import UpSettings

REPO = Path(__file__).resolve().parents[2]


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("UP_", "LB_", "SIM_", "PARSER_", "RELEASE_", "MOVIEREC_", "DATABASE_URL"))}
    env["PYTHONPATH"] = str(REPO)
    env.update(extra)
    return env


def _movierec(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "movierec.cli", *args], cwd=cwd, env=_clean_env(**env),
                          capture_output=True, text=True, timeout=120)


def test_every_variable_is_in_env_example_with_its_default() -> None:
    """Every variable a settings class reads is documented in .env.example, with the same default."""
    from data_parsing.settings import ParserSettings
    from inference.settings import InferenceSettings
    from inference.train import TrainSettings
    from monitoring.settings import DashboardSettings, LocalMonitoringSettings
    from simulator.settings import SimulatorSettings
    from vectordb_scripts.catalog_build import CatalogSettings
    from vectordb_scripts.index import IndexSettings

    documented = {}
    for line in (REPO / ".env.example").read_text().splitlines():
        if line and not line.startswith("#") and "=" in line:
            name, _, value = line.partition("=")
            documented[name] = value
    for cls in (CommonSettings, UpSettings, RouterSettings, ReleaseSettings, ParserSettings, InferenceSettings,
                SimulatorSettings, DashboardSettings, LocalMonitoringSettings, IndexSettings, CatalogSettings,
                TrainSettings):
        for name, field in cls.model_fields.items():
            if name == "common":
                continue
            variable, default, value = field.validation_alias, field.default, documented.get(field.validation_alias)
            assert value is not None, f"{cls.__name__}.{name}: {variable} is not in .env.example"
            if value == "":  # "empty means the default described in the comment"
                continue
            if isinstance(default, bool):
                assert (value in {"1", "true"}) == default, variable
            elif isinstance(default, int | float):
                assert float(value) == float(default), variable
            elif isinstance(default, Path):
                assert Path(value) == default, variable
            else:
                assert value == str(default), variable


def test_explicit_mapping_reads_nothing_else(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("UP_ROUTER_PORT=9999\n")
    monkeypatch.setenv("UP_MAIN_PORT", "7777")
    settings = UpSettings.from_env({"MOVIEREC_DATA_DIR": str(tmp_path)})
    assert settings.router_port == 8082 and settings.main_port == 8001
    assert settings.common.data_dir == tmp_path


def test_environment_wins_over_dotenv_and_empty_means_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                                                             ) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("MOVIEREC_ENV_FILE", raising=False)
    for name in ("UP_ROUTER_PORT", "UP_MAIN_PORT", "UP_NIGHTLY_PORT", "MOVIEREC_DATA_DIR", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    (tmp_path / ".env").write_text("UP_ROUTER_PORT=9999\nUP_MAIN_PORT=7001\nUP_NIGHTLY_PORT=\n"
                                   "MOVIEREC_DATA_DIR=./data\nLOG_LEVEL=debug\n")
    monkeypatch.setenv("UP_MAIN_PORT", "7777")
    settings = UpSettings.from_env()
    assert settings.router_port == 9999  # from .env
    assert settings.main_port == 7777  # the environment wins
    assert settings.nightly_port == 8002  # empty: the default
    assert settings.common.data_dir == tmp_path / "data"  # relative to the current directory
    assert settings.common.log_level == "DEBUG"
    assert settings.common.database_url == f"sqlite:///{tmp_path / 'data' / 'movierec.db'}"


@pytest.mark.parametrize(("variable", "value", "expected"), [
    ("UP_ROUTER_PORT", "abc", "UP_ROUTER_PORT='abc': expected an integer"),
    ("LB_CANARY_WEIGHT", "2", "LB_CANARY_WEIGHT='2': expected a number <= 1"),
    ("UP_SIMULATOR", "maybe", "UP_SIMULATOR='maybe': expected a boolean"),
])
def test_a_bad_value_is_one_line_naming_the_variable(variable: str, value: str, expected: str) -> None:
    with pytest.raises(ConfigError) as raised:
        UpSettings.from_env({variable: value})
    assert expected in str(raised.value) and "\n" not in str(raised.value)


def test_release_settings_check_their_ranges() -> None:
    with pytest.raises(ConfigError, match="RELEASE_BACKEND='k8s'"):
        ReleaseSettings.from_env({"RELEASE_BACKEND": "k8s"})
    with pytest.raises(ConfigError, match="RELEASE_WINDOW_MINUTES='0.5': expected a number >= 1"):
        ReleaseSettings.from_env({"RELEASE_WINDOW_MINUTES": "0.5"})
    settings = ReleaseSettings.from_env({"LB_ADMIN_URL": "http://127.0.0.1:1/", "LB_ADMIN_TOKEN": "t"})
    assert settings.admin_url == "http://127.0.0.1:1" and "t" not in repr(settings).split("admin_url")[0][-5:]
    assert "admin_token" not in repr(settings)


@pytest.mark.parametrize(("dotenv", "variable"), [("LB_PORT=abc\n", "LB_PORT"),
                                                   ("LB_CANARY_WEIGHT=2\n", "LB_CANARY_WEIGHT")])
def test_a_bad_dotenv_value_stops_the_command_with_one_line_and_exit_2(tmp_path: Path, dotenv: str,
                                                                        variable: str) -> None:
    (tmp_path / ".env").write_text(dotenv)
    result = _movierec(tmp_path, "lb")
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and variable in lines[0] and "expected" in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_status_reads_the_data_dir_from_dotenv(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("MOVIEREC_DATA_DIR=./somewhere\n")
    result = _movierec(tmp_path, "status")
    assert result.returncode == 3
    assert str(tmp_path / "somewhere") in result.stdout
