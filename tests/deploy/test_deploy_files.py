"""docker-compose.yml and .gitlab-ci.yml: parsed, validated by real tools, and every command real."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from movierec.cli import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_ENV = {"POSTGRES_PASSWORD": "x", "LB_ADMIN_TOKEN": "y", "GRAFANA_ADMIN_PASSWORD": "z"}
# Tools a job may call besides the project's own commands.
KNOWN_TOOLS = {"docker", "mkdir", "find", "test", "cp", "gzip", "gunzip"}


def _compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


def _movierec_words(command: object) -> list[list[str]]:
    """Every `movierec ...` invocation inside a compose command (list or shell string)."""
    text = " ".join(command) if isinstance(command, list) else str(command)
    invocations = []
    for part in text.replace("&&", ";").replace('"', " ").split(";"):
        words = shlex.split(part)
        for i, word in enumerate(words):
            if word == "movierec":
                invocations.append(words[i + 1 :])
    return invocations


@pytest.mark.skipif(shutil.which("docker-compose") is None, reason="docker-compose (Debian package) not installed")
def test_compose_file_is_valid_for_docker_compose() -> None:
    result = subprocess.run(["docker-compose", "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                            capture_output=True, text=True, env={**os.environ, **COMPOSE_ENV}, cwd=ROOT)
    assert result.returncode == 0, result.stderr


def test_compose_has_the_whole_platform() -> None:
    services = _compose()["services"]
    expected = {"database", "kafka", "chroma", "bootstrap", "parser", "inference-main", "inference-nightly",
                "router", "scheduler", "simulator", "prometheus", "alertmanager", "grafana"}
    assert expected <= set(services)
    assert services["grafana"]["ports"] == ["${GRAFANA_PORT:-3000}:3000"]
    assert services["router"]["ports"] == ["${ROUTER_PORT:-8082}:8082"]
    for name in ("prometheus", "alertmanager", "grafana", "scheduler", "database", "kafka", "chroma"):
        assert services[name]["healthcheck"]["test"], name
    assert "KAFKA_PROCESS_ROLES" in services["kafka"]["environment"]  # KRaft, no ZooKeeper
    assert "zookeeper" not in services
    for name in ("parser", "inference-main", "router", "simulator"):
        assert services[name]["depends_on"], name


def test_every_compose_command_exists_in_movierec() -> None:
    seen = 0
    for name, service in _compose()["services"].items():
        for words in _movierec_words(service.get("command", "")):
            assert words and words[0] in COMMANDS, f"{name}: movierec {words}"
            seen += 1
    assert seen >= 8


def test_dockerfile_targets_match_compose() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    targets = {line.split()[-1] for line in dockerfile.splitlines() if line.startswith("FROM ")}
    for name, service in _compose()["services"].items():
        build = service.get("build")
        if isinstance(build, dict) and "target" in build:
            assert build["target"] in targets, name
    assert "USER movierec" in dockerfile and "HEALTHCHECK" in dockerfile


def test_gitlab_ci_jobs_call_real_commands() -> None:
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    stages = set(ci["stages"])
    jobs = {k: v for k, v in ci.items() if isinstance(v, dict) and "script" in v}
    assert {"test", "offline-gate", "release-nightly", "release-main", "release-parser", "backup-database",
            "restore-database"} <= set(jobs)
    for name, job in jobs.items():
        assert job["stage"] in stages, name
        for line in job["script"]:
            words = shlex.split(line.split("|")[0].split(">")[0].split("&&")[0])
            while words and "=" in words[0] and not words[0].startswith("./"):
                words = words[1:]  # VAR=value prefixes
            tool = words[0]
            if tool == "./dev":
                assert words[1] in {"test", "run", "up", "shell"}, line
                if words[1] == "run":
                    assert words[2] in COMMANDS, line
            else:
                assert tool in KNOWN_TOOLS, f"{name}: unknown tool in {line!r}"
    assert ".ci" not in str(jobs["test"]) and jobs["test"]["script"] == ["./dev test"]
    tag_rules = str(jobs["release-nightly"]["rules"])
    assert "release-recommender-nightly-" in tag_rules


def test_ci_run_calls_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme.split("\n## ")[0]
    assert "exec ./dev test" in (ROOT / ".ci" / "run").read_text()
