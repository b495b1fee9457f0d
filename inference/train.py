"""`movierec train`: fit the learned ranker on the database's interactions and write a versioned artifact.

Interactions are the stream's watches (first seen) and ratings (rated at) from DATABASE_URL, read
in batches into compact arrays (bounded memory); optionally the ML-1M ratings are added as a warm
start, without each ML-1M user's last `holdout` ratings, so that the offline gate (which holds
exactly those out) stays clean. The artifact lands in <data_dir>/models/<version>/ with a manifest:
version, training window, row counts, hyper-parameters, offline metrics, fit time and peak RSS.
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sqlalchemy import Engine, func, select
from tqdm import tqdm

from db_utils.engine import make_engine
from db_utils.models import Rating, Watch
from inference.ease import RankerParams
from inference.model import ItemModel, ModelRanker, fit_model, models_dir, save_model
from movierec.base.settings import CommonSettings, EnvSettings, nested_common, setting

log = logging.getLogger(__name__)
READ_BATCH_ROWS = 100_000
ML1M_USER_OFFSET = -(10**13)  # warm-start users get keys that no stream user id (<= 10^12) can have


class TrainSettings(EnvSettings):
    """What `movierec train` reads (see .env.example, `MODEL_*`)."""

    common: CommonSettings = nested_common()
    # films the model keeps (the most interacted); its weights take max_items^2 x 4 bytes
    max_items: int = setting("MODEL_MAX_ITEMS", 6000)
    # add ML-1M's ratings (minus each user's last `holdout`) to the stream's interactions
    warm_start: bool = setting("MODEL_WARM_START", True)
    eval_max_users: int = setting("MODEL_EVAL_MAX_USERS", 0)  # odd ML-1M users the offline metrics use (0 = all 3,020)
    holdout: ClassVar[int] = 10  # the offline gate's held-out ratings per ML-1M user (not a variable)


@dataclass
class Interactions:
    """Compact columns: user key, film code (into `films`), unix seconds."""

    users: np.ndarray
    films: list[str]
    codes: np.ndarray
    seconds: np.ndarray

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame({"user": self.users,
                             "movie_id": pd.Categorical.from_codes(self.codes, categories=self.films),
                             "timestamp": self.seconds})


def _epoch_seconds(values: list[Any]) -> np.ndarray:
    stamps = pd.to_datetime(pd.Series(values), format="mixed")
    return stamps.to_numpy(dtype="datetime64[ns]").astype(np.int64) / 1e9


def read_interactions(engine: Engine, since: datetime | None = None, progress: bool = True) -> tuple[Interactions,
                                                                                                      dict[str, Any]]:
    """Watches and ratings of the database (optionally only those at or after `since`), in batches."""
    film_code: dict[str, int] = {}
    users, codes, seconds = [], [], []
    counts: dict[str, int] = {}
    window: list[Any] = [None, None]
    sources = (("watches", Watch, Watch.first_seen), ("ratings", Rating, Rating.rated_at))
    with engine.connect() as conn:
        totals = {name: conn.execute(select(func.count()).select_from(model)
                                     .where(*([when >= since] if since else []))).scalar_one()
                  for name, model, when in sources}
        bar = tqdm(total=sum(totals.values()), unit="rows", desc="reading interactions", disable=not progress)
        for name, model, when in sources:
            query = select(model.user_id, model.movie_id, when).where(*([when >= since] if since else []))
            result = conn.execution_options(stream_results=True, yield_per=READ_BATCH_ROWS).execute(query)
            counts[name] = 0
            for batch in result.partitions(READ_BATCH_ROWS):
                user_ids, movie_ids, times = zip(*batch, strict=True)
                users.append(np.asarray(user_ids, dtype=np.int64))
                codes.append(np.fromiter((film_code.setdefault(m, len(film_code)) for m in movie_ids),
                                         dtype=np.int32, count=len(movie_ids)))
                stamps = _epoch_seconds(list(times))
                seconds.append(stamps)
                window = [min(x for x in (window[0], stamps.min()) if x is not None),
                          max(x for x in (window[1], stamps.max()) if x is not None)]
                counts[name] += len(batch)
                bar.update(len(batch))
        bar.close()
    films = sorted(film_code, key=film_code.__getitem__)
    data = Interactions(np.concatenate(users) if users else np.zeros(0, np.int64), films,
                        np.concatenate(codes) if codes else np.zeros(0, np.int32),
                        np.concatenate(seconds) if seconds else np.zeros(0))
    return data, {**counts, "first": _iso(window[0]), "last": _iso(window[1])}


def _iso(seconds: float | None) -> str | None:
    return None if seconds is None else datetime.fromtimestamp(float(seconds), UTC).isoformat(timespec="seconds")


def warm_start_frame(data_dir: Path, holdout: int) -> pd.DataFrame:
    """ML-1M's ratings without each user's last `holdout` (the offline protocol's test set)."""
    from inference.evaluation import temporal_split
    from vectordb_scripts.catalog_io import load_ml1m_ratings

    train, _ = temporal_split(load_ml1m_ratings(data_dir), holdout)
    return pd.DataFrame({"user": ML1M_USER_OFFSET - train["user_id"].to_numpy(dtype=np.int64),
                         "movie_id": train["movie_id"].astype(str).to_numpy(),
                         "timestamp": train["timestamp"].to_numpy(dtype=np.float64)})


def offline_metrics(model: ItemModel, data_dir: Path, holdout: int, max_users: int) -> dict[str, Any]:
    """The artifact on the offline protocol (odd ML-1M users, last `holdout` held out) next to popularity."""
    from inference.offline_eval import EvalConfig, evaluate
    from vectordb_scripts.catalog_io import load_catalog, load_ml1m_ratings
    from vectordb_scripts.table import load_table

    table = load_table(data_dir / "index" / "neighbours.npz")
    config = EvalConfig(["popularity"], holdout=holdout, users="odd", max_users=max_users)
    result = evaluate(table, load_ml1m_ratings(data_dir), config, load_catalog(data_dir),
                      extra={"model": ModelRanker(model, table)})
    return {"protocol": f"ML-1M, last {holdout} ratings per user held out, odd user ids",
            "users": result.users, "seconds": round(result.seconds, 1),
            "strategies": {name: asdict(score) for name, score in result.scores.items()}}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def train(settings: TrainSettings, params: RankerParams | None = None, version: str | None = None,
          window_days: float = 0.0, evaluate_offline: bool = True, progress: bool = True) -> Path:
    """Read, fit, evaluate and save one artifact; returns its directory."""
    params = params or RankerParams()
    started = time.perf_counter()
    now = datetime.now(UTC)
    version = version or f"model-{now:%Y%m%d-%H%M%S}"
    since = (now - timedelta(days=window_days)).replace(tzinfo=None) if window_days > 0 else None
    engine = make_engine(settings.common.database_url, pool_size=1)
    try:
        stream, window = read_interactions(engine, since, progress)
    finally:
        engine.dispose()
    frames = [stream.frame()]
    warm: dict[str, Any] = {"ratings": 0, "holdout": settings.holdout}
    if settings.warm_start:
        try:
            ml1m = warm_start_frame(settings.common.data_dir, settings.holdout)
            frames.append(ml1m)
            warm.update(ratings=len(ml1m), users=int(ml1m["user"].nunique()), source="MovieLens-1M training part")
        except (FileNotFoundError, OSError) as exc:
            warm["skipped"] = f"no ML-1M data: {exc}"
    interactions = pd.concat([f.astype({"movie_id": str}) for f in frames], ignore_index=True) \
        if len(frames) > 1 else frames[0]
    del frames
    if interactions.empty:
        raise NoInteractions("no watches or ratings in the database (and no warm start): nothing to learn from")
    total = (3 if params.ease_share < 1 else 2) + int(evaluate_offline)
    steps = tqdm(total=total, desc="fitting", unit="step", disable=not progress)

    def step(name: str) -> None:
        steps.set_postfix_str(name)
        steps.update(1)

    fit_started = time.perf_counter()
    model = fit_model(interactions, params, settings.max_items, version, step)
    fit_seconds = time.perf_counter() - fit_started
    rows = {"watches": window.get("watches", 0), "ratings": window.get("ratings", 0),
            "stream_users": int(pd.unique(stream.users).size), "warm_start_ratings": warm["ratings"],
            "input_rows": len(interactions), "interactions": model.manifest["interactions"],
            "films_seen": int(interactions["movie_id"].nunique()),
            "films_modelled": len(model.ids)}
    del interactions, stream
    metrics: dict[str, Any] = {"skipped": "not requested"}
    if evaluate_offline:
        try:
            step("offline evaluation")
            metrics = offline_metrics(model, settings.common.data_dir, settings.holdout, settings.eval_max_users)
        except (FileNotFoundError, OSError) as exc:
            metrics = {"skipped": f"no ML-1M data or neighbour table: {exc}"}
    steps.close()
    manifest = {
        "created_at": now.isoformat(timespec="seconds"),
        "training_window": {"stream_first": window["first"], "stream_last": window["last"],
                            "since": since.isoformat() if since else None},
        "rows": rows, "warm_start": warm, "max_items": settings.max_items,
        "offline_metrics": metrics, "fit_seconds": round(fit_seconds, 1),
        "total_seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(peak_rss_mb(), 1),
        "database": engine.url.render_as_string(hide_password=True),
    }
    directory = save_model(model, models_dir(settings.common.data_dir) / version, manifest)
    log.info("trained version=%s films=%d interactions=%d fit_seconds=%.1f", version, len(model.ids),
             rows["interactions"], fit_seconds)
    return directory


class NoInteractions(RuntimeError):
    """The database holds nothing to train on."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="movierec train", description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, help="data directory (default $MOVIEREC_DATA_DIR)")
    parser.add_argument("--version", help="artifact version (default model-<UTC time>)")
    parser.add_argument("--window-days", type=float, default=0.0, help="only interactions of the last N days (0 = all)")
    parser.add_argument("--max-items", type=int, help="films modelled (default $MODEL_MAX_ITEMS or 6000)")
    warm = parser.add_mutually_exclusive_group()
    warm.add_argument("--warm-start", dest="warm_start", action="store_true", default=None,
                      help="add ML-1M's training ratings (default $MODEL_WARM_START or on)")
    warm.add_argument("--no-warm-start", dest="warm_start", action="store_false")
    parser.add_argument("--no-eval", action="store_true", help="skip the offline metrics")
    parser.add_argument("--eval-max-users", type=int, help="odd ML-1M users for the metrics (0 = all)")
    return parser


def main(argv: list[str]) -> int:
    """`movierec train [options]` (argv[0] is the command). 0 ok, 2 nothing to train on."""
    args = _parser().parse_args(argv[1:] if argv and argv[0] == "train" else argv)
    environ = dict(os.environ)
    if args.data_dir:
        environ["MOVIEREC_DATA_DIR"] = str(args.data_dir)
    settings = TrainSettings.from_env(environ)
    overrides = {k: v for k, v in (("max_items", args.max_items), ("warm_start", args.warm_start),
                                   ("eval_max_users", args.eval_max_users)) if v is not None}
    settings = settings.replace(**overrides)
    try:
        directory = train(settings, version=args.version, window_days=args.window_days,
                          evaluate_offline=not args.no_eval, progress=True)
    except NoInteractions as exc:
        print(f"movierec train: {exc}", file=sys.stderr)
        return 2
    from inference.model import read_manifest

    manifest = read_manifest(directory)
    model_row = (manifest["offline_metrics"].get("strategies") or {}).get("model")
    figures = (f"HR@20 {model_row['hit_rate']:.4f} NDCG@20 {model_row['ndcg']:.4f}" if model_row
               else manifest["offline_metrics"].get("skipped", ""))
    print(f"model {manifest['version']}: {manifest['rows']['interactions']} interactions, "
          f"{manifest['rows']['films_modelled']} films, fit {manifest['fit_seconds']} s, "
          f"peak RSS {manifest['peak_rss_mb']} MB; offline: {figures}; {directory}")
    return 0
