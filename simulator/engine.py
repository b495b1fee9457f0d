"""The discrete-event loop: sessions arrive, ask for recommendations, pick, stream, rate.

Simulated time is its own clock (seconds since `start_time`); every line carries it. With
`speed` > 0, the loop waits until wall time catches up with simulated time / speed; with
speed 0 it runs as fast as the rate limit allows. Only sessions in progress are kept in memory
(plus a bounded LRU of which films recently active users have already seen).
"""

from __future__ import annotations

import heapq
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from simulator.behaviour import (
    BehaviourParams,
    choose_by_taste,
    choose_from_list,
    hit_probability,
    maybe_rating,
    minutes_watched,
    oracle_list,
)
from simulator.events import rating_line, recommendation_line, watch_line
from simulator.ratelimit import TokenBucket
from simulator.recommend_client import RecommendResponse
from simulator.sinks import Sink
from simulator.stats import SimStats
from simulator.users import Population, SimUser

ARRIVAL, WATCH, RATE = 0, 1, 2
SECONDS_PER_MINUTE = 60.0


@dataclass(frozen=True)
class RunConfig:
    start_time: datetime
    recommend_fraction: float = 0.5
    max_events: int | None = None
    duration_seconds: float | None = None  # wall-clock limit
    speed: float = 1.0  # simulated seconds per wall second; 0 = no pacing
    rate_per_second: float | None = None  # token-bucket limit on lines written
    sessions_per_user_day: float = 0.5
    max_remembered_users: int = 200_000
    seed: int = 0
    every_minute: bool = True  # False: one watch line per session, its first minute (benches that need starts only)
    best_hit: bool = True  # False: skip the oracle list per request (best_hit_rate then reads 0)


@dataclass(slots=True)
class Session:
    user: SimUser
    item: int
    movie_id: str
    last_minute: int
    rating: int | None
    minute: int = 0


