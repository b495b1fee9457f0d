"""Pure parts of movierec.containers and movierec.deploy: apt source, pip forwarding, configs, .env."""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from movierec.containers import (
    EngineError,
    apt_options,
    containers_conf,
    context_digest,
    debian_source,
    default_ulimits,
    pip_forwarding,
)
from movierec.deploy import GENERATED, fill_env, init_env, parse_env

ROOT = Path(__file__).resolve().parents[2]


def test_debian_source_takes_the_main_suite() -> None:
    lines = ("http://mirror.example/debian-security/ bookworm-security main\n"
             "http://mirror.example/debian/ bookworm-updates main\n"
             "http://mirror.example/debian/ bookworm main\n")
    assert debian_source(lines) == ("http://mirror.example/debian", "bookworm")
    with pytest.raises(EngineError):
        debian_source("")


def test_apt_options_keeps_only_the_validity_switches() -> None:
    dump = 'Acquire::Check-Valid-Until "false";\nAPT::Install-Recommends "1";\nAcquire::Check-Date "false";\n'
    assert apt_options(dump) == 'Acquire::Check-Valid-Until "false";\nAcquire::Check-Date "false";\n'


def test_pip_forwarding_maps_options_and_mounts_local_paths() -> None:
    env, paths = pip_forwarding("global.cert='/etc/ssl/ca.crt'\n"
                                "global.extra-index-url='file:///opt/idx/simple https://mirror.example/simple'\n"
                                "global.find-links='/opt/wheels'\n:env:.find-links='/opt/wheels'\n")
    assert env == {"PIP_CERT": "/etc/ssl/ca.crt", "PIP_FIND_LINKS": "/opt/wheels",
                   "PIP_EXTRA_INDEX_URL": "file:///opt/idx/simple https://mirror.example/simple"}
    # a file:// index links its files relative to itself: its parent is mounted
    assert paths == ["/etc/ssl/ca.crt", "/opt/idx", "/opt/wheels"]


def test_ulimits_stay_within_the_hard_limits() -> None:
    assert default_ulimits(20000, 96363) == ["nofile=16384:16384", "nproc=8192:8192"]
    assert default_ulimits(4096, 1000) == ["nofile=4096:4096", "nproc=1000:1000"]
    conf = containers_conf(default_ulimits(4096, 1000), Path("/run/x/cni"), Path("/run/x/tmp"))
    assert 'runtime = "runc"' in conf and '"nofile=4096:4096"' in conf and '"/run/x/cni"' in conf


def test_context_digest_follows_dockerignore(tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM x\n")
    (tmp_path / ".dockerignore").write_text(".env\nvar\n")
    (tmp_path / "app.py").write_text("a")
    first = context_digest(tmp_path, tmp_path / "Dockerfile")
    (tmp_path / ".env").write_text("SECRET=1")
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "db").write_text("x")
    assert context_digest(tmp_path, tmp_path / "Dockerfile") == first
    (tmp_path / "app.py").write_text("b")
    assert context_digest(tmp_path, tmp_path / "Dockerfile") != first
    with_arg = context_digest(tmp_path, tmp_path / "Dockerfile", ["arg"])
    assert with_arg != context_digest(tmp_path, tmp_path / "Dockerfile")


def test_fill_env_sets_and_appends() -> None:
    text = fill_env("# c\nA=\nB=keep\n", {"A": "1", "C": "3"})
    assert text == "# c\nA=1\nB=keep\nC=3\n"
    assert parse_env(text) == {"A": "1", "B": "keep", "C": "3"}


def test_init_env_writes_secrets_once_and_passes_docker_compose_config(tmp_path: Path) -> None:
    for name in ("docker-compose.yml", ".env.example"):
        (tmp_path / name).write_bytes((ROOT / name).read_bytes())
    socket = tmp_path / "engine.sock"
    socket.write_text("")
    init_env(tmp_path, socket)
    values = parse_env((tmp_path / ".env").read_text())
    assert all(len(values[name]) >= 24 for name in GENERATED)
    assert values["DOCKER_GID"] == str(socket.stat().st_gid)
    assert stat.S_IMODE((tmp_path / ".env").stat().st_mode) == 0o600
    slack = tmp_path / "secrets" / "slack_webhook_url"
    assert slack.read_text() == "" and stat.S_IMODE(slack.stat().st_mode) == 0o600
    init_env(tmp_path, socket)  # again: the secrets stay
    assert {k: parse_env((tmp_path / ".env").read_text())[k] for k in GENERATED} == {k: values[k] for k in GENERATED}
    if __import__("shutil").which("docker-compose"):
        result = subprocess.run(["docker-compose", "config", "-q"], cwd=tmp_path, capture_output=True, text=True,
                                env={"PATH": "/usr/bin:/bin"})
        assert result.returncode == 0, result.stderr
