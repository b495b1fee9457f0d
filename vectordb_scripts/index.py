"""`movierec index build`: embed the catalogue into ChromaDB and precompute the neighbour table.

Incremental: every stored embedding carries the hash of the text (and model) it came from, so a
rebuild embeds only new or changed films and deletes films that left the catalogue. The exact
20-nearest-neighbour lists (numpy over the stored embeddings) and the co-rating neighbours from
real MovieLens-1M ratings are written to `<data_dir>/index/neighbours.npz`.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import logging
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.base.cpu import cpu_flags
from movierec.base.settings import CommonSettings, EnvSettings, environment, nested_common, setting
from vectordb_scripts import chroma
from vectordb_scripts.embed import (
    DEFAULT_BATCH_SIZE,
    DEFAULT_PRECISION,
    ModelUnavailable,
    Precision,
    PrecisionSetting,
    embed_texts,
    load_model,
    model_id,
    movie_text,
    resolve_precision,
    text_hash,
)
from vectordb_scripts.neighbours import cooccurrence_neighbours, exact_neighbours
from vectordb_scripts.table import (
    NEIGHBOURS_FILE,
    IndexFormatError,
    IndexMissing,
    NeighbourTable,
    empty_neighbours,
    popular_good_order,
    read_meta,
    save_table,
)

log = logging.getLogger(__name__)

CONTENT_K = 20
COOC_K = 50
RECALL_SAMPLE = 500


class IndexSettings(EnvSettings):
    """`movierec index build` configuration (see .env.example, `## Vector index`)."""

    common: CommonSettings = nested_common()
    batch_size: int = setting("INDEX_BATCH_SIZE", DEFAULT_BATCH_SIZE, ge=1)
    model_path: str = setting("MOVIEREC_MODEL_PATH", "")
    neighbours: int = setting("INDEX_NEIGHBOURS", CONTENT_K, ge=1)
    # 0 = torch's default (one per core); 1 is faster on a crowded machine
    torch_threads: int = setting("INDEX_TORCH_THREADS", 0, ge=0)
    # auto (default: bf16 where the CPU has AMX / AVX512-BF16 / Arm BF16 units, 3-4x fewer CPU seconds there;
    # else fp32), bf16, or fp32 (the reference)
    precision_setting: PrecisionSetting = setting("INDEX_PRECISION", DEFAULT_PRECISION)

    @property
    def precision(self) -> Precision:
        """The precision the model runs with on this machine (`INDEX_PRECISION`, "auto" resolved)."""
        return resolve_precision(self.precision_setting, cpu_flags())

    @property
    def index_dir(self) -> Path:
        return self.common.data_dir / "index"

    @property
    def table_path(self) -> Path:
        return self.index_dir / NEIGHBOURS_FILE


@dataclass(frozen=True)
class BuildReport:
    films: int
    embedded: int
    deleted: int
    embed_seconds: float
    wall_seconds: float
    chroma_recall: float | None
    cooccurrence_films: int
    skipped: bool = False

    @property
    def films_per_second(self) -> float:
        return self.embedded / self.embed_seconds if self.embed_seconds > 0 else 0.0

    def summary(self) -> str:
        if self.skipped:
            return f"index up to date: {self.films} films, nothing to do ({self.wall_seconds:.1f} s)"
        recall = "n/a" if self.chroma_recall is None else f"{self.chroma_recall:.4f}"
        return (
            f"index built: {self.films} films, {self.embedded} embedded in {self.embed_seconds:.1f} s "
            f"({self.films_per_second:.1f} films/s), {self.deleted} deleted, "
            f"{self.cooccurrence_films} films with co-rating neighbours, "
            f"Chroma HNSW recall@{CONTENT_K} vs exact {recall}; wall time {self.wall_seconds:.1f} s"
        )


def catalog_texts(catalog: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(ids, texts) of a catalogue DataFrame, ids unique and in catalogue order."""
    if catalog["id"].duplicated().any():
        dupes = catalog.loc[catalog["id"].duplicated(), "id"].head(5).tolist()
        raise ValueError(f"catalogue ids are not unique, e.g. {dupes}")
    records = catalog.to_dict("records")
    return [str(r["id"]) for r in records], [movie_text(r) for r in records]


