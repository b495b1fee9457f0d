"""The stream parser under coverage-guided fuzzing (bench/fuzz_parser.py, atheris), bounded for the suite:
no crash, and every rejected input dead-lettered with a known reason and stored."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from data_parsing.parser import REASONS

FUZZ_INPUTS = 20_000  # a few seconds; bench/fuzz_parser.py --inputs 1000000 is the full run (README)


def test_fuzzed_lines_never_crash_and_every_rejection_is_stored_with_a_reason(tmp_path: Path) -> None:
    repo = Path(__file__).resolve().parents[2]
    result = subprocess.run(
        [sys.executable, str(repo / "bench" / "fuzz_parser.py"), "--inputs", str(FUZZ_INPUTS), "--no-record",
         "--artifacts", str(tmp_path / "artifacts")],
        cwd=repo / "bench", env={**os.environ, "PYTHONPATH": str(repo)}, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, (result.stdout[-3000:], result.stderr[-3000:])
    figures = json.loads(result.stdout[result.stdout.index("{"):result.stdout.rindex("}") + 1])
    assert figures["inputs"] == FUZZ_INPUTS and figures["crashes"] == 0
    assert figures["accepted"] + figures["rejected"] == FUZZ_INPUTS
    assert figures["rejected_with_reason"] == figures["dead_letters_stored"] == figures["rejected"] > 0
    assert set(figures["reasons"]) <= REASONS and len(figures["reasons"]) >= 8  # the fuzzer reached deep paths
    assert f"{FUZZ_INPUTS} inputs, 0 crashes" in result.stdout
