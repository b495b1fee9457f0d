"""`movierec <command> ...`: dispatches to the package that owns the command.

Modules are imported only when their command runs, so `movierec --help` stays fast and a
command never pays for another service's imports (torch, chromadb, ...). Each target module
exposes `main(argv: list[str]) -> int | None`.

Every command reads its settings from the environment and `.env` (movierec.base.settings); a bad value
stops it with one line naming the variable and the expected form, exit code 2.
"""

from __future__ import annotations

import importlib
import logging
import sys

from movierec.base.settings import CommonSettings, ConfigError, export_env_file_location

# command -> (module with main(argv), one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "up": ("movierec.supervisor", "run the whole platform locally on embedded defaults"),
    "status": ("movierec.supervisor", "show what a detached `movierec up` runs and its health"),
    "down": ("movierec.supervisor", "stop a detached `movierec up`"),
    "db": ("db_utils.cli", "database: `db upgrade` applies the Alembic migrations"),
    "data": ("vectordb_scripts.cli", "data: `data fetch` downloads the hash-pinned data carriers"),
    "catalog": ("vectordb_scripts.cli", "catalogue: `catalog build` builds the ~27K-film catalogue"),
    "index": ("vectordb_scripts.cli", "vector index: `index build` embeds the catalogue into ChromaDB"),
    "parser": ("data_parsing.cli", "Kafka consumer writing the stream to the database"),
    "inference": ("inference.cli", "the recommendation service (gunicorn)"),
    "eval": ("inference.cli", "`eval offline` (release gate); `eval online` lives with the release"),
    "train": ("inference.train", "fit the learned ranker on the database's interactions (versioned artifact)"),
    "simulate": ("simulator.cli", "simulated users: stream, ask for and react to recommendations"),
    "lb": ("load_balancer.cli", "the canary router (gunicorn)"),
    "release": ("load_balancer.cli", "`release nightly <git-ref>` | `release model`: gate, deploy, schedule, decide"),
    "hooks": ("load_balancer.cli", "`hooks install`: git hook for release-recommender-nightly-* tags"),
    "scheduler": ("load_balancer.cli", "runs the platform crontab (python-crontab scheduler)"),
    "admin": ("load_balancer.cli", "`admin token` prints the router's admin token (for curl)"),
    "dashboard": ("monitoring.dashboard", "the local dashboard on :3000 (Grafana JSON, Prometheus data)"),
    "report": ("movierec.report", "regenerate reports/ from the latest runs"),
    "deploy": ("movierec.deploy", "`deploy init-env`: .env with generated secrets for docker-compose.yml"),
    "architecture": ("movierec.architecture", "print ARCHITECTURE.md, drawn from the code's imports (dev extras)"),
}

# (command, first argument) -> module, where a command's actions live in different packages.
SUBCOMMANDS: dict[tuple[str, str], str] = {
    ("eval", "online"): "load_balancer.cli",  # the release pipeline's online evaluation
}

# Commands whose process ends in movierec.base.serving.serve (gunicorn workers share metrics via files).
SERVED_BY_GUNICORN = {"inference", "lb", "dashboard"}


def usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = ["usage: movierec <command> [options]", "", "commands:"]
    lines += [f"  {name.ljust(width)}  {text}" for name, (_, text) in COMMANDS.items()]
    lines += ["", "`movierec <command> --help` for a command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in {"-h", "--help", "help"}:
        print(usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"movierec: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    export_env_file_location()  # child processes read the same .env, whatever their directory
    try:
        logging.basicConfig(
            level=CommonSettings.from_env().log_level,
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        if name in SERVED_BY_GUNICORN:
            from movierec.base.serving import prepare_multiprocess_metrics

            prepare_multiprocess_metrics()  # before the command's modules create their metrics
        target = SUBCOMMANDS.get((name, rest[0] if rest else ""), COMMANDS[name][0])
        module = importlib.import_module(target)
        # Modules that own several commands see the command name first.
        result = module.main([name, *rest])
    except ConfigError as exc:
        print(f"movierec {name}: bad setting: {exc}", file=sys.stderr)
        return 2
    return int(result or 0)

if __name__ == "__main__":
    sys.exit(main())
