"""capi-relay report over real relay log lines (tests/report_data.py), in three log formats."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from capi_relay_ops.cli import main
from capi_relay_ops.report import (
    build_report,
    parse_dataset_quality,
    parse_moment,
    render_html,
    render_text,
)
from report_data import relay_log


@pytest.fixture(scope="module")
def lines() -> list[dict]:
    return [json.loads(line) for line in relay_log().splitlines()]


def as_text(lines) -> str:
    return "\n".join(json.dumps(line) for line in lines) + "\n"


def test_match_keys_per_event_name(lines):
    report = build_report([as_text(lines)])
    purchase, page_view, lead = (report.events[n] for n in ("Purchase", "PageView", "Lead"))
    assert purchase.sent == 6 and page_view.sent == 10 and lead.sent == 4
    assert purchase.share("em") == 1.0 and purchase.share("ph") == 0.5
    assert page_view.share("em") == 0.0 and page_view.share("fbp") == 1.0
    # leads: 4 sent with external_id; 3 of them got em and db from the CRM profile
    assert lead.share("external_id") == 1.0 and lead.share("em") == 0.75
    assert lead.enriched_events == 3 and lead.enriched_keys == {"em": 3, "db": 3}
    assert lead.keys_before == pytest.approx(1.0)       # external_id only
    assert lead.keys_after == pytest.approx(2.5)        # + em, db on three of four
    assert purchase.keys_before == purchase.keys_after == pytest.approx(4.5)


def test_not_sent_and_ingest_totals(lines):
    report = build_report([as_text(lines)])
    assert report.events["Purchase"].dead == {"rejected": 1}
    assert report.events["Purchase"].consent == {"denied:ad_user_data": 1}
    # the two thin events pass ingest and are dead-lettered after enrichment (issue 15)
    assert (report.accepted, report.rejected, report.insufficient) == (26, 0, 2)
    assert report.events["PageView"].dead == {"too_old": 1,
                                              "insufficient_customer_information": 2}
    assert report.token_errors == 1


def test_text_table(lines):
    text = render_text(build_report([as_text(lines)]))
    row = next(r for r in text.splitlines() if r.startswith("Lead "))
    assert row.split()[:4] == ["Lead", "4", "1.0", "2.5"]
    assert "75%" in row
    assert "dead:rejected" in text and "consent:denied:ad_user_data" in text
    assert "2 for insufficient customer information" in text


def test_no_personal_data_reaches_the_report(lines):
    log_text = as_text(lines)
    assert "@example.com" not in log_text and "customer-1" not in log_text
    html = render_html(build_report([log_text]))
    assert "@example.com" not in html


def test_cloud_logging_export_and_gcloud_json_read_the_same(lines):
    entries = [{"timestamp": datetime.fromtimestamp(line["time"], timezone.utc)
                .strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z",  # Cloud Logging writes nanoseconds
                "severity": line["severity"], "jsonPayload": {k: v for k, v in line.items()
                                                              if k != "time"},
                "resource": {"type": "cloud_run_revision"}} for line in lines]
    plain = build_report([as_text(lines)])
    exported = build_report(["\n".join(json.dumps(e) for e in entries)])
    gcloud = build_report([json.dumps(list(reversed(entries)), indent=2)])
    for other in (exported, gcloud):
        assert other.events == plain.events
        assert other.lines == plain.lines
        assert other.first == pytest.approx(plain.first, abs=1e-3)


def test_time_range(lines):
    stamped = [dict(line, time=1_764_590_400 + 3600 * i) for i, line in enumerate(lines)]
    whole = build_report([as_text(stamped)])
    sent_times = [line["time"] for line in stamped if line["message"] == "sent"]
    since = parse_moment(datetime.fromtimestamp(sent_times[1], timezone.utc).isoformat())
    part = build_report([as_text(stamped)], since=since)
    assert part.first == sent_times[1]
    assert part.accepted == 0  # the ingest lines came before
    total = sum(s.sent for s in whole.events.values())
    assert 0 < sum(s.sent for s in part.events.values()) < total
    until = build_report([as_text(stamped)], until=sent_times[0])
    assert sum(s.sent for s in until.events.values()) == 0 and until.accepted == 26


def test_other_lines_are_skipped_and_counted(lines):
    noise = "Serving Flask app\n{not json\n[1, 2\n" + as_text(lines)
    report = build_report([noise])
    assert report.unreadable == 3 and report.events["Lead"].sent == 4


def test_parse_dataset_quality():
    body = {"web": [{"event_name": "Purchase", "event_match_quality": {
        "composite_score": 7.6, "match_key_feedback": [
            {"identifier": "email", "coverage": {"percentage": 95.5}},
            {"identifier": "phone", "coverage": {"percentage": 40}}]}},
        {"event_name": "PageView"}, "junk"]}
    purchase, page_view = parse_dataset_quality(body)
    assert purchase.score == 7.6 and purchase.coverage == {"email": 95.5, "phone": 40.0}
    assert page_view.score is None and page_view.coverage == {}


def test_command_line(tmp_path, capsys, lines):
    path = tmp_path / "process.log"
    path.write_text(as_text(lines))
    page = tmp_path / "report.html"
    assert main(["report", str(path), "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "Match keys sent" in out and page.read_text().startswith("<!DOCTYPE html>")
    empty = tmp_path / "empty.log"
    empty.write_text("nothing here\n")
    assert main(["report", str(empty)]) == 1
    assert main(["report", str(path), "--since", "yesterday"]) == 2
