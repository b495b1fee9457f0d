"""The inference app (Flask test client) on real PostgreSQL and a real MiniLM/ChromaDB index."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from movierec.base.ports import free_port
from tests.inference.conftest import add_history
from tests.inference.small_catalog import CLUSTERS, FILMS
from tests.support import metric_value
from vectordb_scripts.table import load_table

ALL_IDS = {f[0] for f in FILMS}
SPACE = CLUSTERS["space"]


def ids_of(response: Any) -> list[str]:
    return response.get_data(as_text=True).strip().split(",")


def test_contract_twenty_ids_text_plain_one_line(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    add_history(pg_engine, 7, SPACE[:3], {SPACE[0]: 5, SPACE[1]: 4})
    response = make_client().get("/recommend/7")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert "\n" not in body.strip()
    ids = ids_of(response)
    assert len(ids) == 20 and len(set(ids)) == 20
    assert set(ids) <= ALL_IDS
    assert response.headers["X-Model-Version"] == "blend-v1"


def test_watched_and_rated_films_are_never_recommended(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    watched = SPACE + CLUSTERS["crime"][:2]
    add_history(pg_engine, 11, watched, {SPACE[0]: 5, "toy+story+1995": 4})  # rated without a watch row
    for strategy in ("seed", "blend", "popularity", "itemknn"):
        ids = ids_of(make_client(INFERENCE_STRATEGY=strategy).get("/recommend/11"))
        assert len(ids) == 20
        assert not set(ids) & (set(watched) | {"toy+story+1995"}), strategy


def test_seed_answer_matches_the_original_formula(make_client: Callable[..., Any], pg_engine: Engine,
                                                  indexed_data_dir: Path) -> None:
    # User: alien rated 5, the shining unrated (counts 3), pretty woman rated 1 (does not qualify).
    add_history(pg_engine, 21, ["alien+1979", "the+shining+1980", "pretty+woman+1990"],
                {"alien+1979": 5, "pretty+woman+1990": 1})
    table = load_table(indexed_data_dir / "index" / "neighbours.npz")
    popularity = {movie_id: float(p) for movie_id, p in zip(table.ids, table.popularity, strict=True)}
    sums: dict[str, float] = {}
    for source, rating in (("alien+1979", 5), ("the+shining+1980", 3)):
        for j in table.content_idx[table.row_of[source]]:
            sums[table.ids[j]] = sums.get(table.ids[j], 0.0) + rating
    watched = {"alien+1979", "the+shining+1980", "pretty+woman+1990"}
    expected = sorted(((s * popularity[m], m) for m, s in sums.items() if m not in watched),
                      key=lambda x: (-x[0], -popularity[x[1]], table.row_of[x[1]]))
    response = make_client(INFERENCE_STRATEGY="seed").get("/recommend/21?format=json")
    body = response.get_json()
    assert body["model_version"] == "seed-v1" and body["kind"] == "personalised"
    got = [(r["score"], r["movie_id"]) for r in body["recommendations"]]
    assert [m for _, m in got[: len(expected)]] == [m for _, m in expected][:20]
    assert [s for s, _ in got[: len(expected)]] == pytest.approx([s for s, _ in expected][:20], rel=1e-5)


def test_blend_recommends_the_same_cluster_first(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    add_history(pg_engine, 31, CLUSTERS["western"][:3], {m: 5 for m in CLUSTERS["western"][:3]})
    ids = ids_of(make_client().get("/recommend/31"))
    assert set(ids[:3]) <= set(CLUSTERS["western"][3:])


def test_json_format_by_accept_header_and_query(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    add_history(pg_engine, 41, SPACE[:2])
    client = make_client(MODEL_VERSION="blend-test7")
    for response in (client.get("/recommend/41", headers={"Accept": "application/json"}),
                     client.get("/recommend/41?format=json")):
        assert response.status_code == 200 and response.mimetype == "application/json"
        body = response.get_json()
        assert body["model_version"] == "blend-test7" == response.headers["X-Model-Version"]
        assert body["user_id"] == 41 and body["kind"] == "personalised" and body["fallback_reason"] is None
        scores = [r["score"] for r in body["recommendations"]]
        assert len(scores) == 20 and scores[0] > 0
        personal = [s for s in scores if s > 0]
        assert personal == sorted(personal, reverse=True)
    text_ids = ids_of(client.get("/recommend/41", headers={"Accept": "text/plain"}))
    assert text_ids == [r["movie_id"] for r in body["recommendations"]]
    for accept, json_wanted in (("*/*", False), ("text/*", False), ("", False),
                                ("text/plain;q=0.1, application/json", True), ("application/*", True)):
        answer = client.get("/recommend/41", headers={"Accept": accept} if accept else {})
        assert answer.mimetype == ("application/json" if json_wanted else "text/plain"), accept


def test_unknown_user_gets_popular_good_films(make_client: Callable[..., Any], pg_engine: Engine,
                                             indexed_data_dir: Path) -> None:
    table = load_table(indexed_data_dir / "index" / "neighbours.npz")
    body = make_client().get("/recommend/999999?format=json").get_json()
    assert body["kind"] == "cold_start"
    ids = [r["movie_id"] for r in body["recommendations"]]
    assert ids == [table.ids[r] for r in table.popular_order[:20]]
    assert ids[0] in {"the+godfather+1972", "titanic+1997", "star+wars+1977"}  # popular and well rated


@pytest.mark.parametrize("raw", ["abc", "-5", "0", "000", "1.5", "1e3", str(2**63), "9" * 30, "12%2034", "1%0A", "",
                                 "/1"])
def test_bad_user_ids_get_400_with_a_message(make_client: Callable[..., Any], raw: str) -> None:
    response = make_client().get(f"/recommend/{raw}")
    assert response.status_code == 400
    assert "user id" in response.get_data(as_text=True)
    assert make_client().get(f"/recommend/{raw}?format=json").get_json()["error"]


@pytest.mark.parametrize(("query", "json_answer"), [("?format=json", True), ("?format=text", False), ("", False)])
def test_format_chooses_the_answer_and_anything_else_is_400(make_client: Callable[..., Any], query: str,
                                                            json_answer: bool) -> None:
    response = make_client().get(f"/recommend/5{query}")
    assert response.status_code == 200 and response.is_json == json_answer
    for bad in ("xml", "JSON", ""):
        answer = make_client().get(f"/recommend/5?format={bad}")
        assert answer.status_code == 400 and "format" in answer.get_data(as_text=True)


def test_largest_valid_user_id_is_accepted(make_client: Callable[..., Any]) -> None:
    assert make_client().get(f"/recommend/{2**63 - 1}").status_code == 200  # db_utils.ids: BIGINT


def test_database_down_answers_fallback_and_counts_it(make_client: Callable[..., Any]) -> None:
    dead = f"postgresql+psycopg2://root@127.0.0.1:{free_port()}/test"
    client = make_client(DATABASE_URL=dead, MODEL_VERSION="blend-dbdown")
    before = metric_value(client.get("/metrics").get_data(as_text=True), "movierec_recommend_fallbacks_total",
                          version="blend-dbdown", reason="database")
    response = client.get("/recommend/5?format=json")
    assert response.status_code == 200
    body = response.get_json()
    assert body["kind"] == "fallback" and body["fallback_reason"] == "database"
    assert len(body["recommendations"]) == 20
    assert len(ids_of(client.get("/recommend/5"))) == 20
    metrics = client.get("/metrics").get_data(as_text=True)
    assert metric_value(metrics, "movierec_recommend_fallbacks_total", version="blend-dbdown",
                        reason="database") == before + 2
    assert metric_value(metrics, "movierec_recommendations_total", version="blend-dbdown", kind="fallback") >= 2
    health = client.get("/health").get_json()
    assert health["status"] == "degraded" and health["db"].startswith("down")


def test_index_missing_serves_from_catalogue_and_chroma(make_client: Callable[..., Any], pg_engine: Engine,
                                                        indexed_data_dir: Path, tmp_path: Path) -> None:
    add_history(pg_engine, 51, SPACE[:2], {SPACE[0]: 5})
    full = make_client(INFERENCE_STRATEGY="seed").get("/recommend/51?format=json").get_json()
    # No neighbour table: ChromaDB answers one batched query for the history films.
    missing = str(tmp_path / "nope.npz")
    client = make_client(INFERENCE_STRATEGY="seed", INFERENCE_INDEX_PATH=missing)
    body = client.get("/recommend/51?format=json").get_json()
    assert body["kind"] == "personalised"
    assert [r["movie_id"] for r in body["recommendations"]] == [r["movie_id"] for r in full["recommendations"]]
    assert client.get("/health").get_json()["index"]["status"].startswith("missing")


def test_index_and_chroma_missing_still_answers(make_client: Callable[..., Any], pg_engine: Engine,
                                                indexed_data_dir: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "var"
    shutil.copytree(indexed_data_dir / "catalog", data_dir / "catalog")  # catalogue only: no index, no chroma
    add_history(pg_engine, 61, SPACE[:2], {SPACE[0]: 5})
    client = make_client(MOVIEREC_DATA_DIR=str(data_dir), MODEL_VERSION="blend-noindex")
    body = client.get("/recommend/61?format=json").get_json()
    assert body["kind"] == "fallback" and body["fallback_reason"] == "vector_index"
    ids = [r["movie_id"] for r in body["recommendations"]]
    assert len(ids) == 20 and not set(ids) & set(SPACE[:2])
    assert client.get("/recommend/123456?format=json").get_json()["kind"] == "cold_start"
    metrics = client.get("/metrics").get_data(as_text=True)
    assert metric_value(metrics, "movierec_recommend_fallbacks_total", version="blend-noindex",
                        reason="vector_index") == 1


def test_health_and_metrics(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    client = make_client(MODEL_VERSION="blend-health")
    health = client.get("/health")
    assert health.status_code == 200 and health.headers["X-Model-Version"] == "blend-health"
    body = health.get_json()
    assert body["status"] == "ok" and body["db"] == "ok"
    assert body["index"]["status"] == "ok" and body["index"]["films"] == 36 and body["index"]["cooccurrence"]
    client.get("/recommend/77")
    metrics = client.get("/metrics").get_data(as_text=True)
    assert 'movierec_build_info{service="inference",version="blend-health"} 1.0' in metrics
    assert metric_value(metrics, "movierec_recommendations_total", version="blend-health", kind="cold_start") == 1
    assert metric_value(metrics, "movierec_recommend_duration_seconds_count", version="blend-health") == 1
    assert metric_value(metrics, "movierec_http_requests_total", service="inference",
                        endpoint="/recommend/<anytext:raw_user_id>", status="200") >= 1


def test_chroma_server_down_is_a_counted_fallback_without_a_table(make_client: Callable[..., Any],
                                                                  pg_engine: Engine, tmp_path: Path) -> None:
    add_history(pg_engine, 71, SPACE[:2], {SPACE[0]: 5})
    client = make_client(CHROMA_URL=f"http://127.0.0.1:{free_port()}", INFERENCE_INDEX_PATH=str(tmp_path / "x.npz"),
                         MODEL_VERSION="blend-chromadown")
    for _ in range(2):  # the second request does not even try: the breaker skips ChromaDB
        body = client.get("/recommend/71?format=json").get_json()
        assert body["kind"] == "fallback" and body["fallback_reason"] == "vector_index"
        assert len(body["recommendations"]) == 20
    metrics = client.get("/metrics").get_data(as_text=True)
    assert metric_value(metrics, "movierec_recommend_fallbacks_total", version="blend-chromadown",
                        reason="vector_index") == 2


def test_unknown_films_in_history_do_not_need_chroma_when_the_table_has_the_rest(
        make_client: Callable[..., Any], pg_engine: Engine) -> None:
    add_history(pg_engine, 81, ["garbage+film+9999", *CLUSTERS["crime"][:2]])
    client = make_client(CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    body = client.get("/recommend/81?format=json").get_json()
    assert body["kind"] == "personalised"
    ids = [r["movie_id"] for r in body["recommendations"]]
    assert ids[0] in CLUSTERS["crime"] and not set(ids) & set(CLUSTERS["crime"][:2])


def test_live_chroma_neighbours_answer_like_the_table(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    """INFERENCE_NEIGHBOURS=chroma (the original design) asks ChromaDB on every request, uncached."""
    add_history(pg_engine, 91, SPACE[:3], {SPACE[0]: 5, SPACE[1]: 4})
    table_body = make_client(INFERENCE_STRATEGY="seed").get("/recommend/91?format=json").get_json()
    client = make_client(INFERENCE_STRATEGY="seed", INFERENCE_NEIGHBOURS="chroma")
    service = client.application.extensions["movierec_inference"]
    asked: list[list[str]] = []
    lookup = service.recommender.chroma.lookup
    service.recommender.chroma.lookup = lambda ids: asked.append(list(ids)) or lookup(ids)
    for _ in range(2):
        body = client.get("/recommend/91?format=json").get_json()
        assert body["kind"] == "personalised"
        assert [r["movie_id"] for r in body["recommendations"]] == \
            [r["movie_id"] for r in table_body["recommendations"]]
    assert asked == [SPACE[:3][::-1]] * 2 and not service.recommender.chroma._cache
    assert client.get("/health").get_json()["neighbours"] == "chroma"


def test_live_chroma_down_falls_back_to_the_table(make_client: Callable[..., Any], pg_engine: Engine) -> None:
    add_history(pg_engine, 92, CLUSTERS["crime"][:2])
    client = make_client(INFERENCE_NEIGHBOURS="chroma", CHROMA_URL=f"http://127.0.0.1:{free_port()}")
    body = client.get("/recommend/92?format=json").get_json()
    assert body["kind"] == "personalised" and body["recommendations"][0]["movie_id"] in CLUSTERS["crime"]


def test_neighbour_source_is_checked_at_start(make_settings: Callable[..., Any]) -> None:
    from movierec.base.settings import ConfigError

    assert make_settings().neighbours == "table"
    with pytest.raises(ConfigError, match="INFERENCE_NEIGHBOURS"):
        make_settings(INFERENCE_NEIGHBOURS="faiss")
