"""Ingestion throughput: Tansu broker -> `movierec parser` loop -> PostgreSQL, committed events/s.

    python bench/ingest.py --events 1000000

Produces realistic stream lines (about 93% watch minutes, 5% ratings, 2% recommendation requests;
users watching films minute by minute in interleaved sessions, time moving forward) into a Tansu
broker it starts, then runs the real consumer loop (IngestLoop, the code behind `movierec parser`)
into a fresh PostgreSQL schema and reports committed events/s, the produce rate and peak RSS.
The producer runs in a child process so the reported peak RSS is the consumer's.
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import logging
import multiprocessing
import os
import random
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from prometheus_client import REGISTRY
from sqlalchemy import func, select

from data_parsing.consumer import IngestLoop
from data_parsing.producer import StreamProducer
from data_parsing.settings import ParserSettings
from db_utils.engine import make_engine, upgrade_database
from db_utils.models import DeadLetter, Rating, Recommendation, Watch
from movierec.base.benchlog import record_run
from movierec.base.broker import start_broker
from movierec.base.scratch import postgres_schema_url

WORDS = [
    "the", "night", "star", "love", "man", "city", "war", "last", "dark", "house", "girl", "story", "world",
    "king", "blue", "day", "secret", "river", "life", "time", "road", "home", "lost", "black", "summer", "dead",
    "first", "heart", "game", "red", "little", "school", "death", "island", "american", "big", "part", "kill",
    "moon", "fire", "one", "two", "ghost", "wild", "return", "golden", "high", "new", "iron", "boy", "dream",
]


def movie_catalogue(count: int, rng: random.Random) -> list[str]:
    """Synthetic catalogue slugs (`the+dark+river+1994`), unique, popularity-ordered."""
    slugs: set[str] = set()
    while len(slugs) < count:
        words = rng.sample(WORDS, rng.randint(1, 4))
        slugs.add("+".join([*words, str(rng.randint(1930, 2024))]))
    return sorted(slugs)


def realistic_lines(events: int, seed: int = 7, users: int = 1_000_000, movies: int = 27_000,
                    concurrent_sessions: int = 20_000) -> Iterator[str]:
    """Viewing sessions streaming one line per minute each (interleaved in time order), ratings
    and recommendation requests; `concurrent_sessions` viewers are watching at any moment."""
    rng = random.Random(seed)
    catalogue = movie_catalogue(movies, rng)
    # Zipf-like popularity: a few films are streamed much more than the long tail.
    cumulative = list(itertools.accumulate(1.0 / (rank + 10) for rank in range(len(catalogue))))
    start = datetime(2024, 3, 1, 18, 0, 0)

    def new_session(at: float) -> tuple[float, int, str, int, int]:
        # (next line time in seconds from start, user, movie, minute, length in minutes)
        movie = rng.choices(catalogue, cum_weights=cumulative, k=1)[0]
        return (at, rng.randint(1, users), movie, 0, rng.randint(20, 150))

    sessions = [new_session(rng.uniform(0, 60)) for _ in range(concurrent_sessions)]
    heapq.heapify(sessions)
    for index in range(events):
        at, user, movie, minute, length = sessions[0]
        stamp = (start + timedelta(seconds=at)).isoformat(timespec="microseconds" if index % 3 else "seconds")
        draw = rng.random()
        if draw < 0.93:
            line = f"{stamp},{user},GET /data/m/{movie}/{minute}.mpg"
            if minute + 1 >= length:  # the film ends; someone else starts one a little later
                heapq.heapreplace(sessions, new_session(at + rng.uniform(1, 60)))
            else:
                heapq.heapreplace(sessions, (at + rng.uniform(59.5, 60.5), user, movie, minute + 1, length))
        elif draw < 0.98:
            line = f"{stamp},{user},GET /rate/{movie}={rng.randint(1, 5)}"
        else:
            results = ", ".join(rng.sample(catalogue[:2000], 20))
            version = rng.choice(("blend-v1", "blend-v2"))
            line = (f"{stamp},{rng.randint(1, users)},recommendation request {version}@127.0.0.1:8082, "
                    f"status 200, result: {results}, {rng.randint(5, 120)} ms")
        yield line


def _produce(bootstrap: str, topic: str, events: int, sessions: int, queue: multiprocessing.Queue) -> None:
    lines = list(realistic_lines(events, concurrent_sessions=sessions))
    with StreamProducer(bootstrap, topic, acks=1) as producer:
        started = time.perf_counter()
        for line in lines:
            producer.send(line)
        producer.flush()
        queue.put((time.perf_counter() - started, sum(len(line) for line in lines)))


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _bench_settings(bootstrap: str, database_url: str, batch_max_events: int) -> ParserSettings:
    environ = {
        "KAFKA_BOOTSTRAP": bootstrap,
        "KAFKA_TOPIC": "movielog",
        "DATABASE_URL": database_url,
        "PARSER_GROUP_ID": "bench-ingest",
        "PARSER_METRICS_PORT": "0",
        "PARSER_SESSION_TIMEOUT_MS": "3000",
        "PARSER_BATCH_MAX_EVENTS": str(batch_max_events),
        "PARSER_BATCH_MAX_SECONDS": "2",
        "MOVIEREC_DATA_DIR": tempfile.gettempdir(),
    }
    return ParserSettings.from_env(environ)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--batch-max-events", type=int, default=100_000)
    parser.add_argument("--concurrent-sessions", type=int, default=20_000,
                        help="viewers streaming at any moment; more = more distinct (user, movie) rows per batch")
    parser.add_argument("--verbose", action="store_true", help="log every committed batch (write_seconds, rows)")
    parser.add_argument("--profile", type=Path, default=None, help="write a cProfile of the consumer here")
    args = parser.parse_args(argv)
    if args.verbose:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
        logging.getLogger("movierec.parser").setLevel(logging.INFO)

    broker = start_broker(log_path=Path(tempfile.gettempdir()) / "bench-ingest-tansu.log")
    try:
        with postgres_schema_url() as database_url:
            upgrade_database(database_url)
            queue: multiprocessing.Queue = multiprocessing.get_context("fork").Queue()
            child = multiprocessing.get_context("fork").Process(
                target=_produce, args=(broker.bootstrap, "movielog", args.events, args.concurrent_sessions, queue))
            child.start()
            produce_seconds, produce_bytes = queue.get()
            child.join()
            print(f"stream     {args.concurrent_sessions:,} concurrent viewing sessions, batches of "
                  f"{args.batch_max_events:,} events")
            print(f"produced   {args.events:,} lines ({produce_bytes / 1e6:.1f} MB) in {produce_seconds:.1f} s "
                  f"= {args.events / produce_seconds:,.0f} lines/s (acks=1, linger 20 ms)")

            engine = make_engine(database_url)
            loop = IngestLoop(_bench_settings(broker.bootstrap, database_url, args.batch_max_events), engine)
            cpu_before = _cpu_seconds()
            started = time.perf_counter()
            if args.profile:
                import cProfile

                profiler = cProfile.Profile()
                profiler.runcall(loop.run, idle_exit_seconds=3.0)
                profiler.dump_stats(str(args.profile))
            else:
                loop.run(idle_exit_seconds=3.0)
            finished = time.perf_counter()
            cpu_seconds = _cpu_seconds() - cpu_before
            write_seconds = REGISTRY.get_sample_value("movierec_ingest_write_duration_seconds_sum") or 0.0
            # The loop leaves after 3 s without messages; the last commit happened before that.
            consume_seconds = (loop.last_commit_perf or finished) - (loop.first_record_perf or started)
            with engine.connect() as conn:
                counts = {model.__tablename__: conn.scalar(select(func.count()).select_from(model))
                          for model in (Watch, Rating, Recommendation, DeadLetter)}
            engine.dispose()
    finally:
        broker.stop()
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"committed  {loop.committed_events:,} events in {consume_seconds:.1f} s "
          f"= {loop.committed_events / consume_seconds:,.0f} events/s (first record -> last offset commit; "
          f"group join + idle exit excluded; total run {finished - started:.1f} s)")
    print(f"time       database writes {write_seconds:.1f} s wall in total; consumer process CPU "
          f"{cpu_seconds:.1f} s = {loop.committed_events / cpu_seconds:,.0f} events per CPU-second "
          f"(PostgreSQL's own CPU not included)")
    print("rows       " + ", ".join(f"{name}={count:,}" for name, count in counts.items()))
    print(f"peak RSS   {peak_rss_mb:,.0f} MB (consumer process)")
    print(f"machine    {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at the end")
    record_run("ingest", {
        "events": args.events, "committed_events": loop.committed_events,
        "committed_events_per_second": round(loop.committed_events / consume_seconds),
        "events_per_consumer_cpu_second": round(loop.committed_events / cpu_seconds),
        "database_write_seconds": round(write_seconds, 1), "peak_rss_mb": round(peak_rss_mb),
        **{f"rows_{name}": count for name, count in counts.items()},
    }, notes="Broker (Tansu) -> parser -> PostgreSQL, first record to last offset commit. Goal >= 50,000 events/s.")
    return 0 if loop.committed_events == args.events else 1


if __name__ == "__main__":
    sys.exit(main())
