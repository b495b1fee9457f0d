"""Benchmark runs leave their figures in `reports/runs/<name>.json` for `movierec report`.

Every bench script prints its figures and calls `record_run` with the same numbers, the command
line and the machine facts that matter when reading them (cores, load while it ran).
"""

from __future__ import annotations

import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

from movierec.base.cpu import cpu_description

REPORTS_DIR = Path(__file__).resolve().parents[2] / "reports"


def runs_dir() -> Path:
    return Path(os.environ.get("MOVIEREC_REPORTS_DIR", REPORTS_DIR)) / "runs"


def machine_facts() -> dict[str, Any]:
    load1, load5, _ = os.getloadavg()
    return {"cpus": os.cpu_count(), "cpu": cpu_description(), "python": platform.python_version(),
            "platform": platform.platform(), "loadavg_1m": round(load1, 2), "loadavg_5m": round(load5, 2)}


def record_run(name: str, figures: dict[str, Any], *, notes: str = "") -> Path:
    """Write the figures of one benchmark run (overwrites the previous run of `name`)."""
    path = runs_dir() / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "name": name,
        "recorded_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
        "machine": machine_facts(),
        "figures": figures,
        "notes": notes,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=False) + "\n")
    return path


def load_runs() -> dict[str, dict[str, Any]]:
    runs = {}
    for path in sorted(runs_dir().glob("*.json")):
        try:
            runs[path.stem] = json.loads(path.read_text())
        except ValueError:
            continue
    return runs
