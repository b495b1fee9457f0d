"""`movierec eval online <release-id>`: one look of the sequential test on the recommendation log.

The window is the nightly's own traffic: from its first to its last logged request (stream time,
so the clocks of the writers do not matter); main's requests in the same window form the other
arm. Hits are watches that start within RELEASE_HIT_HORIZON_MINUTES of a request; only requests
whose horizon has passed count. Each look promotes, rolls back, or schedules the next look
(every RELEASE_LOOK_MINUTES) until RELEASE_WINDOW_MINUTES after the release, where it must decide.
"""

from __future__ import annotations

import contextlib
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import requests
from sqlalchemy.orm import Session

from db_utils.engine import make_engine, make_session_factory
from inference.statistics import Verdict, arm_interval, decide, serve_share, settled, summarise_arm
from load_balancer.release import deploy
from load_balancer.release.admin_client import AdminClient
from load_balancer.release.notify import notify, slack_payload
from load_balancer.release.schedule import schedule_once
from load_balancer.release.settings import ReleaseSettings
from load_balancer.router.online_hit_rate import load_window
from load_balancer.router.routing import assign_arm
from load_balancer.router.state import find_release, load_state, update_release_metrics

log = logging.getLogger(__name__)


class EvaluationError(Exception):
    """The release cannot be evaluated (unknown, already decided, arms not separable)."""


def evaluate(session: Session, release_id: str, settings: ReleaseSettings) -> dict[str, Any]:
    """The release's arms, test and verdict (no side effects)."""
    row = find_release(session, release_id)
    if row is None:
        raise EvaluationError(f"unknown release {release_id!r}")
    if row.role != "nightly":
        raise EvaluationError(f"release {release_id} is no longer the nightly (status {row.status})")
    main = load_state(session).main
    if main is None:
        raise EvaluationError("no main backend to compare with")
    main_version = main.version or _reported_version(main.url)
    if not main_version or main_version == row.version:
        verdict = Verdict("rollback", f"main and nightly report the same model version {row.version!r}: "
                                      "the arms cannot be told apart in the recommendation log")
        return {"verdict": verdict.as_dict(), "main": None, "nightly": None}
    registered = (row.metrics or {}).get("registered_at")
    window = timedelta(minutes=settings.window_minutes)
    age = datetime.now() - datetime.fromisoformat(registered) if registered else window
    return look(session, main_version, row.version, row.salt or "", row.weight, age, settings)


def look(session: Session, main_version: str, nightly_version: str, salt: str, weight: float, age: timedelta,
         settings: ReleaseSettings) -> dict[str, Any]:
    """One look at a nightly `age` after its release: arms, intervals, verdict (reads only)."""
    horizon = timedelta(minutes=settings.hit_horizon_minutes)
    final = age >= timedelta(minutes=settings.window_minutes) - timedelta(seconds=1)  # the last look decides
    recs, watches = load_window(session, main_version, nightly_version, horizon, fallback_lookback=age)
    assigned = {rec.user_id: assign_arm(rec.user_id, salt, weight) == "nightly" for rec in recs}
    assigned_requests, share = serve_share(recs, assigned, nightly_version)
    counted = settled(recs, horizon)
    main_arm = summarise_arm(main_version, counted, watches, horizon)
    nightly_arm = summarise_arm(nightly_version, counted, watches, horizon)
    verdict = decide(main_arm, nightly_arm, alpha=settings.alpha, margin=settings.margin, tau=settings.tau,
                     min_users_per_arm=settings.min_users_per_arm, final=final, nightly_share=share,
                     nightly_assigned_requests=assigned_requests, min_serve_share=settings.min_nightly_serve_share)
    arms = {name: {**arm.as_dict(), **dict(zip(("estimate", "lower", "upper"),
                                               arm_interval(arm, settings.alpha, settings.tau), strict=True))}
            for name, arm in (("main", main_arm), ("nightly", nightly_arm))}
    return {"verdict": verdict.as_dict(), **arms, "final_look": final,
            "age_minutes": round(age.total_seconds() / 60, 2),
            "nightly_assigned_requests": assigned_requests, "nightly_serve_share": share,
            "horizon_minutes": settings.hit_horizon_minutes, "alpha": settings.alpha, "margin": settings.margin,
            "tau": settings.tau,
            "evaluated_at": datetime.now().isoformat(timespec="seconds")}


def _reported_version(url: str) -> str:
    """The X-Model-Version a backend reports on /health (main rows bootstrapped from env have none)."""
    try:
        return requests.get(f"{url}/health", timeout=2).headers.get("X-Model-Version", "")
    except requests.RequestException:
        return ""


