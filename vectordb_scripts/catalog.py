"""The catalogue's pure logic: match films across datasets, merge their fields, score popularity.

Input is the standard record frame of sources.py (one row per film per dataset). No I/O here.

- Matching: records are taken in source priority order (within a dataset, most votes first, so
  of two same-titled films of one year the famous one joins the other datasets' record); a
  record joins the first earlier film with the same title key (titles.title_key, also on
  alternative titles) whose year is within one year (exact year preferred), and never a film
  that already holds a record of its own dataset (two rows of one dataset are two films),
  except for datasets listed as `dedupe_sources`, whose exact duplicates (same key, same year)
  are one film (ML-100K lists a few films twice).
  Parts of a title around a colon or dash also count, on the very same year only: "Star Wars:
  Episode IV - A New Hope" (1977) is TMDB's "Star Wars" (1977), "Star Wars: Episode V - The
  Empire Strikes Back" (1980) is "The Empire Strikes Back" (1980).
- Merging: each field comes from the first dataset in FIELD_PRIORITY that has it; the dataset is
  recorded in `field_sources`.
- Popularity (0-100): for each signal (IMDb votes, TMDB vote count, Rotten Tomatoes review count,
  MovieLens rating count), log1p(count) / log1p(largest count of that signal); MovieLens counts
  are scaled per dataset (ML-1M, ML-latest-small, ML-100K). The score is
  100 x (0.75 x the strongest of the film's signals + 0.25 x their mean): a film is mostly as
  popular as its best evidence (a plain mean would let a 2015 film's single rating in the 2016
  ML-latest-small sink its TMDB votes), the mean breaks ties between films at the top of one
  signal. `popularity_source` lists the signals the film has, the strongest first ("tmdb+rt").
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import pandas as pd

from vectordb_scripts.slugs import SlugError, assign_unique_slugs, slug_words
from vectordb_scripts.titles import title_key, title_part_keys

YEAR_TOLERANCE = 1
# Order in which datasets are matched; the first ones anchor the films.
SOURCE_ORDER = ("ml1m", "tmdb", "omdb", "imdb", "mllatest", "ml100k")
TITLE_PRIORITY = ("tmdb", "omdb", "ml1m", "mllatest", "ml100k", "imdb")
# Fields taken as a group from the same record (a vote average goes with its vote count).
FIELD_PRIORITY: dict[tuple[str, ...], tuple[str, ...]] = {
    ("title", "year"): TITLE_PRIORITY,
    ("original_title",): ("tmdb",),
    ("release_date",): ("tmdb", "omdb"),
    ("tmdb_id",): ("tmdb",),
    ("imdb_id",): ("omdb",),
    ("ml1m_id",): ("ml1m",),
    ("genres",): ("tmdb", "omdb", "ml1m", "mllatest", "ml100k", "imdb"),
    ("overview",): ("tmdb",),
    ("runtime",): ("tmdb", "omdb", "imdb"),
    ("original_language",): ("tmdb", "omdb"),
    ("director",): ("tmdb", "omdb"),
    ("cast",): ("tmdb", "omdb"),
    ("vote_average", "vote_count"): ("tmdb", "imdb", "ml1m", "mllatest", "ml100k", "omdb"),
}
# popularity signal -> (record column, datasets scaled separately)
SIGNALS: dict[str, tuple[str, tuple[str, ...]]] = {
    "imdb": ("imdb_votes", ("imdb",)),
    "tmdb": ("tmdb_votes", ("tmdb",)),
    "rt": ("rt_reviews", ("omdb",)),
    "movielens": ("ml_ratings", ("ml1m", "mllatest", "ml100k")),
}
MOVIE_COLUMNS = [
    "id", "title", "original_title", "year", "release_date", "tmdb_id", "imdb_id", "ml1m_id", "adult", "genres",
    "overview", "description_source", "runtime", "original_language", "director", "cast", "vote_average",
    "vote_count", "popularity", "popularity_source", "sources", "field_sources",
]  # fmt: skip


@dataclass(frozen=True)
class MatchRecord:
    source: str
    keys: tuple[str, ...]  # title keys, the main title first
    year: int | None
    part_keys: tuple[str, ...] = ()  # keys of title parts around a colon or dash: exact year only


def record_keys(title: str, alt_titles: Iterable[str] | None = ()) -> tuple[str, ...]:
    """Distinct non-empty match keys of a title and its alternative titles, main title first."""
    alternatives = list(alt_titles) if isinstance(alt_titles, list | tuple) else []
    keys: list[str] = []
    for text in [title, *alternatives]:
        key = title_key(text) if isinstance(text, str) else ""
        if key and key not in keys:
            keys.append(key)
    return tuple(keys)


def record_part_keys(title: str, keys: Sequence[str]) -> tuple[str, ...]:
    """Keys of the main title's parts (titles.title_part_keys) that are not full keys already."""
    parts = title_part_keys(title) if isinstance(title, str) else ()
    return tuple(key for key in parts if key not in keys)


