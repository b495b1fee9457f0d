"""Movie ids: catalogue slugs, exactly as the course stream wrote them (see stream-format.md).

Rule, derived from the stream's real examples (`the+dark+knight+2008`,
`the+hunger+games+mockingjay+-+part+1+2014` for "The Hunger Games: Mockingjay - Part 1"):

1. accents are stripped (NFKD, combining marks dropped: "Amélie" -> "amelie"), then lower-cased;
2. the title is split on whitespace into words;
3. in each word every character that is not a letter, a digit or `-` is dropped
   ("Schindler's" -> "schindlers", "Mockingjay:" -> "mockingjay", "Face/Off" -> "faceoff");
   a hyphen survives, so a lone `-` stays a word of its own and "Spider-Man" -> "spider-man";
4. words left empty are skipped; the rest are joined with `+`, then `+<year>` is appended.

`+`, `/`, `,`, `=` and whitespace never survive, so a slug is safe inside every stream line.

Collisions (two different films with the same title and year) are resolved by
`assign_unique_slugs`: films are taken in the caller's priority order (the catalogue passes
them most popular first); the first keeps the plain slug, the next ones get `+2`, `+3`, ...
appended after the year (e.g. `hamlet+1990+2`), the smallest suffix not already taken.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable


class SlugError(ValueError):
    """A title that leaves no word once punctuation is dropped (e.g. "$" or "...")."""


def strip_accents(text: str) -> str:
    """`text` with accents removed ("Amélie" -> "Amelie"); other characters untouched."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _clean_word(word: str) -> str:
    return "".join(ch for ch in word if ch.isalnum() or ch == "-")


def slug_words(title: str) -> list[str]:
    """The words of `title` as they appear in its slug (without the year)."""
    lowered = strip_accents(title).lower()
    return [cleaned for cleaned in (_clean_word(word) for word in lowered.split()) if cleaned]


def slugify(title: str, year: int | None) -> str:
    """The catalogue slug of a film: `slugify("The Dark Knight", 2008) == "the+dark+knight+2008"`.

    Raises SlugError when the title has no letter or digit left (nothing to name the film by).
    A film without a known year gets no year suffix.
    """
    words = slug_words(title)
    if not words:
        raise SlugError(f"title {title!r} leaves no word for a slug")
    if year is not None:
        words.append(str(int(year)))
    return "+".join(words)


def assign_unique_slugs(films: Iterable[tuple[str, int | None]], taken: Iterable[str] = ()) -> list[str]:
    """Unique slugs for `(title, year)` pairs, in the given priority order.

    The first film with a given slug keeps it; later ones get `+2`, `+3`, ... (smallest free).
    `taken` are slugs already in use that must not be handed out again.
    """
    used = set(taken)
    result: list[str] = []
    for title, year in films:
        base = slugify(title, year)
        slug, counter = base, 1
        while slug in used:
            counter += 1
            slug = f"{base}+{counter}"
        used.add(slug)
        result.append(slug)
    return result
