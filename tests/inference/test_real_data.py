"""Slow: the real ~27K-film catalogue indexed with MiniLM, the real ML-1M offline evaluation and gate.

`real_index_dir` (tests/conftest.py) builds the index once into the shared test data dir
(incremental: a later run only checks hashes).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import Engine

from inference.offline_eval import main as offline_main
from tests.inference.conftest import add_history
from vectordb_scripts.catalog_io import load_catalog
from vectordb_scripts.table import load_table

pytestmark = pytest.mark.slow


def test_real_table_covers_the_catalogue_with_sensible_neighbours(real_index_dir: Path) -> None:
    table = load_table(real_index_dir / "index" / "neighbours.npz")
    catalog = load_catalog(real_index_dir)
    assert len(table) == len(catalog) > 25000
    assert table.has_content and table.has_cooccurrence
    toy_story = table.row_of["toy+story+1995"]
    assert "toy+story+2+1999" in {table.ids[j] for j in table.content_idx[toy_story]}
    assert "toy+story+2+1999" in {table.ids[j] for j in table.cooc_idx[toy_story][:10]}
    assert (table.content_idx >= 0).all()


def test_real_offline_eval_and_release_gate(real_index_dir: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    args = ["--data-dir", str(real_index_dir), "--report-dir", str(tmp_path), "--max-users", "400",
            "--strategies", "seed,blend,popularity"]
    assert offline_main([*args, "--gate", "blend", "--min-hr", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "gate passed" in out
    report = (tmp_path / "offline-eval.md").read_text()
    assert "| blend |" in report and "| seed |" in report and "| popularity |" in report
    assert (tmp_path / "offline-eval.png").is_file()
    # An impossible minimum fails the gate with a non-zero exit.
    assert offline_main([*args, "--gate", "blend", "--min-hr", "0.99"]) == 1


def test_service_on_the_real_index(real_index_dir: Path, postgres_url: str, pg_engine: Engine) -> None:
    from inference.app import create_app
    from inference.settings import InferenceSettings

    watched = ["star+wars+1977", "the+empire+strikes+back+1980", "return+of+the+jedi+1983"]
    add_history(pg_engine, 501, watched, dict.fromkeys(watched, 5))
    settings = InferenceSettings.from_env({"MOVIEREC_DATA_DIR": str(real_index_dir), "DATABASE_URL": postgres_url,
                                           "CHROMA_URL": ""})
    app = create_app(settings)
    try:
        client = app.test_client()
        body = client.get("/recommend/501?format=json").get_json()
        ids = [r["movie_id"] for r in body["recommendations"]]
        assert body["kind"] == "personalised" and len(ids) == 20 and not set(ids) & set(watched)
        assert client.get("/health").get_json()["index"]["films"] > 25000
    finally:
        app.extensions["movierec_inference"].history.dispose()