class _Films:
    """The films found so far, indexed by full keys and by title-part keys."""

    def __init__(self) -> None:
        self.by_key: dict[str, list[int]] = defaultdict(list)
        self.by_part: dict[str, list[int]] = defaultdict(list)
        self.year: list[int | None] = []
        self.held: list[dict[str, set[tuple[str, int | None]]]] = []

    def candidates(self, record: MatchRecord, tolerance: int) -> Iterator[tuple[int, int, int, int]]:
        """(year gap, kind, key rank, film): kind 0 = full keys on both sides, 1 = a part key involved."""
        lookups = [(key, rank, False) for rank, key in enumerate(record.keys)]
        lookups += [(key, len(record.keys), True) for key in record.part_keys]
        for key, rank, is_part in lookups:
            for index, films in ((False, self.by_key), (True, self.by_part)):
                exact_only = is_part or index
                for film in films.get(key, ()):
                    year = self.year[film]
                    if year is None or abs(year - record.year) > (0 if exact_only else tolerance):
                        continue
                    yield abs(year - record.year), int(exact_only), rank, film

    def add(self, record: MatchRecord, film: int | None) -> int:
        if film is None:
            film = len(self.year)
            self.year.append(record.year)
            self.held.append({})
        self.held[film].setdefault(record.source, set()).update((k, record.year) for k in record.keys)
        for key in record.keys:
            if film not in self.by_key[key]:
                self.by_key[key].append(film)
        for key in record.part_keys:
            if film not in self.by_part[key]:
                self.by_part[key].append(film)
        return film


def match_records(
    records: Sequence[MatchRecord], tolerance: int = YEAR_TOLERANCE, dedupe_sources: Iterable[str] = ()
) -> list[int]:
    """A film (cluster) number per record, records taken in the given order (see module doc)."""
    dedupe = set(dedupe_sources)
    films = _Films()
    assigned: list[int] = []
    for record in records:
        best: tuple[int, int, int, int] | None = None
        if record.year is not None:
            for candidate in films.candidates(record, tolerance):
                held = films.held[candidate[3]].get(record.source)
                if held and not (record.source in dedupe and any((k, record.year) in held for k in record.keys)):
                    continue
                best = candidate if best is None or candidate < best else best
        assigned.append(films.add(record, None if best is None else best[3]))
    return assigned


def _pick(records: pd.DataFrame, columns: tuple[str, ...], priority: tuple[str, ...]) -> pd.DataFrame:
    """Per film, `columns` from the first dataset in `priority` whose record has them."""
    rank = {source: i for i, source in enumerate(priority)}
    usable = records[records["source"].isin(rank) & records[list(columns)].notna().all(axis=1)]
    usable = usable.assign(_rank=usable["source"].map(rank)).sort_values(["film", "_rank"], kind="stable")
    chosen = usable.drop_duplicates("film").set_index("film")
    return chosen[list(columns)].assign(**{f"{columns[0]}__source": chosen["source"]})


