"""docker-compose.yml and .gitlab-ci.yml: parsed, validated by real tools, and every command real."""

from __future__ import annotations

import os
import re
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
KNOWN_TOOLS = {"docker", "docker-compose", "compose", "mkdir", "find", "test", "cp", "gzip", "gunzip", "echo",
               "export", "sleep", "seq", "grep", "head", "date"}
# Shell syntax and builtins a job script uses (the scripts are also checked with `bash -n`).
SHELL_KEYWORDS = {"for", "if", "then", "else", "do", "done", "fi", "break", "exit", "[", "}", "compose()",
                  "build_args+="}


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


def _script_commands(lines: list[str]) -> list[list[str]]:
    """The commands a job's shell lines call, each as its words: what starts a line, or follows `|`, `;`,
    `&&`, `$(`, `then`, `do`, `else`, `if`, `!`, with `VAR=value` prefixes taken off; words inside quoted
    strings without a `$(` are text, not commands."""
    text = "\n".join(lines)
    text = re.sub(r"'[^']*'", "''", text)
    text = re.sub(r'"(?:[^"$]|\$(?!\())*"', '""', text)
    text = re.sub(r"\b\w+=\$\(", "$(", text)  # old=$(cmd ...): cmd is a command
    starts = r"(?:^|\n|\|\|?|;|&&|\$\(|\bthen\b|\bdo\b|\belse\b|\bif\b|!)"
    commands = []
    prefixes = r"[ \t]*((?:\w+=(?:[^\s$]|\$(?!\())*[ \t]+)*)"
    for match in re.finditer(starts + prefixes + r"([^\s;|&()$][^\s;|&()]*)([^\n;|&()]*)", text):
        name, rest = match.group(2), match.group(3)
        if re.fullmatch(r"\w+=\S*", name) or name in SHELL_KEYWORDS:
            continue
        commands.append([name, *rest.split()])
    return commands


def test_gitlab_ci_jobs_call_real_commands() -> None:
    ci = yaml.safe_load((ROOT / ".gitlab-ci.yml").read_text())
    stages = set(ci["stages"])
    before = ci["default"]["before_script"]
    templates = {k: v for k, v in ci.items() if k.startswith(".") and isinstance(v, dict)}
    jobs = {k: {**templates.get(v.get("extends", ""), {}), **v} for k, v in ci.items()
            if isinstance(v, dict) and not k.startswith(".") and ("script" in v or "extends" in v)}
    assert {"test", "offline-gate", "build-inference", "build-parser", "release-nightly", "release-main",
            "release-parser", "backup-database", "restore-database"} <= set(jobs)
    for name, job in jobs.items():
        assert job["stage"] in stages, name
        script = "\n".join([*before, *job["script"]])
        syntax = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
        assert syntax.returncode == 0, f"{name}: {syntax.stderr}"
        for words in _script_commands([*before, *job["script"]]):
            tool = words[0]
            if tool == "./dev":
                assert words[1] in {"test", "run", "up", "shell"}, words
                if words[1] == "run":
                    assert words[2] in COMMANDS, words
            else:
                assert tool in KNOWN_TOOLS, f"{name}: unknown tool {tool!r} in {' '.join(words)!r}"
            if tool == "compose" and words[1:3] == ["exec", "-T"] and words[4] == "movierec":
                assert words[5] in COMMANDS, words
    assert ".ci" not in str(jobs["test"]) and jobs["test"]["script"] == ["./dev test"]
    tag_rules = str(jobs["release-nightly"]["rules"])
    assert "release-recommender-nightly-" in tag_rules


def test_ci_run_calls_the_readme_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "./dev test" in readme.split("\n## ")[0]
    assert "exec ./dev test" in (ROOT / ".ci" / "run").read_text()
