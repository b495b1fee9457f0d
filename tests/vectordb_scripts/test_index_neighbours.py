"""The neighbour-table maths (pure): exact kNN, co-rating cosine, the cold-start order, the file format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vectordb_scripts.neighbours import cooccurrence_neighbours, exact_neighbours, table_recall
from vectordb_scripts.table import (
    IndexFormatError,
    IndexMissing,
    NeighbourTable,
    load_table,
    popular_good_order,
    save_table,
)


def normalised(rows: int, dim: int, seed: int = 0) -> np.ndarray:
    matrix = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return matrix / np.linalg.norm(matrix, axis=1, keepdims=True)


def test_exact_neighbours_match_brute_force_and_exclude_self() -> None:
    emb = normalised(300, 16)
    idx, sim = exact_neighbours(emb, k=7, block_rows=64)  # several blocks
    full = emb @ emb.T
    for row in (0, 63, 64, 299):
        order = [j for j in np.argsort(-full[row], kind="stable") if j != row][:7]
        assert list(idx[row]) == order
        assert sim[row] == pytest.approx(full[row, order], abs=1e-5)
    assert not (idx == np.arange(300)[:, None]).any()


def test_exact_neighbours_on_a_hand_example() -> None:
    # Unit vectors at angles 0, 10, 90, 180 degrees: nearest of 0 deg is 10 deg (cos 0.985), then 90 (cos 0).
    angles = np.radians([0, 10, 90, 180])
    emb = np.stack([np.cos(angles), np.sin(angles)], axis=1).astype(np.float32)
    idx, sim = exact_neighbours(emb, k=2)
    assert idx.tolist() == [[1, 2], [0, 2], [1, 0], [2, 1]]
    assert sim[0] == pytest.approx([np.cos(np.radians(10)), 0.0], abs=1e-6)


def test_fewer_films_than_k_pads_with_minus_one() -> None:
    idx, _ = exact_neighbours(normalised(3, 4), k=5)
    assert idx.shape == (3, 5) and (idx[:, 2:] == -1).all() and (idx[:, :2] >= 0).all()


def test_cooccurrence_cosine_by_hand() -> None:
    # Users: u1 rated {0, 1}, u2 rated {0, 1, 2}, u3 rated {2, 3}; item 4 never rated.
    # |U0|=2, |U1|=2, |U2|=2, |U3|=1. cos(0,1) = 2/sqrt(2*2) = 1; cos(0,2) = 1/2; cos(2,3) = 1/sqrt(2).
    users = np.array([1, 1, 2, 2, 2, 3, 3, 1])  # the last row repeats (u1, item 0): counts once
    items = np.array([0, 1, 0, 1, 2, 2, 3, 0])
    idx, sim = cooccurrence_neighbours(users, items, n_items=5, k=2)
    assert idx[0].tolist() == [1, 2] and sim[0] == pytest.approx([1.0, 0.5])
    assert idx[2].tolist() == [3, 0] and sim[2] == pytest.approx([1 / np.sqrt(2), 0.5])
    assert idx[3].tolist() == [2, -1]  # no other co-rated item: padded
    assert idx[4].tolist() == [-1, -1]


def test_popular_good_order_nudges_by_bayesian_rating() -> None:
    popularity = np.array([100.0, 99.0, 10.0, 50.0])
    votes = np.array([5.0, 9.0, 6.0, np.nan])
    counts = np.array([10000, 10000, 10, 0])
    order = popular_good_order(popularity, votes, counts, quality_weight=1.0)
    # Popularity ranks 3,2,0,1 (/3); Bayesian votes: film 1 highest, film 2 pulled to the mean by few votes.
    assert order[0] == 1
    assert popular_good_order(popularity).tolist() == [0, 1, 3, 2]


def test_table_round_trip_and_errors(tmp_path: Path) -> None:
    idx, sim = exact_neighbours(normalised(4, 3), k=2)
    table = NeighbourTable(
        ids=("a+1999", "b+2000", "c", "d"),
        popularity=np.arange(4, dtype=np.float32),
        popular_order=np.array([3, 2, 1, 0]),
        content_idx=idx,
        content_sim=sim,
        cooc_idx=np.full((4, 0), -1),
        cooc_sim=np.zeros((4, 0)),
        catalog_hash="h1",
        model="m",
    )
    path = tmp_path / "index" / "neighbours.npz"
    save_table(path, table)
    loaded = load_table(path)
    assert loaded.ids == table.ids and loaded.row_of["c"] == 2 and loaded.catalog_hash == "h1"
    assert (loaded.content_idx == idx).all() and loaded.has_content and not loaded.has_cooccurrence
    with pytest.raises(IndexMissing):
        load_table(tmp_path / "absent.npz")
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(IndexFormatError):
        load_table(tmp_path / "bad.npz")


def test_table_recall_matches_films_by_id_not_row() -> None:
    ids = ["a", "b", "c", "d"]
    idx = np.array([[1, 2], [0, 2], [0, 1], [0, 1]])
    assert table_recall(ids, idx, ids, idx) == 1.0
    # The same lists with the rows in another order (and the indices renumbered) still agree.
    order = [3, 2, 1, 0]
    moved = [ids[r] for r in order]
    row_of = {film: row for row, film in enumerate(moved)}
    moved_idx = np.array([[row_of[ids[j]] for j in idx[r]] for r in order])
    assert table_recall(ids, idx, moved, moved_idx) == 1.0


def test_table_recall_counts_hits_over_expected() -> None:
    ids = ["a", "b", "c", "d"]
    reference = np.array([[1, 2], [0, 2], [0, 1], [0, -1]])  # d has one neighbour only
    found = np.array([[1, 3], [3, 2], [3, 1], [0, 1]])
    # a: b hit; b: c hit; c: b hit; d: a hit -> 4 hits of 7 expected
    assert table_recall(ids, reference, ids, found) == pytest.approx(4 / 7)
    assert table_recall(ids, reference, ["x"], np.array([[-1, -1]])) is None  # no film in common
    # z is not in the found table and is left out; a expects b (hit), b expects a (miss).
    other = np.array([[1, -1], [0, -1], [0, 1]])
    assert table_recall(["a", "b", "z"], other, ids, found) == pytest.approx(1 / 2)