def popularity_scores(records: pd.DataFrame) -> pd.DataFrame:
    """Per film: popularity (0-100) and popularity_source (module doc has the formula)."""
    parts = {}
    for signal, (column, datasets) in SIGNALS.items():
        scaled = []
        for dataset in datasets:
            rows = records[(records["source"] == dataset) & (pd.to_numeric(records[column]) > 0)]
            if rows.empty:
                continue
            counts = pd.to_numeric(rows[column]).astype(float)
            scaled.append(pd.Series((counts.map(math.log1p) / math.log1p(counts.max())).to_numpy(), index=rows["film"]))
        if scaled:
            parts[signal] = pd.concat(scaled).groupby(level=0).max()
    table = pd.DataFrame(parts).reindex(columns=list(SIGNALS))
    score = (0.75 * table.max(axis=1, skipna=True) + 0.25 * table.mean(axis=1, skipna=True)) * 100
    names = list(table.columns)
    source = [
        "+".join(names[i] for i in sorted((i for i in range(len(row)) if row[i] == row[i]), key=lambda i: -row[i]))
        or None
        for row in table.to_numpy()
    ]  # strongest signal first; NaN != NaN skips the signals a film lacks
    return pd.DataFrame({"popularity": score.round(4), "popularity_source": source}, index=table.index)


def genre_phrase(genres: str) -> str:
    """"Comedy|Drama" -> "comedy-drama"; three or more -> "action, adventure and fantasy"."""
    names = [g.strip().lower() for g in genres.split("|") if g.strip()]
    if len(names) <= 2:
        return "-".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"


def _text(value: object) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def template_description(
    year: int | None, genres: str | None, runtime: float | None, director: str | None, cast: str | None
) -> str:
    """A description made only of real fields: "1987 comedy-drama film, 102 min, directed by X, starring Y."."""
    has_year = year is not None and not pd.isna(year)
    head = " ".join(p for p in (str(int(year)) if has_year else None, _text(genres) and genre_phrase(genres)) if p)
    parts = [f"{head} film" if head else "Film"]
    if runtime is not None and not pd.isna(runtime) and runtime > 0:
        parts.append(f"{int(runtime)} min")
    if director := _text(director):
        parts.append("directed by " + " and ".join(director.split("|")[:2]))
    if cast := _text(cast):
        parts.append("starring " + ", ".join(cast.split("|")[:3]))
    return ", ".join(parts) + "."


def sources_by_film(records: pd.DataFrame) -> dict[int, set[str]]:
    """The datasets each film was matched in."""
    held: dict[int, set[str]] = defaultdict(set)
    for film, source in zip(records["film"], records["source"], strict=True):
        held[film].add(source)
    return held


def merge_films(records: pd.DataFrame) -> pd.DataFrame:
    """One row per film (index = film number) with merged fields, `field_sources` and `sources`."""
    films = pd.DataFrame(index=pd.Index(sorted(records["film"].unique()), name="film"))
    field_sources: dict[int, dict[str, str]] = defaultdict(dict)
    for columns, priority in FIELD_PRIORITY.items():
        picked = _pick(records, columns, priority)
        for column in columns:
            films[column] = picked[column].reindex(films.index)
            for film, source in picked[f"{columns[0]}__source"].items():
                field_sources[film][column] = source
    films = films.join(popularity_scores(records))
    films["popularity"] = films["popularity"].fillna(0.0)
    for film, source in films["popularity_source"].dropna().items():
        field_sources[film]["popularity"] = source
    order = {source: i for i, source in enumerate(SOURCE_ORDER)}
    held = sources_by_film(records)
    films["sources"] = ["|".join(sorted(held[film], key=order.get)) for film in films.index]
    films["field_sources"] = [field_sources[film] for film in films.index]
    return films


