"""Commands of the load balancer package: `lb`, `admin token` (router/); `release`, `hooks`, `scheduler`,
`eval online` (release/)."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

log = logging.getLogger(__name__)


def lb_main(argv: list[str]) -> int:
    from load_balancer.router.settings import RouterSettings
    from movierec.base.serving import WORKER_CLASSES

    parser = argparse.ArgumentParser(prog="movierec lb", description="the canary router (gunicorn)")
    parser.add_argument("--host", default=None, help="bind address (LB_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (LB_PORT, default 8082)")
    parser.add_argument("--workers", type=int, default=None, help="gunicorn workers (LB_WORKERS, default 2)")
    parser.add_argument("--threads", type=int, default=None, help="threads per worker (LB_THREADS, default 8)")
    parser.add_argument("--worker-class", default=None, choices=WORKER_CLASSES,
                        help="gunicorn worker class (LB_WORKER_CLASS; empty: gthread with threads, else sync)")
    args = parser.parse_args(argv)
    settings = RouterSettings.from_env()
    host, port = args.host or settings.host, args.port or settings.port
    workers, threads = args.workers or settings.workers, args.threads or settings.threads
    worker_class = args.worker_class or settings.worker_class
    # Seed the deployments table once, before the workers fork (they only read it).
    from db_utils.engine import make_engine, make_session_factory
    from load_balancer.router.state import bootstrap

    with make_session_factory(make_engine(settings.common.database_url, pool_size=1))() as session:
        bootstrap(session, settings.main_url, settings.nightly_url, settings.canary_weight)
    # prometheus-client picks its multiprocess value class when first imported, so the shared
    # metrics directory must be set before anything imports it (the workers inherit the choice).
    own_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        own_dir = tempfile.mkdtemp(prefix="movierec-lb-prom-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = own_dir
    from load_balancer.router.app import create_app
    from movierec.base.serving import serve

    log.info("router on %s:%s workers=%s threads=%s worker_class=%s", host, port, workers, threads, worker_class)
    try:
        serve(lambda: create_app(settings), bind=f"{host}:{port}", workers=workers, threads=threads,
              worker_class=worker_class)
    finally:
        if own_dir:
            shutil.rmtree(own_dir, ignore_errors=True)
    return 0


def release_main(argv: list[str]) -> int:
    from load_balancer.release.pipeline import GateFailed, ReleaseError, release_model, release_nightly
    from load_balancer.release.settings import ReleaseSettings

    parser = argparse.ArgumentParser(prog="movierec release", description="gate, deploy and schedule a nightly")
    sub = parser.add_subparsers(dest="action", required=True)
    nightly = sub.add_parser("nightly", help="release <git-ref> as the nightly")
    nightly.add_argument("ref", help="git ref (tag, branch, commit) in the repository")
    model = sub.add_parser("model", help="train on the database (`movierec train`), then release the model")
    model.add_argument("--model", help="release this trained artifact instead of training a new one")
    model.add_argument("--ref", help="git ref whose code serves it (default $RETRAIN_REF or HEAD)")
    sub.add_parser("restore", help="start again the release processes the router still names (`up` does this)")
    args = parser.parse_args(argv)
    settings = ReleaseSettings.from_env()
    if args.action == "restore":
        from load_balancer.release.restore import restore_backends

        restored = restore_backends(settings)
        print("\n".join(r.text for r in restored) or "every release backend the router names is running")
        return 0 if all(r.ok for r in restored) else 4
    try:
        if args.action == "model":
            result = release_model(settings, args.model, args.ref)
        else:
            result = release_nightly(args.ref, settings)
    except GateFailed as exc:
        print(f"release stopped at the offline gate: {exc}", file=sys.stderr)
        return 3
    except ReleaseError as exc:
        print(f"release failed: {exc}", file=sys.stderr)
        return 4
    print(f"release {result.release_id}: nightly {result.version} at {result.url}, "
          f"canary weight {settings.canary_weight}, online evaluation at {result.evaluate_at:%Y-%m-%d %H:%M}")
    return 0


def hooks_main(argv: list[str]) -> int:
    from load_balancer.release.hooks import install_hook
    from movierec.base.settings import CommonSettings

    parser = argparse.ArgumentParser(prog="movierec hooks", description="git hooks for tagged releases")
    sub = parser.add_subparsers(dest="action", required=True)
    install = sub.add_parser("install", help="install the reference-transaction hook")
    install.add_argument("--repo", default=".", help="repository (default: the current one)")
    install.add_argument("--force", action="store_true", help="overwrite a hook not installed by movierec")
    args = parser.parse_args(argv)
    from load_balancer.release.pipeline import git

    repo = Path(git(Path(args.repo), "rev-parse", "--show-toplevel"))
    target = install_hook(repo, CommonSettings.from_env().data_dir, force=args.force)
    print(f"installed {target}: tags release-recommender-nightly-* run `movierec release nightly <tag>`")
    return 0


def scheduler_main(argv: list[str]) -> int:
    from load_balancer.release.pipeline import retrain_command
    from load_balancer.release.schedule import ensure_recurring, run_scheduler
    from load_balancer.release.settings import ReleaseSettings

    parser = argparse.ArgumentParser(prog="movierec scheduler", description="runs <data_dir>/crontab")
    parser.add_argument("--tick", type=float, default=None, help="seconds between checks (SCHEDULER_TICK_SECONDS)")
    parser.add_argument("--max-seconds", type=float, default=None, help="stop after this long (default: never)")
    parser.add_argument("--check", action="store_true",
                        help="exit 0 when a running scheduler ticked recently, else 1 (healthcheck)")
    args = parser.parse_args(argv)
    settings = ReleaseSettings.from_env()
    if args.check:
        from load_balancer.release.schedule import scheduler_is_alive

        alive = scheduler_is_alive(settings.crontab_path, args.tick or settings.scheduler_tick_seconds)
        print("scheduler alive" if alive else f"no scheduler heartbeat next to {settings.crontab_path}")
        return 0 if alive else 1
    settings.common.data_dir.mkdir(parents=True, exist_ok=True)
    # The nightly retraining (train, gate, canary) is part of the platform's crontab.
    try:
        ensure_recurring(settings.crontab_path, "retrain-model", retrain_command(settings), settings.retrain_schedule)
    except ValueError as exc:
        print(f"movierec scheduler: RETRAIN_SCHEDULE: {exc}", file=sys.stderr)
        return 2
    run_scheduler(settings.crontab_path, args.tick or settings.scheduler_tick_seconds,
                  settings.common.data_dir / "scheduler.log", args.max_seconds)
    return 0


def admin_main(argv: list[str]) -> int:
    """`movierec admin token`: print the admin token."""
    from load_balancer.router.admin_token import token_path
    from load_balancer.router.settings import RouterSettings

    parser = argparse.ArgumentParser(prog="movierec admin", description="the router's admin API credentials")
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("token", help="print the admin token: curl -H \"Authorization: Bearer $(movierec admin token)\"")
    parser.parse_args(argv)
    settings = RouterSettings.from_env()
    if not settings.admin_token:
        print(f"no admin token yet: `movierec up` creates {token_path(settings.common.data_dir)} "
              "(or set LB_ADMIN_TOKEN)", file=sys.stderr)
        return 1
    print(settings.admin_token)
    return 0


def eval_main(argv: list[str]) -> int:
    if not argv or argv[0] != "online":
        print("movierec eval: this package only runs `eval online <release-id>`", file=sys.stderr)
        return 2
    from load_balancer.release.online_eval import main

    return main(argv[1:])


COMMANDS = {"lb": lb_main, "admin": admin_main, "release": release_main, "hooks": hooks_main,
            "scheduler": scheduler_main, "eval": eval_main}


def main(argv: list[str]) -> int:
    """argv[0] is the command name (movierec.cli convention)."""
    if not argv or argv[0] not in COMMANDS:
        print(f"load_balancer.cli: unknown command {argv[:1]}", file=sys.stderr)
        return 2
    return COMMANDS[argv[0]](argv[1:])


if __name__ == "__main__":
    from movierec.base.settings import CommonSettings

    logging.basicConfig(level=CommonSettings.from_env().log_level,
                        format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main(sys.argv[1:]))
