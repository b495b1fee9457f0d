"""`movierec release nightly <git-ref>`: offline gate, start the nightly, register it, schedule the decision.

(a) a git worktree of the ref under <data_dir>/releases/<release-id> runs its own offline
evaluation (`python -m movierec.cli eval offline --gate ...`, PYTHONPATH = worktree); a failing
gate stops everything before anything starts. (b) the nightly starts from that worktree (process)
or as a container (docker). (c) it is registered at the router at the canary weight. (d) the
online evaluation is scheduled in the crontab file at now + window.
"""

from __future__ import annotations

import logging
import shlex
import subprocess
import sys
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from db_utils.engine import make_engine, make_session_factory
from load_balancer.release import deploy
from load_balancer.release.admin_client import AdminClient, AdminError
from load_balancer.release.notify import notify, slack_payload
from load_balancer.release.schedule import schedule_once
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.state import record_release

log = logging.getLogger(__name__)


class ReleaseError(Exception):
    """A release step failed; nothing is left running."""


class GateFailed(ReleaseError):
    """The ref's offline evaluation did not pass its gate."""


@dataclass(frozen=True)
class ReleaseResult:
    release_id: str
    sha: str
    url: str
    version: str
    evaluate_at: datetime


def git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(["git", "-C", str(repo), *args], env=deploy.clean_env(env or {}), capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise ReleaseError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def repo_root(settings: ReleaseSettings) -> Path:
    """The repository the refs come from: a bare mirror of RELEASE_REPO_URL refreshed under the data
    dir (a container gets the CI checkout mounted read-only), else RELEASE_REPO_DIR or the cwd's."""
    if settings.repo_url:
        return mirror_repo(settings.repo_url, settings.releases_dir / "repo.git")
    return Path(git(Path(settings.repo_dir or "."), "rev-parse", "--show-toplevel"))


def mirror_argv(url: str, dest: Path, exists: bool) -> list[str]:
    """git command that creates or refreshes a bare mirror of every branch and tag of `url`."""
    if exists:
        return ["fetch", "--force", "--prune", url, "+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]
    return ["clone", "--bare", "--no-hardlinks", url, str(dest)]


def mirror_repo(url: str, dest: Path) -> Path:
    """The source is often a checkout owned by another user (mounted into a container): git's
    upload-pack refuses it unless safe.directory allows it in a global config, hence GIT_CONFIG_GLOBAL."""
    exists = (dest / "HEAD").exists()
    dest.parent.mkdir(parents=True, exist_ok=True)
    config = dest.parent / "mirror.gitconfig"
    config.write_text("[safe]\n\tdirectory = *\n")
    git(dest if exists else dest.parent, *mirror_argv(url, dest, exists), env={"GIT_CONFIG_GLOBAL": str(config)})
    return dest


def make_release_id(sha: str, now: datetime) -> str:
    return f"{now:%Y%m%d-%H%M%S}-{sha[:8]}"


def run_gate(settings: ReleaseSettings, worktree: Path, log_path: Path, model: str | None = None) -> int:
    """The ref's own offline evaluation; returns its exit code (0 = gate passed).
    With `model`, the gated strategy is that trained artifact (`--gate model --model <version>`)."""
    gate = ["model", "--model", model] if model else [settings.gate_strategy]
    argv = [settings.python, "-m", "movierec.cli", "eval", "offline", "--gate", *gate]
    if settings.gate_min_hit_rate > 0:
        argv += ["--min-hr", f"{settings.gate_min_hit_rate:g}"]
    argv += shlex.split(settings.gate_extra_args)
    env = deploy.clean_env({"PYTHONPATH": str(worktree), "MOVIEREC_DATA_DIR": str(settings.common.data_dir)})
    log.info("gate argv=%s cwd=%s", argv, worktree)
    with open(log_path, "ab") as out:
        return subprocess.run(argv, cwd=worktree, env=env, stdout=out, stderr=subprocess.STDOUT,
                              stdin=subprocess.DEVNULL).returncode


def eval_command(settings: ReleaseSettings, release_id: str) -> str:
    """The crontab command of the online evaluation (the platform's code, not the ref's)."""
    log_path = settings.releases_dir / release_id / "online-eval.log"
    return (f"{shlex.quote(sys.executable)} -m load_balancer.cli eval online {shlex.quote(release_id)} "
            f">> {shlex.quote(str(log_path))} 2>&1")


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def release_nightly(ref: str, settings: ReleaseSettings, now: datetime | None = None,
                    model: str | None = None) -> ReleaseResult:
    """Steps (a)-(d); raises GateFailed or ReleaseError with a clear message, leaving nothing running.

    With `model` (a trained artifact's version), the gate evaluates that artifact and the nightly
    serves it (`--strategy model`, MODEL_ARTIFACT), its version naming the nightly."""
    now = now or datetime.now()
    repo = repo_root(settings)
    sha = git(repo, "rev-parse", "--verify", f"{ref}^{{commit}}")
    release_id = make_release_id(sha, now)
    release_dir = settings.releases_dir / release_id
    release_dir.mkdir(parents=True, exist_ok=True)
    worktree = release_dir / "worktree"
    sessions = make_session_factory(make_engine(settings.common.database_url, pool_size=1))
    details = {"release_id": release_id, "sha": sha, "ref": ref, "repo": str(repo), "worktree": str(worktree),
               "backend": settings.backend, "strategy": "model" if model else settings.serve_strategy,
               "model": model}

    def fail(status: str, message: str) -> None:
        with sessions() as session:
            record_release(session, release_id, git_ref=ref, status=status, metrics=details, note=message)
        notify(settings.slack_webhook_url, slack_payload(
            "gate_failed" if status == "gate_failed" else "failed", f"Release {release_id} stopped", message,
            {"ref": ref, "commit": sha[:12], "step": status}))

    git(repo, "worktree", "add", "--detach", str(worktree), sha)
    log.info("release=%s ref=%s sha=%s worktree=%s", release_id, ref, sha, worktree)
    gate_log = release_dir / "gate.log"
    code = run_gate(settings, worktree, gate_log, model)
    if code != 0:
        gated = f"model --model {model}" if model else settings.gate_strategy
        message = (f"offline gate failed for {ref} ({sha[:12]}): `eval offline --gate {gated}` "
                   f"exited {code}; nothing was started. Log: {gate_log}\n{_tail(gate_log)}")
        fail("gate_failed", message)
        git(repo, "worktree", "remove", "--force", str(worktree))
        raise GateFailed(message)

    started: deploy.StartedBackend | None = None
    model_version = f"{settings.serve_strategy}-{release_id}" if settings.serve_strategy else f"r{release_id}"
    strategy, extra_env = settings.serve_strategy, {}
    if model:
        strategy, model_version, extra_env = "model", model, {"MODEL_ARTIFACT": model}
    try:
        if settings.backend == "docker":
            started = deploy.start_docker(settings, release_id, deploy.image_tag(sha), strategy, model_version,
                                          network=settings.docker_network, extra_env=extra_env)
        else:
            started = deploy.start_process(settings, worktree, strategy, release_dir / "nightly.log",
                                           model_version, extra_env)
        details["handle"] = started.handle
        version = deploy.wait_healthy(started.url, settings.start_timeout_seconds, started.handle) or model_version
        details["registered_at"] = datetime.now().isoformat()
        AdminClient(settings.admin_url, settings.admin_token).register(
            name="nightly", url=started.url, version=version, git_ref=ref, release_id=release_id,
            weight=settings.canary_weight, salt=release_id, details=details)
    except (deploy.DeployError, AdminError) as exc:
        deploy.stop_backend(started.handle if started else None)
        message = f"could not deploy {ref} ({sha[:12]}): {exc}"
        fail("deploy_failed", message)
        raise ReleaseError(message) from exc

    first_look = min(settings.look_minutes, settings.window_minutes)
    evaluate_at = schedule_once(settings.crontab_path, release_id, eval_command(settings, release_id),
                                datetime.now() + timedelta(minutes=first_look))
    notify(settings.slack_webhook_url, slack_payload(
        "deployed", f"Nightly {version} is live", f"{ref} ({sha[:12]}) serves {settings.canary_weight:.0%} of users; "
        f"first look of the online evaluation at {evaluate_at:%Y-%m-%d %H:%M}.",
        {"release": release_id, "url": started.url, "canary weight": settings.canary_weight}))
    return ReleaseResult(release_id, sha, started.url, version, evaluate_at)


def retrain_command(settings: ReleaseSettings) -> str:
    """The crontab command of the nightly retraining (the platform's code, like the online evaluation)."""
    log_path = settings.common.data_dir / "retrain.log"
    return f"{shlex.quote(sys.executable)} -m load_balancer.cli release model >> {shlex.quote(str(log_path))} 2>&1"


def release_model(settings: ReleaseSettings, model: str | None = None, ref: str | None = None) -> ReleaseResult:
    """Train a model on the database's interactions (unless `model` names an artifact), then release it
    as the nightly through release_nightly: its offline gate, the canary, the scheduled online evaluation."""
    if model is None:
        from inference.train import NoInteractions, TrainSettings, train

        train_settings = TrainSettings.from_env().replace(common=settings.common)
        try:
            model = train(train_settings, progress=False).name
        except NoInteractions as exc:
            raise ReleaseError(f"retraining skipped: {exc}") from exc
    return release_nightly(ref or settings.retrain_ref, settings, model=model)