def attach_wikipedia(films: pd.DataFrame, keys: pd.DataFrame, wiki: pd.DataFrame) -> pd.DataFrame:
    """Wikipedia texts per film: columns text, kind (plot|lead), index = film.

    `keys` has one row per (film, key, year) over ALL matched films. A text with a year matches
    the one film with its key and a year within tolerance; a text without a year matches only a
    key that names exactly one film and no other yearless text of its kind. Plots win over leads.
    """
    wiki = wiki.assign(key=wiki["title"].map(title_key))
    wiki = wiki[wiki["key"] != ""]
    films_per_key = keys.groupby("key")["film"].nunique()
    yearless_texts = wiki[wiki["year"].isna()].groupby(["kind", "key"]).size()
    rows = []
    by_key: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for film, key, year in zip(keys["film"], keys["key"], keys["year"], strict=True):
        by_key[key].append((film, year))
    for text in wiki.itertuples(index=False):
        candidates = by_key.get(text.key)
        if not candidates:
            continue
        if pd.notna(text.year):
            close = {film for film, year in candidates if abs(year - int(text.year)) <= YEAR_TOLERANCE}
            if len(close) == 1:
                rows.append((close.pop(), text.text, text.kind))
        elif films_per_key[text.key] == 1 and yearless_texts[(text.kind, text.key)] == 1:
            rows.append((candidates[0][0], text.text, text.kind))
    found = pd.DataFrame(rows, columns=["film", "text", "kind"])
    found = found.assign(_rank=(found["kind"] != "plot").astype(int)).sort_values(["film", "_rank"], kind="stable")
    return found.drop_duplicates("film").set_index("film")[["text", "kind"]].reindex(films.index)


def sluggable(title: object) -> bool:
    return isinstance(title, str) and bool(slug_words(title))


def select_films(films: pd.DataFrame, forced: pd.Series, target_size: int) -> pd.DataFrame:
    """Every forced film (MovieLens) plus the most popular others, up to `target_size` films.

    Films without a year or a title that gives a slug cannot be named and are left out.
    Ties in popularity are broken by title and year, so the selection is deterministic.
    """
    nameable = films["year"].notna() & films["title"].map(sluggable)
    ordered = films[nameable].assign(_forced=forced.reindex(films.index).fillna(False).astype(bool)[nameable])
    ordered = ordered.sort_values(["_forced", "popularity", "title", "year"], ascending=[False, False, True, True])
    keep = max(target_size, int(ordered["_forced"].sum()))
    return ordered.head(keep).drop(columns="_forced")


def finish_catalog(films: pd.DataFrame, wikipedia: pd.DataFrame | None = None) -> pd.DataFrame:
    """Slugs (the most popular film keeps a plain slug), descriptions and the Movie columns.

    The result keeps the film numbers as its index (named "film") for the MovieLens mappings.
    """
    films = films.sort_values(["popularity", "title", "year"], ascending=[False, True, True], kind="stable")
    try:
        slugs = assign_unique_slugs(zip(films["title"], films["year"].astype(int), strict=True))
    except SlugError as exc:  # select_films keeps only nameable films
        raise ValueError(f"unnameable film reached the catalogue: {exc}") from exc
    wiki = wikipedia.reindex(films.index) if wikipedia is not None else pd.DataFrame(index=films.index)
    overview, description_source, field_sources = [], [], []
    wiki_text = wiki["text"].tolist() if "text" in wiki else [None] * len(films)
    wiki_kind = wiki["kind"].tolist() if "kind" in wiki else [None] * len(films)
    columns = ["field_sources", "overview", "year", "genres", "runtime", "director", "cast"]
    for i, (known, tmdb_text, year, genres, runtime, director, cast) in enumerate(
        zip(*(films[c].tolist() for c in columns), strict=True)
    ):
        sources = dict(known)
        if _text(tmdb_text):
            overview.append(tmdb_text)
            description_source.append("tmdb")
        elif _text(wiki_text[i]):
            overview.append(wiki_text[i])
            description_source.append("wikipedia")
            sources["overview"] = f"wikipedia_{wiki_kind[i]}"
        else:
            overview.append(template_description(year, genres, runtime, director, cast))
            description_source.append("template")
            sources["overview"] = "template"
        sources["id"] = sources.get("title", "")
        sources["adult"] = "default"
        field_sources.append(sources)
    films = films.assign(
        id=slugs, overview=overview, description_source=description_source, adult=False, field_sources=field_sources
    )
    films.index.name = "film"
    return films[MOVIE_COLUMNS]
