"""The online hit rate the router exports: each arm's recent hits, read from the recommendation log.

`load_window` reads the logged requests of a main and a nightly version and the watches that followed
them; the release's online evaluation (load_balancer.release.online_eval) judges the same window.
The statistics are inference.statistics, shared with the offline evaluation.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db_utils.models import Recommendation, Watch
from inference.statistics import ServedRecommendation, WatchStart, arm_interval, settled, summarise_arm
from load_balancer.router.lb_metrics import ONLINE_HIT_RATE, ONLINE_HIT_RATE_LOWER, ONLINE_HIT_RATE_UPPER


def _as_datetime(value: Any) -> datetime:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def load_window(
    session: Session, main_version: str, nightly_version: str | None, horizon: timedelta,
    lookback: timedelta | None = None, limit: int = 200_000, fallback_lookback: timedelta | None = None,
) -> tuple[list[ServedRecommendation], list[WatchStart]]:
    """Logged requests of both versions in the nightly's window (or the newest `lookback` of main's
    traffic when there is no nightly) and the watches that started after them.

    A nightly that never answered anything has no window of its own: then main's newest
    `fallback_lookback` is used, so a failing nightly is still judged on its users' traffic."""

    def bounds_of(version: str) -> tuple[Any, Any]:
        return tuple(session.execute(select(func.min(Recommendation.requested_at),
                                            func.max(Recommendation.requested_at))
                                     .where(Recommendation.model_version == version)).one())

    start, end = bounds_of(nightly_version or main_version)
    if start is None and nightly_version and fallback_lookback is not None:
        start, end = bounds_of(main_version)
        lookback = fallback_lookback
    if start is None:
        return [], []
    start, end = _as_datetime(start), _as_datetime(end)
    if lookback is not None:
        start = max(start, end - lookback)
    versions = [v for v in (main_version, nightly_version) if v]
    rows = session.execute(
        select(Recommendation.user_id, Recommendation.requested_at, Recommendation.model_version,
               Recommendation.results)
        .where(Recommendation.model_version.in_(versions), Recommendation.requested_at >= start,
               Recommendation.requested_at <= end, Recommendation.status == 200)
        .order_by(Recommendation.requested_at.desc()).limit(limit)
    ).all()
    recs = [ServedRecommendation(int(u), _as_datetime(t), v, tuple(r or ())) for u, t, v, r in rows]
    users = sorted({rec.user_id for rec in recs})
    watches: list[WatchStart] = []
    for chunk_start in range(0, len(users), 1000):
        chunk = users[chunk_start:chunk_start + 1000]
        watches += [WatchStart(int(u), m, _as_datetime(f)) for u, m, f in session.execute(
            select(Watch.user_id, Watch.movie_id, Watch.first_seen)
            .where(Watch.user_id.in_(chunk), Watch.first_seen >= start, Watch.first_seen <= end + horizon))]
    return recs, watches


def refresh_hit_rate_gauge(ctx: Any) -> None:
    """`movierec_online_hit_rate{arm}` (mean per-user hit rate) and its always-valid interval
    (`..._lower`, `..._upper`) over the newest hour of the router's current arms."""
    state = ctx.state
    main_version, nightly_version = ctx.version_of("main"), ctx.version_of("nightly") if state.nightly else None
    if not main_version:
        return
    horizon = timedelta(minutes=ctx.settings.hit_horizon_minutes)
    with ctx.sessions() as session:
        recs, watches = load_window(session, main_version, nightly_version or None, horizon,
                                    lookback=timedelta(minutes=60), limit=50_000)
    counted = settled(recs, horizon)
    for arm, version in (("main", main_version), ("nightly", nightly_version)):
        if version:
            summary = summarise_arm(version, counted, watches, horizon)
            if summary.requests:
                estimate, lower, upper = arm_interval(summary, ctx.settings.alpha, ctx.settings.tau)
                ONLINE_HIT_RATE.labels(arm).set(estimate)
                ONLINE_HIT_RATE_LOWER.labels(arm).set(lower)
                ONLINE_HIT_RATE_UPPER.labels(arm).set(upper)
