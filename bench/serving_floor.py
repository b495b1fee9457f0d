"""What serving costs before any work: gunicorn alone, gunicorn + Flask, and the inference service, alike loaded.

    python bench/serving_floor.py --data-dir ~/.cache/movierec/test-data --rates 300,600 --rounds 3

Three servers with the same gunicorn shape as inference (movierec.base.serving; default its settings,
gthread 2x2), loaded in turn, `--rounds` times, so the machine's drift falls on each alike, by
bench/recommend.py's open-loop generator over keep-alive connections:

  wsgi     gunicorn and a bare WSGI callable answering `/recommend/<id>` with a fixed 20-id line;
  flask    gunicorn and a Flask app built as the services build theirs (the platform's URL converter,
           the user id parsed, request metrics in multiprocess mode), answering the same fixed line;
  service  `movierec inference` on the built index, users of 10 watched films in PostgreSQL.

The CPU per request of each (gunicorn master + workers, from /proc) and the differences between
neighbours say what each layer costs. Issue 16 asks for 1.0 ms of server CPU per recommendation with
Flask and gunicorn kept: where `flask` alone costs about that, no work on the service's own code
(ranking, the history query, the view) can meet it on that machine.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from db_utils.engine import upgrade_database
from movierec.base.benchlog import record_run
from movierec.base.ports import free_port, wait_for_port
from movierec.base.scratch import postgres_schema_url
from vectordb_scripts.table import NEIGHBOURS_FILE, load_table

_spec = importlib.util.spec_from_file_location("bench_recommend", Path(__file__).with_name("recommend.py"))
recommend = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = recommend
_spec.loader.exec_module(recommend)  # type: ignore[union-attr]

LAYERS = ("wsgi", "flask", "service")
WATCHED = 10
# A line like inference's answer: 20 comma-separated movie ids.
BODY = (",".join(str(862 + 7919 * i % 200_000) for i in range(20)) + "\n").encode()


def wsgi_app() -> Any:
    """The least a WSGI server can be handed: the fixed answer, no routing beyond a prefix test."""
    headers = [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(BODY)))]

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ.get("PATH_INFO", "").startswith("/recommend/"):
            start_response("200 OK", headers)
            return [BODY]
        start_response("404 Not Found", [("Content-Type", "text/plain"), ("Content-Length", "0")])
        return [b""]

    return app


def flask_app() -> Any:
    """Flask as the services use it: the `anytext` converter, the id parsed, request metrics, `/metrics`."""
    from flask import Flask, Response

    from db_utils.ids import parse_user_id
    from movierec.base.http import install_converters
    from movierec.base.metrics import instrument_flask

    app = Flask("serving_floor")
    install_converters(app)

    @app.get("/recommend/<anytext:raw_user_id>", merge_slashes=False)
    def recommend_view(raw_user_id: str) -> Response:
        parse_user_id(raw_user_id)
        return Response(BODY, mimetype="text/plain")

    instrument_flask(app, "serving-floor")
    return app


def serve_layer(layer: str, port: int, workers: int, threads: int, worker_class: str) -> None:
    from movierec.base.serving import serve

    serve(wsgi_app if layer == "wsgi" else flask_app, bind=f"127.0.0.1:{port}", workers=workers, threads=threads,
          worker_class=worker_class)


def start_layer(layer: str, port: int, config: Any, env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    if layer == "service":
        return recommend.start_server(port, env, config, "blend", log_path)
    log = open(log_path, "wb")  # noqa: SIM115
    # Metrics in multiprocess mode, as the services run them: the directory is set before any import.
    metrics_dir = tempfile.mkdtemp(prefix=f"prom-{layer}-", dir=log_path.parent)
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve", layer, "--port", str(port), "--configs", config.label],
        env={**env, "PROMETHEUS_MULTIPROC_DIR": metrics_dir}, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    wait_for_port("127.0.0.1", port, timeout_seconds=60)
    return process


def measure(port: int, process: subprocess.Popen[bytes], url: str | None, users: list[int], rate: float,
            seconds: float) -> dict[str, Any]:
    server = recommend._tree(process.pid)
    backends = recommend.database_backends(process, url) if url else []
    server_before, db_before, own_before = (recommend.cpu_seconds(server), recommend.cpu_seconds(backends),
                                            time.process_time())
    lat, errors, elapsed = asyncio.run(recommend.run_rate(port, users, rate, seconds))
    served = max(len(lat), 1)
    return {
        **recommend.latency_figures(lat, elapsed),
        "errors": errors,
        "server_cpu_ms_per_req": round((recommend.cpu_seconds(server) - server_before) * 1000.0 / served, 3),
        "db_cpu_ms_per_req": round((recommend.cpu_seconds(backends) - db_before) * 1000.0 / served, 3)
        if backends else None,
        "loadgen_cpu_ms_per_req": round((time.process_time() - own_before) * 1000.0 / served, 3),
        "loadavg_1m": round(os.getloadavg()[0], 2),
    }


def layer_costs(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per rate: the median over rounds of each layer's server CPU per request, and the differences."""
    summary: dict[str, dict[str, float]] = {}
    for rate in sorted({row["rate"] for row in rows}):
        medians = {layer: statistics.median(row["server_cpu_ms_per_req"] for row in rows
                                            if row["layer"] == layer and row["rate"] == rate)
                   for layer in LAYERS if any(row["layer"] == layer and row["rate"] == rate for row in rows)}
        entry = {f"{layer}_ms": round(value, 3) for layer, value in medians.items()}
        if "wsgi" in medians and "flask" in medians:
            entry["flask_over_wsgi_ms"] = round(medians["flask"] - medians["wsgi"], 3)
        if "flask" in medians and "service" in medians:
            entry["service_over_flask_ms"] = round(medians["service"] - medians["flask"], 3)
        summary[f"{rate:g}"] = entry
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path(os.environ.get("MOVIEREC_DATA_DIR", "var")))
    parser.add_argument("--rates", default="300,600", help="request rates (req/s), comma separated")
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument("--rounds", type=int, default=3, help="times each layer is loaded, in turn")
    parser.add_argument("--layers", default=",".join(LAYERS), help=f"of {', '.join(LAYERS)}")
    parser.add_argument("--configs", default=recommend.default_config(),
                        help="the gunicorn shape, class:WORKERSxTHREADS (default: inference's)")
    parser.add_argument("--serve", choices=("wsgi", "flask"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--record-as", default="serving-floor", help="name of the run in reports/runs/")
    args = parser.parse_args()
    config = recommend.ServerConfig.parse(args.configs)
    if args.serve:
        serve_layer(args.serve, args.port, config.workers, config.threads, config.worker_class)
        return 0
    rates = [float(r) for r in args.rates.split(",")]
    layers = [layer.strip() for layer in args.layers.split(",")]
    if unknown := [layer for layer in layers if layer not in LAYERS]:
        parser.error(f"unknown --layers: {unknown}")

    with tempfile.TemporaryDirectory(prefix="bench-floor-") as tmp, postgres_schema_url() as url:
        table = load_table(args.data_dir.resolve() / "index" / NEIGHBOURS_FILE)
        upgrade_database(url)
        users = recommend.seed_users(url, table.ids)[WATCHED]
        repo = str(Path(__file__).resolve().parents[1])
        python_path = os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))
        env = {**os.environ, "MOVIEREC_DATA_DIR": str(args.data_dir.resolve()), "DATABASE_URL": url,
               "LOG_LEVEL": "WARNING", "PYTHONPATH": python_path}
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        print(f"{config.label}; {len(table)} films; users of {WATCHED} watched films; {os.cpu_count()} CPUs; "
              f"load average {os.getloadavg()[0]:.2f}")
        print(f"{'round':>5} {'layer':>8} {'rate':>5} {'achieved':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
              f"{'CPU ms/req: server':>18} {'db':>5} {'loadgen':>7} {'load':>5}")
        rows: list[dict[str, Any]] = []
        for round_number in range(1, args.rounds + 1):
            for layer in layers:
                port = free_port()
                process = start_layer(layer, port, config, env, Path(tmp) / f"{layer}.log")
                try:
                    asyncio.run(recommend.warm_up(port, users))
                    for rate in rates:
                        row = {"scenario": f"{layer} {rate:g}/s r{round_number}", "round": round_number,
                               "layer": layer, "rate": rate,
                               **measure(port, process, url if layer == "service" else None, users, rate,
                                         args.seconds)}
                        rows.append(row)
                        db = "-" if row["db_cpu_ms_per_req"] is None else f"{row['db_cpu_ms_per_req']:.2f}"
                        print(f"{round_number:>5} {layer:>8} {rate:>5.0f} {row['achieved_rps']:>8.1f} "
                              f"{row['p50_ms']:>7.2f} {row['p99_ms']:>7.2f} {row['errors']:>6} "
                              f"{row['server_cpu_ms_per_req']:>18.3f} {db:>5} {row['loadgen_cpu_ms_per_req']:>7.3f} "
                              f"{row['loadavg_1m']:>5.1f}", flush=True)
                finally:
                    recommend.stop(process)
        summary = layer_costs(rows)
        for rate, entry in summary.items():
            print(f"at {rate} req/s, median server CPU per request over {args.rounds} rounds: "
                  + ", ".join(f"{name.removesuffix('_ms')} {value:.3f} ms" for name, value in entry.items()))
        flat = {f"{name} at {rate} req/s": value for rate, entry in summary.items() for name, value in entry.items()}
        record_run(args.record_as, {"config": config.label, "films": len(table), "watched": WATCHED,
                                    "rounds": args.rounds, **flat, "table": rows},
                   notes="Server CPU per request (gunicorn master + workers, from /proc) of gunicorn with a bare "
                         "WSGI callable, gunicorn with a Flask app built as the services' (converter, id parse, "
                         "request metrics), and the inference service, same shape and load, in turn; the "
                         "`<layer>_ms at <rate>` figures are medians over rounds, `*_over_*` their differences. "
                         "Issue 16's goal is 1.0 ms per recommendation.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
