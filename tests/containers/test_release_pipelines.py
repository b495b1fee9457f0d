""".gitlab-ci.yml's release pipelines, run by gitlab-ci-local against the containers test's engine and platform.

gitlab-ci-local (pinned in package.json, installed with `npm ci` into node_modules) executes the jobs of the
file with its shell executor, in this checkout's clone (the one the compose scheduler mounts at /repo), as a
GitLab shell runner on the deployment host would. The file is used as committed: what is local to this machine
(the engine's socket, the compose project of the containers test, the debootstrap base image and pip's mirror
as build arguments, the cached data and the virtualenv for the gate) goes on gitlab-ci-local's command
line (`--variable`). No registry is reachable here and none is configured: the build job keeps
the image on the engine (login and push run only with DOCKERHUB_TOKEN).

The tag pipeline of `release-recommender-nightly-*` is test -> offline-gate -> build-inference ->
release-nightly (checked with `--list`). Its `test` job is `./dev test`, this very suite: running it from here
would recurse, so the other jobs of the pipeline are run by name, in the pipeline's stage order. Then the
`release-recommender-main-*` pipeline's jobs (gate, build, release-main) while a client asks the router
without pause, then the backup job and the restore job into a scratch database.

Runs after test_platform.py (file order), on the same running platform (conftest `platform`).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import pytest
import requests

from movierec.containers import host_pip_config
from tests.containers.stack import IMAGE_NAMESPACE, ROOT, Stack, wait_for

pytestmark = [pytest.mark.containers, pytest.mark.pipelines]

GITLAB_CI_LOCAL = ROOT / "node_modules" / ".bin" / "gitlab-ci-local"
GATE_ARGS = "--max-users 300 --strategies blend,popularity"
NIGHTLY_JOBS = ["offline-gate", "build-inference", "release-nightly"]
MAIN_BUILD_JOBS = ["offline-gate", "build-inference"]


def _machine_home() -> str:
    """The user's real home (the suite points HOME at a temporary one): npm reads its mirrors there."""
    return pwd.getpwuid(os.getuid()).pw_dir


def _pinned_version() -> str:
    return json.loads((ROOT / "package.json").read_text())["devDependencies"]["gitlab-ci-local"]


def _installed_version() -> str | None:
    if not GITLAB_CI_LOCAL.exists():
        return None
    result = subprocess.run([str(GITLAB_CI_LOCAL), "--version"], capture_output=True, text=True, timeout=120)
    return result.stdout.strip() if result.returncode == 0 else None


@pytest.fixture(scope="module")
def gitlab_ci_local() -> Path:
    """node_modules from the committed lockfile (`npm ci`, with the machine's own npm configuration)."""
    if _installed_version() != _pinned_version():
        if shutil.which("npm") is None:
            reason = "npm is not installed (Node.js 20 runs gitlab-ci-local " + _pinned_version() + ")"
            if os.environ.get("CI") == "true":  # CI runs the pipelines: a missing tool is a failure there
                pytest.fail(reason)
            pytest.skip(reason)
        started = time.monotonic()
        result = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=ROOT, capture_output=True, text=True,
                                env={**os.environ, "HOME": _machine_home()}, timeout=1800)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
        print(f"[pipelines] npm ci in {time.monotonic() - started:.0f} s")
    assert _installed_version() == _pinned_version()
    return GITLAB_CI_LOCAL


def _builder_env(stack: Stack) -> dict[str, str]:
    """The docker CLI's classic builder when the engine does not serve BuildKit (podman's API does not)."""
    import docker

    client = docker.APIClient(base_url=stack.engine.docker_host, timeout=10)
    served = client._get(client._url("/_ping")).headers.get("Builder-Version", "1")
    return {} if served == "2" else {"DOCKER_BUILDKIT": "0"}


