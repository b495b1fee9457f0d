"""What a stopped platform must not leave behind (shared by the `movierec up` end-to-end tests)."""

from __future__ import annotations

import os
from pathlib import Path


def processes_using(data_dir: Path) -> list[str]:
    """Processes whose environment names this data dir ("pid: command"): anything the platform started and left."""
    needle = f"MOVIEREC_DATA_DIR={data_dir}".encode()
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            if needle in (proc / "environ").read_bytes().split(b"\0"):
                command = (proc / "cmdline").read_bytes().replace(b"\0", b" ")[:200]
                found.append(f"{proc.name}: {command!r}")
        except OSError:
            continue
    return found
