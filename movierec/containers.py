"""A real container engine on this kind of machine, owned by the project: podman behind the Docker API.

`python -m movierec.containers setup` (also `deploy/containers/setup`):
  1. apt-installs podman, runc, debootstrap, the CNI plugins with dnsname, docker-compose
     (--no-install-recommends; only what is missing);
  2. writes a project-owned containers.conf and storage.conf (named by CONTAINERS_CONF and
     CONTAINERS_STORAGE_CONF; the machine's /etc/containers is never edited);
  3. starts `podman system service` on a unix socket under the run directory (DOCKER_HOST);
  4. builds the Debian base image with debootstrap from the machine's own apt source.

Images and the base root filesystem are cached in `~/.cache/movierec/containers`, keyed by their
inputs (labels `movierec.inputs=<sha256>`), so later runs skip every unchanged build.
Public container registries are never contacted: every image is built on the local base.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import logging
import os
import pwd
import resource
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from movierec.base.waiting import wait_until

log = logging.getLogger(__name__)

APT_PACKAGES = ("podman", "runc", "debootstrap", "containernetworking-plugins",
                "golang-github-containernetworking-plugin-dnsname", "docker-compose")
# What the base root filesystem holds: enough for the Dockerfile's `pip install` and `apt-get install`.
BASE_INCLUDE = ("python3", "python3-pip", "python3-venv", "ca-certificates", "curl", "git", "procps")
BASE_VERSION = "1"  # bump when the way the base is made changes
INPUTS_LABEL = "movierec.inputs"
CONTAINER_UID = 10001  # the Dockerfile's non-root user


class EngineError(RuntimeError):
    """The engine could not be installed, configured or started; the message says what is missing."""


def cache_dir() -> Path:
    """`MOVIEREC_CONTAINERS_CACHE`, else ~/.cache/movierec/containers (home from the password database)."""
    explicit = os.environ.get("MOVIEREC_CONTAINERS_CACHE")
    if explicit:
        return Path(explicit).expanduser().resolve()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path(pwd.getpwuid(os.getuid()).pw_dir) / ".cache")
    return Path(cache) / "movierec" / "containers"


def runtime_dir() -> Path:
    """podman's runroot and tmp dir: fixed paths, since podman refuses a storage whose recorded
    runroot/tmp dir changed (`MOVIEREC_CONTAINERS_RUNTIME`, else /run/movierec-containers)."""
    explicit = os.environ.get("MOVIEREC_CONTAINERS_RUNTIME")
    if explicit:
        return Path(explicit)
    if os.geteuid() == 0:
        return Path("/run/movierec-containers")
    return Path(os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/movierec-containers-{os.getuid()}") / "movierec-containers"


# ---------------------------------------------------------------------------------------------- pure


def debian_source(indextargets: str) -> tuple[str, str]:
    """(mirror URI, suite) of the machine's main Debian archive from `apt-get indextargets` lines
    formatted as `$(REPO_URI) $(RELEASE)`: the first suite that is neither -updates nor -security."""
    for line in indextargets.splitlines():
        parts = line.split()
        if len(parts) >= 2 and "-" not in parts[1] and "security" not in parts[0]:
            return parts[0].rstrip("/"), parts[1]
    raise EngineError("no Debian archive in the apt configuration (apt-get indextargets found none)")


def apt_options(config_dump: str, names: Iterable[str] = ("Acquire::Check-Valid-Until", "Acquire::Check-Date")) -> str:
    """The lines of `apt-config dump` the base image must share with the host (snapshot mirrors
    serve Release files past their Valid-Until)."""
    wanted = tuple(names)
    return "".join(f"{line}\n" for line in config_dump.splitlines() if line.split(" ", 1)[0] in wanted)


def pip_forwarding(config_list: str) -> tuple[dict[str, str], list[str]]:
    """`pip config list` lines (`global.find-links='/opt/wheels'`) -> PIP_* variables and the local
    paths they name (to be mounted read-only at the same place). Later scopes win like pip's own."""
    env: dict[str, str] = {}
    for line in config_list.splitlines():
        if "=" not in line or "." not in line.split("=", 1)[0]:
            continue
        key, raw = line.split("=", 1)
        option = key.split(".", 1)[1]
        value = raw.strip().strip("'\"")
        env["PIP_" + option.upper().replace("-", "_")] = value
    paths: list[str] = []
    for value in env.values():
        for token in value.split():
            path = token.removeprefix("file://")
            if token.startswith("file://"):  # a local index links its files relative to it (../../files)
                path = str(Path(path).parent)
            if path.startswith("/") and path not in paths:
                paths.append(path)
    return env, paths


