"""The learned ranker's maths on tiny matrices, checked by hand or against the textbook formulas."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import sparse

from inference.ease import (
    fit_ease,
    fit_sequence_model,
    interaction_matrix,
    positions_from_end,
    recency_weights,
    score_items,
    sequence_pairs,
    user_chunks,
)


def test_recency_weights_halve_every_half_life() -> None:
    assert recency_weights(np.array([0, 3, 6]), 3.0).tolist() == [1.0, 0.5, 0.25]
    assert recency_weights(np.array([0, 5]), 0.0).tolist() == [1.0, 1.0]


def test_positions_from_end_per_user() -> None:
    assert positions_from_end(np.array([0, 0, 0, 1, 2, 2])).tolist() == [2, 1, 0, 0, 1, 0]
    assert positions_from_end(np.array([], dtype=np.int64)).tolist() == []
    assert user_chunks(np.array([0, 0, 0, 1, 1, 2]), 2) == [(0, 3), (3, 5), (5, 6)]


def test_interaction_matrix_keeps_the_largest_weight_of_a_repeat() -> None:
    m = interaction_matrix(np.array([0, 0, 1]), np.array([1, 1, 0]), 2, 2, np.array([0.5, 0.9, 1.0]))
    assert m.toarray().tolist() == [[0.0, pytest.approx(0.9)], [1.0, 0.0]]


def test_ease_matches_the_closed_form_and_has_a_zero_diagonal() -> None:
    x = np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 1]], dtype=np.float64)
    l2 = 2.0
    p = np.linalg.inv(x.T @ x + l2 * np.eye(4))
    expected = np.eye(4) - p / np.diag(p)[None, :]
    np.fill_diagonal(expected, 0.0)
    b = fit_ease(sparse.csr_matrix(x), l2)
    assert b.dtype == np.float32 and np.allclose(b, expected, atol=1e-5)
    assert np.all(np.diag(b) == 0)
    # Film 0 co-occurs with 1 more than with 3: a history of film 0 ranks 1 above 3.
    scores = score_items(b, np.array([0]), np.array([1.0]))
    assert scores[1] > scores[3]


def test_sequence_pairs_by_hand() -> None:
    users = np.array([0, 0, 0, 1, 1])
    items = np.array([0, 1, 2, 3, 0])
    sources, targets = sequence_pairs(users, items, 4, source_len=2, source_half_life=1.0, targets=2, stride=1)
    # Pairs at positions 0 and 1 of user 0 and position 0 of user 1 (the last film of a sequence has no next).
    assert sources.toarray().tolist() == [[1, 0, 0, 0], [0.5, 1, 0, 0], [0, 0, 0, 1]]
    assert targets.toarray().tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [1, 0, 0, 0]]
    strided, _ = sequence_pairs(users, items, 4, source_len=2, source_half_life=1.0, targets=2, stride=2)
    assert strided.shape[0] == 2  # positions 0 of each user


def test_sequence_model_is_the_ridge_solution_and_learns_order() -> None:
    # Everyone watches 0 -> 1 -> 2: after 0 comes 1, after 1 comes 2, never the other way round.
    users = np.repeat(np.arange(6), 3)
    items = np.tile(np.array([0, 1, 2]), 6)
    s, t = sequence_pairs(users, items, 3, source_len=1, source_half_life=1.0, targets=1, stride=1)
    b = fit_sequence_model([(s[:5], t[:5]), (s[5:], t[5:])], 3, l2=0.5)
    dense_s, dense_t = s.toarray().astype(np.float64), t.toarray().astype(np.float64)
    expected = np.linalg.solve(dense_s.T @ dense_s + 0.5 * np.eye(3), dense_s.T @ dense_t)
    assert np.allclose(b, expected, atol=1e-5)
    assert b[0, 1] > b[1, 0] and b[1, 2] > b[2, 1]


def test_score_items_weights_and_normalises() -> None:
    b = np.array([[0, 2, 0], [1, 0, 4], [0, 0, 0]], dtype=np.float32)
    assert score_items(b, np.array([0, 1]), np.array([1.0, 1.0])).tolist() == [0.5, 1.0, 2.0]
    assert score_items(b, np.array([], dtype=np.int64), np.array([])).tolist() == [0, 0, 0]
