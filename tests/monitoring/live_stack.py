"""A live platform for the monitoring tests: the REAL services as processes, scraped by a real Prometheus.

Each service runs through its own `movierec` command, like the supervisor starts it: parser
(Kafka -> SQLite), inference main + nightly, the router in front of them, the simulator writing
the stream and asking the router; plus the dashboard and Prometheus (1 s scrape). The only
hand-made inputs are data: a small synthetic catalogue (the simulator tests' generator), its
taste model, and a few garbage stream lines (a real feed has them too). A service whose command
does not exist yet is listed in `skipped` with the reason instead of being faked.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import requests

from monitoring.local import MonitoringProcess, start_prometheus, write_local_configs
from movierec.base.broker import Broker, start_broker
from movierec.base.ports import free_port
from tests.monitoring.conftest import LiveProcess, start_movierec
from tests.support import metric_value

ADMIN_TOKEN = "monitoring-test-token"
UNREACHABLE_DATABASE = "postgresql+psycopg2://movierec@127.0.0.1:1/movierec"
SIM_RANK = 8
GARBAGE_LINES = (
    "2024-01-01T00:00:00,not-a-user,GET /data/m/film+1+2000/3.mpg",
    "2024-01-01T00:00:01,42,GET /rate/film+1+2000=9",
    "truncated line",
)


@dataclass
class LiveStack:
    directory: Path
    broker: Broker
    database_url: str
    data_dir: Path
    services: dict[str, LiveProcess] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)
    stopped: dict[str, LiveProcess] = field(default_factory=dict)
    prometheus: MonitoringProcess | None = None
    dashboard: LiveProcess | None = None

    @property
    def prometheus_url(self) -> str:
        assert self.prometheus is not None
        return self.prometheus.url

    def stop_service(self, name: str) -> None:
        """Stop one service on purpose (an outage the dashboard and the alerts must show)."""
        process = self.services.pop(name)
        process.stop()
        self.stopped[name] = process

    def stop(self) -> None:
        for process in [self.dashboard, *reversed(list(self.services.values()))]:
            if process is not None:
                process.stop()
        if self.prometheus is not None:
            self.prometheus.stop()
        self.broker.stop()


def has_command(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def prepare_data(data_dir: Path) -> None:
    """Synthetic catalogue for inference + the simulator's taste model fitted on it (cached as the CLI expects)."""
    from simulator.tastes import TasteParams, build_tastes
    from simulator.tastes_store import fingerprint_for, save_tastes
    from tests.simulator.conftest import synthetic_data
    from vectordb_scripts.catalog_io import catalog_path

    catalog, ratings, users = synthetic_data()
    path = catalog_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame = catalog.copy()
    frame["field_sources"] = None
    frame.to_parquet(path, index=False)
    params = TasteParams(rank=SIM_RANK)
    tastes = build_tastes(catalog, ratings, users, params)
    save_tastes(tastes, data_dir / "simulator" / f"tastes-r{params.rank}-s{params.seed}.npz",
                fingerprint_for(data_dir, params))


def _try_start(stack: LiveStack, name: str, module: str, args: list[str], port: int, env: dict[str, str],
               health_path: str = "/metrics") -> None:
    if not has_command(module):
        stack.skipped[name] = f"{module} does not exist yet"
        return
    try:
        stack.services[name] = start_movierec(name, args, port, stack.directory, env, health_path=health_path)
    except AssertionError as exc:
        stack.skipped[name] = f"did not start: {exc}"


def start_services(stack: LiveStack) -> None:
    ports = {name: free_port() for name in ("parser", "inference-main", "inference-nightly", "router", "simulator")}
    base = {
        "MOVIEREC_DATA_DIR": str(stack.data_dir), "DATABASE_URL": stack.database_url,
        "KAFKA_BOOTSTRAP": stack.broker.bootstrap, "KAFKA_TOPIC": "movielog", "CHROMA_URL": "",
        "LOG_LEVEL": "INFO", "HF_HUB_OFFLINE": "1", "ANONYMIZED_TELEMETRY": "False",
    }
    _try_start(stack, "parser", "data_parsing.cli", ["parser"], ports["parser"], {
        **base, "PARSER_METRICS_PORT": str(ports["parser"]), "PARSER_SESSION_TIMEOUT_MS": "6000",
        "PARSER_BATCH_MAX_SECONDS": "0.5",
    })
    # The nightly is deployed with a database it cannot reach: it must still answer, from its
    # fallback list, and count `movierec_recommend_fallbacks_total{reason="database"}`.
    for name, strategy, version, database_url in (
        ("inference-main", "blend", "blend-v1", stack.database_url),
        ("inference-nightly", "popularity", "popularity-nightly", UNREACHABLE_DATABASE),
    ):
        _try_start(stack, name, "inference.cli",
                   ["inference", "--port", str(ports[name]), "--workers", "1", "--threads", "2",
                    "--strategy", strategy, "--model-version", version],
                   ports[name], {**base, "DATABASE_URL": database_url, "INFERENCE_DB_RETRY_SECONDS": "0"},
                   health_path="/health")
    _try_start(stack, "router", "load_balancer.cli", ["lb", "--port", str(ports["router"])], ports["router"], {
        **base, "LB_MAIN_URL": f"http://127.0.0.1:{ports['inference-main']}",
        "LB_NIGHTLY_URL": f"http://127.0.0.1:{ports['inference-nightly']}", "LB_CANARY_WEIGHT": "0.5",
        "LB_ADMIN_TOKEN": ADMIN_TOKEN, "LB_WORKERS": "1", "LB_THREADS": "4", "LB_BACKEND_TIMEOUT_SECONDS": "0.8",
        "LB_ONLINE_EVAL_INTERVAL_SECONDS": "2", "RELEASE_HIT_HORIZON_MINUTES": "10",
    }, health_path="/health")
    _try_start(stack, "simulator", "simulator.cli",
               ["simulate", "--output", "kafka", "--users", "300", "--rate", "60", "--speed", "120",
                "--recommend-fraction", "0.8", "--recommend-url", f"http://127.0.0.1:{ports['router']}",
                "--metrics-port", str(ports["simulator"]), "--data-dir", str(stack.data_dir),
                "--rank", str(SIM_RANK), "--duration", "600"],
               ports["simulator"], base)


