"""What the local platform runs: the service plan of `movierec up` as plain data (no I/O).

`plan_services` turns settings into an ordered list of `ServiceSpec`s; the supervisor starts them
in that order (each once the services it `wait_for`s are healthy, the others without waiting) and
stops them in reverse.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from monitoring.local import alertmanager_argv, prometheus_argv
from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting


class UpSettings(EnvSettings):
    """Ports and knobs of the local platform (`.env.example`, section `movierec up`)."""

    common: CommonSettings = nested_common()
    kafka_port: int = setting("UP_KAFKA_PORT", 9092, ge=1, le=65535)
    parser_metrics_port: int = setting("PARSER_METRICS_PORT", 9101, ge=0, le=65535)
    main_port: int = setting("UP_MAIN_PORT", 8001, ge=1, le=65535)
    nightly_port: int = setting("UP_NIGHTLY_PORT", 8002, ge=1, le=65535)
    router_port: int = setting("UP_ROUTER_PORT", 8082, ge=1, le=65535)
    simulator_metrics_port: int = setting("SIM_METRICS_PORT", 9102, ge=0, le=65535)
    dashboard_port: int = setting("UP_DASHBOARD_PORT", 3000, ge=1, le=65535)
    prometheus_port: int = setting("UP_PROMETHEUS_PORT", 9090, ge=1, le=65535)
    alertmanager_port: int = setting("UP_ALERTMANAGER_PORT", 9093, ge=1, le=65535)
    supervisor_metrics_port: int = setting("UP_SUPERVISOR_METRICS_PORT", 9103, ge=0, le=65535)
    main_strategy: str = setting("UP_MAIN_STRATEGY", "blend")
    nightly_strategy: str = setting("UP_NIGHTLY_STRATEGY", "seed")
    canary_weight: float = setting("LB_CANARY_WEIGHT", 0.2, ge=0.0, le=1.0)
    admin_token: str = setting("LB_ADMIN_TOKEN", "", repr=False)  # "" -> `up` creates the token file
    simulator: bool = setting("UP_SIMULATOR", True)
    simulator_rate: float = setting("UP_SIMULATOR_RATE", 200.0, ge=0)
    simulator_users: int = setting("UP_SIMULATOR_USERS", 1_000_000, ge=1)
    monitoring: bool = setting("UP_MONITORING", True)
    inference_workers: int = setting("UP_INFERENCE_WORKERS", 1, ge=1)
    slack_webhook_url: str = setting("SLACK_WEBHOOK_URL", "", repr=False)
    restart_backoff_initial_seconds: float = setting("UP_RESTART_BACKOFF_INITIAL_SECONDS", 1.0, gt=0)
    restart_backoff_max_seconds: float = setting("UP_RESTART_BACKOFF_MAX_SECONDS", 30.0, gt=0)
    restart_max_crashes: int = setting("UP_RESTART_MAX_CRASHES", 10, ge=1)
    restart_window_seconds: float = setting("UP_RESTART_WINDOW_SECONDS", 600.0, gt=0)


@dataclass(frozen=True)
class ServiceSpec:
    """One process of the platform: how to start it and how to tell it is healthy."""

    name: str
    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)
    port: int | None = None
    health_url: str | None = None  # None: a TCP connect to `port` (or just being alive) is enough
    url: str | None = None  # what a person opens; printed in the table
    required: bool = True  # a required service that cannot start aborts `up`
    wait_for: tuple[str, ...] = ()  # services that must be healthy before this one starts (the others start at once)


def movierec_argv(*args: str) -> tuple[str, ...]:
    """Run a `movierec` command with this interpreter (works without the venv on PATH)."""
    return (sys.executable, "-m", "movierec.cli", *args)


def plan_services(
    settings: UpSettings,
    *,
    tansu: Path,
    prometheus: Path | None,
    alertmanager: Path | None,
    monitoring_dir: Path,
) -> list[ServiceSpec]:
    """The ordered service plan; Prometheus/Alertmanager only when their binaries exist."""
    common = settings.common
    loopback = "127.0.0.1"
    kafka = f"{loopback}:{settings.kafka_port}"
    main_url = f"http://{loopback}:{settings.main_port}"
    nightly_url = f"http://{loopback}:{settings.nightly_port}"
    router_url = f"http://{loopback}:{settings.router_port}"
    prometheus_url = f"http://{loopback}:{settings.prometheus_port}"
    base_env = {
        "MOVIEREC_DATA_DIR": str(common.data_dir),
        "DATABASE_URL": common.database_url,
        "KAFKA_BOOTSTRAP": kafka,
        "KAFKA_TOPIC": common.kafka_topic,
        "CHROMA_URL": common.chroma_url,
        "CHROMA_COLLECTION": common.chroma_collection,
        "LOG_LEVEL": common.log_level,
    }
    broker_url = f"tcp://{kafka}"
    specs = [
        ServiceSpec(
            "broker",
            (str(tansu), "broker", "--listener-url", broker_url, "--advertised-listener-url", broker_url,
             "--storage-engine", "memory://tansu/"),
            port=settings.kafka_port,
            url=f"kafka://{kafka}",
        ),
        ServiceSpec(
            "parser",
            movierec_argv("parser"),
            {**base_env, "PARSER_METRICS_PORT": str(settings.parser_metrics_port)},
            port=settings.parser_metrics_port,
            health_url=f"http://{loopback}:{settings.parser_metrics_port}/metrics",
            url=f"http://{loopback}:{settings.parser_metrics_port}/metrics",
            wait_for=("broker",),
        ),
        ServiceSpec(
            "inference-main",
            movierec_argv("inference", "--port", str(settings.main_port),
                          "--workers", str(settings.inference_workers)),
            {**base_env, "INFERENCE_STRATEGY": settings.main_strategy},
            port=settings.main_port,
            health_url=f"{main_url}/health",
            url=f"{main_url}/recommend/<user_id>",
        ),
        ServiceSpec(
            "inference-nightly",
            movierec_argv("inference", "--port", str(settings.nightly_port),
                          "--workers", str(settings.inference_workers)),
            {**base_env, "INFERENCE_STRATEGY": settings.nightly_strategy},
            port=settings.nightly_port,
            health_url=f"{nightly_url}/health",
            url=f"{nightly_url}/recommend/<user_id>",
        ),
        ServiceSpec(
            "router",
            movierec_argv("lb", "--port", str(settings.router_port)),
            {**base_env, "LB_MAIN_URL": main_url, "LB_NIGHTLY_URL": nightly_url,
             "LB_CANARY_WEIGHT": str(settings.canary_weight)},
            port=settings.router_port,
            health_url=f"{router_url}/health",
            url=f"{router_url}/recommend/<user_id>",
        ),
        ServiceSpec(
            "scheduler",
            movierec_argv("scheduler"),
            {**base_env, "LB_ADMIN_URL": router_url},
        ),
    ]
    if settings.monitoring and prometheus is not None and alertmanager is not None:
        specs += [
            ServiceSpec(
                "alertmanager",
                tuple(alertmanager_argv(alertmanager, monitoring_dir / "alertmanager.yml", settings.alertmanager_port,
                                        monitoring_dir / "alertmanager-data")),
                port=settings.alertmanager_port,
                health_url=f"http://{loopback}:{settings.alertmanager_port}/-/ready",
                url=f"http://{loopback}:{settings.alertmanager_port}",
                required=False,
            ),
            ServiceSpec(
                "prometheus",
                tuple(prometheus_argv(prometheus, monitoring_dir / "prometheus.yml", settings.prometheus_port,
                                      monitoring_dir / "prometheus-data")),
                port=settings.prometheus_port,
                health_url=f"{prometheus_url}/-/ready",
                url=prometheus_url,
                required=False,
            ),
        ]
    specs.append(
        ServiceSpec(
            "dashboard",
            movierec_argv("dashboard", "--port", str(settings.dashboard_port), "--prometheus-url", prometheus_url),
            base_env,
            port=settings.dashboard_port,
            health_url=f"http://{loopback}:{settings.dashboard_port}/health",
            url=f"http://{loopback}:{settings.dashboard_port}",
            required=False,
        )
    )
    if settings.simulator:
        specs.append(
            ServiceSpec(
                "simulator",
                movierec_argv("simulate", "--output", "kafka", "--rate", f"{settings.simulator_rate:g}",
                              "--users", str(settings.simulator_users)),
                {**base_env, "SIM_RECOMMEND_URL": router_url,
                 "SIM_METRICS_PORT": str(settings.simulator_metrics_port)},
                port=settings.simulator_metrics_port,
                health_url=f"http://{loopback}:{settings.simulator_metrics_port}/metrics",
                url=f"http://{loopback}:{settings.simulator_metrics_port}/metrics",
                wait_for=("broker", "inference-main", "router"),
            )
        )
    return specs


def scrape_targets(specs: list[ServiceSpec]) -> dict[str, list[str]]:
    """Prometheus scrape targets (job -> host:port) for the services that expose /metrics."""
    jobs = {"parser", "inference-main", "inference-nightly", "router", "simulator", "dashboard", "prometheus",
            "alertmanager"}
    return {s.name: [f"127.0.0.1:{s.port}"] for s in specs if s.name in jobs and s.port is not None}
