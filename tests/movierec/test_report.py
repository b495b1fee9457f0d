"""`movierec report` renders the recorded benchmark runs."""

from __future__ import annotations

from pathlib import Path

from movierec import report
from movierec.base import benchlog


def test_report_renders_recorded_runs(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MOVIEREC_REPORTS_DIR", str(tmp_path))
    benchlog.record_run("recommend", {
        "target_rate_rps": 300,
        "table": [{"scenario": "10 watched", "p50_ms": 3.2, "p99_ms": 11.5, "achieved_rps": 299.1},
                  {"scenario": "200 watched", "p50_ms": 6.0, "p99_ms": 19.0, "achieved_rps": 298.7}],
    })
    benchlog.record_run("ingest", {"events_per_second": 61234.5, "peak_rss_mb": 310})
    path = report.write_benchmarks_report(tmp_path)
    text = path.read_text()
    assert "## recommend" in text and "| 10 watched | 3.20 | 11.50 | 299.10 |" in text
    assert "| events_per_second | 61,234 |" in text
    assert (tmp_path / "bench-recommend.png").stat().st_size > 1000
    assert not (tmp_path / "bench-ingest.png").exists()


def test_markdown_table_merges_columns() -> None:
    table = report.markdown_table([{"a": 1}, {"a": 2, "b": "x"}])
    assert table.splitlines()[0] == "| a | b |"
    assert table.splitlines()[-1] == "| 2 | x |"


def test_booleans_read_as_yes_and_no_not_as_numbers() -> None:
    from movierec.report import markdown_table

    assert markdown_table([{"goal_met": True, "other": False, "n": 1}]).splitlines()[-1] == "| yes | no | 1 |"
