"""Prometheus scrapes the live services; every dashboard panel has data, through the :3000 dashboard too.

Which panel is verified against which real service is printed (`-s`) and written to
`<tmp>/panel-verification.json`; panels whose metrics come from a service that could not start are
reported as skipped, never faked.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import requests

from monitoring.panels import load_dashboard, metric_names
from tests.monitoring.live_stack import (
    LiveStack,
    live_stack,
    produce_garbage,
    rollback_nightly,
    wait_for_traffic,
    wait_until_served,
)

REPO = Path(__file__).resolve().parents[2]
# which service exports each metric family (the contract in the common brief)
OWNER_PREFIXES = (
    ("movierec_ingest_", "parser"), ("movierec_recommend", "inference-main"), ("movierec_lb_", "router"),
    ("movierec_online_hit_rate", "router"), ("movierec_release_", "router"), ("movierec_sim_", "simulator"),
)


def owners(names: set[str]) -> set[str]:
    result = set()
    for name in names:
        for prefix, owner in OWNER_PREFIXES:
            if name.startswith(prefix):
                result.add(owner)
    return result


def instant(stack: LiveStack, expr: str) -> list[dict]:
    body = requests.get(f"{stack.prometheus_url}/api/v1/query", params={"query": expr}, timeout=5).json()
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(stack: LiveStack, expr: str, timeout_seconds: float) -> bool:
    deadline = time.monotonic() + timeout_seconds
    while time.monotonic() < deadline:
        if instant(stack, expr):
            return True
        time.sleep(1.0)
    return False


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> LiveStack:
    from monitoring.local import find_binary

    if find_binary("prometheus") is None:
        pytest.skip("prometheus not installed (apt-get install -y prometheus)")
    with live_stack(tmp_path_factory.mktemp("live")) as running:
        if "parser" in running.services:
            produce_garbage(running)
        if "router" in running.services:
            # the online evaluation needs served requests followed by watches: let the simulator work first
            wait_for_traffic(running, 20)
            if "inference-nightly" in running.services:
                # the nightly (database unreachable) has answered from its fallback at least once...
                wait_until_served(running, "inference-nightly", "database", 120)
                wait_for_traffic(running, 3)  # Prometheus scrapes every second: let it see that count
                # ...then an outage of the canary: the router sees connect errors and retries on main
                running.stop_service("inference-nightly")
                wait_for_traffic(running, 5)
            rollback_nightly(running)
            wait_for(running, "movierec_online_hit_rate", 30)
        wait_for_traffic(running, 8)
        yield running


def test_prometheus_scrapes_every_started_service(stack: LiveStack) -> None:
    up = {r["metric"]["job"]: r["value"][1] for r in instant(stack, "up")}
    for name in [*stack.services, "dashboard", "prometheus"]:
        assert up.get(name) == "1", f"{name} not scraped: {up}"
    for name in stack.stopped:
        assert up.get(name) == "0", f"{name} was stopped but is not down: {up}"
    print(f"\nrunning: {sorted(stack.services)}; stopped on purpose: {sorted(stack.stopped)}; "
          f"skipped: {stack.skipped}")


def test_failure_metrics_come_from_real_failures(stack: LiveStack) -> None:
    """The error panels show zero when all is well; here the induced failures must show as real series."""
    expected = {
        "parser": 'movierec_ingest_dead_letters_total > 0',
        # the nightly was stopped afterwards: its series are stale now, look back over the run
        "inference-main":
            'max_over_time(movierec_recommend_fallbacks_total{job="inference-nightly", reason="database"}[10m]) > 0',
        # the health checks may take the nightly out before a request hits it: errors are not certain
        "router": 'min_over_time(movierec_lb_backend_up{backend="nightly"}[10m]) == 0',
    }
    for service, expr in expected.items():
        if service in stack.services:
            assert wait_for(stack, expr, 15), f"no data for {expr}"
    if "router" in stack.services:
        assert instant(stack, 'movierec_release_decisions_total{decision="rollback"} == 1')


def test_every_panel_query_returns_data(stack: LiveStack, tmp_path_factory: pytest.TempPathFactory) -> None:
    """Through the dashboard's own data endpoint, i.e. the same code path as the :3000 page."""
    assert stack.dashboard is not None
    report: dict[str, dict] = {}
    empty: list[str] = []
    for panel in load_dashboard().panels:
        body = requests.get(f"{stack.dashboard.url}/api/panels/{panel.id}", params={"range": "5m"}, timeout=30).json()
        assert body["errors"] == [], body["errors"]
        for target in panel.targets:
            lines = [s for s in body["series"] if s["ref_id"] == target.ref_id and s["points"]]
            needed = owners(metric_names(target.expr))
            missing_services = sorted(needed - set(stack.services) - set(stack.stopped))
            key = f"{panel.id}{target.ref_id} {panel.title}"
            report[key] = {"series": [s["name"] for s in lines], "services": sorted(needed) or ["prometheus"],
                           "skipped_services": missing_services}
            if not lines and not missing_services:
                empty.append(f"{key}: {target.expr}")
    out = tmp_path_factory.getbasetemp() / "panel-verification.json"
    out.write_text(json.dumps({"skipped": stack.skipped, "targets": report}, indent=2))
    print(f"\npanel verification ({out}):")
    for key, item in report.items():
        print(f"  {key}: {len(item['series'])} series from {item['services']}"
              + (f" (SKIPPED: {item['skipped_services']} not running)" if item["skipped_services"] else ""))
    assert not empty, "panel queries without data although their services run:\n" + "\n".join(empty)
    for panel in load_dashboard().panels:
        assert any(item["series"] for key, item in report.items() if key.startswith(f"{panel.id}")), panel.title


