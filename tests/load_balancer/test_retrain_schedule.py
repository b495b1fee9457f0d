"""The nightly retraining entry of the platform crontab (python-crontab file, as the scheduler reads it)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from crontab import CronTab

from load_balancer.release.schedule import ensure_recurring, is_due, schedule_once, scheduled_once
from load_balancer.release.settings import ReleaseSettings


def test_recurring_entry_is_installed_replaced_and_removed(tmp_path: Path) -> None:
    path = tmp_path / "crontab"
    schedule_once(path, "r1", "echo eval", datetime(2030, 1, 1, 12, 0))
    ensure_recurring(path, "retrain-model", "echo train", "0 3 * * *")
    ensure_recurring(path, "retrain-model", "echo train v2", "30 2 * * *")  # replaces, never duplicates
    jobs = [job for job in CronTab(tabfile=str(path)) if job.comment == "movierec-recurring retrain-model"]
    assert len(jobs) == 1 and jobs[0].command == "echo train v2" and str(jobs[0].slices) == "30 2 * * *"
    assert is_due(jobs[0], datetime(2030, 1, 2, 2, 30, 5), last_tick=datetime(2030, 1, 2, 2, 29, 59))
    assert not is_due(jobs[0], datetime(2030, 1, 2, 3, 0, 5), last_tick=datetime(2030, 1, 2, 2, 59, 59))
    assert scheduled_once(path) == {"r1": datetime(2030, 1, 1, 12, 0)}  # one-shot jobs untouched
    ensure_recurring(path, "retrain-model", "echo train", "")
    assert not [job for job in CronTab(tabfile=str(path)) if "retrain-model" in job.comment]
    with pytest.raises(ValueError, match="invalid cron schedule"):
        ensure_recurring(path, "retrain-model", "echo train", "every night")


def test_retrain_settings() -> None:
    assert ReleaseSettings.from_env({}).retrain_schedule == "0 3 * * *"
    assert ReleaseSettings.from_env({"RETRAIN_SCHEDULE": "off"}).retrain_schedule == ""
    assert ReleaseSettings.from_env({"RETRAIN_REF": "main"}).retrain_ref == "main"
