"""The slug rule of stream-format.md, checked on its real examples and on edge cases."""

import pytest

from vectordb_scripts.slugs import SlugError, assign_unique_slugs, slug_words, slugify


@pytest.mark.parametrize(
    ("title", "year", "slug"),
    [
        ("The Hunger Games: Mockingjay - Part 1", 2014, "the+hunger+games+mockingjay+-+part+1+2014"),
        ("The Dark Knight", 2008, "the+dark+knight+2008"),
        ("The Green Mile", 1999, "the+green+mile+1999"),
        ("The Sound of Music", 1965, "the+sound+of+music+1965"),
    ],
)
def test_stream_format_examples(title: str, year: int, slug: str) -> None:
    assert slugify(title, year) == slug


@pytest.mark.parametrize(
    ("title", "year", "slug"),
    [
        ("Schindler's List", 1993, "schindlers+list+1993"),
        ("Face/Off", 1997, "faceoff+1997"),
        ("Spider-Man", 2002, "spider-man+2002"),
        ("Romeo + Juliet", 1996, "romeo+juliet+1996"),
        ("Fast & Furious", 2009, "fast+furious+2009"),
        ("Crouching Tiger, Hidden Dragon", 2000, "crouching+tiger+hidden+dragon+2000"),
        ("Who Framed Roger Rabbit?", 1988, "who+framed+roger+rabbit+1988"),
        ("(500) Days of Summer", 2009, "500+days+of+summer+2009"),
        ("Mission: Impossible - Ghost Protocol", 2011, "mission+impossible+-+ghost+protocol+2011"),
        ("  Too   many   spaces ", 2001, "too+many+spaces+2001"),
        ("M*A*S*H", 1970, "mash+1970"),
        ("Se7en = 7", 1995, "se7en+7+1995"),
    ],
)
def test_punctuation_is_dropped_hyphen_survives(title: str, year: int, slug: str) -> None:
    assert slugify(title, year) == slug


@pytest.mark.parametrize(
    ("title", "slug"),
    [
        ("Amélie", "amelie+2001"),
        ("Le Fabuleux Destin d'Amélie Poulain", "le+fabuleux+destin+damelie+poulain+2001"),
        ("Léon", "leon+2001"),
        ("Das Boot — Ünter Wasser", "das+boot+unter+wasser+2001"),
        ("Tōkyō Monogatari", "tokyo+monogatari+2001"),
        ("東京物語", "東京物語+2001"),
    ],
)
def test_accents_are_stripped_letters_of_any_script_kept(title: str, slug: str) -> None:
    assert slugify(title, 2001) == slug


def test_slug_is_safe_inside_stream_lines() -> None:
    slug = slugify('A/B, C=D + E: F\'s "G"\tH', 2020)
    assert not set(slug) & set("/,= \t:'\"")
    assert slug == "ab+cd+e+fs+g+h+2020"


def test_no_year_gives_no_suffix_and_empty_title_fails() -> None:
    assert slugify("Heat", None) == "heat"
    assert slug_words("The Matrix: Reloaded") == ["the", "matrix", "reloaded"]
    with pytest.raises(SlugError):
        slugify("$", 1971)
    with pytest.raises(SlugError):
        slugify("...", 2000)


def test_collisions_get_numbered_suffixes_in_priority_order() -> None:
    films = [("Hamlet", 1990), ("Hamlet", 1996), ("Hamlet", 1990), ("HAMLET!", 1990), ("Heat", 1995)]
    assert assign_unique_slugs(films) == ["hamlet+1990", "hamlet+1996", "hamlet+1990+2", "hamlet+1990+3", "heat+1995"]


def test_collision_suffix_skips_slugs_already_taken() -> None:
    slugs = assign_unique_slugs([("Hamlet", 1990), ("Hamlet", 1990)], taken={"hamlet+1990+2"})
    assert slugs == ["hamlet+1990", "hamlet+1990+3"]
    assert len(set(assign_unique_slugs([("Up", 2009)] * 50))) == 50
