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

# Built by `movierec index build`: its presence means the Chroma collection holds the embeddings.
NEIGHBOURS_TABLE = "index/neighbours.npz"


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
    return [catalog / "movies.parquet", catalog / "ml1m_mapping.csv", catalog / "ml1m_ratings.parquet",
            data_dir / NEIGHBOURS_TABLE]


def fingerprint_for(data_dir: Path, params: TasteParams) -> str:
    stamp = {"params": asdict(params), "files": [_file_stamp(p) for p in input_files(data_dir)]}
    return hashlib.sha1(json.dumps(stamp, sort_keys=True).encode()).hexdigest()


def load_embeddings(data_dir: Path, item_ids: np.ndarray, chroma_url: str = "",
                    collection_name: str = "movies") -> np.ndarray | None:
    """Catalogue-aligned MiniLM embeddings from the vector index when it is built, else None.

    Films the index lacks get a zero row (the ridge then leans on their other features).
    """
    if not (data_dir / NEIGHBOURS_TABLE).exists():
        return None
    from vectordb_scripts.chroma import VectorIndexUnavailable, fetch_embeddings, open_client, open_collection

    try:
        collection = open_collection(open_client(chroma_url, data_dir / "chroma", create=False), collection_name,
                                     create=False)
        ids, vectors = fetch_embeddings(collection, item_ids.tolist())
    except VectorIndexUnavailable as exc:
        log.warning("tastes_without_embeddings reason=%s", exc)
        return None
    if not ids:
        return None
    row = {slug: i for i, slug in enumerate(item_ids.tolist())}
    aligned = np.zeros((len(item_ids), vectors.shape[1]), dtype=np.float64)
    aligned[[row[slug] for slug in ids]] = vectors
    return aligned


def load_tastes(data_dir: Path, params: TasteParams = TasteParams(), refit: bool = False, chroma_url: str = "",
                collection_name: str = "movies") -> Tastes:
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
    embeddings = load_embeddings(data_dir, catalog["id"].astype(str).to_numpy(), chroma_url, collection_name)
    tastes = build_tastes(catalog, load_ml1m_ratings(data_dir), load_ml1m_users(data_dir), params, embeddings)
    save_tastes(tastes, path, fingerprint)
    log.info("tastes_fitted path=%s items=%d rated=%d users=%d embeddings=%s seconds=%.1f", path,
             tastes.n_items, int(tastes.item_rated.sum()), len(tastes.prototype_bias), embeddings is not None,
             time.perf_counter() - started)
    return tastes
