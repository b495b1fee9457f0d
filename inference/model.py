"""The learned ranker as a versioned artifact: fitting from interactions, saving, loading, ranking.

An artifact is a directory `<data_dir>/models/<version>/` holding `model.npz` (the model's films,
their interaction counts and the items x items weights) and `manifest.json` (version, training
window, row counts, hyper-parameters, offline metrics). Inference serves one version
(`INFERENCE_STRATEGY=model`, `MODEL_ARTIFACT`) and names it in X-Model-Version.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from inference.ease import (
    RankerParams,
    fit_ease,
    fit_sequence_model,
    interaction_matrix,
    positions_from_end,
    recency_weights,
    score_items,
    sequence_pairs,
    user_chunks,
)
from inference.ranking import Catalogue, Ranked, UserProfile, _accumulate, _finish, rank_popularity
from vectordb_scripts.table import NeighbourTable

MODELS_DIR = "models"
ARTIFACT_FILE = "model.npz"
MANIFEST_FILE = "manifest.json"
FORMAT_VERSION = 2
SEQUENCE_CHUNK_ROWS = 50_000  # interactions per chunk of the sequence model's training pairs


class ModelMissing(FileNotFoundError):
    """No artifact with that version (or no artifact at all) under the models directory."""


@dataclass(frozen=True, eq=False)
class ItemModel:
    """A fitted ranker: its films (catalogue slugs), their interaction counts and weights."""

    version: str
    ids: tuple[str, ...]
    ease: np.ndarray  # (I, I) float32 EASE weights x ease_share: score of column film given row film
    sequence: np.ndarray  # (I, I) float32 sequence model x (1 - ease_share); (0, 0) when not used
    counts: np.ndarray  # (I,) float32 interactions per film in the training data
    params: RankerParams
    manifest: dict[str, Any] = field(default_factory=dict)


def fit_model(interactions: pd.DataFrame, params: RankerParams, max_items: int, version: str = "",
              progress: Callable[[str], None] | None = None) -> ItemModel:
    """Fit on rows (user, movie_id, timestamp); only the `max_items` most interacted films are modelled.

    Each user's rows are ordered by timestamp (then input order); a repeated (user, film) counts once.
    """
    step = progress or (lambda _name: None)
    step("prepare")
    counts = interactions["movie_id"].value_counts(sort=False)
    kept = counts.sort_values(ascending=False, kind="stable").index[:max_items] if max_items > 0 else counts.index
    ids = tuple(sorted(str(m) for m in kept))
    code_of = pd.Series(np.arange(len(ids)), index=pd.Index(ids))
    frame = interactions.loc[interactions["movie_id"].isin(code_of.index), ["user", "movie_id", "timestamp"]]
    frame = frame.assign(_pos=np.arange(len(frame))).sort_values(["user", "timestamp", "_pos"], kind="stable")
    frame = frame.drop_duplicates(["user", "movie_id"], keep="first")
    users = pd.factorize(frame["user"].to_numpy())[0]
    items = code_of.reindex(frame["movie_id"].to_numpy()).to_numpy(dtype=np.int64)
    del frame
    n_items = len(ids)
    item_counts = np.bincount(items, minlength=n_items).astype(np.float32)
    step("ease")
    matrix = interaction_matrix(users, items, int(users.max(initial=-1)) + 1, n_items,
                                recency_weights(positions_from_end(users), params.train_half_life))
    ease = fit_ease(matrix, params.l2) if n_items else np.zeros((0, 0), np.float32)
    del matrix
    ease *= params.ease_share
    sequential = np.zeros((0, 0), np.float32)
    if params.ease_share < 1.0 and n_items:
        step("sequence")
        chunks = (sequence_pairs(users[a:b], items[a:b], n_items, params.seq_source_len,
                                 params.seq_source_half_life, params.seq_targets, params.seq_stride)
                  for a, b in user_chunks(users, SEQUENCE_CHUNK_ROWS))
        sequential = fit_sequence_model(chunks, n_items, params.seq_l2)
        sequential *= 1.0 - params.ease_share
    return ItemModel(version, ids, ease, sequential, item_counts, params, {"interactions": len(items)})


class ModelRanker:
    """A model bound to a neighbour table: a ranking strategy (profile, catalogue, n) -> Ranked.

    The user's history (newest first) is recency-weighted (a long half-life for EASE, a short one
    for the sequence model) and scored with both matrices;
    films the model does not know (no interactions: most of the catalogue) are scored by their
    content similarity to the history, scaled to the user's best model score by `content_weight`,
    so they stay recommendable.
    """

    def __init__(self, model: ItemModel, table: NeighbourTable) -> None:
        self.model = model
        self.model_of_row = np.full(len(table), -1, dtype=np.int64)
        rows = np.array([table.row_of.get(m, -1) for m in model.ids], dtype=np.int64)
        known = rows >= 0
        self.model_of_row[rows[known]] = np.flatnonzero(known)
        self.row_of_model = rows
        self.served = np.flatnonzero(known)  # model films the catalogue has (the others cannot be shown)
        self.served_position = np.full(len(model.ids), -1, dtype=np.int64)
        self.served_position[self.served] = np.arange(len(self.served))
        self.version = model.version
        logged = np.log1p(model.counts[self.served].astype(np.float64))
        self.prior = model.params.popularity_weight * logged / max(float(logged.max(initial=0.0)), 1e-12)

    def __call__(self, profile: UserProfile, catalogue: Catalogue, n: int = 20) -> Ranked:
        params = self.model.params
        codes = self.model_of_row[profile.watched]
        positions = np.flatnonzero(codes >= 0)
        codes = codes[positions]
        positions = positions - (positions[0] if len(positions) else 0)
        scores = self._score(self.model.ease, codes, positions, params.ease_half_life, params)
        if self.model.sequence.size:
            scores += self._score(self.model.sequence, codes, positions, params.half_life, params)
        scores = scores[self.served] + self.prior
        rows = self.row_of_model[self.served]
        rows, scores = self._best(rows, scores, codes, catalogue, n)
        cold_rows, cold_scores = self._content_scores(profile, params)
        if not len(codes) and not len(cold_rows):
            return rank_popularity(profile, catalogue, n)
        if len(cold_rows):
            # Scaled to the user's best model score; a history of unmodelled films only: content first.
            best = float(scores.max()) if len(codes) and scores.size else 0.0
            scale = best if best > 0 else 1.0
            rows = np.concatenate([rows, cold_rows])
            scores = np.concatenate([scores, params.content_weight * scale * cold_scores])
        return _finish(rows, scores.astype(np.float64), profile, catalogue, n)

    def _best(self, rows: np.ndarray, scores: np.ndarray, watched_codes: np.ndarray, catalogue: Catalogue,
              n: int) -> tuple[np.ndarray, np.ndarray]:
        """The 4n best modelled films the user may get (history and disallowed films dropped), so the
        final sort works on a few dozen films instead of thousands."""
        positions = self.served_position[watched_codes]
        scores[positions[positions >= 0]] = -np.inf
        if catalogue.allowed is not None:
            scores[~catalogue.allowed[rows]] = -np.inf
        keep = np.flatnonzero(np.isfinite(scores))
        if len(keep) > 4 * n:
            keep = keep[np.argpartition(-scores[keep], 4 * n)[: 4 * n]]
        return rows[keep], scores[keep]

    @staticmethod
    def _score(matrix: np.ndarray, codes: np.ndarray, positions: np.ndarray, half_life: float,
               params: RankerParams) -> np.ndarray:
        weights = recency_weights(positions, half_life)
        used = weights >= params.min_relative_weight
        return score_items(matrix, codes[used], weights[used])

    def _content_scores(self, profile: UserProfile, params: RankerParams) -> tuple[np.ndarray, np.ndarray]:
        """Weighted mean content similarity of films the model does not know to the user's history."""
        if params.content_weight <= 0 or profile.size == 0 or profile.content_idx.shape[1] == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        weights = recency_weights(profile.recency - profile.recency.min(), params.half_life)
        used = weights >= params.min_relative_weight
        idx = profile.content_idx[used]
        cold = (idx >= 0) & (self.model_of_row[np.maximum(idx, 0)] < 0)
        idx = np.where(cold, idx, -1)
        rows, sums = _accumulate(idx, profile.content_sim[used] * weights[used][:, None])
        return rows, sums / float(weights[used].sum())