def default_ulimits(nofile_hard: int, nproc_hard: int) -> list[str]:
    """Container ulimits inside the current hard limits (runc cannot raise them; crun fails here)."""
    nofile = min(16384, nofile_hard) if nofile_hard > 0 else 16384
    nproc = min(8192, nproc_hard) if nproc_hard > 0 else 8192
    return [f"nofile={nofile}:{nofile}", f"nproc={nproc}:{nproc}"]


def containers_conf(ulimits: Sequence[str], network_dir: Path, tmp_dir: Path) -> str:
    quoted = ", ".join(json.dumps(u) for u in ulimits)
    return (
        "# Written by movierec.containers; used through CONTAINERS_CONF (the machine's config is untouched).\n"
        "[containers]\n"
        f"default_ulimits = [{quoted}]\n"
        "log_driver = \"k8s-file\"\n"
        "[network]\n"
        "network_backend = \"cni\"\n"
        f"network_config_dir = {json.dumps(str(network_dir))}\n"
        "[engine]\n"
        "runtime = \"runc\"\n"
        "cgroup_manager = \"cgroupfs\"\n"
        "events_logger = \"file\"\n"
        f"tmp_dir = {json.dumps(str(tmp_dir))}\n"
    )


def storage_conf(graph_root: Path, run_root: Path) -> str:
    return (
        "# Written by movierec.containers; used through CONTAINERS_STORAGE_CONF.\n"
        "[storage]\n"
        "driver = \"overlay\"\n"
        f"graphroot = {json.dumps(str(graph_root))}\n"
        f"runroot = {json.dumps(str(run_root))}\n"
    )


def digest(parts: Iterable[bytes | str]) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big"))
        h.update(data)
    return h.hexdigest()


def context_files(context: Path) -> list[str]:
    """Files of a build context that `.dockerignore` lets in (the Docker SDK's own matcher)."""
    from docker.utils.build import exclude_paths

    ignore = context / ".dockerignore"
    patterns = [p.strip() for p in ignore.read_text().splitlines()
                if p.strip() and not p.startswith("#")] if ignore.exists() else []
    included = exclude_paths(str(context), patterns)
    return sorted(p for p in included if (context / p).is_file())


def context_digest(context: Path, dockerfile: Path, extra: Iterable[str] = ()) -> str:
    """sha256 over the Dockerfile, every file the context sends, and `extra` (build args, base)."""
    def parts() -> Iterable[bytes | str]:
        yield dockerfile.read_bytes()
        for rel in context_files(context):
            yield rel
            yield (context / rel).read_bytes()
        yield from extra
    return digest(parts())


# ---------------------------------------------------------------------------------------------- I/O


def run(argv: Sequence[str], *, env: Mapping[str, str] | None = None, check: bool = True,
        capture: bool = True, input_data: bytes | None = None, timeout: float | None = None,
        ) -> subprocess.CompletedProcess:
    log.debug("run %s", shlex.join(argv))
    result = subprocess.run(list(argv), env=dict(env) if env is not None else None, input=input_data,
                            capture_output=capture, timeout=timeout)
    if check and result.returncode != 0:
        err = (result.stderr or b"").decode(errors="replace")[-3000:] if capture else ""
        raise EngineError(f"`{shlex.join(argv)}` exited {result.returncode}: {err}")
    return result


