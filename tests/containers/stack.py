"""The compose platform on the project's podman engine: images built from the real Dockerfile on the
debootstrap base, the stand-ins swapped in by deploy/standins/compose.standins.yml, docker-compose 1.29
talking to `podman system service`. Used by tests/containers and bench/containers.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import yaml

from movierec.base.ports import free_port
from movierec.containers import Engine, host_pip_config, setup

ROOT = Path(__file__).resolve().parents[2]
PROJECT_TARGETS = ("tools", "parser", "inference", "router", "simulator")
STANDINS_ON_BASE = ("postgres", "kafka", "prometheus", "alertmanager")
STANDINS_ON_PROJECT = ("chroma", "grafana")
# What the project directory of the compose run needs from the checkout (configs it mounts, the
# stand-ins' build contexts, the template init-env reads).
PROJECT_FILES = ("docker-compose.yml", ".env.example", "monitoring", "deploy", "secrets/.gitignore")
T = TypeVar("T")
IMAGE_NAMESPACE = "movierec"
TAG = "containers-test"


def pip_build_args() -> tuple[dict[str, str], list[str]]:
    """The host's pip settings as build args (the Dockerfiles declare PIP_*) and read-only mounts."""
    env, paths = host_pip_config()
    return env, [f"{path}:{path}:ro" for path in paths]