def _column(catalog: pd.DataFrame, name: str) -> np.ndarray | None:
    if name not in catalog.columns:
        return None
    return pd.to_numeric(catalog[name], errors="coerce").to_numpy(dtype=np.float64)


def table_hash(hashes: list[str], ids: list[str], ratings_digest: str, k: int) -> str:
    """The identity of a neighbour table: catalogue texts, model, MovieLens ratings and k."""
    digest = hashlib.sha1(f"{k}|{ratings_digest}".encode())
    for movie_id, h in zip(ids, hashes, strict=True):
        digest.update(f"{movie_id}\t{h}\n".encode())
    return digest.hexdigest()[:20]


def cooccurrence_for(ids: list[str], ratings: pd.DataFrame | None, k: int = COOC_K) -> tuple[np.ndarray, np.ndarray]:
    """Co-rating neighbours of catalogue rows from (user_id, movie_id) rating rows."""
    if ratings is None or ratings.empty:
        return empty_neighbours(len(ids), 0)
    row_of = {movie_id: row for row, movie_id in enumerate(ids)}
    rows = ratings["movie_id"].map(row_of)
    known = rows.notna().to_numpy()
    return cooccurrence_neighbours(
        ratings["user_id"].to_numpy()[known], rows.to_numpy()[known].astype(np.int64), len(ids), k
    )


def load_ml1m_ratings_if_any(data_dir: Path) -> pd.DataFrame | None:
    """Real MovieLens-1M ratings mapped to slugs, or None when the data was not fetched."""
    try:
        from vectordb_scripts.catalog_io import load_ml1m_ratings
    except ImportError:
        return None
    try:
        return load_ml1m_ratings(data_dir)
    except (FileNotFoundError, OSError) as exc:
        log.warning("no MovieLens-1M ratings (%s): the table has content neighbours only", exc)
        return None


def chroma_recall(
    collection: Any,
    ids: list[str],
    embeddings: np.ndarray,
    exact_idx: np.ndarray,
    sample: int = RECALL_SAMPLE,
    seed: int = 0,
) -> float | None:
    """Recall@k of Chroma's HNSW against the exact lists, on a fixed random sample of films."""
    n, k = exact_idx.shape
    if n < 2 or k == 0:
        return None
    rows = np.random.default_rng(seed).choice(n, size=min(sample, n), replace=False)
    got, _ = chroma.query_neighbours(collection, embeddings[rows], min(k + 1, n))
    hits = total = 0
    for row, found in zip(rows, got, strict=True):
        expected = {ids[j] for j in exact_idx[row] if j >= 0}
        found_others = [f for f in found if f != ids[row]][: len(expected)]
        hits += len(expected.intersection(found_others))
        total += len(expected)
    return hits / total if total else None