def run_online_eval(release_id: str, settings: ReleaseSettings) -> str:
    """One look: evaluate, then promote / roll back / schedule the next look; record, notify.
    Returns what was done."""
    sessions = make_session_factory(make_engine(settings.common.database_url, pool_size=1))
    with sessions() as session:
        evaluation = evaluate(session, release_id, settings)
        row = find_release(session, release_id)
        assert row is not None
        details = dict(row.metrics or {})
        version = row.version
    decision = evaluation["verdict"]["decision"]
    reason = evaluation["verdict"]["reason"]
    history = [*details.get("evaluations", []), evaluation]
    if decision == "extend":
        when = schedule_once(settings.crontab_path, release_id, _eval_command(settings, release_id),
                             next_look(datetime.now(), details.get("registered_at"), settings))
        with sessions() as session:
            update_release_metrics(session, release_id, {"evaluations": history, "extended": True})
        _notify(settings, "inconclusive", f"Release {release_id}: window extended",
                f"{reason}. Evaluating again at {when:%H:%M}.", evaluation)
        return "extend"
    metrics = {"evaluations": history, "decision_reason": reason}
    admin = AdminClient(settings.admin_url, settings.admin_token)
    if decision == "promote":
        answer = admin.promote(metrics, note=reason)
        old = answer.get("old_main") or {}
        stopped = deploy.stop_backend((old.get("details") or {}).get("handle"))
        log.info("promoted release=%s old_main=%s stopped=%s", release_id, old.get("version"), stopped)
        _notify(settings, "promote", f"Nightly {version} promoted to main", reason, evaluation)
    else:
        admin.rollback(metrics, note=reason)
        deploy.stop_backend(details.get("handle"))
        _remove_worktree(details)
        _notify(settings, "rollback", f"Nightly {version} rolled back", reason, evaluation)
    return decision


def next_look(now: datetime, registered_at: str | None, settings: ReleaseSettings) -> datetime:
    """One look interval from now, but never after the end of the maximum window."""
    at = now + timedelta(minutes=settings.look_minutes)
    if registered_at:
        at = min(at, datetime.fromisoformat(registered_at) + timedelta(minutes=settings.window_minutes))
    return at


def _eval_command(settings: ReleaseSettings, release_id: str) -> str:
    from load_balancer.release.pipeline import eval_command

    return eval_command(settings, release_id)


def _remove_worktree(details: dict[str, Any]) -> None:
    from load_balancer.release.pipeline import ReleaseError, git

    if details.get("repo") and details.get("worktree") and details.get("backend") == "process":
        with contextlib.suppress(ReleaseError):
            git(Path(details["repo"]), "worktree", "remove", "--force", details["worktree"])


def _notify(settings: ReleaseSettings, event: str, title: str, text: str, evaluation: dict[str, Any]) -> None:
    fields: dict[str, Any] = {}
    for arm in ("main", "nightly"):
        summary = evaluation.get(arm) or {}
        if summary:
            fields[f"{arm} hit rate"] = (f"{summary['mean_user_hit_rate']:.3f} per user, {summary['users']} users, "
                                         f"{summary['requests']} requests")
    verdict = evaluation.get("verdict") or {}
    if verdict.get("estimate") is not None:
        fields["nightly - main"] = (f"{verdict['estimate']:+.3f}, always-valid {1 - settings.alpha:.0%} interval "
                                    f"[{verdict['lower']:+.3f}, {verdict['upper']:+.3f}]")
    if verdict.get("p_value") is not None:
        fields["p-value (always valid, mSPRT)"] = f"{verdict['p_value']:.4g}"
    if verdict.get("welch_p_value") is not None:
        fields["p-value (Welch t-test, fixed sample)"] = f"{verdict['welch_p_value']:.4g}"
    notify(settings.slack_webhook_url, slack_payload(event, title, text, fields))


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="movierec eval online", description=__doc__)
    parser.add_argument("release_id")
    parser.add_argument("--dry-run", action="store_true", help="print the evaluation, change nothing")
    # Called as main(["eval", "online", id]) by inference.cli, or main([id]) by load_balancer.cli.
    while argv and argv[0] in {"eval", "online"}:
        argv = argv[1:]
    args = parser.parse_args(argv)
    settings = ReleaseSettings.from_env()
    try:
        if args.dry_run:
            import json

            with make_session_factory(make_engine(settings.common.database_url, pool_size=1))() as session:
                print(json.dumps(evaluate(session, args.release_id, settings), indent=2, default=str))
            return 0
        outcome = run_online_eval(args.release_id, settings)
    except EvaluationError as exc:
        print(f"movierec eval online: {exc}")
        return 1
    print(f"release {args.release_id}: {outcome}")
    return 0
