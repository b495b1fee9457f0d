"""`movierec inference ...` (the service under gunicorn) and `movierec eval offline ...`.

`main(argv)` receives the command name first, as movierec.cli passes it; movierec.cli sends
`eval online` to the release pipeline (load_balancer.cli).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping

from inference.ranking import STRATEGIES
from inference.settings import MODEL_STRATEGY, InferenceSettings
from movierec.base.serving import WORKER_CLASSES, resolve_worker_class


def _inference_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="movierec inference", description="the recommendation service (gunicorn)")
    parser.add_argument("--host", help="bind address (default $INFERENCE_HOST or 127.0.0.1)")
    parser.add_argument("--port", type=int, help="port (default $INFERENCE_PORT or 8001)")
    parser.add_argument("--strategy", choices=sorted([*STRATEGIES, MODEL_STRATEGY]),
                        help="ranking strategy (default $INFERENCE_STRATEGY); `model` serves a trained artifact")
    parser.add_argument("--model", help="artifact served by --strategy model (default $MODEL_ARTIFACT or the newest)")
    parser.add_argument("--model-version", help="version label (default <strategy>-v1 or $MODEL_VERSION)")
    parser.add_argument("--workers", type=int, help="gunicorn worker processes (default $INFERENCE_WORKERS or 2)")
    parser.add_argument("--threads", type=int, help="threads per worker (default $INFERENCE_THREADS or 2)")
    parser.add_argument("--worker-class", choices=WORKER_CLASSES, help="gunicorn worker class "
                        "(default $INFERENCE_WORKER_CLASS; empty: gthread with threads, else sync)")
    parser.add_argument("--access-log", action="store_true", help="log every request")
    return parser


def settings_from_args(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> InferenceSettings:
    """The service's settings: options over environment. `--strategy` alone keeps an explicit
    $MODEL_VERSION (the release pipeline labels each nightly that way); else `<strategy>-v1`."""
    settings = InferenceSettings.from_env(environ)
    if getattr(args, "model", None):
        settings = settings.replace(model_artifact=args.model)
    if args.strategy or args.model_version:
        version = args.model_version or settings.configured_model_version
        settings = settings.with_strategy(args.strategy or settings.strategy, version)
    return settings


def run_inference(argv: list[str]) -> int:
    args = _inference_parser().parse_args(argv)
    settings = settings_from_args(args)
    host = args.host or settings.host
    port = args.port or settings.port
    workers = args.workers or settings.workers
    threads = args.threads or settings.threads
    worker_class = resolve_worker_class(args.worker_class or settings.worker_class, threads)

    from inference.app import create_app
    from movierec.base.serving import serve

    label = settings.model_version or settings.model_artifact or settings.strategy
    print(f"inference {label} on http://{host}:{port} ({workers} {worker_class} workers x {threads} threads)",
          file=sys.stderr)
    serve(lambda: create_app(settings), bind=f"{host}:{port}", workers=workers, threads=threads,
          worker_class=worker_class, access_log=args.access_log)
    return 0


def run_eval(argv: list[str]) -> int:
    if not argv or argv[0] in {"-h", "--help"}:
        print("usage: movierec eval offline [options] | movierec eval online [options]")
        return 0 if argv else 2
    action, rest = argv[0], argv[1:]
    if action == "offline":
        from inference.offline_eval import main as offline_main

        return int(offline_main(rest) or 0)
    print(f"movierec eval: unknown action {action!r} (offline | online)", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    """Dispatch `inference ...` and `eval offline ...` (argv[0] is the command)."""
    command, rest = argv[0], argv[1:]
    if command == "inference":
        return run_inference(rest)
    if command == "eval":
        return run_eval(rest)
    print(f"inference.cli: unexpected command {command!r}", file=sys.stderr)
    return 2
