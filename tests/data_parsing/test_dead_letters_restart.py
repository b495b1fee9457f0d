"""Dead letters survive a broker that loses its log: the Tansu broker (memory storage) is restarted
between two runs of the same bad lines, offsets start at 0 again, and every bad line is stored."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Callable
from pathlib import Path

from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
from sqlalchemy import Engine, text

from data_parsing.producer import StreamProducer
from movierec.base.broker import Broker, start_broker
from movierec.base.ports import free_port
from tests.support import wait_until

from .conftest import ParserProcess, committed_offsets, stream_lines

BAD_LINES = [f"2024-05-01T20:00:{i:02d},{i + 1},GET /rate/heat+1995={6 + i}".encode() for i in range(16)] + \
            [f"garbage line {i}".encode() for i in range(16)]


def _create_topic(broker: Broker, topic: str) -> None:
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    try:  # the running parser may have asked for it first (auto-creation)
        with contextlib.suppress(TopicAlreadyExistsError):
            admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()


def _produce(broker: Broker, topic: str, lines: list[bytes]) -> None:
    with StreamProducer(broker.bootstrap, topic, acks="all") as producer:
        producer.send_many(lines)
        producer.flush()


def _stored(engine: Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return sorted(tuple(r) for r in conn.execute(text("SELECT source, raw_line FROM dead_letters")))


def test_every_bad_line_is_kept_across_a_broker_restart(
    postgres_url: str, pg_engine: Engine, run_parser: Callable[[dict[str, str]], ParserProcess], tmp_path: Path
) -> None:
    port = free_port()
    broker = start_broker(port, tmp_path / "broker-1.log")
    topic = f"movielog-{uuid.uuid4().hex[:8]}"
    group = f"parser-{uuid.uuid4().hex[:8]}"
    env = {**os.environ, "KAFKA_BOOTSTRAP": broker.bootstrap, "KAFKA_TOPIC": topic, "DATABASE_URL": postgres_url,
           "PARSER_GROUP_ID": group, "PARSER_METRICS_PORT": str(free_port()), "PARSER_SESSION_TIMEOUT_MS": "2000",
           "PARSER_BATCH_MAX_EVENTS": "500", "PARSER_BATCH_MAX_SECONDS": "0.3", "PARSER_RETRY_INITIAL_SECONDS": "0.2",
           "PARSER_RETRY_MAX_SECONDS": "1", "LOG_LEVEL": "INFO"}
    corpus = [line.encode() for line in stream_lines(100, seed=5)] + BAD_LINES
    try:
        _create_topic(broker, topic)
        _produce(broker, topic, corpus)
        parser = run_parser(env)
        wait_until(lambda: committed_offsets(broker, group) == len(corpus), 60, "the first run committed")
        first = _stored(pg_engine)
        assert len(first) == len(BAD_LINES)

        broker.stop()  # memory storage: the topic, its offsets and the group's commits are gone
        broker = start_broker(port, tmp_path / "broker-2.log")
        _create_topic(broker, topic)
        _produce(broker, topic, corpus)  # the same lines again, at the same offsets
        wait_until(lambda: committed_offsets(broker, group) == len(corpus), 90,
                   f"the second run committed (parser log:\n{parser.log()})")

        stored = _stored(pg_engine)
        assert len(stored) == 2 * len(BAD_LINES)
        assert sorted(set(stored)) == first  # same sources and lines, each stored twice
        counted = sum(value for name, value in parser.metrics().items()
                      if name.startswith("movierec_ingest_dead_letters_total{"))
        assert counted == len(stored)  # the metric agrees with the table
    finally:
        broker.stop()
