"""Small hand-made data for the simulator: a synthetic catalogue whose films' tastes follow their
genres, users with low-rank tastes, ratings sampled from them; and the taste model fitted on it."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from flask import Flask
from werkzeug.serving import make_server

from movierec.base.ports import free_port
from simulator.tastes import TasteParams, Tastes, build_tastes
from simulator.users import Population

GENRES = ["Action", "Comedy", "Drama", "Horror", "Romance", "Sci-Fi", "Thriller", "Animation"]
START = datetime(2024, 1, 1)


def synthetic_data(n_films: int = 400, n_rated: int = 300, n_users: int = 300, rank: int = 6,
                   seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(catalog, ratings, users): the first `n_rated` films have ratings; tastes follow genres."""
    rng = np.random.default_rng(seed)
    genre_factors = rng.normal(0, 0.6, (len(GENRES), rank))
    film_genres = [rng.choice(len(GENRES), size=rng.integers(1, 3), replace=False) for _ in range(n_films)]
    item_factors = np.array([genre_factors[g].sum(axis=0) for g in film_genres]) + rng.normal(0, 0.1, (n_films, rank))
    popularity = rng.lognormal(2.0, 1.0, n_films)
    item_bias = 0.3 * (np.log(popularity) - 2.0)
    years = rng.integers(1950, 2020, n_films)
    catalog = pd.DataFrame({
        "id": [f"film+{i}+{years[i]}" for i in range(n_films)],
        "title": [f"Film {i}" for i in range(n_films)],
        "year": years,
        "genres": ["|".join(GENRES[j] for j in sorted(g)) for g in film_genres],
        "popularity": popularity,
        "vote_count": (popularity * 100).astype(int),
        "vote_average": rng.uniform(4, 8, n_films),
        "runtime": rng.integers(80, 140, n_films),
        "ml1m_id": [i + 1 if i < n_rated else None for i in range(n_films)],
    })
    user_factors = rng.normal(0, 0.6, (n_users, rank))
    rows = []
    for u in range(n_users):
        count = int(rng.integers(20, 120))
        films = rng.choice(n_rated, size=count, replace=False, p=popularity[:n_rated] / popularity[:n_rated].sum())
        scores = 3.5 + item_bias[films] + item_factors[films] @ user_factors[u] + rng.normal(0, 0.3, count)
        for film, score in zip(films, scores, strict=True):
            rows.append((u + 1, catalog["id"][film], int(film) + 1, int(np.clip(np.rint(score), 1, 5)), 956703932))
    ratings = pd.DataFrame(rows, columns=["user_id", "movie_id", "ml1m_id", "rating", "timestamp"])
    users = pd.DataFrame({
        "user_id": np.arange(1, n_users + 1),
        "gender": rng.choice(["M", "F"], n_users),
        "age": rng.choice([18, 25, 35, 45], n_users),
        "occupation": rng.integers(0, 20, n_users).astype(str),
    })
    return catalog, ratings, users


@pytest.fixture(scope="session")
def small_data() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    return synthetic_data()


@pytest.fixture(scope="session")
def small_tastes(small_data: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> Tastes:
    catalog, ratings, users = small_data
    return build_tastes(catalog, ratings, users, TasteParams(rank=8, epochs=6, seed=1))


@pytest.fixture
def small_population(small_tastes: Tastes) -> Population:
    return Population(small_tastes, n_users=1000, seed=3)


class ListSink:
    """A sink that keeps the lines in memory (the engine's output, for assertions)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.closed = False

    def write(self, line: str) -> None:
        self.lines.append(line)

    def close(self) -> None:
        self.closed = True


@contextlib.contextmanager
def http_server(app: Flask) -> Iterator[str]:
    """Serve a Flask app on a free loopback port in a thread; yields its base URL."""
    port = free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)
