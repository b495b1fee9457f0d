"""./dev itself: valid bash, a clear error for a Python older than 3.11 (before any virtualenv is made)."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_dev_is_valid_bash() -> None:
    subprocess.run(["bash", "-n", str(REPO / "dev")], check=True)


def _older_python() -> str | None:
    home = pwd.getpwuid(os.getuid()).pw_dir  # the test session replaces $HOME
    candidates = [shutil.which(f"python3.{minor}") for minor in (10, 9, 8)]
    candidates += sorted(glob.glob(f"{home}/.pyenv/versions/3.1[0]*/bin/python3"))
    candidates += sorted(glob.glob(f"{home}/.pyenv/versions/3.[6-9]*/bin/python3"))
    for candidate in filter(None, candidates):
        probe = subprocess.run([candidate, "-c", "import sys; print(sys.version_info >= (3, 11))"],
                               capture_output=True, text=True, timeout=30)
        if probe.returncode == 0 and probe.stdout.strip() == "False":
            return candidate
    return None


def test_an_older_python_gets_a_clear_error_and_no_virtualenv(tmp_path: Path) -> None:
    old = _older_python()
    if old is None:
        pytest.skip("no Python older than 3.11 on this machine")
    venv = tmp_path / "venv"
    result = subprocess.run([str(REPO / "dev"), "help"], capture_output=True, text=True, timeout=60,
                            env={**os.environ, "PYTHON": old, "MOVIEREC_VENV": str(venv)})
    assert result.returncode == 1
    assert "needs Python 3.11 or newer" in result.stderr and old in result.stderr
    assert not venv.exists()