class Pipelines:
    """gitlab-ci-local in the scheduler's checkout, with the local settings on its command line."""

    def __init__(self, stack: Stack, executable: Path, data_dir: Path, work: Path) -> None:
        assert stack.checkout is not None
        self.stack, self.executable, self.checkout = stack, executable, stack.checkout
        project = stack.project_dir
        pip_env, _ = host_pip_config()
        # The compose project's settings, but not its small catalogue: the gate shares the suite's cached full
        # one, which MOVIEREC_CATALOG_SIZE=1 would make it rebuild (and every later user of the cache too).
        compose_env = {k: v for k, v in stack.env().items()
                       if os.environ.get(k) != v and k != "MOVIEREC_CATALOG_SIZE"}
        self.variables: dict[str, str] = {
            **compose_env,
            **_builder_env(stack),
            # The containers test's compose project: its files, the stand-ins, the host's pip settings.
            "COMPOSE_FILE": ":".join(str(project / f) for f in
                                     ("docker-compose.yml", "deploy/standins/compose.standins.yml",
                                      "pip.override.yml")),
            # The Dockerfile's build arguments as the containers test builds them (its layers are reused).
            "BASE_IMAGE": stack.base, "TORCH_INDEX_URL": "", **pip_env,
            # The gate: this suite's virtualenv (./dev would build one), the cached real data and index,
            # a scratch database for the catalogue, the checkout's own code.
            "MOVIEREC_VENV": sys.prefix, "MOVIEREC_DATA_DIR": str(data_dir),
            "DATABASE_URL": f"sqlite:///{work / 'gate.db'}", "PYTHONPATH": str(self.checkout),
            "RELEASE_GATE_ARGS": GATE_ARGS,
        }
        self.work = work

    def tag(self, prefix: str) -> str:
        name = f"{prefix}{uuid.uuid4().hex[:6]}"
        subprocess.run(["git", "-C", str(self.checkout), "tag", name], check=True)
        return name

    def run(self, *args: str, variables: dict[str, str] | None = None, timeout: float = 3600,
            ) -> subprocess.CompletedProcess:
        """gitlab-ci-local with only a plain environment of its own (PATH, HOME, locale): every variable a job
        sees comes from the file or from `--variable` (not its variables file: there a value naming an
        existing path becomes a file variable, a copy under /tmp)."""
        data = {**self.variables, **(variables or {})}
        env = {"PATH": os.environ["PATH"], "HOME": str(self.work), "LANG": "C.UTF-8"}
        argv = [str(self.executable), "--no-color", "--timestamps", *args]
        for name, value in sorted(data.items()):
            argv += ["--variable", f"{name}={value}"]
        # --cwd: the checkout, as the process's working directory (gitlab-ci-local refuses an absolute one).
        result = subprocess.run(argv, cwd=self.checkout, env=env, capture_output=True, text=True, timeout=timeout)
        (self.work / f"gitlab-ci-local-{time.time_ns()}.log").write_text(result.stdout + result.stderr)
        return result

    def listed(self, tag: str) -> list[tuple[str, str]]:
        """(job, stage) of the tag's pipeline, from `--list` (when: never left out)."""
        result = self.run("--list", variables={"CI_COMMIT_TAG": tag}, timeout=300)
        assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
        rows = [line.split() for line in result.stdout.splitlines()]
        header = next(i for i, row in enumerate(rows) if row[:2] == ["name", "description"])
        return [(row[0], row[1]) for row in rows[header + 1:] if len(row) >= 3]

    def jobs(self, tag: str, jobs: list[str], **variables: str) -> float:
        started = time.monotonic()
        result = self.run(*jobs, variables={"CI_COMMIT_TAG": tag, **variables})
        seconds = time.monotonic() - started
        if result.returncode != 0 or "FAIL" in result.stdout.split("\n\n")[-1]:
            raise AssertionError(f"gitlab-ci-local {' '.join(jobs)} exited {result.returncode}:\n"
                                 f"{result.stdout[-8000:]}\n{result.stderr[-3000:]}")
        for job in jobs:
            assert re.search(rf"PASS\s+(\[[^\]]*\]\s+)?{re.escape(job)}\b", result.stdout), result.stdout[-3000:]
        return seconds


@pytest.fixture(scope="module")
def pipelines(platform: Stack, gitlab_ci_local: Path, real_index_dir: Path,
              tmp_path_factory: pytest.TempPathFactory) -> Pipelines:
    runner = Pipelines(platform, gitlab_ci_local, real_index_dir, tmp_path_factory.mktemp("pipelines"))
    return runner


