"""Merging, popularity, selection, slugs and descriptions on tiny hand-made frames."""

import math

import pandas as pd
import pytest

from vectordb_scripts.catalog import (
    MOVIE_COLUMNS,
    attach_wikipedia,
    finish_catalog,
    genre_phrase,
    merge_films,
    popularity_scores,
    select_films,
    template_description,
)
from vectordb_scripts.sources import RECORD_COLUMNS


def _records(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for column in RECORD_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    return frame


@pytest.fixture
def records() -> pd.DataFrame:
    return _records([
        {"film": 0, "source": "ml1m", "title": "The Matrix", "year": 1999, "ml1m_id": 2571, "genres": "Action|Sci-Fi",
         "ml_ratings": 100, "vote_average": 8.6, "vote_count": 100},
        {"film": 0, "source": "tmdb", "title": "The Matrix", "year": 1999, "tmdb_id": 603, "genres": "Action",
         "overview": "A hacker learns the truth.", "runtime": 136, "vote_average": 7.9, "vote_count": 8907,
         "tmdb_votes": 8907, "director": "Lana Wachowski|Lilly Wachowski", "cast": "Keanu Reeves"},
        {"film": 0, "source": "imdb", "title": "The Matrix", "year": 1999, "runtime": 135, "imdb_votes": 100},
        {"film": 1, "source": "imdb", "title": "Obscure", "year": 1950, "runtime": 80, "imdb_votes": 10,
         "vote_average": 6.1, "vote_count": 10},
        {"film": 2, "source": "omdb", "title": "Recent", "year": 2012, "imdb_id": "tt1", "rt_reviews": 10,
         "genres": "Comedy|Drama", "director": "Jane Doe", "cast": "A B|C D|E F|G H"},
        {"film": 3, "source": "ml1m", "title": "Unrated ML film", "year": 1996, "ml1m_id": 7},
    ])  # fmt: skip


def test_fields_come_from_the_first_dataset_that_has_them(records: pd.DataFrame) -> None:
    films = merge_films(records)
    matrix = films.loc[0]
    assert (matrix["title"], matrix["tmdb_id"], matrix["ml1m_id"], matrix["runtime"]) == ("The Matrix", 603, 2571, 136)
    assert matrix["genres"] == "Action"  # TMDB before MovieLens
    assert (matrix["vote_average"], matrix["vote_count"]) == (7.9, 8907)  # taken together
    assert matrix["sources"] == "ml1m|tmdb|imdb"
    assert matrix["field_sources"]["runtime"] == "tmdb" and matrix["field_sources"]["ml1m_id"] == "ml1m"
    assert films.loc[1, "field_sources"]["runtime"] == "imdb"
    assert pd.isna(films.loc[2, "vote_average"]) and films.loc[2, "imdb_id"] == "tt1"


def test_popularity_is_a_blend_of_log_scaled_signals(records: pd.DataFrame) -> None:
    scores = popularity_scores(records)
    # film 0 is top of every signal it has: log1p(max)/log1p(max) = 1 for each
    assert scores.loc[0, "popularity"] == pytest.approx(100.0)
    # film 1: imdb votes 10 against a maximum of 100
    scaled = math.log1p(10) / math.log1p(100)
    assert scores.loc[1, "popularity"] == pytest.approx(100 * scaled, abs=1e-3)
    assert scores.loc[1, "popularity_source"] == "imdb"
    assert scores.loc[0, "popularity_source"].split("+")[0] in {"imdb", "tmdb", "movielens"}
    assert set(scores.loc[0, "popularity_source"].split("+")) == {"imdb", "tmdb", "movielens"}
    assert 3 not in scores.index or pd.isna(scores.loc[3, "popularity_source"])  # no signal at all


def test_selection_forces_movielens_then_fills_by_popularity(records: pd.DataFrame) -> None:
    films = merge_films(records)
    forced = pd.Series({0: True, 1: False, 2: False, 3: True})
    chosen = select_films(films, forced, target_size=3)
    assert set(chosen.index) == {0, 3, 2}  # "Recent" (RT 10 of 10 reviews) beats "Obscure" (10 of 100 votes)
    assert set(select_films(films, forced, target_size=1).index) == {0, 3}  # forced films always stay


def test_finish_catalog_slugs_descriptions_and_columns(records: pd.DataFrame) -> None:
    films = merge_films(records)
    films.loc[1, "title"] = "The Matrix"  # a namesake of the same year: a collision
    films.loc[1, "year"] = 1999
    wiki = pd.DataFrame({"text": ["An obscure plot."], "kind": ["plot"]}, index=pd.Index([1], name="film"))
    catalog = finish_catalog(films, wiki)
    assert list(catalog.columns) == MOVIE_COLUMNS
    by_film = catalog["id"].to_dict()
    assert by_film[0] == "the+matrix+1999" and by_film[1] == "the+matrix+1999+2"  # the popular one keeps it
    assert catalog.loc[0, "description_source"] == "tmdb"
    assert catalog.loc[1, "overview"] == "An obscure plot." and catalog.loc[1, "description_source"] == "wikipedia"
    assert catalog.loc[1, "field_sources"]["overview"] == "wikipedia_plot"
    assert catalog.loc[2, "description_source"] == "template"
    assert catalog.loc[2, "overview"] == "2012 comedy-drama film, directed by Jane Doe, starring A B, C D, E F."
    assert not catalog["adult"].any()


def test_template_uses_only_real_fields() -> None:
    assert template_description(1987, "Comedy|Drama", 102, "X", "Y") == (
        "1987 comedy-drama film, 102 min, directed by X, starring Y."
    )
    assert template_description(1995, "Action|Adventure|Fantasy", None, None, None) == (
        "1995 action, adventure and fantasy film."
    )
    assert template_description(2001, None, float("nan"), "A|B|C", "P|Q|R|S") == (
        "2001 film, directed by A and B, starring P, Q, R."
    )
    assert template_description(None, None, None, None, None) == "Film."
    assert genre_phrase("Sci-Fi") == "sci-fi"


def test_wikipedia_texts_attach_only_when_unambiguous() -> None:
    films = pd.DataFrame(index=pd.Index([0, 1, 2, 3], name="film"))
    keys = pd.DataFrame(
        {
            "film": [0, 1, 2, 3],
            "key": ["vertigo", "heat", "heat", "psycho"],
            "year": [1958, 1986, 1995, 1960],
        }
    )
    wiki = pd.DataFrame(
        {
            "title": ["Vertigo", "Heat", "Heat", "Psycho", "Vertigo"],
            "year": [pd.NA, pd.NA, 1995, 1960, 1958],
            "text": ["vertigo plot", "which heat?", "heat 1995 lead", "psycho lead", "vertigo lead"],
            "kind": ["plot", "plot", "lead", "lead", "lead"],
        }
    )
    found = attach_wikipedia(films, keys, wiki)
    assert found.loc[0, "text"] == "vertigo plot"  # a plot wins over a lead section
    assert pd.isna(found.loc[1, "text"])  # two films called Heat: a yearless text is not guessed
    assert found.loc[2, "text"] == "heat 1995 lead"  # the year decides
    assert found.loc[3, "kind"] == "lead"
