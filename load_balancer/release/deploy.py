"""Starting and stopping a nightly backend: a gunicorn process from the release worktree, or a
Docker container (Docker SDK) for the compose deployment."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import requests

from load_balancer.release.settings import ReleaseSettings
from movierec.base.ports import free_port
from movierec.base.waiting import wait_until

log = logging.getLogger(__name__)


class DeployError(Exception):
    """The nightly could not be started or did not become healthy."""


@dataclass(frozen=True)
class StartedBackend:
    url: str
    handle: dict[str, Any]  # what stop_backend needs: kind + pid or container id


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def clean_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without git-hook and metrics-dir variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_") and k != "PROMETHEUS_MULTIPROC_DIR"}
    env.update(extra)
    return env


def inference_args(port: int, strategy: str, host: str | None = None) -> list[str]:
    args = ["inference", "--port", str(port)]
    if host:
        args += ["--host", host]
    if strategy:
        args += ["--strategy", strategy]
    return args


def start_process(settings: ReleaseSettings, worktree: Path, strategy: str, log_path: Path,
                  model_version: str, extra_env: dict[str, str] | None = None) -> StartedBackend:
    """gunicorn `movierec inference` from the worktree (PYTHONPATH=worktree, so the ref's code runs).

    MODEL_VERSION makes the nightly's X-Model-Version unique to the release, so the arms can be
    told apart in the recommendation log."""
    port = settings.nightly_port if port_is_free(settings.nightly_port) else free_port()
    argv = [settings.python, "-m", "movierec.cli", *inference_args(port, strategy)]
    env = clean_env({"PYTHONPATH": str(worktree), "MOVIEREC_DATA_DIR": str(settings.common.data_dir),
                     "MODEL_VERSION": model_version, **(extra_env or {})})
    if strategy:
        env["INFERENCE_STRATEGY"] = strategy
    with open(log_path, "ab") as out:
        process = subprocess.Popen(argv, cwd=worktree, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    log.info("nightly process pid=%s port=%s argv=%s", process.pid, port, argv)
    return StartedBackend(f"http://{settings.nightly_host}:{port}", {"kind": "process", "pid": process.pid,
                                                                     "port": port, "log": str(log_path)})


def image_tag(sha: str) -> str:
    """Release images are tagged with the commit's 12-character sha (.gitlab-ci.yml pushes the same)."""
    return sha[:12]


def image_name(repository: str, tag: str) -> str:
    return f"{repository}:{tag}"


def start_docker(settings: ReleaseSettings, release_id: str, tag: str, strategy: str, model_version: str,
                 network: str = "", extra_env: dict[str, str] | None = None) -> StartedBackend:
    """`docker.from_env().containers.run(image:tag, ...)` with the platform's settings."""
    import docker

    common = settings.common
    port = settings.nightly_port
    client = docker.from_env()
    name = f"movierec-nightly-{release_id}"
    environment = {"DATABASE_URL": common.database_url, "KAFKA_BOOTSTRAP": common.kafka_bootstrap,
                   "KAFKA_TOPIC": common.kafka_topic, "CHROMA_URL": common.chroma_url,
                   "CHROMA_COLLECTION": common.chroma_collection, "MOVIEREC_DATA_DIR": "/data",
                   "INFERENCE_STRATEGY": strategy, "INFERENCE_PORT": str(port), "MODEL_VERSION": model_version,
                   **(extra_env or {})}
    options: dict[str, Any] = {"detach": True, "name": name, "environment": environment,
                               "labels": {"movierec.release": release_id, "movierec.role": "nightly"},
                               "command": ["movierec", *inference_args(port, strategy, host="0.0.0.0")]}
    if settings.docker_volumes:
        options["volumes"] = list(settings.docker_volumes)
    if network:
        # On the compose network the router reaches the nightly by its container name.
        options["network"] = network
        url = f"http://{name}:{port}"
    else:
        options["ports"] = {f"{port}/tcp": port}
        url = f"http://{settings.nightly_host}:{port}"
    try:
        container = client.containers.run(image_name(settings.docker_image, tag), **options)
    except docker.errors.DockerException as exc:
        raise DeployError(f"docker could not start {settings.docker_image}:{tag}: {exc}") from exc
    log.info("nightly container id=%s image=%s url=%s", container.id, image_name(settings.docker_image, tag), url)
    return StartedBackend(url, {"kind": "docker", "container_id": container.id, "name": name, "port": port})


def stop_backend(handle: dict[str, Any] | None, timeout_seconds: float = 15.0) -> bool:
    """Stop what start_process/start_docker started; False when there was nothing to stop."""
    if not handle:
        return False
    if handle.get("kind") == "process":
        return _stop_process(int(handle["pid"]), timeout_seconds)
    if handle.get("kind") == "docker":
        import docker

        try:
            container = docker.from_env().containers.get(handle["container_id"])
            container.stop(timeout=int(timeout_seconds))
            container.remove()
        except docker.errors.NotFound:
            return False
        return True
    return False


def _stop_process(pid: int, timeout_seconds: float) -> bool:
    try:
        process = psutil.Process(pid)
    except psutil.NoSuchProcess:
        return False
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGTERM)  # gunicorn master and its workers share the session
    try:
        process.wait(timeout=timeout_seconds)
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGKILL)
        process.wait(timeout=5)
    log.info("stopped process pid=%s", pid)
    return True


def wait_healthy(url: str, timeout_seconds: float, handle: dict[str, Any] | None = None) -> str | None:
    """Wait for `url/health` to answer 200; returns the X-Model-Version it reports (if any)."""

    def healthy() -> tuple[str | None] | None:  # (version,) once healthy: a truthy answer even without a version
        if handle and handle.get("kind") == "process" and not psutil.pid_exists(int(handle["pid"])):
            raise DeployError(f"the nightly process exited before it was healthy (log: {handle.get('log')})")
        if handle and handle.get("kind") == "process":
            with contextlib.suppress(psutil.NoSuchProcess):
                if psutil.Process(int(handle["pid"])).status() == psutil.STATUS_ZOMBIE:
                    raise DeployError(f"the nightly process exited (log: {handle.get('log')})")
        try:
            response = requests.get(f"{url}/health", timeout=2)
            if response.status_code == 200:
                return (response.headers.get("X-Model-Version") or _version_from_body(response),)
        except requests.RequestException:
            pass
        return None

    answer = wait_until(healthy, timeout_seconds, 0.25)
    if answer is None:
        raise DeployError(f"{url}/health did not answer 200 within {timeout_seconds:.0f}s")
    return answer[0]


def _version_from_body(response: requests.Response) -> str | None:
    with contextlib.suppress(ValueError):
        body = response.json()
        if isinstance(body, dict):
            return body.get("model_version") or body.get("version")
    return None