def _admin(stack: Stack) -> dict[str, str]:
    for line in (stack.project_dir / ".env").read_text().splitlines():
        if line.startswith("LB_ADMIN_TOKEN="):
            return {"Authorization": f"Bearer {line.split('=', 1)[1]}"}
    raise AssertionError("init-env wrote no LB_ADMIN_TOKEN")


def _router(stack: Stack, path: str) -> str:
    return f"http://127.0.0.1:{stack.ports['ROUTER_PORT']}{path}"


def _image_id(stack: Stack, name: str) -> str | None:
    result = stack.podman("image", "inspect", "--format", "{{.Id}}", name, check=False)
    return result.stdout.decode().strip() or None if result.returncode == 0 else None


def _sha12(stack: Stack) -> str:
    assert stack.checkout is not None
    return subprocess.run(["git", "-C", str(stack.checkout), "rev-parse", "HEAD"], check=True, capture_output=True,
                          text=True).stdout.strip()[:12]


def test_nightly_tag_pipeline_builds_releases_and_schedules(pipelines: Pipelines, platform: Stack) -> None:
    tag = pipelines.tag("release-recommender-nightly-pl")
    listed = pipelines.listed(tag)
    assert listed == [("test", "test"), ("offline-gate", "gate"), ("build-inference", "build"),
                      ("release-nightly", "release")], listed
    sha12 = _sha12(platform)
    image = f"{IMAGE_NAMESPACE}/movierec-inference"
    # The agreed name must come from this pipeline: whatever an earlier test tagged goes first.
    for name in (f"{image}:{sha12}", f"{image}:{tag}"):
        platform.podman("untag", name, name, check=False)
        assert _image_id(platform, name) is None, name

    seconds = pipelines.jobs(tag, NIGHTLY_JOBS)
    print(f"[pipelines] tag pipeline {tag} ({' -> '.join(NIGHTLY_JOBS)}): {seconds:.0f} s")

    built = _image_id(platform, f"{image}:{sha12}")
    assert built is not None and built == _image_id(platform, f"{image}:{tag}")
    (release_id,) = {row[0] for row in platform.sql(
        f"SELECT metrics->>'release_id' FROM deployments WHERE git_ref = '{tag}' AND role = 'nightly'")}
    container = f"movierec-nightly-{release_id}"
    info = json.loads(platform.podman("inspect", container).stdout)[0]
    assert info["Image"].removeprefix("sha256:") == built.removeprefix("sha256:")
    assert f"{platform.name}-net" in info["NetworkSettings"]["Networks"]
    backends = requests.get(_router(platform, "/admin/backends"), headers=_admin(platform), timeout=10).json()
    assert backends["nightly"]["url"] == f"http://{container}:8002", backends

    def scheduled() -> str | None:
        """The online evaluation in the scheduler's /data/crontab, or already started from it (the
        scheduler removes a one-shot entry when it starts it; the evaluation then writes its log)."""
        out = platform.compose("exec", "-T", "scheduler", "sh", "-c",
                               f"cat /data/crontab; ls /data/releases/{release_id}/", check=False).stdout
        if f"eval online {release_id}" in out:
            return "crontab"
        return "started" if "online-eval.log" in out else None

    print(f"[pipelines] online evaluation: {wait_for(scheduled, 30, 'the online evaluation in /data/crontab')}")

    def nightly_share() -> float | None:
        served = [requests.get(_router(platform, f"/recommend/{user}"), timeout=10).headers.get("X-Served-By")
                  for user in range(1, 201)]
        share = served.count("nightly") / len(served)
        return share if 0.3 <= share <= 0.7 else None  # LB_CANARY_WEIGHT=0.5 in the containers test

    wait_for(nightly_share, 60, "the nightly serving about half of the users")

    def decided() -> str | None:
        rows = platform.sql(f"SELECT status FROM deployments WHERE metrics->>'release_id' = '{release_id}'")
        return next(iter({row[0] for row in rows} & {"promoted", "rolled_back"}), None)

    print(f"[pipelines] decision of the scheduler's online evaluation: {wait_for(decided, 420, 'a decision', 5)}")


