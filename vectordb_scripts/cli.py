"""`movierec data fetch`, `movierec catalog build`, `movierec index ...`: this package's commands.

`main(argv)` receives the command name first (`["data", "fetch", ...]`), as movierec.cli passes it.
Each target module is imported only when its command runs.
"""

from __future__ import annotations

import sys

USAGE = """usage:
  movierec data fetch [--data-dir DIR] [--requirements FILE]
  movierec catalog build [--data-dir DIR] [--target-size N] [--no-db] [--database-url URL]
  movierec index ..."""


def _fail(message: str) -> int:
    print(f"movierec: {message}\n{USAGE}", file=sys.stderr)
    return 2


def main(argv: list[str]) -> int:
    """Dispatch `data fetch`, `catalog build` and `index ...`; returns the exit code."""
    if not argv:
        return _fail("missing command")
    command, rest = argv[0], argv[1:]
    if command == "index":
        # The index module belongs to the inference side; imported lazily on purpose.
        from vectordb_scripts.index import main as index_main

        return int(index_main(argv) or 0)
    if command == "data":
        if rest[:1] != ["fetch"]:
            return _fail("`data` takes the sub-command `fetch`")
        from vectordb_scripts.fetch import main as fetch_main

        return fetch_main(rest[1:])
    if command == "catalog":
        if rest[:1] != ["build"]:
            return _fail("`catalog` takes the sub-command `build`")
        from vectordb_scripts.catalog_build import main as build_main

        return build_main(rest[1:])
    return _fail(f"unknown command {command!r}")
