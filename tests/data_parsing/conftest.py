"""Helpers for the ingestion end-to-end tests: the real `movierec parser` process, a TCP proxy
in front of PostgreSQL (to cut the database link), stream lines and their expected rows."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import requests
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

from data_parsing.parser import MalformedLine, RatingEvent, RecommendationEvent, WatchEvent, parse_line
from movierec.base.broker import Broker
from movierec.base.ports import free_port
from tests.support import TcpProxy, wait_until

MOVIES = ["the+dark+knight+2008", "heat+1995", "the+green+mile+1999", "amélie+2001",
          "the+hunger+games+mockingjay+-+part+1+2014", "not+in+the+catalogue+2031"]


def stream_lines(count: int, seed: int = 1, users: int = 40) -> list[str]:
    """Valid lines: interleaved watches (with replays and rewinds), ratings, recommendations."""
    rng = random.Random(seed)
    clock = datetime(2024, 5, 1, 20, 0, 0)
    lines = []
    for index in range(count):
        clock += timedelta(milliseconds=rng.randint(0, 900))
        when = clock - timedelta(seconds=rng.choice([0, 0, 0, 0, 30]))  # some lines out of order
        stamp = when.isoformat(timespec="microseconds" if index % 4 == 0 else "seconds")
        user, movie = rng.randint(1, users), rng.choice(MOVIES)
        draw = rng.random()
        if draw < 0.85:
            lines.append(f"{stamp},{user},GET /data/m/{movie}/{rng.randint(0, 120)}.mpg")
        elif draw < 0.95:
            lines.append(f"{stamp},{user},GET /rate/{movie}={rng.randint(1, 5)}")
        else:
            server = rng.choice(["blend-v1@127.0.0.1:8082", "17645-team14.isri.cmu.edu:8082"])
            results = ", ".join(rng.sample(MOVIES, rng.randint(0, len(MOVIES))))
            lines.append(f"{stamp},{user},recommendation request {server}, status 200, "
                         f"result: {results}, {rng.randint(1, 300)} ms")
        if rng.random() < 0.02:
            lines.append(lines[-1])  # the feed repeats lines
    return lines


def expected_rows(lines: list[str]) -> dict[str, list[tuple]]:
    """What the tables must hold after ingesting `lines` (valid ones), computed line by line."""
    watches: dict[tuple[int, str], tuple[int, datetime, datetime]] = {}
    ratings: dict[tuple[int, str], tuple[datetime, int]] = {}
    recommendations: dict[str, tuple] = {}
    for line in lines:
        try:
            event = parse_line(line.encode())
        except MalformedLine:
            continue
        if isinstance(event, WatchEvent):
            pair = (event.user_id, event.movie_id)
            old = watches.get(pair, (event.minute, event.time, event.time))
            watches[pair] = (max(old[0], event.minute), min(old[1], event.time), max(old[2], event.time))
        elif isinstance(event, RatingEvent):
            pair = (event.user_id, event.movie_id)
            ratings[pair] = max(ratings.get(pair, (event.time, event.rating)), (event.time, event.rating))
        elif isinstance(event, RecommendationEvent):
            key = hashlib.sha1(line.encode()).hexdigest()
            recommendations[key] = (key, event.time, event.user_id, event.server, event.model_version,
                                    event.status, list(event.results), event.latency_ms)
    return {
        "watches": sorted((u, m, minute, first, last) for (u, m), (minute, first, last) in watches.items()),
        "ratings": sorted((u, m, rating, at) for (u, m), (at, rating) in ratings.items()),
        "recommendations": sorted(recommendations.values()),
    }


def table_rows(engine: Engine) -> dict[str, list[tuple]]:
    with engine.connect() as conn:
        recos = []
        for row in conn.execute(text(
            "SELECT event_key, requested_at, user_id, served_by, model_version, status, results, latency_ms "
            "FROM recommendations"
        )):
            values = list(row)
            values[1] = _as_datetime(values[1])
            values[6] = json.loads(values[6]) if isinstance(values[6], str) else values[6]
            recos.append(tuple(values))
        return {
            "watches": sorted(
                (u, m, minute, _as_datetime(first), _as_datetime(last)) for u, m, minute, first, last in
                conn.execute(text("SELECT user_id, movie_id, max_minute, first_seen, last_seen FROM watches"))),
            "ratings": sorted(
                (u, m, rating, _as_datetime(at)) for u, m, rating, at in
                conn.execute(text("SELECT user_id, movie_id, rating, rated_at FROM ratings"))),
            "recommendations": sorted(recos),
        }


def dead_letters(engine: Engine) -> list[tuple[str, str, str]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text("SELECT source, reason, raw_line FROM dead_letters")))


def _as_datetime(value: object) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value  # type: ignore[return-value]


def create_topic(broker: Broker, partitions: int = 3) -> str:
    topic = f"movielog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        admin.create_topics([NewTopic(topic, partitions, 1)])
    finally:
        admin.close()
    return topic


def committed_offsets(broker: Broker, group_id: str) -> int:
    """The sum of the group's committed offsets over all partitions (= messages done)."""
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:
        offsets = admin.list_group_offsets({group_id: None}).get(group_id, {})
    finally:
        admin.close()
    return sum(max(0, meta.offset) for meta in offsets.values())


