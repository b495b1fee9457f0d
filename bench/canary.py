"""Does the canary decide right, and fast? Repeated canary trials with the real components.

    python bench/canary.py                       # every scenario, 40 trials each (default settings)
    python bench/canary.py --scenarios aa_blend,blend_over_seed --trials 10
    python bench/canary.py --trials 0 --end-to-end 3   # the real path only (see below)

Scenarios: A/A (aa_blend), large lifts and drops (blend over seed and the reverse, blend over
popularity and the reverse) and 5-point ones: a nightly that answers 20 % of requests with blend and
the rest with seed against a seed main (lift_5_points), and the reverse (drop_5_points). Trials run
in `--jobs` forked processes (default: one per core).

Trials run in process and in simulated time (simulator/canary_trials.py): the simulator's users
(tastes fitted on ML-1M) against two `RecommendationService`s with the real rankers, split by the
router's `assign_arm` with a fresh salt per trial, every stream line through the real parser and
writer into SQLite, and `load_balancer.release.online_eval.look` with the release settings from the
environment (defaults: `.env.example`) at every look. The users' histories (ten simulated days of
viewing, no recommendations) are built once per run into a template database each trial copies.
Traffic: `--requests-per-minute` (default 174: the platform's simulator defaults, 1,000,000 users x
0.5 sessions a day x half of the sessions asking) over `--users` users. Ground truth per trial:
the simulator's own hits and expected hit probabilities of the same requests, next to what the
database-computed metric read.

`--end-to-end N` also runs the real-path release test (tests/load_balancer/test_release_real.py: the
real router, Kafka, parser, PostgreSQL, `movierec simulate`, `movierec release nightly` and the
scheduled `eval online`) N times and reports its verdicts and hit rates next to the simulator's, to
show the in-process harness and the real path read the same metric.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from pathlib import Path
from typing import Any

import numpy as np
from scipy.stats import binomtest

from load_balancer.release.settings import ReleaseSettings
from movierec.base.benchlog import REPORTS_DIR, record_run
from movierec.base.scratch import test_data_dir
from simulator.canary_trials import (
    HISTORY_DAYS,
    SCENARIOS,
    MemoRecommender,
    TrialOptions,
    TrialResult,
    build_history,
    make_recommenders,
    result_from_record,
    run_trial,
    trial_record,
    trials_to_run,
)
from simulator.tastes import TasteParams
from simulator.tastes_store import load_tastes
from simulator.users import Population
from vectordb_scripts.table import NeighbourTable, load_table


def summarise(results: list[TrialResult]) -> dict[str, Any]:
    """Per scenario: decision shares, time to decision (simulated and wall), true and logged lift."""
    figures: dict[str, Any] = {}
    for scenario in dict.fromkeys(r.scenario for r in results):
        rows = [r for r in results if r.scenario == scenario]
        n = len(rows)
        minutes = [r.decided_at_minutes for r in rows]
        walls = [r.wall_seconds / 60.0 for r in rows]
        figures[scenario] = {
            "main": SCENARIOS[scenario][0], "nightly": SCENARIOS[scenario][1], "trials": n,
            "promoted": round(sum(r.decision == "promote" for r in rows) / n, 3),
            # exact (Clopper-Pearson) 95 % interval of the promotion share: what n trials can show
            "promoted_ci95": [round(bound, 3) for bound in
                              binomtest(sum(r.decision == "promote" for r in rows), n).proportion_ci(0.95)],
            "rolled_back": round(sum(r.decision == "rollback" for r in rows) / n, 3),
            "decided_before_max_window": round(sum(not r.reason.startswith(("not shown", "too few")) for r in rows)
                                               / n, 3),
            "median_minutes_simulated": round(statistics.median(minutes), 1),
            "p90_minutes_simulated": round(float(np.percentile(minutes, 90)), 1),
            "median_minutes_wall": round(statistics.median(walls), 3),
            "p90_minutes_wall": round(float(np.percentile(walls, 90)), 3),
            "true_lift": round(float(np.mean([r.truth["nightly"] - r.truth["main"] for r in rows])), 4),
            "true_expected_lift": round(float(np.mean([r.truth_expected["nightly"] - r.truth_expected["main"]
                                                       for r in rows])), 4),
            "logged_lift": round(float(np.mean([r.logged["nightly"] - r.logged["main"] for r in rows])), 4),
            "logged_minus_true_hit_rate": {arm: round(float(np.mean([r.logged[arm] - r.truth[arm] for r in rows])), 4)
                                           for arm in ("main", "nightly")},
            "truth_hit_rate": {arm: round(float(np.mean([r.truth[arm] for r in rows])), 4)
                               for arm in ("main", "nightly")},
            "median_users_per_arm_at_decision": {arm: int(statistics.median(r.users[arm] for r in rows))
                                                 for arm in ("main", "nightly")},
        }
    return figures


_WORKER: dict[str, Any] = {}


def _run(task: tuple[str, int]) -> TrialResult:
    w = _WORKER
    return run_trial(task[0], task[1], w["recommenders"], w["population"], w["template"], w["workdir"],
                     w["settings"], w["options"])


def report(result: TrialResult, results: list[TrialResult]) -> None:
    results.append(result)
    print(f"  {result.scenario:<22} #{result.trial:<3} {result.decision:<8} at {result.decided_at_minutes:6.0f} min "
          f"({result.looks} looks, {result.wall_seconds:5.1f} s wall)  estimate "
          f"{result.estimate if result.estimate is None else round(result.estimate, 3)}  "
          f"true lift {result.truth['nightly'] - result.truth['main']:+.3f}", flush=True)


E2E_TEST = "tests/load_balancer/test_release_real.py"


def end_to_end(trials: int) -> list[dict[str, Any]]:
    """Run the real-path release test `trials` times (real router, Kafka, parser, PostgreSQL, `movierec
    simulate`, `movierec release nightly`, the scheduled `eval online`): a seed main, a blend nightly
    from a tagged clone, weight 0.5, a one-minute window. Its printed report gives the verdict, the
    database-computed hit rates and the simulator's own, per arm."""
    rows = []
    root = Path(__file__).resolve().parent.parent
    for trial in range(trials):
        started = time.perf_counter()
        run = subprocess.run([sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", E2E_TEST],
                             cwd=root, capture_output=True, text=True)
        wall = time.perf_counter() - started
        line = next((ln for ln in run.stdout.splitlines() if ln.startswith("release report: ")), None)
        if line is None:
            print(f"  end-to-end #{trial}: no report (pytest exit {run.returncode})\n{run.stdout[-2000:]}")
            continue
        report = json.loads(line.removeprefix("release report: "))
        online, sim = report["online"], report["simulator"]
        row = {"trial": trial, "decision": report["verdict"]["decision"], "test_passed": run.returncode == 0,
               "wall_minutes": round(wall / 60, 2),
               "logged_hit_rate": {arm: online[arm]["hit_rate"] for arm in ("main", "nightly")},
               "simulator_hit_rate": {arm: round(sim[arm]["hit_rate"], 4) for arm in ("main", "nightly")},
               "requests": {arm: online[arm]["requests"] for arm in ("main", "nightly")}}
        row["logged_minus_true"] = {arm: round(row["logged_hit_rate"][arm] - row["simulator_hit_rate"][arm], 4)
                                    for arm in ("main", "nightly")}
        rows.append(row)
        if run.returncode != 0:  # a verdict was reported, but the test's own checks failed: say which
            failed = [ln for ln in run.stdout.splitlines() if ln.startswith(("E ", "FAILED", "ERROR"))]
            print(f"  end-to-end #{trial}: the test failed (pytest exit {run.returncode}):\n    "
                  + "\n    ".join(failed[-15:] or run.stdout.splitlines()[-15:]))
        print(f"  end-to-end #{trial}: {row['decision']} ({wall / 60:.1f} min wall); hit rate logged vs simulator: "
              f"main {row['logged_hit_rate']['main']:.3f} vs {row['simulator_hit_rate']['main']:.3f}, "
              f"nightly {row['logged_hit_rate']['nightly']:.3f} vs {row['simulator_hit_rate']['nightly']:.3f}",
              flush=True)
    return rows


def plot(figures: dict[str, Any], results: list[TrialResult], path: Path, window_minutes: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(figures)
    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    x = np.arange(len(names))
    promoted = [figures[s]["promoted"] for s in names]
    rolled = [figures[s]["rolled_back"] for s in names]
    left.bar(x, promoted, color="tab:green", label="promoted")
    left.bar(x, rolled, bottom=promoted, color="tab:red", label="rolled back")
    for i, s in enumerate(names):
        left.text(i, 1.02, f"lift {figures[s]['true_lift']:+.3f}", ha="center", fontsize=8)
    left.set_xticks(x, [s.replace("_", " ") for s in names], rotation=20, fontsize=8)
    left.set_ylim(0, 1.12)
    left.set_ylabel("share of trials")
    left.set_title("Decisions (true lift = simulator's ground truth)")
    left.legend(loc="lower right", fontsize=8)
    data = [[r.decided_at_minutes / 60 for r in results if r.scenario == s] for s in names]
    right.boxplot(data, whis=(10, 90))
    right.axhline(12, color="grey", linestyle="--", label="original fixed window (12 h)")
    right.axhline(window_minutes / 60, color="black", linestyle=":", label="maximum window")
    right.set_xticks(x + 1, [s.replace("_", " ") for s in names], rotation=20, fontsize=8)
    right.set_ylabel("simulated hours to decision")
    right.set_title("Time to decision (box: quartiles, whiskers: p10-p90)")
    right.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run_config(args: argparse.Namespace, settings: ReleaseSettings, table: NeighbourTable) -> dict[str, Any]:
    """What makes trial k of a scenario the same trial in two runs: the trial log's key (the neighbour
    table's catalogue and embedding model included: another index ranks differently)."""
    return {"catalog_hash": table.catalog_hash, "table_model": table.model, "films": len(table),
            "users": args.users, "requests_per_minute": args.requests_per_minute,
            "recommend_fraction": args.recommend_fraction, "history_films": args.history_films,
            "seed": args.seed, "rank": args.rank, "canary_weight": settings.canary_weight,
            "look_minutes": settings.look_minutes, "window_minutes": settings.window_minutes,
            "alpha": settings.alpha, "margin": settings.margin, "tau": settings.tau,
            "horizon_minutes": settings.hit_horizon_minutes, "min_users_per_arm": settings.min_users_per_arm}


def read_log(path: Path, config: dict[str, Any], scenarios: list[str]) -> list[TrialResult]:
    """The logged trials of this configuration and these scenarios (other lines are kept, not read)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [result_from_record(row) for row in rows if row["config"] == config and row["scenario"] in scenarios]


def fast_trials(args: argparse.Namespace, settings: ReleaseSettings, scenarios: list[str]) -> list[TrialResult]:
    """The in-process trials of every scenario (see the module docstring). Each finished trial is appended
    to the trial log at once; trials already logged for the same configuration are not run again, so a
    run cut short by `--budget-minutes` (or interrupted) is continued by running the same command again."""
    data_dir = args.data_dir or test_data_dir()
    table = load_table(data_dir / "index" / "neighbours.npz")
    config = run_config(args, settings, table)
    results = [r for r in read_log(args.log, config, scenarios) if r.trial < args.trials]
    tasks = trials_to_run(scenarios, args.trials, {(r.scenario, r.trial) for r in results})
    print(f"trial log {args.log}: {len(results)} trials of this configuration already run, {len(tasks)} to run")
    if not tasks:
        return results
    tastes = load_tastes(data_dir, TasteParams(rank=args.rank))
    population = Population(tastes, n_users=args.users, seed=args.seed)
    needed = sorted({strategy for s in scenarios for strategy in SCENARIOS[s]})
    recommenders = make_recommenders(needed, table, args.seed)
    options = TrialOptions(args.users, args.requests_per_minute, args.recommend_fraction, args.seed)
    deadline = time.monotonic() + args.budget_minutes * 60 if args.budget_minutes else None
    args.log.parent.mkdir(parents=True, exist_ok=True)

    def finished(result: TrialResult) -> None:
        with args.log.open("a") as log:
            log.write(json.dumps(trial_record(result, config)) + "\n")
        report(result, results)

    with tempfile.TemporaryDirectory(prefix="bench-canary-") as tmp:
        workdir = Path(tmp)
        template = workdir / "history.db"
        history = build_history(population, f"sqlite:///{template}", args.history_films / HISTORY_DAYS, args.seed)
        print(f"history: {history['events_total']:,} lines ({history['sessions']:,} sessions) in "
              f"{history['wall_seconds']:.0f} s")
        _WORKER.update(recommenders=recommenders, population=population, template=template, workdir=workdir,
                       settings=settings, options=options)
        pending = list(tasks)
        # forked workers share the population, tables and history read-only
        with ProcessPoolExecutor(max(1, args.jobs), mp_context=multiprocessing.get_context("fork")) as pool:
            running: set[Future[TrialResult]] = set()
            while pending or running:
                out_of_time = deadline is not None and time.monotonic() >= deadline
                while pending and len(running) < max(1, args.jobs) and not out_of_time:
                    running.add(pool.submit(_run, pending.pop(0)))
                if not running:
                    break
                done, running = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    finished(future.result())
        if pending:
            print(f"time budget of {args.budget_minutes:g} min reached: {len(pending)} trials not run "
                  f"(run the same command again to continue)")
    for name, memo in recommenders.items():
        if isinstance(memo, MemoRecommender):
            print(f"{name}: {memo.misses:,} rankings computed, {memo.hits:,} repeated histories answered from memory")
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(SCENARIOS), help=f"comma-separated: {', '.join(SCENARIOS)}")
    parser.add_argument("--trials", type=int, default=40, help="trials per scenario")
    parser.add_argument("--users", type=int, default=10_000, help="simulated users (with histories)")
    parser.add_argument("--requests-per-minute", type=float, default=174.0, help="recommendation requests, both arms")
    parser.add_argument("--recommend-fraction", type=float, default=0.5, help="share of sessions that ask")
    parser.add_argument("--history-films", type=float, default=5.0, help="films per user in the history, on average")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--end-to-end", type=int, default=0, metavar="N",
                        help=f"also run the real-path release test N times ({E2E_TEST}; PostgreSQL on 5432)")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="trials run in parallel processes")
    parser.add_argument("--data-dir", type=Path, default=None, help="catalogue + neighbour table (default: tests')")
    parser.add_argument("--rank", type=int, default=24, help="simulator taste model rank")
    parser.add_argument("--out", type=Path, default=REPORTS_DIR / "bench-canary.png")
    parser.add_argument("--no-record", action="store_true", help="print only, do not write reports/runs")
    parser.add_argument("--record-name", default="canary", help="reports/runs/<name>.json (partial runs)")
    parser.add_argument("--log", type=Path, default=REPORTS_DIR / "runs" / "canary-trials.jsonl",
                        help="every finished trial, one JSON line; logged trials are not run again")
    parser.add_argument("--budget-minutes", type=float, default=0.0,
                        help="start no trial after this many wall minutes (0: no limit); rerun to continue")
    args = parser.parse_args()
    scenarios = [s.strip() for s in args.scenarios.split(",") if s.strip()]
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {unknown}; choose from {', '.join(SCENARIOS)}")
    settings = ReleaseSettings.from_env()
    print(f"canary benchmark: {', '.join(scenarios) if args.trials else 'no in-process trials'}; "
          f"{args.trials} trials each, {args.end_to_end} end to end; {args.users:,} users, "
          f"{args.requests_per_minute:g} requests/min; canary weight {settings.canary_weight}, looks every "
          f"{settings.look_minutes:g} min up to {settings.window_minutes:g} min, alpha {settings.alpha}, "
          f"margin {settings.margin}, mixture spread {settings.tau}, horizon {settings.hit_horizon_minutes:g} min, "
          f"min users/arm {settings.min_users_per_arm}")
    wall_start = time.perf_counter()
    results = fast_trials(args, settings, scenarios) if args.trials > 0 else []
    e2e = end_to_end(args.end_to_end) if args.end_to_end else []
    figures = summarise(results) if results else {}
    total_minutes = (time.perf_counter() - wall_start) / 60
    print()
    print(f"{'scenario':<22} {'promoted':>8} {'rolled':>7} {'median min':>10} {'p90 min':>8} {'wall med s':>10} "
          f"{'true lift':>9} {'logged':>7}")
    for name, f in figures.items():
        print(f"{name:<22} {f['promoted']:>8.0%} {f['rolled_back']:>7.0%} {f['median_minutes_simulated']:>10.0f} "
              f"{f['p90_minutes_simulated']:>8.0f} {f['median_minutes_wall'] * 60:>10.1f} {f['true_lift']:>+9.3f} "
              f"{f['logged_lift']:>+7.3f}")
    print(f"original design: one fixed decision at 720 simulated minutes; bench wall time {total_minutes:.1f} min")
    print(json.dumps(figures, indent=1))
    if not args.no_record:
        if figures:
            plot(figures, results, args.out, settings.window_minutes)
            print(f"plot: {args.out}")
        record_run(args.record_name, {"scenarios": figures, "end_to_end": e2e, "trials_asked_per_scenario": args.trials,
                              "users": args.users,
                              "requests_per_minute": args.requests_per_minute,
                              "settings": {"canary_weight": settings.canary_weight,
                                           "look_minutes": settings.look_minutes,
                                           "window_minutes": settings.window_minutes, "alpha": settings.alpha,
                                           "margin": settings.margin, "tau": settings.tau,
                                           "horizon_minutes": settings.hit_horizon_minutes,
                                           "min_users_per_arm": settings.min_users_per_arm},
                              "bench_wall_minutes": round(total_minutes, 1)},
                   notes="In-process trials: real simulator, rankers, parser, writer (SQLite) and decision code; "
                         "simulated time. Times to decision are simulated minutes at the stated traffic. "
                         "end_to_end: the real-path release test's verdicts and hit rates beside the simulator's.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
