"""The compose platform on a real engine (podman's Docker API), shared by the tests of this folder.

Locally the tests are skipped with the reason when podman is absent; with CI=true (or
MOVIEREC_INSTALL_CONTAINERS=1) the engine's Debian packages are installed first, as ./dev does for
the monitoring packages. Everything is torn down at the end: containers, networks, volumes, the API service.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator

import pytest

from movierec.containers import EngineError, missing_packages
from tests.containers.stack import Stack, start_engine

# Small catalogue: every MovieLens film is kept whatever the size, the popular others are dropped,
# so the bootstrap's index build embeds ~10K films instead of 27,278.
CATALOG_SIZE = "1"


def _install_allowed() -> bool:
    return os.environ.get("CI") == "true" or os.environ.get("MOVIEREC_INSTALL_CONTAINERS") == "1"


@pytest.fixture(scope="package")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    install = _install_allowed()
    if not install:
        if shutil.which("podman") is None:
            pytest.skip("podman is not installed (CI installs it: CI=true or MOVIEREC_INSTALL_CONTAINERS=1; "
                        "or run `python -m movierec.containers setup`)")
        if missing := missing_packages():
            pytest.skip(f"container engine packages missing: {', '.join(missing)}")
    run_dir = tmp_path_factory.mktemp("containers")
    try:
        engine, base = start_engine(run_dir / "engine", install=install)
    except EngineError as exc:
        pytest.fail(f"the container engine could not start: {exc}")
    stack = Stack(engine, base, run_dir / "project")
    stack.extra_env = {
        "MOVIEREC_CATALOG_SIZE": CATALOG_SIZE,
        "KAFKA_NUM_PARTITIONS": "3",
        # Canary: half of the users, decision one minute after the release, few users per arm.
        "LB_CANARY_WEIGHT": "0.5",
        "RELEASE_WINDOW_MINUTES": "1",
        "RELEASE_MIN_USERS_PER_ARM": "5",
        "RELEASE_GATE_ARGS": "--max-users 300 --strategies blend,popularity",
        "SIM_RATE": "150",
    }
    try:
        built = stack.build_images()
        for image, seconds in stack.build_seconds.items():
            print(f"[containers] {image}: {'built' if built[image] else 'reused'} in {seconds:.0f} s")
        stack.prepare_project()
        stack.down()  # whatever an interrupted earlier run left (its data volumes stay)
        yield stack
    finally:
        try:
            stack.down()
        finally:
            engine.stop()


@pytest.fixture(scope="package")
def platform(stack: Stack) -> Stack:
    """`docker-compose up -d`: returns once the bootstrap job has completed and the services run. One per
    run of this folder: test_platform.py and, after it, test_release_pipelines.py use the same running
    platform, torn down (with the engine) once the folder's tests are done, not kept up under the rest of the suite."""
    started = time.monotonic()
    try:
        stack.compose("up", "-d", timeout=1500)
    except AssertionError:
        print(stack.logs("bootstrap", "database", "kafka", "chroma", tail=80))
        raise
    stack.up_seconds = time.monotonic() - started  # type: ignore[attr-defined]
    return stack
