"""The coordinate search both tuning scripts use: one parameter at a time, best (HR, NDCG) kept."""

from __future__ import annotations

from dataclasses import dataclass

from inference.tuning import coordinate_search


@dataclass(frozen=True)
class Params:
    a: float = 0.0
    b: float = 0.0


def test_each_parameter_keeps_its_best_value_given_the_earlier_choices() -> None:
    calls: list[list[str]] = []

    def score(variants: dict[str, Params]) -> dict[str, tuple[float, float]]:
        calls.append(list(variants))
        # HR peaks at a=2 and, once a=2, at b=1; NDCG breaks the tie between b=1 and b=3.
        return {label: (-abs(p.a - 2) - min(abs(p.b - 1), abs(p.b - 3)), -abs(p.b - 1))
                for label, p in variants.items()}

    best = coordinate_search(Params(), {"a": [1.0, 2.0, 3.0], "b": [0.0, 1.0, 3.0]}, score)
    assert best == Params(a=2.0, b=1.0)
    assert calls == [["a=1.0", "a=2.0", "a=3.0"], ["b=0.0", "b=1.0", "b=3.0"]]


def test_names_choose_and_order_the_parameters() -> None:
    best = coordinate_search(Params(), {"a": [5.0], "b": [7.0]}, lambda v: {k: (1.0, 1.0) for k in v}, names=["b"])
    assert best == Params(a=0.0, b=7.0)