def test_dashboard_page_and_plots_serve(stack: LiveStack) -> None:
    assert stack.dashboard is not None
    page = requests.get(f"{stack.dashboard.url}/?range=5m", timeout=10)
    assert page.status_code == 200
    dashboard = load_dashboard()
    for panel in dashboard.panels:
        assert panel.title.replace("&", "&amp;") in page.text or panel.title in page.text
        assert f'src="panels/{panel.id}.png?range=5m"' in page.text
    png = requests.get(f"{stack.dashboard.url}/panels/1.png", params={"range": "5m"}, timeout=30)
    assert png.status_code == 200 and png.headers["Content-Type"] == "image/png"
    assert png.content.startswith(b"\x89PNG")
    listing = requests.get(f"{stack.dashboard.url}/api/panels", timeout=10).json()
    assert [p["id"] for p in listing["panels"]] == [p.id for p in dashboard.panels]
    health = requests.get(f"{stack.dashboard.url}/health", timeout=10).json()
    assert health == {"status": "ok", "panels": len(dashboard.panels), "prometheus": "ready"}
    assert requests.get(f"{stack.dashboard.url}/api/panels/999", timeout=10).status_code == 404
    assert requests.get(f"{stack.dashboard.url}/api/panels/1?range=forever", timeout=10).status_code == 400
    metrics = requests.get(f"{stack.dashboard.url}/metrics", timeout=10).text
    assert 'movierec_http_requests_total{endpoint="/api/panels/<int:panel_id>"' in metrics


def test_screenshot_of_the_dashboard_with_data(stack: LiveStack, tmp_path: Path) -> None:
    """Headless Chromium screenshot; MOVIEREC_SAVE_DASHBOARD_PNG=1 also writes reports/dashboard.png."""
    from monitoring.screenshot import ScreenshotError, find_chromium, take_screenshot

    try:
        find_chromium()
    except ScreenshotError as exc:
        pytest.skip(str(exc))
    assert stack.dashboard is not None
    out = REPO / "reports" / "dashboard.png" if os.environ.get("MOVIEREC_SAVE_DASHBOARD_PNG") == "1" \
        else tmp_path / "dashboard.png"
    path = take_screenshot(f"{stack.dashboard.url}/?range=2m", out)
    data = path.read_bytes()
    assert data.startswith(b"\x89PNG") and len(data) > 100_000  # a blank page compresses to a few KB