class ClientLoop:
    """Asks the router without pause (users 1..200 in turn) until stopped; counts answers and failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.served: Counter[str] = Counter()
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        session = requests.Session()
        user = 0
        while not self._stop.is_set():
            user = user % 200 + 1
            try:
                answer = session.get(f"{self.url}/recommend/{user}", timeout=10)
            except requests.RequestException as exc:
                self.failures.append(f"user {user}: {exc}")
                continue
            if answer.status_code != 200 or len(answer.text.strip().split(",")) != 20:
                self.failures.append(f"user {user}: {answer.status_code} {answer.text[:200]!r}")
            else:
                self.served[answer.headers.get("X-Served-By", "?")] += 1

    def __enter__(self) -> ClientLoop:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def test_main_tag_pipeline_redeploys_inference_main_without_a_failed_request(pipelines: Pipelines,
                                                                              platform: Stack) -> None:
    tag = pipelines.tag("release-recommender-main-pl")
    listed = pipelines.listed(tag)
    assert listed == [("test", "test"), ("offline-gate", "gate"), ("build-inference", "build"),
                      ("release-main", "release")], listed
    pipelines.jobs(tag, MAIN_BUILD_JOBS)
    # inference-main is the router's main (after a promotion the nightly's container was: an operator's
    # registration through the admin API brings the compose service back), and no nightly takes over its users.
    headers = _admin(platform)
    backends = requests.get(_router(platform, "/admin/backends"), headers=headers, timeout=10).json()
    if backends["main"]["url"] != "http://inference-main:8001":
        answer = requests.post(_router(platform, "/admin/backends"), headers=headers, timeout=10,
                               json={"name": "main", "url": "http://inference-main:8001"})
        assert answer.status_code == 200, answer.text
    if backends.get("nightly"):
        requests.delete(_router(platform, "/admin/backends/nightly"), headers=headers, timeout=10)
    backends = requests.get(_router(platform, "/admin/backends"), headers=headers, timeout=10).json()
    assert backends["main"]["url"] == "http://inference-main:8001" and not backends.get("nightly"), backends
    (old,) = platform.containers("inference-main")

    with ClientLoop(_router(platform, "")) as loop:
        time.sleep(3)
        before = sum(loop.served.values())
        seconds = pipelines.jobs(tag, ["release-main"])
        time.sleep(3)
    print(f"[pipelines] release-main in {seconds:.0f} s; {sum(loop.served.values())} answers "
          f"({sum(loop.served.values()) - before} during the job), {len(loop.failures)} failed")
    assert not loop.failures, loop.failures[:10]
    assert before > 0 and loop.served["main"] == sum(loop.served.values()) > before + 20, loop.served
    (new,) = platform.containers("inference-main")
    assert new != old
    info = json.loads(platform.podman("inspect", new).stdout)[0]
    assert info["Config"]["Image"].endswith(f"/movierec-inference:{_sha12(platform)}"), info["Config"]["Image"]
    assert info["State"]["Running"]


def _row_counts(stack: Stack, database: str) -> dict[str, int]:
    tables = [row[0] for row in stack.sql("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
    assert tables
    query = " UNION ALL ".join(f"SELECT '{t}', count(*) FROM \"{t}\"" for t in sorted(tables))
    result = stack.compose("exec", "-T", "database", "psql", "-U", "movierec", "-d", database, "-At", "-F", "\t",
                           "-c", query)
    return {name: int(count) for name, count in (line.split("\t") for line in result.stdout.splitlines() if line)}


def test_backup_job_writes_a_dump_the_restore_job_brings_back(pipelines: Pipelines, platform: Stack) -> None:
    # The writers stop, so that the dump and the live tables can be compared row for row.
    platform.compose("stop", "-t", "10", "simulator", "parser", "scheduler")
    live = _row_counts(platform, "movierec")
    assert live["movies"] > 1000 and live["deployments"] > 0, live
    backups = pipelines.work / "backups"
    pipelines.jobs("", ["backup-database"], CI_PIPELINE_SOURCE="schedule", BACKUP_DIR=str(backups))
    (dump,) = backups.glob("movierec-*.dump")
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    assert _row_counts(platform, "movierec") == live

    scratch = f"restore_{uuid.uuid4().hex[:6]}"
    try:
        pipelines.jobs("", ["restore-database"], RESTORE_FILE=str(dump), RESTORE_DATABASE=scratch)
        assert _row_counts(platform, scratch) == live
    finally:
        platform.compose("exec", "-T", "database", "dropdb", "-U", "movierec", "--if-exists", scratch, check=False)