def produce_garbage(stack: LiveStack) -> None:
    """A few malformed lines, as any real feed has: the parser must dead-letter them."""
    from data_parsing.producer import StreamProducer

    with contextlib.closing(StreamProducer(stack.broker.bootstrap, "movielog")) as producer:
        producer.send_many(GARBAGE_LINES)
        producer.flush(timeout_seconds=10)


def rollback_nightly(stack: LiveStack) -> None:
    """One real release decision through the router's admin API (counts movierec_release_decisions_total)."""
    router = stack.services["router"]
    response = requests.post(f"{router.url}/admin/rollback", json={"note": "monitoring test"},
                             headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=10)
    response.raise_for_status()


def scrape_targets(stack: LiveStack) -> dict[str, list[str]]:
    targets = {name: [f"127.0.0.1:{p.port}"] for name, p in stack.services.items()}
    if stack.dashboard is not None:
        targets["dashboard"] = [f"127.0.0.1:{stack.dashboard.port}"]
    return targets


@contextlib.contextmanager
def live_stack(directory: Path) -> Iterator[LiveStack]:
    """Start everything that exists, Prometheus scraping it every second, and the dashboard on top."""
    from db_utils.engine import upgrade_database

    directory.mkdir(parents=True, exist_ok=True)
    database_url = f"sqlite:///{directory / 'movierec.db'}"
    upgrade_database(database_url)
    stack = LiveStack(directory, start_broker(log_path=directory / "broker.log"), database_url, directory / "data")
    try:
        prepare_data(stack.data_dir)
        start_services(stack)
        prometheus_port, dashboard_port = free_port(), free_port()
        stack.dashboard = start_movierec(
            "dashboard", ["dashboard", "--port", str(dashboard_port), "--prometheus-url",
                          f"http://127.0.0.1:{prometheus_port}", "--scrape-interval", "1"], dashboard_port, directory)
        targets = {**scrape_targets(stack), "prometheus": [f"127.0.0.1:{prometheus_port}"]}
        paths = write_local_configs(directory / "monitoring", targets, alertmanager=None, scrape_interval="1s",
                                    evaluation_interval="1s")
        stack.prometheus = start_prometheus(paths.prometheus, prometheus_port, directory / "prometheus-data")
        yield stack
    finally:
        stack.stop()


def served_fallbacks(url: str, reason: str) -> float:
    """What a running inference service counts itself (its own /metrics, not Prometheus): fallbacks by reason."""
    return metric_value(requests.get(f"{url}/metrics", timeout=5).text, "movierec_recommend_fallbacks_total",
                        reason=reason)


def wait_until_served(stack: LiveStack, name: str, reason: str, timeout_seconds: float) -> None:
    """Let traffic run until the service `name` has answered at least one request from its fallback for
    `reason` (on a slow machine the simulator's few recommendation requests may not reach a canary at 50 %
    within a fixed wait); a dead service fails the wait with its log."""
    deadline = time.monotonic() + timeout_seconds
    while served_fallbacks(stack.services[name].url, reason) == 0:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} answered no request from its {reason} fallback in {timeout_seconds} s")
        wait_for_traffic(stack, 1)


def wait_for_traffic(stack: LiveStack, seconds: float) -> None:
    """Let the services work while Prometheus scrapes; a dead service fails the wait with its log."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for name, process in stack.services.items():
            if process.process.poll() is not None:
                raise AssertionError(f"{name} exited with {process.process.returncode}:\n{process.log_tail()}")
        time.sleep(1.0)