class ParserProcess:
    """`movierec parser` as a real subprocess, logging to a file, with its /metrics port."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.log_path = log_path
        self.metrics_port = int(env["PARSER_METRICS_PORT"])
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ParserProcess:
        command = [str(Path(sys.executable).parent / "movierec"), "parser"]
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT)
        wait_until(self._metrics_up, 30, "the parser's /metrics")
        return self

    def _metrics_up(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError(f"parser exited with {self.process.returncode}:\n{self.log()}")
        with contextlib.suppress(requests.RequestException):
            return requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=2).ok
        return False

    def metrics(self) -> dict[str, float]:
        """Samples by `name{labels}` (the parser's own metrics only)."""
        body = requests.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text
        samples = {}
        for line in body.splitlines():
            if line.startswith("movierec_ingest_"):
                name, _, value = line.rpartition(" ")
                samples[name] = float(value)
        return samples

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout_seconds: float = 30) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout_seconds)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()


@pytest.fixture
def parser_env(broker: Broker, postgres_url: str, pg_engine: Engine) -> dict[str, str]:
    """Environment for a parser on a fresh 3-partition topic, a fresh group and the test schema."""
    env = dict(os.environ)
    env.update({
        "KAFKA_BOOTSTRAP": broker.bootstrap,
        "KAFKA_TOPIC": create_topic(broker),
        "DATABASE_URL": postgres_url,
        "PARSER_GROUP_ID": f"parser-{uuid.uuid4().hex[:8]}",
        "PARSER_METRICS_PORT": str(free_port()),
        "PARSER_SESSION_TIMEOUT_MS": "2000",
        "PARSER_BATCH_MAX_EVENTS": "500",
        "PARSER_BATCH_MAX_SECONDS": "0.5",
        "PARSER_RETRY_INITIAL_SECONDS": "0.2",
        "PARSER_RETRY_MAX_SECONDS": "1",
        "LOG_LEVEL": "INFO",
    })
    return env


@pytest.fixture
def run_parser(tmp_path: Path) -> Iterator[Callable[[dict[str, str]], ParserProcess]]:
    started: list[ParserProcess] = []

    def _run(env: dict[str, str]) -> ParserProcess:
        process = ParserProcess(env, tmp_path / f"parser-{len(started)}.log").start()
        started.append(process)
        return process

    yield _run
    for process in started:
        process.stop()


@pytest.fixture
def pg_proxy(postgres_url: str) -> Iterator[TcpProxy]:
    proxy = TcpProxy("127.0.0.1", make_url(postgres_url).port or 5432).start()
    yield proxy
    proxy.cut()
