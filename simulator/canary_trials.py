"""In-process canary trials: simulated users, two real ranking services, the real parser, writer
and decision code, in simulated time (used by bench/canary.py and the online-metric test).

One trial is one release: users ask `RecommendationService`s (real rankers, histories read from
the trial's SQLite database) split by the router's `assign_arm` with the trial's salt; every
stream line goes through the parser's `Batch` and `write_batch` into the database; at every look
(`look_minutes` of simulated time) `load_balancer.release.online_eval.look` reads the database and decides,
up to `window_minutes`. Not in the loop: HTTP, Kafka and the crontab; and sessions write one watch
line (their first minute), since hits and histories use a film's first minute only.
The simulator's own outcome of every request (hit or not, expected hit probability) is kept as
the ground truth of the same requests.
"""

from __future__ import annotations

import random
import re
import shutil
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from data_parsing.batch import Batch
from data_parsing.writer import write_batch
from db_utils.engine import make_engine, make_session_factory
from db_utils.models import Base
from db_utils.queries import HistoryItem
from inference.history import HistoryStore, history_engine
from inference.ranking import strategy_named
from inference.recommender import Recommendation, Recommender
from inference.service import RecommendationService
from inference.settings import InferenceSettings
from load_balancer.release.online_eval import look
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.routing import assign_arm
from simulator.engine import RunConfig, Simulation
from simulator.events import server_token
from simulator.recommend_client import RecommendResponse
from simulator.stats import SimStats
from simulator.users import Population
from vectordb_scripts.table import NeighbourTable

# A mixed ranker "a+bNN" answers NN % of requests with b and the rest with a: its true hit rate lies about NN %
# of the way from a's to b's, which makes a nightly about 5 points better or worse than seed (measured: 30 % of
# blend lifted seed by 0.085 on average over 10 trials; each trial reports its own true lift).
MIXED = re.compile(r"^(?P<base>[a-z_]+)\+(?P<other>[a-z_]+)(?P<percent>\d{1,2})$")
SCENARIOS: dict[str, tuple[str, str]] = {  # name -> (main strategy, nightly strategy)
    "aa_blend": ("blend", "blend"),
    "blend_over_seed": ("seed", "blend"),
    "seed_over_blend": ("blend", "seed"),
    "blend_over_popularity": ("popularity", "blend"),
    "popularity_over_blend": ("blend", "popularity"),
    "lift_5_points": ("seed", "seed+blend20"),
    "drop_5_points": ("seed+blend20", "seed"),
}
T0 = datetime(2024, 3, 1, 0, 0, 0)
HISTORY_DAYS = 10


class MemoRecommender:
    """A Recommender that remembers its answer per history: the rankers are pure functions of the
    history (films and ratings, most recent first), and every trial of a run starts from the same
    users' histories, so most first requests of a user repeat across trials."""

    def __init__(self, recommender: Recommender, max_entries: int = 200_000) -> None:
        self.recommender, self.table, self.max_entries = recommender, recommender.table, max_entries
        self.answers: dict[tuple[tuple[str, int | None], ...], Recommendation] = {}
        self.hits = self.misses = 0

    def recommend(self, history: Sequence[HistoryItem]) -> Recommendation:
        key = tuple((item.movie_id, item.rating) for item in history)
        answer = self.answers.get(key)
        if answer is None:
            self.misses += 1
            answer = self.answers[key] = self.recommender.recommend(history)
            if len(self.answers) > self.max_entries:
                del self.answers[next(iter(self.answers))]
        else:
            self.hits += 1
        return answer

    def popular(self, history: Sequence[HistoryItem] = (), reason: str | None = None) -> Recommendation:
        return self.recommender.popular(history, reason)


class MixedRecommender:
    """Answers `share` of the requests with `other` and the rest with `base` (a seeded coin per request)."""

    def __init__(self, base: MemoRecommender, other: MemoRecommender, share: float, seed: int = 0) -> None:
        self.base, self.other, self.share, self.table = base, other, share, base.table
        self.rng = random.Random(seed)

    def recommend(self, history: Sequence[HistoryItem]) -> Recommendation:
        return (self.other if self.rng.random() < self.share else self.base).recommend(history)

    def popular(self, history: Sequence[HistoryItem] = (), reason: str | None = None) -> Recommendation:
        return self.base.popular(history, reason)


def make_recommenders(names: Sequence[str], table: NeighbourTable,
                      seed: int = 0) -> dict[str, MemoRecommender | MixedRecommender]:
    """One ranker per strategy name: a served strategy ("blend"), or a mix of two ("seed+blend20")."""
    plain: dict[str, MemoRecommender] = {}

    def ranker(name: str) -> MemoRecommender:
        if name not in plain:
            plain[name] = MemoRecommender(Recommender(table, strategy_named(name)))
        return plain[name]

    out: dict[str, MemoRecommender | MixedRecommender] = {}
    for name in names:
        mixed = MIXED.match(name)
        out[name] = (MixedRecommender(ranker(mixed["base"]), ranker(mixed["other"]), int(mixed["percent"]) / 100, seed)
                     if mixed else ranker(name))
    return out