# ---- artifact files ------------------------------------------------------------------------------

def models_dir(data_dir: Path) -> Path:
    return Path(data_dir) / MODELS_DIR


def save_model(model: ItemModel, directory: Path, manifest: dict[str, Any]) -> Path:
    """Write `model.npz` and `manifest.json` into `directory` (the manifest last: its presence marks
    a complete artifact). Returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    tmp = directory / (ARTIFACT_FILE + ".tmp.npz")
    np.savez(tmp, ids=np.frombuffer("\n".join(model.ids).encode(), dtype=np.uint8), ease=model.ease,
             sequence=model.sequence, counts=model.counts)
    os.replace(tmp, directory / ARTIFACT_FILE)
    body = {"format": FORMAT_VERSION, "version": model.version, "params": asdict(model.params), **manifest}
    tmp_manifest = directory / (MANIFEST_FILE + ".tmp")
    tmp_manifest.write_text(json.dumps(body, indent=2, default=str) + "\n")
    os.replace(tmp_manifest, directory / MANIFEST_FILE)
    return directory


def list_versions(data_dir: Path) -> list[str]:
    """Complete artifacts (those with a manifest), oldest first (versions sort by time)."""
    root = models_dir(data_dir)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if (p / MANIFEST_FILE).is_file())


def artifact_dir(data_dir: Path, name: str) -> Path:
    """The directory of `name`: a version under the models directory, a path, or "" for the newest."""
    if not name:
        versions = list_versions(data_dir)
        if not versions:
            raise ModelMissing(f"no model artifact under {models_dir(data_dir)}; run `movierec train`")
        return models_dir(data_dir) / versions[-1]
    path = Path(name) if "/" in name else models_dir(data_dir) / name
    if not (path / MANIFEST_FILE).is_file():
        raise ModelMissing(f"no model artifact {name!r} ({path / MANIFEST_FILE} missing); "
                           f"known: {', '.join(list_versions(data_dir)) or 'none'}")
    return path


def read_manifest(directory: Path) -> dict[str, Any]:
    return json.loads((directory / MANIFEST_FILE).read_text())


def load_model(data_dir: Path, name: str = "") -> ItemModel:
    """Load the artifact `name` (see artifact_dir); raises ModelMissing."""
    directory = artifact_dir(data_dir, name)
    manifest = read_manifest(directory)
    if manifest.get("format") != FORMAT_VERSION:
        raise ModelMissing(f"{directory} has format {manifest.get('format')}, expected {FORMAT_VERSION}")
    known = set(RankerParams.__dataclass_fields__)
    params = RankerParams(**{k: v for k, v in manifest.get("params", {}).items() if k in known})
    with np.load(directory / ARTIFACT_FILE, allow_pickle=False) as data:
        raw = data["ids"].tobytes().decode()
        return ItemModel(manifest["version"], tuple(raw.split("\n")) if raw else (), data["ease"],
                         data["sequence"], data["counts"], params, manifest)


def interactions_frame(users: Iterable[int], movie_ids: Iterable[str], timestamps: Iterable[float]) -> pd.DataFrame:
    """The (user, movie_id, timestamp) frame fit_model expects."""
    return pd.DataFrame({"user": np.asarray(list(users), dtype=np.int64), "movie_id": list(movie_ids),
                         "timestamp": np.asarray(list(timestamps), dtype=np.float64)})
