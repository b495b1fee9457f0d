"""Title normalisation and cross-dataset matching on tiny hand-made inputs."""

import pandas as pd
import pytest

from vectordb_scripts.catalog import MatchRecord, match_records, record_keys, record_part_keys
from vectordb_scripts.titles import (
    move_trailing_article,
    split_alternative_titles,
    split_title_year,
    title_key,
    title_part_keys,
)


@pytest.mark.parametrize(
    ("raw", "natural"),
    [
        ("Matrix, The", "The Matrix"),
        ("Grande illusion, La", "La Grande illusion"),
        ("Argent, L'", "L'Argent"),
        ("Godfather: Part II, The", "The Godfather: Part II"),
        ("McFarland, USA", "McFarland, USA"),
        ("Crouching Tiger, Hidden Dragon", "Crouching Tiger, Hidden Dragon"),
        ("Toy Story", "Toy Story"),
    ],
)
def test_trailing_article_moves_to_the_front(raw: str, natural: str) -> None:
    assert move_trailing_article(raw) == natural


def test_movielens_alternative_titles_and_years() -> None:
    assert split_alternative_titles("Postino, Il (The Postman)") == ("Il Postino", ["The Postman"])
    assert split_alternative_titles("Seven (a.k.a. Se7en)") == ("Seven", ["Se7en"])
    assert split_alternative_titles("City of Lost Children, The (Cité des enfants perdus, La)") == (
        "The City of Lost Children",
        ["La Cité des enfants perdus"],
    )
    assert split_alternative_titles("(500) Days of Summer") == ("(500) Days of Summer", [])
    assert split_title_year("Matrix, The (1999)") == ("Matrix, The", 1999)
    assert split_title_year("Unknown title") == ("Unknown title", None)


def test_title_keys_ignore_case_articles_accents_and_punctuation() -> None:
    assert title_key("The Matrix") == title_key("Matrix, The") == title_key("MATRIX") == "matrix"
    assert title_key("Amélie") == title_key("Amelie")
    assert title_key("Schindler's List") == title_key("Schindlers List")
    assert title_key("Fast & Furious") == title_key("Fast and Furious")
    assert title_key("Rocky II") == title_key("Rocky 2")
    assert title_key("Kill Bill: Vol. 1") == title_key("Kill Bill: Volume 1")
    assert title_key("Alien³") == title_key("Alien 3")
    assert title_key("A") == "a"  # a one-word title keeps its only word


def test_title_part_keys() -> None:
    assert title_part_keys("Star Wars: Episode V - The Empire Strikes Back") == ("star wars", "empire strikes back")
    assert title_part_keys("The Hunger Games: Mockingjay - Part 1") == ("hunger games",)
    assert title_part_keys("Heat") == ()


def _match(rows: list[tuple[str, str, int | None]], **kwargs) -> list[int]:
    records = []
    for source, title, year in rows:
        keys = record_keys(title)
        records.append(MatchRecord(source, keys, year, record_part_keys(title, keys)))
    return match_records(records, **kwargs)


def test_same_title_matches_within_one_year_only() -> None:
    films = _match(
        [
            ("ml1m", "Hamlet", 1990),
            ("tmdb", "Hamlet", 1991),  # one year off: same film
            ("imdb", "Hamlet", 1996),  # another film
            ("omdb", "Hamlet", 1992),  # two years off the 1990 film: another film
        ]
    )
    assert films == [0, 0, 1, 2]


def test_title_the_forms_match_and_exact_year_is_preferred() -> None:
    films = _match(
        [
            ("ml1m", "Matrix, The", 1999),
            ("ml1m", "Matrix, The", 2000),  # a second ML film one year later (hypothetical)
            ("tmdb", "The Matrix", 2000),
        ]
    )
    assert films == [0, 1, 1]


def test_two_records_of_one_dataset_stay_two_films() -> None:
    films = _match([("imdb", "Bound", 1996), ("imdb", "Bound", 1996), ("tmdb", "Bound", 1996)])
    assert films == [0, 1, 0]


def test_dedupe_sources_merge_their_exact_duplicates() -> None:
    rows = [("ml100k", "Chasing Amy", 1997), ("ml100k", "Chasing Amy", 1997), ("ml100k", "Chasing Amy", 1998)]
    assert _match(rows, dedupe_sources={"ml100k"}) == [0, 0, 1]
    assert _match(rows) == [0, 1, 2]


def test_title_parts_match_on_the_exact_year_only() -> None:
    films = _match(
        [
            ("ml1m", "Star Wars: Episode IV - A New Hope", 1977),
            ("ml1m", "Star Wars: Episode V - The Empire Strikes Back", 1980),
            ("tmdb", "Star Wars", 1977),
            ("tmdb", "The Empire Strikes Back", 1980),
            ("imdb", "Star Wars: Holiday Special", 1978),  # a part key needs the very same year
        ]
    )
    assert films == [0, 1, 0, 1, 2]


def test_alternative_titles_are_keys_too() -> None:
    main, alternatives = split_alternative_titles("Postino, Il (The Postman)")
    keys = record_keys(main, alternatives)
    records = [MatchRecord("ml1m", keys, 1994), MatchRecord("tmdb", record_keys("The Postman"), 1995)]
    assert match_records(records) == [0, 0]


def test_records_without_year_never_match() -> None:
    assert _match([("ml100k", "Unknown", None), ("imdb", "Unknown", 1990)]) == [0, 1]
    assert record_keys("x", pd.NA) == ("x",)
