"""Ground truth the simulator alone knows: hit rates per model version, event counts, metrics.

hit rate = share of answered requests (status 200) after which the user picked a shown film.
best hit rate = mean chance of a hit had the user been shown their own true top-N unseen films.
expected hit rate = mean chance of a hit for the lists actually served (less noisy than hits).
"""

from __future__ import annotations

from collections import Counter as CountMap
from dataclasses import dataclass, field

from prometheus_client import Counter, Gauge

EVENTS = Counter("movierec_sim_events_total", "Stream lines written by the simulator", ["type"])
REQUESTS = Counter(
    "movierec_sim_recommendation_requests_total", "Recommendation requests made by simulated users", ["status"]
)
HITS = Counter(
    "movierec_sim_recommendation_hits_total", "Requests after which the user watched a recommended film", ["version"]
)
HIT_RATE = Gauge("movierec_sim_hit_rate", "Share of answered requests that led to a recommended film", ["version"])
BEST_HIT_RATE = Gauge(
    "movierec_sim_best_hit_rate", "Hit rate had each user been shown their true top unseen films", ["version"]
)
ACTIVE_SESSIONS = Gauge("movierec_sim_active_sessions", "Viewing sessions in progress")


@dataclass
class VersionStats:
    requests: int = 0
    hits: int = 0
    expected_hit_sum: float = 0.0
    best_hit_sum: float = 0.0

    def as_dict(self) -> dict[str, float | int]:
        n = max(self.requests, 1)
        return {
            "requests": self.requests,
            "hits": self.hits,
            "hit_rate": self.hits / n if self.requests else 0.0,
            "expected_hit_rate": self.expected_hit_sum / n if self.requests else 0.0,
            "best_hit_rate": self.best_hit_sum / n if self.requests else 0.0,
        }


@dataclass
class SimStats:
    """Counts of one run; `export_metrics` mirrors every update into the Prometheus metrics."""

    export_metrics: bool = True
    events: CountMap[str] = field(default_factory=CountMap)
    request_outcomes: CountMap[str] = field(default_factory=CountMap)
    versions: dict[str, VersionStats] = field(default_factory=dict)
    sessions: int = 0
    _event_counters: dict[str, Counter] = field(default_factory=dict, repr=False)

    def event(self, kind: str) -> None:
        self.events[kind] += 1
        if self.export_metrics:
            counter = self._event_counters.get(kind)
            if counter is None:  # labels() per line costs more than the line itself
                counter = self._event_counters[kind] = EVENTS.labels(kind)
            counter.inc()

    def request(self, outcome: str) -> None:
        self.request_outcomes[outcome] += 1
        if self.export_metrics:
            REQUESTS.labels(outcome).inc()

    def answered(self, version: str | None, hit: bool, expected_hit: float, best_hit: float) -> None:
        """One answered request: did the user pick from it, and the model-based chances."""
        name = version or "unknown"
        stats = self.versions.setdefault(name, VersionStats())
        stats.requests += 1
        stats.hits += int(hit)
        stats.expected_hit_sum += expected_hit
        stats.best_hit_sum += best_hit
        if self.export_metrics:
            if hit:
                HITS.labels(name).inc()
            HIT_RATE.labels(name).set(stats.hits / stats.requests)
            BEST_HIT_RATE.labels(name).set(stats.best_hit_sum / stats.requests)

    def active_sessions(self, count: int) -> None:
        if self.export_metrics:
            ACTIVE_SESSIONS.set(count)

    def summary(self) -> dict[str, object]:
        return {
            "events": dict(self.events),
            "events_total": sum(self.events.values()),
            "sessions": self.sessions,
            "recommendation_requests": dict(self.request_outcomes),
            "versions": {name: stats.as_dict() for name, stats in sorted(self.versions.items())},
        }
