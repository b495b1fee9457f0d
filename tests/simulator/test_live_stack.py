"""The simulator against a live stack: the Tansu broker, `movierec parser` (subprocess) writing to
PostgreSQL, and the real inference app (`inference.app.create_app`, MiniLM index of the synthetic
catalogue) on a loopback HTTP server. Stream rows and recommendation rows must reach the database."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pandas as pd
import pytest
from kafka.admin import KafkaAdminClient, NewTopic
from sqlalchemy import Engine, text

from data_parsing.parser import RatingEvent, RecommendationEvent, WatchEvent, parse_line
from movierec.base.broker import Broker
from simulator.engine import RunConfig, Simulation
from simulator.recommend_client import RecommendClient
from simulator.sinks import KafkaSink
from simulator.stats import SimStats
from simulator.tastes import Tastes
from simulator.users import Population
from tests.simulator.conftest import START, ListSink, http_server
from tests.support import wait_until


class TeeSink:
    """Kafka for the stack, a list for the assertions."""

    def __init__(self, kafka: KafkaSink) -> None:
        self.kafka, self.copy = kafka, ListSink()

    def write(self, line: str) -> None:
        self.kafka.write(line)
        self.copy.write(line)

    def close(self) -> None:
        self.kafka.close()


@pytest.fixture(scope="module")
def indexed_dir(tmp_path_factory: pytest.TempPathFactory,
                small_data: tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]) -> Path:
    """The synthetic catalogue written as the catalogue builder does, embedded with MiniLM."""
    from vectordb_scripts.catalog_io import catalog_path
    from vectordb_scripts.index import IndexSettings, build_index

    catalog, ratings, _ = small_data
    data_dir = tmp_path_factory.mktemp("live") / "var"
    path = catalog_path(data_dir)
    path.parent.mkdir(parents=True)
    catalog.assign(field_sources=None).to_parquet(path, index=False)
    build_index(catalog, IndexSettings.from_env({"MOVIEREC_DATA_DIR": str(data_dir), "CHROMA_URL": ""}),
                ratings=ratings, progress=False)
    return data_dir


def count(engine: Engine, table: str) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


def test_simulated_stream_and_recommendations_reach_the_database(
    broker: Broker, postgres_url: str, pg_engine: Engine, indexed_dir: Path, small_tastes: Tastes, tmp_path: Path
) -> None:
    from inference.app import create_app
    from inference.settings import InferenceSettings

    topic = f"movielog-{uuid.uuid4().hex[:8]}"
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap)
    admin.create_topics([NewTopic(topic, 2, 1)])
    admin.close()
    env = {**os.environ, "KAFKA_BOOTSTRAP": broker.bootstrap, "KAFKA_TOPIC": topic, "DATABASE_URL": postgres_url,
           "PARSER_METRICS_PORT": "0", "PARSER_GROUP_ID": f"sim-{uuid.uuid4().hex[:6]}",
           "PARSER_SESSION_TIMEOUT_MS": "6000", "PARSER_BATCH_MAX_SECONDS": "0.5"}
    log_path = tmp_path / "parser.log"
    with open(log_path, "wb") as log:
        parser = subprocess.Popen([str(Path(sys.executable).parent / "movierec"), "parser"], env=env,
                                  stdout=log, stderr=subprocess.STDOUT)
    settings = InferenceSettings.from_env({"MOVIEREC_DATA_DIR": str(indexed_dir), "DATABASE_URL": postgres_url,
                                           "CHROMA_URL": "", "INFERENCE_DB_RETRY_SECONDS": "0"})
    app = create_app(settings)
    try:
        with http_server(app) as url:
            sink = TeeSink(KafkaSink(broker.bootstrap, topic))
            client = RecommendClient(url, timeout_seconds=5)
            config = RunConfig(start_time=START, speed=0, max_events=8000, recommend_fraction=0.5,
                               sessions_per_user_day=20, seed=1)
            population = Population(small_tastes, n_users=500, seed=1)
            summary = Simulation(population, config, sink, client.recommend,
                                 stats=SimStats(export_metrics=False)).run()
            sink.close()
            client.close()
        events = [parse_line(line.encode()) for line in sink.copy.lines]
        requests = [e for e in events if isinstance(e, RecommendationEvent)]
        watched = {(e.user_id, e.movie_id) for e in events if isinstance(e, WatchEvent)}
        rated = {(e.user_id, e.movie_id) for e in events if isinstance(e, RatingEvent)}
        assert len(requests) > 20 and rated
        version = settings.model_version
        assert summary["versions"][version]["requests"] == len(requests)

        wait_until(lambda: (count(pg_engine, "recommendations"), count(pg_engine, "watches"),
                            count(pg_engine, "ratings")) == (len(requests), len(watched), len(rated)),
                   90, "the parser to write every simulated event")
        with pg_engine.connect() as conn:
            rows = conn.execute(text("SELECT served_by, model_version, status, results FROM recommendations")).all()
        port = url.rsplit(":", 1)[1]
        known = set(small_tastes.item_ids.tolist())
        for served_by, model_version, status, results in rows:
            assert (served_by, model_version, status) == (f"{version}@127.0.0.1:{port}", version, 200)
            assert 0 < len(results) <= 20 and set(results) <= known
        assert count(pg_engine, "dead_letters") == 0
    finally:
        app.extensions["movierec_inference"].history.dispose()
        parser.send_signal(signal.SIGTERM)
        try:
            parser.wait(timeout=30)
        except subprocess.TimeoutExpired:
            parser.kill()
            parser.wait()