class StreamToDatabase:
    """A simulator sink: lines -> the parser's Batch -> write_batch, every `batch_lines` lines."""

    def __init__(self, engine: Any, batch_lines: int = 200) -> None:
        self.engine, self.batch_lines = engine, batch_lines
        self.batch, self.offset = Batch(), 0

    def write(self, line: str) -> None:
        self.batch.add("movielog", 0, self.offset, line.encode())
        self.offset += 1
        if len(self.batch) >= self.batch_lines:
            self.flush()

    def flush(self) -> None:
        if len(self.batch):
            write_batch(self.engine, self.batch.rows())
            self.batch = Batch()

    def close(self) -> None:
        self.flush()


@dataclass
class TruthStats(SimStats):
    """SimStats that also keeps every answered request: (user, version, simulated seconds, hit, expected hit)."""

    clock: Any = None  # the Simulation, for its current time
    last_user: int = 0
    requests: list[tuple[int, str, float, bool, float]] = field(default_factory=list)

    def answered(self, version: str | None, hit: bool, expected_hit: float, best_hit: float) -> None:
        super().answered(version, hit, expected_hit, best_hit)
        self.requests.append((self.last_user, version or "unknown", self.clock.now_seconds, hit, expected_hit))

    def per_user_truth(self, version: str, until_seconds: float) -> tuple[float, float, int]:
        """(mean per-user hit rate, mean per-user expected hit rate, users) of `version`'s requests
        made up to `until_seconds`: the simulator's own view of what the metric should read."""
        cells: dict[int, list[float]] = {}
        for user, v, at, hit, expected in self.requests:
            if v == version and at <= until_seconds:
                cell = cells.setdefault(user, [0, 0, 0.0])
                cell[0] += 1
                cell[1] += hit
                cell[2] += expected
        if not cells:
            return 0.0, 0.0, 0
        return (float(np.mean([h / n for n, h, _ in cells.values()])),
                float(np.mean([e / n for n, _, e in cells.values()])), len(cells))


@dataclass
class Canary:
    """The two arms as the router would split them (sticky hash of user and salt)."""

    services: dict[str, RecommendationService]
    salt: str
    weight: float
    stats: TruthStats

    def recommend(self, user_id: int) -> RecommendResponse:
        arm = assign_arm(user_id, self.salt, self.weight)
        service = self.services[arm]
        answer = service.recommend(user_id)
        self.stats.last_user = user_id
        return RecommendResponse(200, tuple(answer.recommendation.movie_ids), round(answer.latency_ms),
                                 service.version, server_token(service.version, "127.0.0.1", 8082))


def sessions_per_user_day(requests_per_minute: float, users: int, recommend_fraction: float) -> float:
    return requests_per_minute / 60.0 / recommend_fraction * 86_400.0 / users


def build_history(population: Population, url: str, sessions_per_day: float, seed: int) -> dict[str, Any]:
    """Ten simulated days of viewing (no recommendations) through the parser into a fresh database."""
    engine = make_engine(url)
    Base.metadata.create_all(engine)
    sink = StreamToDatabase(engine, batch_lines=20_000)
    config = RunConfig(start_time=T0 - timedelta(days=HISTORY_DAYS), recommend_fraction=0.0, speed=0.0,
                       sessions_per_user_day=sessions_per_day, seed=seed, every_minute=False)
    simulation = Simulation(population, config, sink, stats=SimStats(export_metrics=False))
    end = HISTORY_DAYS * 86_400.0
    simulation.should_stop = lambda: (simulation.next_event_seconds or 0.0) >= end
    summary = simulation.run()
    sink.close()
    engine.dispose()
    return summary


def make_service(strategy: str, version: str, recommender: Recommender | MemoRecommender | MixedRecommender,
                 url: str) -> RecommendationService:
    mixed = MIXED.match(strategy)
    served = mixed["base"] if mixed else strategy  # a mixed ranker reports its base strategy in /health
    settings = InferenceSettings.from_env({"INFERENCE_STRATEGY": served, "MODEL_VERSION": version,
                                           "DATABASE_URL": url})
    engine = history_engine(url, 1, 1000, 1)
    return RecommendationService(settings, recommender, HistoryStore(engine, 1.0), "ok")


@dataclass(frozen=True)
class TrialOptions:
    users: int = 30_000
    requests_per_minute: float = 174.0  # both arms; the platform's simulator defaults give about 174
    recommend_fraction: float = 0.5
    seed: int = 1


@dataclass
class TrialResult:
    scenario: str
    trial: int
    decision: str
    looks: int
    decided_at_minutes: float
    wall_seconds: float
    reason: str
    estimate: float | None
    lower: float | None
    upper: float | None
    logged: dict[str, float]  # arm -> mean per-user hit rate read from the database (at the decision)
    truth: dict[str, float]  # arm -> the simulator's per-user hit rate of the same (settled) requests
    truth_expected: dict[str, float]  # arm -> mean per-user expected hit probability (less noisy truth)
    users: dict[str, int]  # arm -> users counted by the metric
    truth_users: dict[str, int]
    evaluation: dict[str, Any] = field(repr=False, default_factory=dict)
    # every look: (simulated minutes, estimate, lower, upper, users main, users nightly)
    trace: list[tuple[float, float | None, float | None, float | None, int, int]] = field(default_factory=list)


