"""`movierec simulate`: simulated users stream films, ask for and react to recommendations.

    movierec simulate --users 1000000 --speed 60 --rate 500 --output kafka
    movierec simulate --max-events 10000 --speed 0 --output file:var/stream.txt --recommend-fraction 0

Prints a JSON summary at exit (to stderr when the stream itself goes to stdout).
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from datetime import datetime
from pathlib import Path

from simulator.engine import RunConfig, Simulation
from simulator.settings import SimulatorSettings

log = logging.getLogger(__name__)


def build_parser(settings: SimulatorSettings) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="movierec simulate", description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=settings.users, help="population size (ids 1..N)")
    p.add_argument("--seed", type=int, default=settings.seed)
    p.add_argument("--rate", type=float, default=settings.rate_per_second, help="max lines/s (0 = unlimited)")
    p.add_argument("--speed", type=float, default=settings.speed,
                   help="simulated seconds per wall second (0 = as fast as possible)")
    p.add_argument("--duration", type=float, default=None, help="stop after this many wall seconds")
    p.add_argument("--max-events", type=int, default=None, help="stop after this many lines")
    p.add_argument("--recommend-fraction", type=float, default=settings.recommend_fraction,
                   help="share of sessions that ask for recommendations")
    p.add_argument("--sessions-per-user-day", type=float, default=settings.sessions_per_user_day)
    p.add_argument("--recommend-url", default=settings.recommend_url)
    p.add_argument("--timeout", type=float, default=settings.request_timeout_seconds, help="request timeout (s)")
    p.add_argument("--output", default=settings.output, help="kafka | stdout | file:PATH")
    p.add_argument("--start", type=datetime.fromisoformat, default=None,
                   help="simulated start time (ISO, default now); fix it for reproducible output")
    p.add_argument("--metrics-port", type=int, default=settings.metrics_port, help="0 = no /metrics")
    p.add_argument("--data-dir", type=Path, default=settings.common.data_dir)
    p.add_argument("--rank", type=int, default=settings.rank)
    p.add_argument("--refit", action="store_true", help="refit the taste model even if cached")
    p.add_argument("--fit-only", action="store_true",
                   help="fit (or find cached) the taste model, then exit (`movierec up` prepares it so)")
    return p


def main(argv: list[str]) -> int:
    settings = SimulatorSettings.from_env()
    args = build_parser(settings).parse_args(argv[1:])
    if args.max_events is None and args.duration is None and args.speed == 0:
        print("movierec simulate: --speed 0 needs --max-events or --duration", file=sys.stderr)
        return 2

    from movierec.base.metrics import start_metrics_server
    from simulator.recommend_client import RecommendClient
    from simulator.sinks import open_sink
    from simulator.tastes import TasteParams
    from simulator.tastes_store import load_tastes
    from simulator.users import Population

    tastes = load_tastes(args.data_dir, TasteParams(rank=args.rank), refit=args.refit,
                         chroma_url=settings.common.chroma_url, collection_name=settings.common.chroma_collection)
    if args.fit_only:
        print(f"taste model ready: {tastes.n_items} films, {len(tastes.prototype_bias)} prototype users")
        return 0
    population = Population(tastes, n_users=args.users, seed=args.seed)
    if args.metrics_port:
        start_metrics_server(args.metrics_port, "simulator", addr=settings.metrics_addr)
    client = RecommendClient(args.recommend_url, args.timeout) if args.recommend_fraction > 0 else None
    start = args.start or datetime.now().replace(microsecond=0)
    config = RunConfig(
        start_time=start, recommend_fraction=args.recommend_fraction, max_events=args.max_events,
        duration_seconds=args.duration, speed=args.speed, rate_per_second=args.rate or None,
        sessions_per_user_day=args.sessions_per_user_day, seed=args.seed,
    )
    stopping: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda number, _frame: stopping.append(number))
    sink = open_sink(args.output, settings.common.kafka_bootstrap, settings.common.kafka_topic)
    simulation = Simulation(population, config, sink, client.recommend if client else None,
                            should_stop=lambda: bool(stopping))
    log.info("simulate_start users=%d items=%d output=%s speed=%s rate=%s", args.users, tastes.n_items,
             args.output, args.speed, args.rate)
    try:
        summary = simulation.run()
    finally:
        sink.close()
        if client is not None:
            client.close()
    print(json.dumps(summary, sort_keys=True), file=sys.stderr if args.output == "stdout" else sys.stdout)
    return 0
