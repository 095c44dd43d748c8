"""capi-relay report --html in headless Chromium: the page renders its tables and charts alone.

The page comes from real relay log lines (tests/report_data.py) plus Dataset Quality figures
as the Graph stand-in computes them. It is opened from a file with every host name unresolvable
and its own Content-Security-Policy forbidding any load: the test asserts it loaded nothing,
shows every table, and draws each bar at the length its number says.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

from capi_relay_dev.graph_standin import dataset_quality
from capi_relay_ops.report import build_report, parse_dataset_quality, render_html
from chromium import BASE_FLAGS, require_browser, start_driver
from report_data import relay_log

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "artifacts" / "report"
BAR_WIDTH = 280  # report._bars' full bar, in CSS pixels
FLAGS = BASE_FLAGS + ("--host-resolver-rules=MAP * ~NOTFOUND",)


def quality_rows():
    now = int(time.time())
    ua = {"client_user_agent": "UA/1", "client_ip_address": "203.0.113.7"}
    events = [{"event_name": "Purchase", "action_source": "website", "event_time": now,
               "user_data": {**ua, "em": ["a" * 64], **({"ph": ["b" * 64]} if i % 2 else {})}}
              for i in range(4)]
    events += [{"event_name": "PageView", "action_source": "website", "event_time": now,
                "user_data": {**ua, "fbp": "fb.1.1.1"}}]
    return parse_dataset_quality(dataset_quality(events))


@pytest.fixture
def page(tmp_path):
    require_browser()
    report = build_report([relay_log()])
    path = tmp_path / "report.html"
    path.write_text(render_html(report, quality_rows(), "pixel 1234567890, v27.0"),
                    encoding="utf-8")
    driver = start_driver(tmp_path / "chromium-profile", FLAGS)
    try:
        driver.get(path.as_uri())
        yield driver, report
    finally:
        driver.quit()
        shutil.rmtree(tmp_path / "chromium-profile", ignore_errors=True)


def test_report_page_renders_tables_and_charts_without_loading_anything(page):
    driver, report = page
    assert driver.title == "capi-relay match quality"
    tables = driver.execute_script(
        "return [...document.querySelectorAll('table[data-table]')].map(t => "
        "[t.dataset.table, t.tBodies[0].rows.length, t.getBoundingClientRect().height])")
    assert {name: rows for name, rows, _ in tables} == {
        "match-keys": 3, "not-sent": 2, "dataset-quality": 2}
    assert all(height > 20 for _, _, height in tables)

    lead_row = driver.execute_script(
        "return [...document.querySelectorAll('table[data-table=match-keys] tbody tr')]"
        ".map(r => [...r.cells].map(c => c.textContent)).find(r => r[0] === 'Lead')")
    assert lead_row[:4] == ["Lead", "4", "1.0", "2.5"]

    bars = driver.execute_script(
        "return [...document.querySelectorAll('svg[data-chart] rect.bar')].map(r => ["
        "r.closest('svg').dataset.chart, r.dataset.label, +r.dataset.value,"
        " r.getBoundingClientRect().width])")
    charts = {chart for chart, *_ in bars}
    assert charts == {"key-share", "keys-per-event", "not-sent", "emq"}
    for chart, label, value, width in bars:
        if chart == "key-share":  # a share of 1.0 fills the bar
            assert width == pytest.approx(BAR_WIDTH * value, abs=1), (label, value, width)
        assert (width > 0) == (value > 0), (chart, label, value, width)
    em_share = [v for chart, label, v, _ in bars if chart == "key-share" and label == "em"]
    assert sorted(em_share) == [0.0, 0.75, 1.0]  # PageView, Lead, Purchase

    emq = {label: width for chart, label, _, width in bars if chart == "emq"}
    assert 0 < emq["PageView"] < emq["Purchase"] <= BAR_WIDTH

    # nothing fetched: no resource entries, and the page's own CSP would have refused them
    assert driver.execute_script("return performance.getEntriesByType('resource').length") == 0
    assert "default-src 'none'" in driver.page_source

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1100, min(height + 120, 4000))
    driver.save_screenshot(str(ARTIFACTS / "report.png"))
    assert (ARTIFACTS / "report.png").stat().st_size > 10_000
