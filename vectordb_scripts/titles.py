"""Title normalisation shared by the readers and the matcher (pure functions).

Datasets write the same film differently: MovieLens "Matrix, The", "Postino, Il (The Postman)",
"Seven (a.k.a. Se7en)"; IMDb "Matrix, The"; TMDB "The Matrix". `display_title` turns the
"Title, The" forms into natural order and `title_key` gives the aggressive key films are
matched on (with their year, within one year).
"""

from __future__ import annotations

import functools
import re

from vectordb_scripts.slugs import strip_accents

# Articles that datasets move to the end ("Matrix, The", "Grande illusion, La", "Argent, L'").
TRAILING_ARTICLES = (
    "The",
    "A",
    "An",
    "La",
    "Le",
    "Les",
    "L'",
    "Il",
    "Lo",
    "Gli",
    "I",
    "Un",
    "Une",
    "Uno",
    "Una",
    "El",
    "Los",
    "Las",
    "Der",
    "Die",
    "Das",
    "Den",
    "Det",
    "De",
    "Het",
    "Ein",
    "Eine",
    "O",
    "Os",
    "As",
)
_TRAILING_ARTICLE = re.compile(
    r"^(?P<body>.+?), (?P<article>" + "|".join(re.escape(a) for a in TRAILING_ARTICLES) + r")$"
)
# Leading words dropped from match keys only.
_KEY_ARTICLES = {"the", "a", "an", "la", "le", "les", "l", "il", "el", "los", "las", "der", "die", "das"}
_TRAILING_PARENS = re.compile(r"^(?P<body>.*\S)\s*\((?P<inner>[^()]*)\)$")
_YEAR_SUFFIX = re.compile(r"^(?P<title>.*\S)\s*\((?P<year>\d{4})\)$")


def move_trailing_article(title: str) -> str:
    """ "Matrix, The" -> "The Matrix"; "Argent, L'" -> "L'Argent"; other titles unchanged."""
    title = title.strip()
    match = _TRAILING_ARTICLE.match(title)
    if not match:
        # "Godfather: Part II, The" and "Matrix, The: Reloaded"-like forms: article before a colon
        head, sep, tail = title.partition(": ")
        if sep and _TRAILING_ARTICLE.match(head):
            return f"{move_trailing_article(head)}: {tail}"
        return title
    article, body = match["article"], match["body"]
    return f"{article}{body}" if article.endswith("'") else f"{article} {body}"


def split_alternative_titles(title: str) -> tuple[str, list[str]]:
    """MovieLens "Postino, Il (The Postman)" -> ("Il Postino", ["The Postman"]).

    Trailing parenthesised groups are alternative titles ("a.k.a." dropped); each part gets
    its trailing article moved. A title that is only a parenthesis is kept as it is.
    """
    body, alternatives = title.strip(), []
    while (match := _TRAILING_PARENS.match(body)) and match["body"].strip():
        inner = re.sub(r"^(a\.k\.a\.|aka)\s+", "", match["inner"].strip(), flags=re.IGNORECASE)
        if inner:
            alternatives.insert(0, move_trailing_article(inner))
        body = match["body"].strip()
    return move_trailing_article(body), alternatives


def split_title_year(item: str) -> tuple[str, int | None]:
    """ "Toy Story (1995)" -> ("Toy Story", 1995); without a year suffix -> (item, None)."""
    match = _YEAR_SUFFIX.match(item.strip())
    if not match:
        return item.strip(), None
    return match["title"], int(match["year"])


_ROMAN = {"ii": "2", "iii": "3", "iv": "4", "vi": "6", "vii": "7", "viii": "8", "ix": "9"}
_WORD_FORMS = {**_ROMAN, "vol": "volume", "pt": "part", "and": "and"}


@functools.lru_cache(maxsize=1 << 18)
def title_key(title: str) -> str:
    """The key films are matched on: accents, case, punctuation and a leading article removed.

    `title_key("The Matrix") == title_key("Matrix, The") == "matrix"`; "&" counts as "and",
    Roman numerals II-IX as digits ("Rocky II" ~ "Rocky 2"), "Vol." as "Volume", and letters
    and digits are split ("Alien³" ~ "Alien 3").
    """
    text = strip_accents(move_trailing_article(title)).lower()
    text = text.replace("&", " and ").replace("'", "").replace("\u2019", "")
    text = re.sub(r"(?<=[a-z])(?=\d)|(?<=\d)(?=[a-z])", " ", text)
    words = [_WORD_FORMS.get(word, word) for word in re.sub(r"[^\w]+|_", " ", text).split()]
    if len(words) > 1 and words[0] in _KEY_ARTICLES:
        words = words[1:]
    return " ".join(words)


_WEAK_TAIL_STARTS = {"part", "volume", "chapter", "episode", "vol", "pt"}


def title_part_keys(title: str) -> tuple[str, ...]:
    """Keys of a title's parts around a colon or a spaced dash, for films known by a part only.

    "Star Wars: Episode V - The Empire Strikes Back" -> ("star wars", "empire strikes back").
    The head before the first colon counts; a tail after the last colon/dash counts when it has
    two words or more and is not a "Part 2"-like suffix. Films are matched on these only with
    the very same year.
    """
    text = move_trailing_article(title)
    keys: list[str] = []
    head, sep, _ = text.partition(":")
    if sep and (key := title_key(head)):
        keys.append(key)
    pieces = re.split(r":\s+|\s+-\s+", text)
    if len(pieces) > 1:
        tail = title_key(pieces[-1])
        words = tail.split()
        if len(words) >= 2 and words[0] not in _WEAK_TAIL_STARTS and tail not in keys:
            keys.append(tail)
    full = title_key(title)
    return tuple(key for key in keys if key != full)