@contextlib.contextmanager
def _build_lock(index_dir: Path) -> Iterator[None]:
    # Two builds on one data dir (e.g. parallel test sessions) must not interleave.
    index_dir.mkdir(parents=True, exist_ok=True)
    with open(index_dir / ".build.lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def build_index(
    catalog: pd.DataFrame,
    settings: IndexSettings,
    ratings: pd.DataFrame | None = None,
    progress: bool = True,
    force: bool = False,
) -> BuildReport:
    """Embed what changed into ChromaDB, delete what left, and rewrite the neighbour table."""
    started = time.perf_counter()
    ids, texts = catalog_texts(catalog)
    model = model_id(Path(settings.model_path) if settings.model_path else None, settings.precision)
    hashes = [text_hash(t, model) for t in texts]
    ratings_digest = "none" if ratings is None else f"{len(ratings)}:{pd.util.hash_pandas_object(ratings).sum()}"
    identity = table_hash(hashes, ids, ratings_digest, settings.neighbours)
    with _build_lock(settings.index_dir):
        client = chroma.open_client(settings.common.chroma_url, settings.common.chroma_path)
        collection = chroma.open_collection(client, settings.common.chroma_collection)
        if not force and _up_to_date(settings.table_path, identity) and collection.count() == len(ids):
            return BuildReport(len(ids), 0, 0, 0.0, time.perf_counter() - started, None, 0, skipped=True)
        stored = {} if force else chroma.stored_hashes(collection)
        wanted = dict(zip(ids, hashes, strict=True))
        removed = sorted(set(stored) - set(wanted))
        chroma.delete(collection, removed)
        todo = [row for row, movie_id in enumerate(ids) if stored.get(movie_id) != hashes[row]]
        embed_seconds = 0.0
        if todo:
            encoder = load_model(
                settings.model_path or None, threads=settings.torch_threads, precision=settings.precision
            )
            t0 = time.perf_counter()
            vectors = embed_texts(encoder, [texts[r] for r in todo], settings.batch_size, progress=progress)
            embed_seconds = time.perf_counter() - t0
            chroma.upsert(
                collection,
                [ids[r] for r in todo],
                vectors,
                [_metadata(catalog.iloc[r], hashes[r]) for r in todo],
                documents=[texts[r] for r in todo],
            )
        found, embeddings = chroma.fetch_embeddings(collection, ids)
        if len(found) != len(ids):
            raise RuntimeError(f"ChromaDB holds {len(found)} of {len(ids)} catalogue films after the upsert")
        content_idx, content_sim = exact_neighbours(embeddings, settings.neighbours)
        recall = chroma_recall(collection, ids, embeddings, content_idx)
        cooc_idx, cooc_sim = cooccurrence_for(ids, ratings)
        popularity = _column(catalog, "popularity")
        popularity = np.zeros(len(ids)) if popularity is None else np.nan_to_num(popularity, nan=0.0)
        table = NeighbourTable(
            ids=tuple(ids),
            popularity=popularity.astype(np.float32),
            popular_order=popular_good_order(
                popularity, _column(catalog, "vote_average"), _column(catalog, "vote_count")
            ),
            content_idx=content_idx,
            content_sim=content_sim,
            cooc_idx=cooc_idx,
            cooc_sim=cooc_sim,
            catalog_hash=identity,
            model=model,
            built_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        save_table(settings.table_path, table)
    return BuildReport(
        films=len(ids),
        embedded=len(todo),
        deleted=len(removed),
        embed_seconds=embed_seconds,
        wall_seconds=time.perf_counter() - started,
        chroma_recall=recall,
        cooccurrence_films=int((cooc_idx[:, :1] >= 0).sum()) if cooc_idx.shape[1] else 0,
    )


def _up_to_date(path: Path, identity: str) -> bool:
    try:
        return read_meta(path).get("catalog_hash") == identity
    except (IndexMissing, IndexFormatError):
        return False


def _metadata(movie: pd.Series, h: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"text_hash": h, "title": str(movie.get("title") or "")}
    year = pd.to_numeric(movie.get("year"), errors="coerce")
    if pd.notna(year):
        meta["year"] = int(year)
    return meta


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="movierec index", description="the ChromaDB vector index")
    sub = parser.add_subparsers(dest="action", required=True)
    build = sub.add_parser("build", help="embed the catalogue (incremental) and precompute neighbours")
    build.add_argument("--data-dir", type=Path, help="data directory (default $MOVIEREC_DATA_DIR)")
    build.add_argument("--batch-size", type=int, help="texts per embedding batch (default 32)")
    build.add_argument("--full", action="store_true", help="re-embed every film, ignoring stored hashes")
    build.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    return parser


def main(argv: list[str]) -> int:
    """`index build [...]` (argv[0] is the command name, "index")."""
    args = _parser().parse_args(argv[1:])
    environ = environment()  # the process environment over .env
    if args.data_dir is not None:
        environ["MOVIEREC_DATA_DIR"] = str(args.data_dir)
    if args.batch_size:
        environ["INDEX_BATCH_SIZE"] = str(args.batch_size)
    settings = IndexSettings.from_env(environ)
    from vectordb_scripts.catalog_io import load_catalog

    try:
        catalog = load_catalog(settings.common.data_dir)
    except FileNotFoundError as exc:
        print(f"movierec index build: no catalogue ({exc}); run `movierec catalog build` first", file=sys.stderr)
        return 1
    ratings = load_ml1m_ratings_if_any(settings.common.data_dir)
    try:
        report = build_index(catalog, settings, ratings=ratings, progress=not args.no_progress, force=args.full)
    except (ModelUnavailable, chroma.VectorIndexUnavailable) as exc:
        print(f"movierec index build: {exc}", file=sys.stderr)
        return 1
    print(report.summary())
    print(f"neighbour table: {settings.table_path}")
    return 0
