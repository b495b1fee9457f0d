"""The platform crontab (a file under the data dir, python-crontab) and the scheduler that runs it.

One-shot jobs (the online evaluation after a release window) carry `movierec-once <key>
not-before=<iso>` in their comment: the scheduler removes them from the file when it starts
them, so each runs once, even if the scheduler was down at the scheduled minute. Recurring jobs
(the nightly retraining) carry `movierec-recurring <key>` and are installed by `ensure_recurring`.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

from crontab import CronItem, CronTab

log = logging.getLogger(__name__)
ONCE = "movierec-once"
RECURRING = "movierec-recurring"


def ceil_minute(moment: datetime) -> datetime:
    """The first whole minute at or after `moment` (cron's resolution)."""
    floor = moment.replace(second=0, microsecond=0)
    return floor if floor == moment else floor + timedelta(minutes=1)


@contextlib.contextmanager
def locked_crontab(path: Path) -> Iterator[CronTab]:
    """Read-modify-write the crontab file under an exclusive lock; written back on success."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch(exist_ok=True)
    with open(f"{path}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            cron = CronTab(tabfile=str(path))
            yield cron
            cron.write(str(path))
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def schedule_once(path: Path, key: str, command: str, at: datetime) -> datetime:
    """Schedule `command` once at the first whole minute >= `at` (replacing a job with the same key)."""
    when = ceil_minute(at)
    with locked_crontab(path) as cron:
        for old in [job for job in cron if _once_key(job.comment) == key]:
            cron.remove(old)
        job = cron.new(command=command, comment=f"{ONCE} {key} not-before={when.isoformat()}")
        job.setall(when)
    log.info("scheduled key=%s at=%s", key, when.isoformat())
    return when


def ensure_recurring(path: Path, key: str, command: str, schedule: str) -> None:
    """Install (or replace) the recurring job `key`; an empty schedule removes it."""
    with locked_crontab(path) as cron:
        for old in [job for job in cron if (job.comment or "").split()[:2] == [RECURRING, key]]:
            cron.remove(old)
        if schedule:
            job = cron.new(command=command, comment=f"{RECURRING} {key}")
            try:
                job.setall(schedule)
            except (KeyError, ValueError) as exc:
                raise ValueError(f"invalid cron schedule {schedule!r} for {key}: {exc}") from None
            if not job.is_valid():
                raise ValueError(f"invalid cron schedule {schedule!r} for {key}")
    log.info("recurring key=%s schedule=%r", key, schedule)


def scheduled_once(path: Path) -> dict[str, datetime]:
    """Pending one-shot jobs: key -> time."""
    if not path.exists():
        return {}
    cron = CronTab(tabfile=str(path))
    return {key: _not_before(job.comment) or datetime.max for job in cron if (key := _once_key(job.comment))}


def _once_key(comment: str) -> str | None:
    parts = (comment or "").split()
    return parts[1] if len(parts) >= 2 and parts[0] == ONCE else None


def _not_before(comment: str) -> datetime | None:
    for part in (comment or "").split():
        if part.startswith("not-before="):
            return datetime.fromisoformat(part.removeprefix("not-before="))
    return None


def is_due(job: CronItem, now: datetime, last_tick: datetime) -> bool:
    """Due when the job's next cron time after its reference point has passed.

    One-shot jobs count from just before their not-before time (so a missed minute still runs);
    recurring jobs count from the scheduler's previous tick.
    """
    if not job.is_enabled() or not job.is_valid():
        return False
    not_before = _not_before(job.comment)
    start = not_before - timedelta(seconds=1) if not_before else last_tick
    return job.schedule(date_from=start).get_next() <= now


def take_due_jobs(path: Path, now: datetime, last_tick: datetime) -> list[tuple[str, str]]:
    """(comment, command) of the jobs due now; one-shot jobs are removed from the file."""
    due: list[tuple[str, str]] = []
    with locked_crontab(path) as cron:
        for job in list(cron):
            if is_due(job, now, last_tick):
                due.append((job.comment, job.command))
                if _once_key(job.comment):
                    cron.remove(job)
    return due


def heartbeat_path(crontab: Path) -> Path:
    return crontab.with_name(crontab.name + ".heartbeat")


def heartbeat_is_fresh(mtime: float | None, now: float, tick_seconds: float) -> bool:
    """The scheduler is alive when its heartbeat is younger than three ticks (and at least 30 s)."""
    return mtime is not None and now - mtime <= max(30.0, 3 * tick_seconds)


def scheduler_is_alive(crontab: Path, tick_seconds: float) -> bool:
    try:
        mtime: float | None = heartbeat_path(crontab).stat().st_mtime
    except OSError:
        mtime = None
    return heartbeat_is_fresh(mtime, time.time(), tick_seconds)


def run_scheduler(path: Path, tick_seconds: float, log_path: Path, max_seconds: float | None = None) -> None:
    """Run the crontab file's jobs when due, each in the background, until stopped.

    Every tick touches `<crontab>.heartbeat` (`movierec scheduler --check`, the container healthcheck)."""
    started = time.monotonic()
    last_tick = datetime.now()
    children: list[subprocess.Popen[bytes]] = []
    log.info("scheduler crontab=%s tick=%ss", path, tick_seconds)
    while max_seconds is None or time.monotonic() - started < max_seconds:
        now = datetime.now()
        for comment, command in take_due_jobs(path, now, last_tick):
            log.info("scheduler running job=%r", comment)
            with open(log_path, "ab") as out:
                children.append(subprocess.Popen(["/bin/sh", "-c", command], stdout=out, stderr=subprocess.STDOUT,
                                                 env=os.environ.copy()))
        last_tick = now
        heartbeat_path(path).touch()
        children = [child for child in children if child.poll() is None]
        time.sleep(tick_seconds)
    for child in children:
        child.wait()
