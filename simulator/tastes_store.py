"""The taste model on disk: fitted once from the real data, cached as .npz in `<data_dir>/simulator/`.

The cache key covers the fitting parameters and the size/mtime of the input files, so a rebuilt
catalogue or a new embedding file refits automatically; `--refit` forces it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import asdict, fields
from pathlib import Path

import numpy as np

from simulator.tastes import TasteParams, Tastes, build_tastes

log = logging.getLogger(__name__)

# Where the inference engineer's index build may leave the catalogue embeddings (optional).
EMBEDDING_FILES = ("index/embeddings.npy", "index/embedding_ids.npy")


def save_tastes(tastes: Tastes, path: Path, fingerprint: str = "") -> None:
    """Write the model to `path` (.npz, no pickles)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {f.name: np.asarray(getattr(tastes, f.name)) for f in fields(Tastes)}
    # Text columns as fixed-width unicode: .npz loads them without pickles.
    arrays = {name: a.astype(str) if a.dtype == object else a for name, a in arrays.items()}
    arrays["fingerprint"] = np.asarray(fingerprint)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez(tmp, **arrays)
    tmp.replace(path)


def read_tastes(path: Path) -> tuple[Tastes, str]:
    """Read a model written by `save_tastes`; returns it with its fingerprint."""
    with np.load(path, allow_pickle=False) as data:
        values = {f.name: data[f.name] for f in fields(Tastes)}
        fingerprint = str(data["fingerprint"])
    values["global_mean"] = float(values["global_mean"])
    return Tastes(**values), fingerprint


def _file_stamp(path: Path) -> list[object]:
    if not path.exists():
        return [str(path.name), None]
    stat = path.stat()
    return [str(path.name), stat.st_size, int(stat.st_mtime)]


def input_files(data_dir: Path) -> list[Path]:
    catalog = data_dir / "catalog"
    return [catalog / "movies.parquet", catalog / "ml1m_mapping.csv", data_dir / "raw",
            *(data_dir / name for name in EMBEDDING_FILES)]


def fingerprint_for(data_dir: Path, params: TasteParams) -> str:
    stamp = {"params": asdict(params), "files": [_file_stamp(p) for p in input_files(data_dir)]}
    return hashlib.sha1(json.dumps(stamp, sort_keys=True).encode()).hexdigest()


def load_embeddings(data_dir: Path, item_ids: np.ndarray) -> np.ndarray | None:
    """Catalogue-aligned embedding rows when `<data_dir>/index/` provides them, else None."""
    vectors_path, ids_path = (data_dir / name for name in EMBEDDING_FILES)
    if not (vectors_path.exists() and ids_path.exists()):
        return None
    vectors = np.load(vectors_path, allow_pickle=False)
    ids = np.load(ids_path, allow_pickle=False).astype(str)
    row = {slug: i for i, slug in enumerate(ids.tolist())}
    aligned = np.zeros((len(item_ids), vectors.shape[1]), dtype=np.float64)
    for i, slug in enumerate(item_ids.tolist()):
        j = row.get(slug)
        if j is not None:
            aligned[i] = vectors[j]
    return aligned


def load_tastes(data_dir: Path, params: TasteParams = TasteParams(), refit: bool = False) -> Tastes:
    """The cached model for `data_dir`, fitting it from the real catalogue and ML-1M if needed."""
    data_dir = Path(data_dir)
    fingerprint = fingerprint_for(data_dir, params)
    path = data_dir / "simulator" / f"tastes-r{params.rank}-s{params.seed}.npz"
    if path.exists() and not refit:
        tastes, stored = read_tastes(path)
        if stored == fingerprint:
            return tastes
        log.info("tastes_cache_stale path=%s", path)

    from vectordb_scripts.catalog_io import load_catalog, load_ml1m_ratings, load_ml1m_users

    started = time.perf_counter()
    catalog = load_catalog(data_dir)
    embeddings = load_embeddings(data_dir, catalog["id"].astype(str).to_numpy())
    tastes = build_tastes(catalog, load_ml1m_ratings(data_dir), load_ml1m_users(data_dir), params, embeddings)
    save_tastes(tastes, path, fingerprint)
    log.info("tastes_fitted path=%s items=%d rated=%d users=%d embeddings=%s seconds=%.1f", path,
             tastes.n_items, int(tastes.item_rated.sum()), len(tastes.prototype_bias), embeddings is not None,
             time.perf_counter() - started)
    return tastes