def trial_record(result: TrialResult, config: dict[str, Any]) -> dict[str, Any]:
    """One finished trial as a JSON-able line of the trial log, keyed by the run's `config` (everything
    that makes trial k of a scenario the same trial: traffic, seeds, release settings). The per-look
    evaluation is left out (it is the trace's source and large)."""
    row = asdict(result)
    row.pop("evaluation")
    return {"config": config, **row}


def result_from_record(record: dict[str, Any]) -> TrialResult:
    """The inverse of `trial_record` (without the evaluation)."""
    fields_ = {k: v for k, v in record.items() if k != "config"}
    fields_["trace"] = [tuple(look) for look in fields_.get("trace", [])]
    return TrialResult(**fields_)


def trials_to_run(scenarios: Sequence[str], trials: int, done: set[tuple[str, int]]) -> list[tuple[str, int]]:
    """Trial-major order (trial 0 of every scenario, then trial 1, ...), so that a run cut short by its
    time budget leaves every scenario with about as many trials; trials already in the log are skipped."""
    return [(s, t) for t in range(trials) for s in scenarios if (s, t) not in done]


def run_trial(scenario: str, trial: int, recommenders: dict[str, Any], population: Population,
              template: Path, workdir: Path, settings: ReleaseSettings, options: TrialOptions) -> TrialResult:
    """One release of SCENARIOS[scenario] from a copy of the `template` history database."""
    main_strategy, nightly_strategy = SCENARIOS[scenario]
    db_path = workdir / f"trial-{scenario}-{trial}.db"
    shutil.copy(template, db_path)
    url = f"sqlite:///{db_path}"
    versions = {"main": f"{main_strategy}-main", "nightly": f"{nightly_strategy}-nightly"}
    services = {arm: make_service(strategy, versions[arm], recommenders[strategy], url)
                for arm, strategy in (("main", main_strategy), ("nightly", nightly_strategy))}
    stats = TruthStats(export_metrics=False)
    salt = f"bench-{scenario}-{trial}-{options.seed}"
    canary = Canary(services, salt, settings.canary_weight, stats)
    engine = make_engine(url)
    sink = StreamToDatabase(engine)
    config = RunConfig(start_time=T0, recommend_fraction=options.recommend_fraction, speed=0.0,
                       sessions_per_user_day=sessions_per_user_day(options.requests_per_minute, options.users,
                                                                   options.recommend_fraction),
                       seed=1000 * options.seed + trial + 17 * list(SCENARIOS).index(scenario), every_minute=False,
                       best_hit=False)
    simulation = Simulation(population, config, sink, canary.recommend, stats=stats)
    stats.clock = simulation
    look_seconds = settings.look_minutes * 60.0
    window_seconds = settings.window_minutes * 60.0
    sessions = make_session_factory(engine)
    state: dict[str, Any] = {"next": min(look_seconds, window_seconds), "looks": 0, "evaluation": None,
                             "trace": []}
    started = time.perf_counter()

    def at_look() -> bool:
        now = simulation.next_event_seconds or 0.0
        if now < state["next"]:
            return False
        sink.flush()
        state["looks"] += 1
        with sessions() as session:
            evaluation = look(session, versions["main"], versions["nightly"], salt, settings.canary_weight,
                              timedelta(seconds=state["next"]), settings)
        state["evaluation"] = evaluation
        v = evaluation["verdict"]
        state["trace"].append((state["next"] / 60.0, v.get("estimate"), v.get("lower"), v.get("upper"),
                               evaluation["main"]["users"], evaluation["nightly"]["users"]))
        if v["decision"] != "extend":
            return True
        state["next"] = min(state["next"] + look_seconds, window_seconds)
        return False

    simulation.should_stop = at_look
    simulation.run()
    wall = time.perf_counter() - started
    evaluation = state["evaluation"]
    verdict = evaluation["verdict"]
    # The metric counts requests up to its newest logged request minus the horizon: the truth too.
    newest = max((at for _, _, at, _, _ in stats.requests), default=0.0)
    until = newest - settings.hit_horizon_minutes * 60.0
    truth, expected, truth_users, users = {}, {}, {}, {}
    for arm in ("main", "nightly"):
        truth[arm], expected[arm], truth_users[arm] = stats.per_user_truth(versions[arm], until)
        users[arm] = evaluation[arm]["users"]
    engine.dispose()
    for service in services.values():
        service.history.engine.dispose()
    db_path.unlink()
    for suffix in ("-wal", "-shm"):
        Path(f"{db_path}{suffix}").unlink(missing_ok=True)
    return TrialResult(scenario, trial, verdict["decision"], state["looks"], state["next"] / 60.0, wall,
                       verdict["reason"], verdict.get("estimate"), verdict.get("lower"), verdict.get("upper"),
                       {arm: evaluation[arm]["mean_user_hit_rate"] for arm in ("main", "nightly")}, truth, expected,
                       users, truth_users, evaluation, state["trace"])


