"""Containers: image sizes, build time and `docker-compose up`-to-healthy time on the project's engine.

    python bench/containers.py [--cold] [--fresh-data] [--keep-run-dir]

Sets up the engine like the containers test (podman's Docker API, debootstrap base), builds the
project images from the real Dockerfile and the stand-ins (`--cold`: the images and their layer
cache are removed first, every step runs once; otherwise unchanged images are reused; `--fresh-data`:
without the kept data volumes, so the bootstrap job fetches, builds and embeds the catalogue again),
brings the platform up
with docker-compose and the stand-in override (small catalogue, MOVIEREC_CATALOG_SIZE=1) and times
how long until every long-running service is healthy (or running, for those without a healthcheck).
Then tears everything down. Prints the figures and records them in reports/runs/containers.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from movierec.base.benchlog import record_run
from tests.containers.stack import Stack, start_engine

LONG_RUNNING = ("database", "kafka", "chroma", "parser", "inference-main", "inference-nightly", "router",
                "scheduler", "simulator", "prometheus", "alertmanager", "grafana")


def all_healthy(stack: Stack) -> bool:
    for service in LONG_RUNNING:
        for container in stack.containers(service) or [""]:
            if not container:
                return False
            state = json.loads(stack.podman("inspect", container).stdout)[0]["State"]
            health = (state.get("Health") or state.get("Healthcheck") or {}).get("Status", "")
            if not state.get("Running") or (health and health != "healthy"):
                return False
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="remove the images and their layer cache first")
    parser.add_argument("--fresh-data", action="store_true", help="drop the kept data and ChromaDB volumes first")
    parser.add_argument("--keep-run-dir", action="store_true")
    args = parser.parse_args()
    run_dir = Path(tempfile.mkdtemp(prefix="movierec-bench-containers-"))
    started = time.perf_counter()
    engine, base = start_engine(run_dir / "engine", install=True)
    engine_seconds = time.perf_counter() - started
    stack = Stack(engine, base, run_dir / "project")
    stack.extra_env = {"MOVIEREC_CATALOG_SIZE": "1"}
    try:
        started = time.perf_counter()
        built = stack.build_images(cold=args.cold)
        build_seconds = time.perf_counter() - started
        stack.prepare_project()
        stack.down(keep_data=not args.fresh_data)
        started = time.perf_counter()
        stack.compose("up", "-d", timeout=1800)
        up_seconds = time.perf_counter() - started
        deadline = time.monotonic() + 600
        while not all_healthy(stack):
            if time.monotonic() > deadline:
                raise SystemExit("the platform was not healthy within 10 minutes of `up`")
            time.sleep(2)
        healthy_seconds = time.perf_counter() - started
        sizes = stack.image_sizes()
    finally:
        stack.down()
        engine.stop()
        if not args.keep_run_dir:
            shutil.rmtree(run_dir, ignore_errors=True)

    print(f"{'engine setup (packages, API socket, base image)':<52}{engine_seconds:>9.1f} s")
    print(f"{'image builds (' + ('cold, no layer cache' if args.cold else 'reusing unchanged images') + ')':<52}"
          f"{build_seconds:>9.1f} s")
    for image, seconds in stack.build_seconds.items():
        print(f"  {image:<50}{seconds:>9.1f} s  {'built' if built[image] else 'reused'}")
    print(f"{'docker-compose up -d (bootstrap job included' + (', fresh data' if args.fresh_data else '') + ')':<52}"
          f"{up_seconds:>9.1f} s")
    print(f"{'up -> every service healthy':<52}{healthy_seconds:>9.1f} s")
    for image, size in sorted(sizes.items()):
        print(f"  {image:<50}{size / 1e6:>9.0f} MB")
    record_run("containers", {
        "cold": args.cold, "fresh_data": args.fresh_data, "engine_setup_seconds": round(engine_seconds, 1),
        "build_seconds": round(build_seconds, 1),
        "image_build_seconds": {k: round(v, 1) for k, v in stack.build_seconds.items()},
        "images_built": built, "up_seconds": round(up_seconds, 1), "up_to_healthy_seconds": round(healthy_seconds, 1),
        "image_size_mb": {k: round(v / 1e6) for k, v in sizes.items()},
    }, notes="podman 4.3 (Docker API) + docker-compose 1.29; stand-ins for the third-party images; "
             "catalogue MOVIEREC_CATALOG_SIZE=1 (every MovieLens film, 3,896 films); shared 2-core machine, busy")


if __name__ == "__main__":
    main()