def missing_packages(packages: Iterable[str] = APT_PACKAGES) -> list[str]:
    missing = []
    for package in packages:
        result = subprocess.run(["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True)
        if "install ok installed" not in result.stdout:
            missing.append(package)
    return missing


def install_packages(packages: Iterable[str] = APT_PACKAGES) -> list[str]:
    """apt-get install --no-install-recommends what is missing (update first when the lists are stale)."""
    missing = missing_packages(packages)
    if not missing:
        return []
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise EngineError(f"missing Debian packages {missing}; install them with "
                          f"`apt-get install --no-install-recommends {' '.join(missing)}` (root)")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    argv = ["apt-get", "install", "-y", "-q", "--no-install-recommends", *missing]
    if run(argv, env=env, check=False).returncode != 0:
        run(["apt-get", "update", "-q"], env=env)
        run(argv, env=env)
    return missing


@dataclass
class Engine:
    """podman configured by project-owned files, and its Docker-API socket."""

    run_dir: Path  # per run: socket, config files, CNI networks, logs
    cache: Path = field(default_factory=cache_dir)  # across runs: image storage, base rootfs
    runtime: Path = field(default_factory=runtime_dir)  # podman's runroot and tmp dir
    process: subprocess.Popen | None = None
    ticker: subprocess.Popen | None = None

    @property
    def socket(self) -> Path:
        return self.run_dir / "podman.sock"

    @property
    def docker_host(self) -> str:
        return f"unix://{self.socket}"

    def env(self) -> dict[str, str]:
        """Environment for podman, docker-compose and the Docker SDK talking to this engine."""
        return {**os.environ, "CONTAINERS_CONF": str(self.run_dir / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.run_dir / "storage.conf"),
                "DOCKER_HOST": self.docker_host, "COMPOSE_DOCKER_CLI_BUILD": "0", "DOCKER_BUILDKIT": "0"}

    def configure(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        (self.run_dir / "cni").mkdir(exist_ok=True)
        (self.runtime / "tmp").mkdir(parents=True, exist_ok=True)
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
        (self.run_dir / "containers.conf").write_text(containers_conf(
            default_ulimits(nofile, nproc), self.run_dir / "cni", self.runtime / "tmp"))
        (self.run_dir / "storage.conf").write_text(storage_conf(self.cache / "storage", self.runtime / "runroot"))

    def podman(self, *args: str, check: bool = True, capture: bool = True, input_data: bytes | None = None,
               timeout: float | None = None) -> subprocess.CompletedProcess:
        return run(["podman", *args], env=self.env(), check=check, capture=capture, input_data=input_data,
                   timeout=timeout)

    def start(self, timeout_seconds: float = 30.0) -> None:
        """`podman system service --time=0 unix://<run_dir>/podman.sock`; waits for /_ping."""
        self.configure()
        if self.process and self.process.poll() is None:
            return
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        log_file = open(self.run_dir / "podman-service.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(["podman", "system", "service", "--time=0", self.docker_host],
                                        env=self.env(), stdout=log_file, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL, start_new_session=True)
        process = self.process

        def answering() -> bool:
            if process.poll() is not None:
                raise EngineError(f"podman system service exited {process.returncode}; "
                                  f"see {self.run_dir / 'podman-service.log'}")
            return self.socket.exists() and self.ping()

        if not wait_until(answering, timeout_seconds, 0.2):
            raise EngineError(f"the podman API socket {self.socket} did not answer within {timeout_seconds}s")
        # Like Docker's socket (0660, group docker): the containers' group may use it (compose's
        # scheduler joins the socket's group, DOCKER_GID).
        self.socket.chmod(0o660)
        self._start_ticker()

    def _start_ticker(self) -> None:
        """podman runs healthchecks from systemd timers; without systemd nothing runs them and compose's
        `condition: service_healthy` would wait forever. This process runs them instead."""
        if self.ticker and self.ticker.poll() is None:
            return
        log_file = open(self.run_dir / "healthchecks.log", "ab")  # noqa: SIM115 - owned by the process
        self.ticker = subprocess.Popen([sys.executable, "-m", "movierec.containers", "healthchecks",
                                        "--run-dir", str(self.run_dir)], env=self.env(), stdout=log_file,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def run_healthchecks(self) -> int:
        """One round of `podman healthcheck run` over the running containers that define one;
        returns how many ran (failing checks count: podman records them)."""
        listing = self.podman("ps", "--format", "{{.ID}} {{.Status}}", check=False)
        ran = 0
        for line in listing.stdout.decode().splitlines():
            cid, _, status = line.partition(" ")
            if "(" not in status:  # "Up 5 seconds (healthy)": only containers with a healthcheck
                continue
            self.podman("healthcheck", "run", cid, check=False, timeout=60)
            ran += 1
        return ran

    def ping(self) -> bool:
        import docker

        try:
            return bool(docker.DockerClient(base_url=self.docker_host, timeout=5).ping())
        except Exception:  # any failure means "not yet"
            return False

    def stop(self) -> None:
        for child in (self.ticker,):
            if child and child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGTERM)
                child.wait(timeout=10)
        self.ticker = None
        if self.process and self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=5)
        self.process = None
        self._stop_leftovers()

    def _stop_leftovers(self) -> None:
        """End what podman leaves behind once its service is gone: the conmon monitors of `exec`
        sessions (the healthcheck runs), recognised by this run's own config dir on their command line."""
        import psutil

        mine = str(self.run_dir)
        for proc in psutil.process_iter(["pid", "cmdline"]):
            if proc.pid != os.getpid() and any(mine in part for part in proc.info["cmdline"] or ()):
                with contextlib.suppress(psutil.Error):
                    proc.kill()

    # --------------------------------------------------------------------------- images

    def image_label(self, image: str, label: str = INPUTS_LABEL) -> str | None:
        result = self.podman("image", "inspect", "--format", "{{json .Labels}}", image, check=False)
        if result.returncode != 0:
            return None
        labels = json.loads(result.stdout or b"null") or {}
        return labels.get(label)

    def base_image(self) -> str:
        """The Debian base built with debootstrap from the machine's apt source (cached by its inputs).

        Shaped like the official python images the Dockerfile uses by default: `python` and `pip`
        on PATH, pip allowed to install system-wide."""
        mirror, suite = debian_source(run(["apt-get", "indextargets", "--format", "$(REPO_URI) $(RELEASE)"]
                                          ).stdout.decode())
        apt_conf = apt_options(run(["apt-config", "dump"]).stdout.decode())
        key = digest([BASE_VERSION, mirror, suite, " ".join(BASE_INCLUDE), apt_conf])[:16]
        image = f"localhost/movierec-base:{suite}-{key}"
        if self.image_label(image) == key:
            return image
        tarball = self.cache / f"base-{suite}-{key}.tar"
        if not tarball.exists():
            rootfs = self.cache / f"rootfs-{key}"
            shutil.rmtree(rootfs, ignore_errors=True)
            log.info("debootstrap %s from %s into %s", suite, mirror, rootfs)
            run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_INCLUDE)}", suite, str(rootfs),
                 mirror], capture=True)
            (rootfs / "etc/apt/apt.conf.d/99movierec-host").write_text(apt_conf)
            (rootfs / "etc/apt/sources.list").write_text(f"deb {mirror} {suite} main\n")
            for marker in (rootfs / "usr/lib").glob("python3*/EXTERNALLY-MANAGED"):
                marker.unlink()
            python = rootfs / "usr/bin/python"
            if not python.exists():
                python.symlink_to("python3")
            shutil.rmtree(rootfs / "var/lib/apt/lists", ignore_errors=True)
            (rootfs / "var/lib/apt/lists/partial").mkdir(parents=True, exist_ok=True)
            partial = tarball.with_suffix(".partial")
            run(["tar", "-C", str(rootfs), "--numeric-owner", "-cf", str(partial), "."])
            partial.rename(tarball)
            shutil.rmtree(rootfs, ignore_errors=True)
        self.podman("import", "--change", 'CMD ["/bin/bash"]', "--change", f"LABEL {INPUTS_LABEL}={key}",
                    "--change", "ENV LANG=C.UTF-8", str(tarball), image)
        return image

    def build(self, image: str, context: Path, *, dockerfile: Path | None = None, target: str | None = None,
              build_args: Mapping[str, str] | None = None, volumes: Sequence[str] = (),
              extra_inputs: Sequence[str] = ()) -> tuple[str, bool]:
        """`podman build` unless `image` already carries the hash of its inputs; returns (image, built)."""
        dockerfile = dockerfile or context / "Dockerfile"
        args = dict(build_args or {})
        key = context_digest(context, dockerfile, [str(target), json.dumps(args, sort_keys=True), *extra_inputs])
        if self.image_label(image) == key:
            return image, False
        # --format docker: the OCI image format has no HEALTHCHECK (podman would drop the Dockerfile's).
        argv = ["build", "--layers", "--format", "docker", "--network", "host",
                "-f", str(dockerfile), "-t", image, "--label", f"{INPUTS_LABEL}={key}"]
        if target:
            argv += ["--target", target]
        for name, value in args.items():
            argv += ["--build-arg", f"{name}={value}"]
        for volume in volumes:
            argv += ["--volume", volume]
        log_path = self.run_dir / f"build-{image.replace('/', '_').replace(':', '_')}.log"
        with open(log_path, "wb") as out:
            result = subprocess.run(["podman", *argv, str(context)], env=self.env(), stdout=out,
                                    stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
            raise EngineError(f"podman build of {image} failed (log {log_path}):\n{tail}")
        return image, True


def host_pip_config() -> tuple[dict[str, str], list[str]]:
    """The host's pip configuration as PIP_* variables plus the local paths to mount (CA bundle,
    find-links, file:// indexes): what pip inside a build or container needs to reach the registries."""
    result = subprocess.run([sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True)
    env, paths = pip_forwarding(result.stdout if result.returncode == 0 else "")
    for name, value in os.environ.items():
        if name.startswith("PIP_") and name not in env:
            env[name] = value
    _, env_paths = pip_forwarding("\n".join(f"env.{k[4:].lower().replace('_', '-')}='{v}'" for k, v in env.items()))
    paths = [p for p in dict.fromkeys([*paths, *env_paths]) if Path(p).exists()]
    return env, paths


def setup(run_dir: Path, install: bool = True) -> tuple[Engine, str]:
    """Everything the containers test and bench need: packages, config, API socket, base image."""
    if install:
        install_packages()
    elif missing := missing_packages():
        raise EngineError(f"missing Debian packages {missing}")
    engine = Engine(run_dir)
    engine.start()
    return engine, engine.base_image()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m movierec.containers", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("setup", help="install, configure, start the API socket, build the base image; "
                                      "prints the environment to use (DOCKER_HOST, CONTAINERS_CONF, ...)")
    up.add_argument("--run-dir", type=Path, default=Path("var/containers"))
    up.add_argument("--no-install", action="store_true", help="fail instead of apt-installing missing packages")
    ticker = sub.add_parser("healthchecks", help="run the containers' healthchecks every --interval seconds "
                                                 "(podman leaves that to systemd timers)")
    ticker.add_argument("--run-dir", type=Path, required=True)
    ticker.add_argument("--interval", type=float, default=5.0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "healthchecks":
        engine = Engine(args.run_dir.resolve())
        while True:
            with contextlib.suppress(EngineError, subprocess.TimeoutExpired):
                engine.run_healthchecks()
            time.sleep(args.interval)
    try:
        engine, base = setup(args.run_dir.resolve(), install=not args.no_install)
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    env = engine.env()
    for name in ("CONTAINERS_CONF", "CONTAINERS_STORAGE_CONF", "DOCKER_HOST"):
        print(f"export {name}={shlex.quote(env[name])}")
    pids = " ".join(str(p.pid) for p in (engine.process, engine.ticker) if p)
    print(f"# base image: {base}; the API service and the healthcheck runner keep running: kill {pids}")
    # The service keeps running after we exit (it is in its own session).
    return 0


if __name__ == "__main__":
    sys.exit(main())
