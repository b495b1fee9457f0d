"""`movierec parser`: consume the stream topic into the database until SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys

from data_parsing.consumer import IngestLoop, ShutdownIncomplete
from data_parsing.settings import ParserSettings
from db_utils.engine import make_engine
from movierec.base.metrics import start_metrics_server

log = logging.getLogger("movierec.parser")


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="movierec parser",
        description="Kafka consumer writing the stream to the database (settings from PARSER_* variables).",
    )
    parser.add_argument("--idle-exit-seconds", type=float, default=None,
                        help="exit 0 after this long without a message (batch jobs, benchmarks)")
    args = parser.parse_args(argv[1:])
    settings = ParserSettings.from_env()
    if settings.metrics_port:
        start_metrics_server(settings.metrics_port, service="parser", addr=settings.metrics_addr)
        log.info("metrics_server addr=%s port=%d", settings.metrics_addr, settings.metrics_port)
    engine = make_engine(settings.common.database_url)
    loop = IngestLoop(settings, engine)

    def _stop(signum: int, _frame: object) -> None:
        log.info("stop_requested signal=%s", signal.Signals(signum).name)
        loop.request_stop()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    try:
        loop.run(idle_exit_seconds=args.idle_exit_seconds)
    except ShutdownIncomplete as exc:
        log.error("shutdown_incomplete error=%s", exc)
        return 1
    finally:
        engine.dispose()
    return 0


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    sys.exit(main(["parser", *sys.argv[1:]]))