@dataclass
class Simulation:
    """One run; `recommend` is a callable user_id -> RecommendResponse (None: never ask)."""

    population: Population
    config: RunConfig
    sink: Sink
    recommend: Callable[[int], RecommendResponse] | None = None
    behaviour: BehaviourParams = field(default_factory=BehaviourParams)
    stats: SimStats = field(default_factory=SimStats)
    should_stop: Callable[[], bool] = lambda: False

    def __post_init__(self) -> None:
        tastes = self.population.tastes
        self.tastes = tastes
        self.slug_index = tastes.index_of()
        self.cumulative_popularity = np.cumsum(tastes.popularity_weight)
        self.rng = np.random.default_rng([self.config.seed, 2])
        self.seen: OrderedDict[int, set[int]] = OrderedDict()
        self.active_users: set[int] = set()
        self.limiter = TokenBucket(self.config.rate_per_second) if self.config.rate_per_second else None
        users_per_second = self.population.n_users * self.config.sessions_per_user_day / 86_400.0
        self.mean_gap_seconds = 1.0 / max(users_per_second, 1e-9)
        self._heap: list[tuple[float, int, int, Session | None]] = []
        self._seq = 0
        self.emitted = 0
        self.now_seconds = 0.0  # simulated time of the event being handled

    # ---- scheduling -------------------------------------------------------------------
    def _push(self, at: float, kind: int, session: Session | None) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, session))

    def _when(self, at: float) -> datetime:
        return self.config.start_time + timedelta(seconds=at)

    def _emit(self, line: str, kind: str) -> None:
        if self.limiter is not None:
            self.limiter.acquire()
        self.sink.write(line)
        self.emitted += 1
        self.stats.event(kind)

    def _seen_by(self, user_id: int) -> set[int]:
        seen = self.seen.get(user_id)
        if seen is None:
            seen = self.seen[user_id] = set()
            if len(self.seen) > self.config.max_remembered_users:
                self.seen.popitem(last=False)
        else:
            self.seen.move_to_end(user_id)
        return seen

    # ---- behaviour --------------------------------------------------------------------
    def _pick_user(self) -> int:
        for _ in range(20):
            user_id = self.population.sample_active_user(self.rng)
            if user_id not in self.active_users:
                return user_id
        return user_id

    def _ask(self, at: float, user: SimUser, seen: set[int]) -> int | None:
        """Request a list, write its line, maybe pick from it; returns the picked item or None."""
        assert self.recommend is not None
        response = self.recommend(user.user_id)
        self.stats.request(response.outcome)
        # A failed request's result is an error text (as in the course feed), never a film list.
        shown: tuple[str, ...] | str = response.results if response.status else f"error: {response.error}"
        self._emit(recommendation_line(self._when(at), user.user_id, response.server, response.status, shown,
                                       response.response_ms), "recommendation")
        if response.status != 200:
            return None
        items = [self.slug_index.get(slug, -1) for slug in response.results]
        # Unknown films and films already seen cannot be picked: NaN utility = no appeal.
        positions = [k for k, i in enumerate(items) if i >= 0 and i not in seen]
        utilities = np.full(len(items), np.nan)
        if positions:
            known = np.array([items[k] for k in positions], dtype=np.int64)
            utilities[positions] = self.tastes.utilities(user.factors, user.bias, known)
        best_hit = 0.0
        if self.config.best_hit:
            best = oracle_list(self.tastes, user.factors, user.bias, seen, self.behaviour.top_n)
            best_hit = hit_probability(self.tastes.utilities(user.factors, user.bias, best), self.behaviour)
        picked = choose_from_list(utilities, self.rng, self.behaviour)
        self.stats.answered(response.model_version, picked is not None, hit_probability(utilities, self.behaviour),
                            best_hit)
        return None if picked is None else items[picked]

    def _start_session(self, at: float) -> None:
        user = self.population.user(self._pick_user())
        seen = self._seen_by(user.user_id)
        item = None
        if self.recommend is not None and self.rng.random() < self.config.recommend_fraction:
            item = self._ask(at, user, seen)
        if item is None:
            item = choose_by_taste(self.tastes, user.factors, user.bias, seen, self.rng, self.behaviour,
                                   self.cumulative_popularity)
        seen.add(item)
        utility = float(self.tastes.utilities(user.factors, user.bias, np.array([item]))[0])
        runtime = int(self.tastes.runtime_minutes[item])
        last_minute = minutes_watched(utility, runtime, self.rng, self.behaviour)
        rating = maybe_rating(utility, last_minute == runtime - 1, self.rng, self.behaviour)
        session = Session(user, item, str(self.tastes.item_ids[item]), last_minute, rating)
        self.active_users.add(user.user_id)
        self.stats.sessions += 1
        self.stats.active_sessions(len(self.active_users))
        self._push(at + float(self.rng.uniform(5.0, 120.0)), WATCH, session)  # browsing before play

    def _watch(self, at: float, session: Session) -> None:
        self._emit(watch_line(self._when(at), session.user.user_id, session.movie_id, session.minute), "watch")
        if session.minute < session.last_minute and self.config.every_minute:
            session.minute += 1
            self._push(at + SECONDS_PER_MINUTE, WATCH, session)
        elif session.rating is not None:
            self._push(at + float(self.rng.uniform(10.0, 300.0)), RATE, session)
        else:
            self._end(session)

    def _rate(self, at: float, session: Session) -> None:
        assert session.rating is not None
        self._emit(rating_line(self._when(at), session.user.user_id, session.movie_id, session.rating), "rating")
        self._end(session)

    def _end(self, session: Session) -> None:
        self.active_users.discard(session.user.user_id)
        self.stats.active_sessions(len(self.active_users))

    @property
    def next_event_seconds(self) -> float | None:
        """Simulated time of the next event (None before `run` or when nothing is left)."""
        return self._heap[0][0] if self._heap else None

    # ---- the loop ---------------------------------------------------------------------
    def run(self) -> dict[str, object]:
        """Run until max events, the wall-clock duration or `should_stop`; returns the summary."""
        config = self.config
        wall_start = time.monotonic()
        deadline = wall_start + config.duration_seconds if config.duration_seconds else None
        self._push(0.0, ARRIVAL, None)
        sim_time = 0.0
        while self._heap:
            if config.max_events is not None and self.emitted >= config.max_events:
                break
            if self.should_stop() or (deadline is not None and time.monotonic() >= deadline):
                break
            at, _, kind, session = self._heap[0]
            if config.speed > 0:
                wait = wall_start + at / config.speed - time.monotonic()
                if wait > 0:
                    time.sleep(min(wait, 0.2))  # short naps keep stop checks responsive
                    continue
            heapq.heappop(self._heap)
            sim_time = self.now_seconds = at
            if kind == ARRIVAL:
                self._start_session(at)
                self._push(at + float(self.rng.exponential(self.mean_gap_seconds)), ARRIVAL, None)
            elif kind == WATCH:
                self._watch(at, session)  # type: ignore[arg-type]
            else:
                self._rate(at, session)  # type: ignore[arg-type]
        wall = time.monotonic() - wall_start
        summary = self.stats.summary()
        summary.update({
            "wall_seconds": round(wall, 3),
            "events_per_second": round(self.emitted / wall, 1) if wall > 0 else None,
            "simulated_seconds": round(sim_time, 1),
            "simulated_start": self._when(0).isoformat(),
            "simulated_end": self._when(sim_time).isoformat(timespec="seconds"),
            "active_sessions": len(self.active_users),
        })
        return summary
