"""End to end over the real Tansu broker and real databases: `movierec parser` as a subprocess
(PostgreSQL), the same loop in-process (SQLite), crashes, a database outage, garbage, SIGTERM."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import Engine

from data_parsing.consumer import IngestLoop
from data_parsing.producer import StreamProducer
from data_parsing.settings import ParserSettings
from db_utils.engine import make_engine
from movierec.base.broker import Broker
from movierec.base.ports import free_port
from tests.support import TcpProxy

from .conftest import (
    ParserProcess,
    committed_offsets,
    create_topic,
    dead_letters,
    expected_rows,
    stream_lines,
    table_rows,
    wait_until,
)

Run = Callable[[dict[str, str]], ParserProcess]


def produce(broker: Broker, topic: str, lines: list[str] | list[bytes]) -> None:
    with StreamProducer(broker.bootstrap, topic, acks="all") as producer:
        producer.send_many(lines)
        producer.flush()


def wait_committed(broker: Broker, env: dict[str, str], count: int, timeout_seconds: float = 60,
                   parser: ParserProcess | None = None) -> None:
    def done() -> bool:
        if parser is not None and parser.process is not None and parser.process.poll() is not None:
            raise AssertionError(f"parser exited with {parser.process.returncode}:\n{parser.log()}")
        return committed_offsets(broker, env["PARSER_GROUP_ID"]) >= count

    wait_until(done, timeout_seconds, f"{count} committed messages")
    assert committed_offsets(broker, env["PARSER_GROUP_ID"]) == count


def test_produced_lines_become_exactly_the_expected_rows(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine
) -> None:
    lines = stream_lines(3000, seed=11)
    produce(broker, parser_env["KAFKA_TOPIC"], lines)
    parser = run_parser(parser_env)
    wait_committed(broker, parser_env, len(lines), parser=parser)

    assert table_rows(pg_engine) == expected_rows(lines)
    assert dead_letters(pg_engine) == []
    samples = parser.metrics()
    by_type = Counter(
        "watch" if "/data/m/" in line else "rating" if "/rate/" in line else "recommendation" for line in lines)
    for kind, count in by_type.items():
        assert samples[f'movierec_ingest_events_total{{type="{kind}"}}'] == count
    assert samples["movierec_ingest_batch_size_sum"] == len(lines)
    assert samples["movierec_ingest_write_duration_seconds_count"] >= len(lines) / 500
    assert samples["movierec_ingest_last_commit_timestamp_seconds"] > time.time() - 120
    assert samples["movierec_ingest_db_errors_total"] == 0
    wait_until(lambda: all(parser.metrics().get(f'movierec_ingest_consumer_lag{{partition="{p}"}}') == 0
                           for p in range(3)), 10, "consumer lag 0 on the 3 partitions")


def test_in_process_loop_on_sqlite(broker: Broker, sqlite_url: str, sqlite_engine: Engine) -> None:
    topic = create_topic(broker)
    lines = stream_lines(1500, seed=5)
    produce(broker, topic, lines)
    settings = ParserSettings.from_env({
        "KAFKA_BOOTSTRAP": broker.bootstrap, "KAFKA_TOPIC": topic, "DATABASE_URL": sqlite_url,
        "PARSER_GROUP_ID": f"sqlite-{topic}", "PARSER_SESSION_TIMEOUT_MS": "2000", "PARSER_BATCH_MAX_EVENTS": "400",
    })
    engine = make_engine(sqlite_url)
    loop = IngestLoop(settings, engine)
    loop.run(idle_exit_seconds=3)
    engine.dispose()
    assert loop.committed_events == len(lines)
    assert table_rows(sqlite_engine) == expected_rows(lines)
    assert committed_offsets(broker, f"sqlite-{topic}") == len(lines)


def test_sigkill_at_any_point_then_restart_loses_and_duplicates_nothing(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine
) -> None:
    lines = stream_lines(20_000, seed=23)
    produce(broker, parser_env["KAFKA_TOPIC"], lines[:12_000])
    env = {**parser_env, "PARSER_BATCH_MAX_EVENTS": "700", "PARSER_BATCH_MAX_SECONDS": "0.3"}
    kills = 0
    for round_ in range(3):
        parser = run_parser(env)
        before = committed_offsets(broker, env["PARSER_GROUP_ID"])
        wait_until(lambda before=before: committed_offsets(broker, env["PARSER_GROUP_ID"]) > before + 1400,
                   60, "progress before the kill")
        time.sleep(0.05 * round_)  # land the kill at different points of the batch cycle
        parser.signal(signal.SIGKILL)
        assert parser.wait() == -signal.SIGKILL
        kills += 1
        if round_ == 0:
            produce(broker, parser_env["KAFKA_TOPIC"], lines[12_000:])
    assert 0 < committed_offsets(broker, env["PARSER_GROUP_ID"]) < len(lines)
    parser = run_parser(env)
    wait_committed(broker, env, len(lines), parser=parser)
    assert kills == 3
    assert table_rows(pg_engine) == expected_rows(lines)
    assert dead_letters(pg_engine) == []


def test_database_outage_stops_commits_and_resumes_without_loss(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine, pg_proxy: TcpProxy
) -> None:
    lines = stream_lines(5000, seed=31)
    env = {**parser_env, "DATABASE_URL": pg_proxy.url_for(parser_env["DATABASE_URL"])}
    produce(broker, env["KAFKA_TOPIC"], lines[:2000])
    parser = run_parser(env)
    wait_committed(broker, env, 2000, parser=parser)

    pg_proxy.cut()
    produce(broker, env["KAFKA_TOPIC"], lines[2000:])
    wait_until(lambda: parser.metrics().get("movierec_ingest_db_errors_total", 0) >= 3, 30, "failed writes")
    time.sleep(2)  # a few more backoff rounds
    assert committed_offsets(broker, env["PARSER_GROUP_ID"]) == 2000  # nothing committed while down
    assert parser.process is not None and parser.process.poll() is None

    pg_proxy.start()
    wait_committed(broker, env, len(lines), parser=parser)
    assert table_rows(pg_engine) == expected_rows(lines)
    assert "db_write_recovered" in parser.log()


GARBAGE: list[tuple[bytes, str]] = [
    (b"2023-10-25T00:56:34,185706,GET /data/m/the+dark+kni", "truncated"),
    (b"2023-10-25T00:56:34,185706", "truncated"),
    (b"2023-10-25T00:56:34,abc,GET /data/m/heat+1995/3.mpg", "bad_user"),
    (b"2023-10-25T00:56:34,12,GET /data/m/heat+1995/three.mpg", "bad_minute"),
    (b"25/10/2023 00:56,12,GET /data/m/heat+1995/3.mpg", "bad_time"),
    (b"2023-10-25T00:56:34,12,GET /rate/heat+1995=0", "rating_out_of_range"),
    (b"2023-10-25T00:56:34,12,GET /rate/heat+1995=6", "rating_out_of_range"),
    (b"2023-10-25T00:56:34,12,GET /rate/heat+1995=abc", "bad_rating"),
    (b"2023-10-25T00:56:34,12,recommendation request h:1, status abc, result: heat+1995, 3 ms", "bad_status"),
    (b"2023-10-25T00:56:34,12,recommendation request h:1, status 200, result: heat+1995, slow", "bad_latency"),
    (b"", "empty"),
    (b"   ", "empty"),
    (b"\x00\x01\x02\xff\xfe binary", "not_utf8"),
    (bytes(range(256)), "not_utf8"),
    (b"null\x00byte,12,GET /data/m/heat+1995/3.mpg", "bad_time"),
    (b"2023-10-25T00:56:34,12,GET /data/m/" + b"x" * 10_240 + b"/1.mpg", "too_long"),
    (b"DROP TABLE watches;", "bad_time"),
]
UNKNOWN_MOVIE = "2023-10-25T00:56:34,12,GET /data/m/a+film+nobody+knows+2099/7.mpg"


def test_garbage_is_dead_lettered_counted_and_never_stops_the_loop(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine
) -> None:
    valid = stream_lines(600, seed=3) + [UNKNOWN_MOVIE]
    corpus: list[bytes] = []
    for index, line in enumerate(valid):
        corpus.append(line.encode())
        if index % 35 == 0 and index // 35 < len(GARBAGE):
            corpus.append(GARBAGE[index // 35][0])
    assert sum(1 for raw, _ in GARBAGE if raw in corpus) == len(GARBAGE)
    produce(broker, parser_env["KAFKA_TOPIC"], corpus)
    parser = run_parser(parser_env)
    wait_committed(broker, parser_env, len(corpus), parser=parser)

    assert table_rows(pg_engine) == expected_rows(valid)
    assert (12, "a+film+nobody+knows+2099", 7) in [row[:3] for row in table_rows(pg_engine)["watches"]]
    letters = dead_letters(pg_engine)
    assert len(letters) == len(GARBAGE) and len({source for source, _, _ in letters}) == len(GARBAGE)
    assert all(source.startswith(parser_env["KAFKA_TOPIC"] + ":") for source, _, _ in letters)
    expected = sorted(
        (reason, raw[:8192].decode("utf-8", errors="replace").replace("\x00", "\\x00")) for raw, reason in GARBAGE)
    assert sorted((reason, raw_line) for _, reason, raw_line in letters) == expected
    samples = parser.metrics()
    for reason, count in Counter(reason for _, reason in GARBAGE).items():
        assert samples[f'movierec_ingest_dead_letters_total{{reason="{reason}"}}'] == count
    assert parser.process is not None and parser.process.poll() is None
    parser.signal(signal.SIGTERM)
    assert parser.wait() == 0


def test_sigterm_writes_and_commits_the_current_batch_then_exits_0(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine, tmp_path: Path
) -> None:
    lines = stream_lines(1500, seed=47)
    env = {**parser_env, "PARSER_BATCH_MAX_EVENTS": "100000", "PARSER_BATCH_MAX_SECONDS": "600"}
    produce(broker, env["KAFKA_TOPIC"], lines)
    parser = run_parser(env)
    # Everything is read into the open batch (lag 0 everywhere) but nothing is written yet.
    wait_until(lambda: all(parser.metrics().get(f'movierec_ingest_consumer_lag{{partition="{p}"}}') == 0
                           for p in range(3)), 30, "all messages read into the batch")
    assert committed_offsets(broker, env["PARSER_GROUP_ID"]) == 0
    assert table_rows(pg_engine)["watches"] == []

    parser.signal(signal.SIGTERM)
    assert parser.wait() == 0
    assert committed_offsets(broker, env["PARSER_GROUP_ID"]) == len(lines)
    assert table_rows(pg_engine) == expected_rows(lines)
    assert "stop_requested signal=SIGTERM" in parser.log() and f"batch_committed events={len(lines)}" in parser.log()


def test_sigterm_while_the_database_is_down_exits_1_uncommitted_and_a_restart_completes(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine, pg_proxy: TcpProxy
) -> None:
    lines = stream_lines(2000, seed=59)
    env = {**parser_env, "DATABASE_URL": pg_proxy.url_for(parser_env["DATABASE_URL"]),
           "PARSER_SHUTDOWN_GRACE_SECONDS": "2"}
    pg_proxy.cut()
    produce(broker, env["KAFKA_TOPIC"], lines)
    parser = run_parser(env)
    wait_until(lambda: parser.metrics().get("movierec_ingest_db_errors_total", 0) >= 1, 30, "a failed write")
    parser.signal(signal.SIGTERM)
    assert parser.wait(timeout_seconds=20) == 1
    assert "shutdown_incomplete" in parser.log()
    assert committed_offsets(broker, env["PARSER_GROUP_ID"]) == 0

    pg_proxy.start()
    parser = run_parser(env)
    wait_committed(broker, env, len(lines), parser=parser)
    assert table_rows(pg_engine) == expected_rows(lines)


def test_two_parsers_share_the_partitions_and_hand_over_on_sigterm(
    broker: Broker, parser_env: dict[str, str], run_parser: Run, pg_engine: Engine
) -> None:
    lines = stream_lines(12_000, seed=71)
    env = {**parser_env, "PARSER_BATCH_MAX_EVENTS": "300", "PARSER_BATCH_MAX_SECONDS": "0.2"}
    produce(broker, env["KAFKA_TOPIC"], lines[:4000])
    first = run_parser(env)
    wait_until(lambda: committed_offsets(broker, env["PARSER_GROUP_ID"]) >= 1000, 60, "first parser progress")
    second = run_parser({**env, "PARSER_METRICS_PORT": str(free_port())})  # joins: the group rebalances
    wait_until(lambda: "partitions_assigned" in second.log(), 60, "the second parser to take partitions")
    produce(broker, env["KAFKA_TOPIC"], lines[4000:8000])
    wait_until(lambda: committed_offsets(broker, env["PARSER_GROUP_ID"]) >= 6000, 60, "both parsers' progress")
    first.signal(signal.SIGTERM)  # hands its partitions over
    assert first.wait() == 0
    produce(broker, env["KAFKA_TOPIC"], lines[8000:])
    wait_committed(broker, env, len(lines), parser=second)
    assert table_rows(pg_engine) == expected_rows(lines)
    assert "batch_committed" in first.log() and "batch_committed" in second.log()
