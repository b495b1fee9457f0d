"""Screenshot of the local dashboard in headless Chromium: `python -m monitoring.screenshot`.

    python -m monitoring.screenshot --url http://127.0.0.1:3000/?range=15m --out reports/dashboard.png

The dashboard renders its plots server-side, so the page is complete when it has loaded; a
virtual-time budget still gives slow plots a few seconds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
)


class ScreenshotError(RuntimeError):
    """Chromium is missing or did not write the screenshot."""


def find_chromium() -> Path:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return Path(found)
    raise ScreenshotError("no Chromium found (apt-get install -y chromium)")


def take_screenshot(
    url: str, out: Path, *, width: int = 1400, height: int = 1800, budget_ms: int = 15000,
    timeout_seconds: float = 120.0, chromium: Path | None = None,
) -> Path:
    """Load `url` in a fresh headless Chromium profile and save a PNG of the window to `out`."""
    binary = chromium or find_chromium()
    out = out.resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="movierec-chromium-") as profile:
        argv = [
            str(binary), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", f"--screenshot={out}",
            f"--window-size={width},{height}", f"--virtual-time-budget={budget_ms}", url,
        ]
        try:
            result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_seconds)
        except subprocess.TimeoutExpired as exc:
            raise ScreenshotError(f"Chromium did not finish within {timeout_seconds}s") from exc
    if not out.exists() or out.stat().st_size == 0:
        raise ScreenshotError(f"Chromium wrote no screenshot (exit {result.returncode}): {result.stderr[-2000:]}")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m monitoring.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000/?range=15m")
    parser.add_argument("--out", type=Path, default=Path("reports/dashboard.png"))
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=1800)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        path = take_screenshot(args.url, args.out, width=args.width, height=args.height)
    except ScreenshotError as exc:
        print(f"screenshot failed: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
