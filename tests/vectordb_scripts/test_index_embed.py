"""Film texts, hashes and the real all-MiniLM-L6-v2 model loaded offline from its package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vectordb_scripts.embed import (
    EMBEDDING_DIM,
    ModelUnavailable,
    embed_texts,
    load_model,
    model_id,
    movie_text,
    resolve_model_path,
    text_hash,
)


def test_movie_text_layout() -> None:
    movie = {"title": "Heat", "year": 1995.0, "genres": "Crime|Action", "overview": "A detective hunts a thief."}
    assert movie_text(movie) == "Heat (1995). Genres: Crime, Action. A detective hunts a thief."
    assert movie_text({"title": "Untitled", "year": None, "genres": None, "overview": float("nan")}) == "Untitled."


def test_text_hash_changes_with_text_and_model() -> None:
    base = text_hash("Heat (1995).", model_id())
    assert base == text_hash("Heat (1995).", model_id())
    assert base != text_hash("Heat (1996).", model_id())
    assert base != text_hash("Heat (1995).", model_id(Path("/elsewhere")))


def test_missing_model_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="no sentence-transformers model"):
        resolve_model_path(tmp_path)
    with pytest.raises(ModelUnavailable):
        load_model(tmp_path / "absent")


def test_real_model_embeds_offline_and_normalised() -> None:
    model = load_model()
    texts = [
        "Star Wars (1977). A farm boy joins the rebels in space.",
        "The Empire Strikes Back (1980). The rebels flee across the galaxy.",
        "Pretty Woman (1990). A businessman falls in love in Los Angeles.",
    ]
    vectors = embed_texts(model, texts, batch_size=2, progress=False)
    assert vectors.shape == (3, EMBEDDING_DIM) and vectors.dtype == np.float32
    assert np.linalg.norm(vectors, axis=1) == pytest.approx([1, 1, 1], abs=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # space opera sequels are closer
    assert embed_texts(model, [], progress=False).shape == (0, EMBEDDING_DIM)
