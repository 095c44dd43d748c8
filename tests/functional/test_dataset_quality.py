"""Meta's Dataset Quality API: the stand-in's endpoint, the Graph client's read, and report."""

from __future__ import annotations

import hashlib
import io
import json
import time
import urllib.error
import urllib.request

import pytest

from capi_relay.adapters.graph import GraphCapiClient
from capi_relay.core.graph_outcome import Verdict
from capi_relay_dev.graph_standin import GraphStandin
from capi_relay_ops.cli import main
from capi_relay_ops.report import fetch_dataset_quality
from report_data import relay_log

TOKEN = "EAAqualitytoken0123456789abcdef"
PIXEL = "1234567890"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def web_event(i: int, name: str = "Purchase", **user) -> dict:
    return {"event_name": name, "event_time": int(time.time()),
            "event_id": f"{name}-{i}", "action_source": "website",
            "event_source_url": "https://shop.example/",
            "user_data": {"client_user_agent": "UA/1", "client_ip_address": "203.0.113.7",
                          **user}}


@pytest.fixture
def standin():
    with GraphStandin("127.0.0.1", 0, expected_token=TOKEN, log=io.StringIO()) as server:
        with GraphCapiClient(server.url, "v27.0", PIXEL, timeout=5) as client:
            events = [web_event(i, em=[sha(f"u{i}@example.com")]) for i in range(3)]
            events += [web_event(9, fbp="fb.1.1764590000000.77")]
            events += [web_event(i, "PageView", fbp=f"fb.1.1764590000000.{i}") for i in range(2)]
            events += [{**web_event(5, "Lead", external_id=[sha("c5")]),
                        "action_source": "system_generated"}]  # no EMQ outside the web
            assert client.send(events, TOKEN).verdict is Verdict.OK
        yield server


def test_standin_answers_like_the_dataset_quality_api(standin):
    with GraphCapiClient(standin.url, "v27.0", PIXEL, timeout=5) as client:
        outcome, body = client.dataset_quality(TOKEN)
    assert outcome.verdict is Verdict.OK
    assert [row["event_name"] for row in body["web"]] == ["PageView", "Purchase"]
    purchase = body["web"][1]["event_match_quality"]
    coverage = {f["identifier"]: f["coverage"]["percentage"]
                for f in purchase["match_key_feedback"]}
    assert coverage == {"email": 75.0, "ip_address": 100.0, "user_agent": 100.0, "fbp": 25.0}
    page_view = body["web"][0]["event_match_quality"]
    assert 0 < page_view["composite_score"] < purchase["composite_score"] <= 10
    # the token went in a header, never in the URL
    (line,) = [r for r in standin.request_lines if "dataset_quality" in r]
    assert TOKEN not in line and f"dataset_id={PIXEL}" in line


def test_wrong_token_and_permission_denied(standin):
    with GraphCapiClient(standin.url, "v27.0", PIXEL, timeout=5) as client:
        outcome, body = client.dataset_quality("EAAwrong")
        assert (outcome.verdict, outcome.code, body) == (Verdict.TOKEN, 190, None)
        standin.set_faults(dataset_quality_denied=True)
        outcome, body = client.dataset_quality(TOKEN)
        assert body is None and outcome.code == 10


def test_query_parameter_token_and_missing_dataset(standin):
    url = f"{standin.url}/v27.0/dataset_quality?access_token={TOKEN}"
    try:
        urllib.request.urlopen(url, timeout=5)
        raise AssertionError("no dataset_id must be an error")
    except urllib.error.HTTPError as exc:
        assert exc.code == 400 and json.loads(exc.read())["error"]["code"] == 100
    with urllib.request.urlopen(url + f"&dataset_id={PIXEL}", timeout=5) as response:
        assert len(json.loads(response.read())["web"]) == 2


def env(standin, **changes):
    base = {"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": PIXEL,
            "META_GRAPH_URL": standin.url, "META_ACCESS_TOKEN": TOKEN}
    return {**base, **changes}


def test_report_reads_it_where_the_token_allows(standin, tmp_path, monkeypatch, capsys):
    rows, note = fetch_dataset_quality(env(standin))
    assert [r.event_name for r in rows] == ["PageView", "Purchase"] and PIXEL in note
    standin.set_faults(dataset_quality_denied=True)
    rows, note = fetch_dataset_quality(env(standin))
    assert rows is None and "not available with this token" in note and TOKEN not in note
    standin.set_faults(dataset_quality_denied=False)

    for key, value in env(standin).items():
        monkeypatch.setenv(key, value)
    log_file = tmp_path / "process.log"
    log_file.write_text(relay_log())
    page = tmp_path / "report.html"
    assert main(["report", str(log_file), "--dataset-quality", "--html", str(page)]) == 0
    out = capsys.readouterr().out
    assert "Meta's Event Match Quality" in out and "Purchase" in out
    assert TOKEN not in out and TOKEN not in page.read_text()
    assert 'data-table="dataset-quality"' in page.read_text()
