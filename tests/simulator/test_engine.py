"""The event loop end to end on the synthetic taste model, against real loopback HTTP servers."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import replace

import numpy as np
import pytest
from flask import Flask, Response

from data_parsing.parser import RatingEvent, RecommendationEvent, WatchEvent, parse_line
from simulator.behaviour import oracle_list
from simulator.engine import RunConfig, Simulation
from simulator.recommend_client import RecommendClient
from simulator.stats import SimStats
from simulator.users import Population
from tests.simulator.conftest import START, ListSink, http_server

FAST = RunConfig(start_time=START, speed=0, max_events=3000, recommend_fraction=0.0, seed=5)


def run(population: Population, config: RunConfig = FAST, recommend=None) -> tuple[list[str], dict]:
    sink = ListSink()
    summary = Simulation(population, config, sink, recommend, stats=SimStats(export_metrics=False)).run()
    return sink.lines, summary


def test_every_line_parses_into_the_intended_event_and_sessions_are_coherent(small_population: Population) -> None:
    lines, summary = run(small_population)
    assert len(lines) == 3000 == summary["events_total"]
    events = [parse_line(line.encode()) for line in lines]
    assert {type(e) for e in events} == {WatchEvent, RatingEvent}
    known = set(small_population.tastes.item_ids.tolist())
    minutes: dict[tuple[int, str], list[int]] = defaultdict(list)
    for event in events:
        assert event.movie_id in known and 1 <= event.user_id <= small_population.n_users
        if isinstance(event, WatchEvent):
            minutes[(event.user_id, event.movie_id)].append(event.minute)
        else:
            assert 1 <= event.rating <= 5
            assert (event.user_id, event.movie_id) in minutes  # rated after watching
    for seen in minutes.values():  # minute by minute from 0, no gaps
        assert seen == list(range(len(seen)))
    times = [e.time for e in events]
    assert times == sorted(times) and times[0] >= START


def test_output_is_deterministic_for_a_seed(small_population: Population) -> None:
    first, _ = run(small_population)
    again, _ = run(Population(small_population.tastes, small_population.n_users, small_population.seed))
    other, _ = run(small_population, replace(FAST, seed=6))
    assert first == again
    assert first != other


def test_only_active_sessions_and_a_bounded_history_are_kept(small_tastes) -> None:
    population = Population(small_tastes, n_users=1_000_000, seed=1)
    sink = ListSink()
    config = replace(FAST, max_events=20_000, max_remembered_users=50, sessions_per_user_day=2.0)
    simulation = Simulation(population, config, sink, stats=SimStats(export_metrics=False))
    summary = simulation.run()
    assert len(simulation.seen) <= 50
    assert summary["sessions"] > 50
    assert len(simulation.active_users) == summary["active_sessions"] < summary["sessions"]


def list_server(choose) -> Flask:
    app = Flask("test-recommend")

    @app.get("/recommend/<int:user_id>")
    def recommend(user_id: int) -> Response:
        return Response(",".join(choose(user_id)), headers={"X-Model-Version": "test-v1"}, mimetype="text/plain")

    return app


def test_users_pick_good_recommendations_more_often_than_random_ones(small_population: Population) -> None:
    tastes = small_population.tastes
    rng = np.random.default_rng(0)

    def oracle(user_id: int) -> list[str]:
        user = small_population.user(user_id)
        return list(tastes.item_ids[oracle_list(tastes, user.factors, user.bias, set(), 20)])

    def random_films(_user_id: int) -> list[str]:
        return list(tastes.item_ids[rng.choice(tastes.n_items, 20, replace=False)])

    config = replace(FAST, recommend_fraction=1.0, max_events=30_000)
    rates = {}
    for name, choose in (("oracle", oracle), ("random", random_films)):
        with http_server(list_server(choose)) as url:
            client = RecommendClient(url, timeout_seconds=5)
            lines, summary = run(small_population, config, client.recommend)
            client.close()
        version = summary["versions"]["test-v1"]
        assert version["requests"] == summary["recommendation_requests"]["200"] > 50
        rates[name] = version["hit_rate"]
        requests = [e for e in map(lambda line: parse_line(line.encode()), lines)
                    if isinstance(e, RecommendationEvent)]
        port = url.rsplit(":", 1)[1]
        assert {e.server for e in requests} == {f"test-v1@127.0.0.1:{port}"}
        assert all(e.model_version == "test-v1" and e.status == 200 and len(e.results) == 20 for e in requests)
        if name == "oracle":
            # Shown their true top list, the realised hit rate matches the best achievable one.
            assert version["hit_rate"] == pytest.approx(version["best_hit_rate"], abs=0.1)
    assert rates["oracle"] > rates["random"] + 0.2


def test_failed_requests_are_recorded_and_the_user_still_watches(small_population: Population) -> None:
    app = Flask("slow")

    @app.get("/recommend/<int:user_id>")
    def slow(user_id: int) -> str:
        time.sleep(0.3)
        return "film+1+2000"

    config = replace(FAST, recommend_fraction=1.0, max_events=400)
    with http_server(app) as url:
        client = RecommendClient(url, timeout_seconds=0.05)
        lines, summary = run(small_population, config, client.recommend)
        client.close()
    requests = [e for e in (parse_line(line.encode()) for line in lines) if isinstance(e, RecommendationEvent)]
    assert requests and all(e.status == 0 and e.results == () and e.model_version is None for e in requests)
    assert summary["recommendation_requests"] == {"timeout": len(requests)}
    assert summary["events"]["watch"] > 0 and summary["versions"] == {}


def test_refused_connections_are_recorded(small_population: Population) -> None:
    from movierec.base.ports import free_port

    client = RecommendClient(f"http://127.0.0.1:{free_port()}", timeout_seconds=0.5)
    lines, summary = run(small_population, replace(FAST, recommend_fraction=1.0, max_events=200), client.recommend)
    assert summary["recommendation_requests"]["connection_error"] >= 1
    assert all(parse_line(line.encode()) for line in lines)


def test_rate_limit_holds_within_ten_percent(small_population: Population) -> None:
    config = replace(FAST, max_events=None, duration_seconds=3.0, rate_per_second=300)
    lines, summary = run(small_population, config)
    assert len(lines) == pytest.approx(300 * summary["wall_seconds"], rel=0.10)


def test_simulated_time_never_runs_ahead_of_speed(small_population: Population) -> None:
    config = replace(FAST, max_events=None, duration_seconds=2.0, speed=600.0)
    lines, summary = run(small_population, config)
    assert lines
    last = parse_line(lines[-1].encode()).time
    assert (last - START).total_seconds() <= 600.0 * summary["wall_seconds"] + 1