@dataclass
class Stack:
    engine: Engine
    base: str
    project_dir: Path
    # A fixed project name: the data and ChromaDB volumes survive between runs (see down()).
    name: str = "movierec-ct"
    ports: dict[str, int] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    build_seconds: dict[str, float] = field(default_factory=dict)
    checkout: Path | None = None  # a clone of this repository, the scheduler's /repo (RELEASE_CHECKOUT)

    # ------------------------------------------------------------------ images
    def build_images(self, cold: bool = False) -> dict[str, bool]:
        """Every image the run needs; unchanged inputs skip the build (label movierec.inputs).

        cold: the images and their cached layers are removed first (the debootstrap base stays), so
        every step runs once and the later targets share the first one's layers, as in a fresh build."""
        if cold:
            names = [f"{IMAGE_NAMESPACE}/movierec-{t}:{TAG}" for t in PROJECT_TARGETS]
            names += [f"movierec-standins/{n}:{TAG}" for n in (*STANDINS_ON_BASE, *STANDINS_ON_PROJECT)]
            self.engine.podman("rmi", "-f", *names, check=False)
            self.engine.podman("image", "prune", "-f", check=False)
        pip_env, volumes = pip_build_args()
        built: dict[str, bool] = {}
        common = {**pip_env, "BASE_IMAGE": self.base}
        for target in PROJECT_TARGETS:
            started = time.monotonic()
            image = f"{IMAGE_NAMESPACE}/movierec-{target}:{TAG}"
            _, built[image] = self.engine.build(image, ROOT, target=target, volumes=volumes,
                                                build_args={**common, "TORCH_INDEX_URL": ""})
            self.build_seconds[image] = time.monotonic() - started
        tools = f"{IMAGE_NAMESPACE}/movierec-tools:{TAG}"
        tools_id = self.engine.podman("image", "inspect", "--format", "{{.Id}}", tools).stdout.decode().strip()
        for name in (*STANDINS_ON_BASE, *STANDINS_ON_PROJECT):
            started = time.monotonic()
            image = f"movierec-standins/{name}:{TAG}"
            args = dict(common) if name in STANDINS_ON_BASE else {"MOVIEREC_IMAGE": tools}
            extra = [] if name in STANDINS_ON_BASE else [tools_id]
            _, built[image] = self.engine.build(image, ROOT / "deploy" / "standins" / name, build_args=args,
                                                volumes=volumes, extra_inputs=extra)
            self.build_seconds[image] = time.monotonic() - started
        return built

    def image_sizes(self) -> dict[str, int]:
        out = self.engine.podman("images", "--format", "json").stdout
        sizes = {}
        for image in json.loads(out or b"[]"):
            for name in image.get("Names") or []:
                if name.endswith(f":{TAG}"):
                    sizes[name.removeprefix("localhost/")] = int(image.get("Size", 0))
        return sizes

    # ------------------------------------------------------------------ project
    def prepare_project(self) -> None:
        """A copy of what compose reads, then the product's own `movierec deploy init-env`."""
        for rel in PROJECT_FILES:
            src, dst = ROOT / rel, self.project_dir / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            if src.is_dir():
                shutil.copytree(src, dst, ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
            else:
                shutil.copy2(src, dst)
        subprocess.run([sys.executable, "-m", "movierec.cli", "deploy", "init-env", "--dir", str(self.project_dir),
                        "--docker-socket", str(self.engine.socket)], check=True, capture_output=True)
        pip_env, paths = host_pip_config()
        # The bootstrap job downloads the data-carrier wheels with pip: the host's pip settings go in.
        override = {"services": {"bootstrap": {"environment": pip_env,
                                               "volumes": [f"{p}:{p}:ro" for p in paths]}}}
        (self.project_dir / "pip.override.yml").write_text(yaml.safe_dump(override))
        self.checkout = self.project_dir.parent / "checkout"
        if not self.checkout.exists():
            subprocess.run(["git", "clone", "-q", "--no-hardlinks", str(ROOT), str(self.checkout)], check=True)
        self.ports = {name: free_port() for name in ("ROUTER_PORT", "GRAFANA_PORT", "PROMETHEUS_PORT",
                                                      "ALERTMANAGER_PORT")}

    def env(self) -> dict[str, str]:
        return {**self.engine.env(), "COMPOSE_PROJECT_NAME": self.name, "MOVIEREC_IMAGE_NAMESPACE": IMAGE_NAMESPACE,
                "MOVIEREC_TAG": TAG, "MOVIEREC_MAIN_TAG": TAG, "MOVIEREC_NIGHTLY_TAG": TAG, "STANDINS_TAG": TAG,
                "MOVIEREC_NETWORK": f"{self.name}-net", "MOVIEREC_DATA_VOLUME": f"{self.name}-data",
                "DOCKER_SOCKET": str(self.engine.socket), "COMPOSE_HTTP_TIMEOUT": "600",
                "RELEASE_CHECKOUT": str(self.checkout or self.project_dir),
                **{k: str(v) for k, v in self.ports.items()}, **self.extra_env}

    def compose(self, *args: str, check: bool = True, timeout: float = 1200) -> subprocess.CompletedProcess:
        argv = ["docker-compose", "-f", "docker-compose.yml", "-f", "deploy/standins/compose.standins.yml",
                "-f", "pip.override.yml", *args]
        result = subprocess.run(argv, cwd=self.project_dir, env=self.env(), capture_output=True, text=True,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"docker-compose {' '.join(args)} exited {result.returncode}:\n"
                                 f"{result.stdout[-3000:]}\n{result.stderr[-5000:]}")
        return result

    def logs(self, *services: str, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", f"--tail={tail}", *services, check=False).stdout

    def sql(self, query: str) -> list[list[str]]:
        result = self.compose("exec", "-T", "database", "psql", "-U", "movierec", "-d", "movierec", "-At",
                              "-F", "\t", "-c", query)
        return [line.split("\t") for line in result.stdout.splitlines() if line]

    def containers(self, service: str) -> list[str]:
        out = self.compose("ps", "-q", service).stdout
        return [line.strip() for line in out.splitlines() if line.strip()]

    def podman(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return self.engine.podman(*args, check=check)

    def exec_python(self, service: str, code: str, *, index: int = 1) -> str:
        return self.compose("exec", "-T", f"--index={index}", service, "python", "-c", code).stdout

    def down(self, keep_data: bool = True) -> None:
        """Containers, networks and the per-run volumes go; with keep_data the data volume (catalogue,
        neighbour table, fetched wheels) and ChromaDB's stay, so the next run's bootstrap job reuses
        them the way the product does on a re-run (the embeddings are incremental), instead of
        embedding ~4K films again (minutes on a busy 2-core machine)."""
        # rm -v first: the containers' anonymous volumes (an image's VOLUME nobody mounted) go with them.
        self.compose("rm", "--stop", "--force", "-v", check=False, timeout=300)
        self.compose("down", "--remove-orphans", "-t", "5", check=False, timeout=300)
        # Release containers are started by the scheduler through the API, outside compose.
        leftovers = self.podman("ps", "-aq", "--filter", "label=movierec.role=nightly", check=False)
        for cid in leftovers.stdout.decode().split():
            self.podman("rm", "-f", cid, check=False)
        self.podman("network", "rm", "-f", f"{self.name}-net", check=False)
        volumes = [f"{self.name}_{v}" for v in ("postgres_database", "kafka_data", "prometheus_data", "grafana_data")]
        if not keep_data:
            volumes += [f"{self.name}-data", f"{self.name}_chroma_data"]
        for volume in volumes:
            self.podman("volume", "rm", "-f", volume, check=False)


def start_engine(run_dir: Path, install: bool) -> tuple[Engine, str]:
    return setup(run_dir, install=install)


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, interval: float = 2.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)
