"""The sGTM tag template (sgtm/capi-relay.tpl), run under the Node harness, against the relay.

tests/sgtm/harness.js runs the template's sandboxed code with the sGTM APIs it requires, doing
real HTTP: here to the local stack's ingest (emulators, functions, Graph stand-in), and to a
small local server for the request details. Nothing leaves the machine.

Skipping is intended, not a failure: an event the tag is not set to forward is not sent and the
tag calls gtmOnSuccess, as sGTM tags do when they deliberately do nothing (a failure would show
as an error in preview and run the failure branch of tag sequencing).
"""

from __future__ import annotations

import hashlib
import http.server
import json
import os
import shutil
import subprocess
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from samples import load_event
from waiting import wait_for

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "sgtm" / "capi-relay.tpl"
HARNESS = ROOT / "tests" / "sgtm" / "harness.js"
KEY = "sgtm-source-key-0123456789"
EXIT = {"success": 0, "failure": 1, "error": 2, "none": 3}


def node_binary() -> str:
    """Node.js for the harness: a skip on a developer machine without it, a failure in CI."""
    node = shutil.which("node")
    if node:
        return node
    if os.environ.get("CAPI_RELAY_REQUIRE_EMULATORS") or os.environ.get("CI"):
        pytest.fail("Node.js (node) is required for the sGTM template tests: "
                    "'apt-get install nodejs' or https://nodejs.org")
    pytest.skip("node not installed")


def run_tag(data: dict[str, Any], event: dict[str, Any], *, template: Path = TEMPLATE,
            request_headers: dict[str, str] | None = None) -> dict[str, Any]:
    """Fires the tag once with these fields and this event data; the harness's report."""
    run = {"data": data, "event": event, "requestHeaders": request_headers or {},
           "timeoutMs": 20000}
    proc = subprocess.run([node_binary(), str(HARNESS), str(template)], input=json.dumps(run),
                          capture_output=True, text=True, timeout=60)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"harness printed nothing (exit {proc.returncode}): {proc.stderr}"
    report = json.loads(lines[-1])
    assert proc.returncode == EXIT[report["outcome"]], (proc.returncode, report, proc.stderr)
    return report


def ga4_event(name: str = "purchase") -> dict[str, Any]:
    """The GA4 client's event model of a purchase, with its own ids.

    A fresh event_id, user_id and _fbp: the enrichment of the shared stack must not add what
    other tests' events left in the profiles.
    """
    run = uuid.uuid4()
    event = load_event("ga4_purchase_sgtm.json")
    event["event_name"] = name
    event["event_id"] = f"sgtm-{run}"
    event["user_id"] = f"sgtm-customer-{run}"
    event["x-fb-ck-fbp"] = f"fb.1.{int(time.time() * 1000)}.{run.int % 10**10}"
    return event


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def delivered(stack, event_id: str) -> dict[str, Any]:
    def find():
        return next((e for e in stack.standin.accepted if e.get("event_id") == event_id), None)
    return wait_for(find, what=f"event {event_id} at the Graph stand-in")


# ---- against the local stack --------------------------------------------------------------

def test_ga4_event_forwarded_whole_reaches_graph_and_succeeds(stack):
    event = ga4_event()
    report = run_tag({"relayUrl": stack.ingest_url, "relayKey": KEY, "payload": "all",
                      "eventNames": [{"eventName": "purchase"}, {"eventName": "generate_lead"}],
                      "debug": True}, event)
    assert report["outcome"] == "success" and report["calls"] == ["success"]
    [request] = report["requests"]
    assert request["statusCode"] == 202 and request["method"] == "POST"
    assert request["headers"]["Authorization"] == f"Bearer {KEY}"
    assert json.loads(request["body"]) == event  # the event model as the client made it
    sent = delivered(stack, event["event_id"])
    assert sent["event_name"] == "Purchase"
    assert sent["event_source_url"] == event["page_location"]
    user = sent["user_data"]
    assert user["em"] == [sha("jane.doe@example.com")]
    assert user["fbp"] == event["x-fb-ck-fbp"]
    assert user["client_ip_address"] == event["ip_override"]
    assert user["client_user_agent"] == event["user_agent"]
    assert sent["custom_data"]["currency"] == "EUR" and sent["custom_data"]["value"] == 129.9
    assert sent["custom_data"]["content_ids"] == ["SKU-1", "SKU-2"]
    logged = json.dumps(report["logs"])
    assert "purchase" in logged and "202" in logged
    assert KEY not in logged and "jane" not in logged.lower() and "203.0.113.7" not in logged


def test_mapped_subset_reaches_graph_without_the_rest(stack):
    event = ga4_event()
    report = run_tag({"relayUrl": stack.ingest_url, "relayKey": KEY, "payload": "mapped",
                      "includeContext": True,
                      "mappedParams": [
                          {"name": "user_data.email_address", "value": " Mapped.Buyer@Example.com"},
                          {"name": "value", "value": 42},
                          {"name": "currency", "value": "USD"},
                          {"name": "transaction_id", "value": "T-MAPPED"}]}, event)
    assert report["outcome"] == "success"
    body = json.loads(report["requests"][0]["body"])
    assert set(body) == {"event_name", "x-ga-gcs", "event_id", "page_location", "page_referrer",
                         "ip_override", "user_agent", "x-fb-ck-fbp", "user_data", "value",
                         "currency", "transaction_id"}
    sent = delivered(stack, event["event_id"])
    assert sent["user_data"]["em"] == [sha("mapped.buyer@example.com")]
    assert "ph" not in sent["user_data"] and "fn" not in sent["user_data"]
    assert sent["custom_data"]["value"] == 42 and sent["custom_data"]["currency"] == "USD"
    assert "content_ids" not in sent["custom_data"]


@pytest.mark.parametrize("case", ["event without a name", "wrong path"])
def test_relay_answering_4xx_fails_the_tag(stack, case):
    event = ga4_event()
    url = stack.ingest_url
    if case == "event without a name":
        del event["event_name"]  # the relay rejects every event of the body: 400
    else:
        url += "/tag.js"  # the relay's script, which only answers GET: 405
    report = run_tag({"relayUrl": url, "relayKey": KEY, "payload": "all"}, event)
    assert report["outcome"] == "failure" and report["calls"] == ["failure"]
    assert 400 <= report["requests"][0]["statusCode"] < 500


def test_event_not_selected_is_not_sent_and_the_tag_succeeds(stack):
    event = ga4_event("page_view")
    before = stack.standin.requests
    report = run_tag({"relayUrl": stack.ingest_url, "relayKey": KEY, "payload": "all",
                      "eventNames": [{"eventName": "purchase"}], "debug": True}, event)
    assert report["outcome"] == "success" and report["calls"] == ["success"]
    assert report["requests"] == []
    assert report["logs"] == [["capi-relay tag: event page_view -> "
                               "skipped (not in the events to forward)"]]
    time.sleep(1)
    assert stack.standin.requests == before


# ---- request details, against a local recording server -----------------------------------

class Recorder(http.server.ThreadingHTTPServer):
    """Answers every POST with ``status`` and keeps what it received."""

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RecorderHandler)
        self.status = 202
        self.received: list[dict[str, Any]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/"


class RecorderHandler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server naming)
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.received.append({"headers": dict(self.headers), "body": json.loads(body)})
        self.send_response(self.server.status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder():
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def test_authorization_header_only_with_a_key(recorder):
    event = ga4_event()
    assert run_tag({"relayUrl": recorder.url, "relayKey": f"  {KEY} "}, event)["outcome"] \
        == "success"
    assert run_tag({"relayUrl": recorder.url, "relayKey": ""}, event)["outcome"] == "success"
    with_key, without = recorder.received
    assert with_key["headers"]["Authorization"] == f"Bearer {KEY}"
    assert with_key["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in without["headers"]
    assert with_key["body"] == event  # payload "all" is the default


def test_logs_nothing_without_debug_and_never_the_key_or_event_data(recorder):
    event = ga4_event()
    quiet = run_tag({"relayUrl": recorder.url, "relayKey": KEY}, event)
    assert quiet["outcome"] == "success" and quiet["logs"] == []
    recorder.status = 503
    loud = run_tag({"relayUrl": recorder.url, "relayKey": KEY, "debug": True}, event)
    assert loud["outcome"] == "failure"
    assert loud["logs"] == [["capi-relay tag: event purchase -> HTTP 503"]]


def test_unreachable_relay_fails_the_tag(recorder):
    url = recorder.url
    recorder.shutdown()
    recorder.server_close()
    report = run_tag({"relayUrl": url, "relayKey": KEY, "debug": True}, ga4_event())
    assert report["outcome"] == "failure" and report["requests"][0]["error"] == "failed"
    assert report["logs"] == [["capi-relay tag: event purchase -> request failed"]]


def test_user_agent_taken_from_the_request_when_the_event_has_none(recorder):
    event = ga4_event()
    del event["user_agent"]
    report = run_tag({"relayUrl": recorder.url}, event,
                     request_headers={"User-Agent": "Mozilla/5.0 (from the request)"})
    assert report["outcome"] == "success"
    assert recorder.received[0]["body"]["user_agent"] == "Mozilla/5.0 (from the request)"


# ---- the harness keeps the template importable ----------------------------------------------

def _variant(tmp_path: Path, old: str, new: str) -> Path:
    text = TEMPLATE.read_text()
    assert old in text
    path = tmp_path / "variant.tpl"
    path.write_text(text.replace(old, new, 1))
    return path


def test_harness_refuses_an_api_without_its_permission(tmp_path, recorder):
    template = _variant(tmp_path, "const getType = require('getType');",
                        "const getType = require('getType');\n"
                        "const getCookieValues = require('getCookieValues');")
    report = run_tag({"relayUrl": recorder.url}, ga4_event(), template=template)
    assert report["outcome"] == "error" and "'get_cookies' permission" in report["error"]
    assert report["requests"] == [] and recorder.received == []


def test_harness_has_no_globals_the_sandbox_lacks(tmp_path, recorder):
    template = _variant(tmp_path, "const JSON = require('JSON');\n", "")
    report = run_tag({"relayUrl": recorder.url}, ga4_event(), template=template)
    assert report["outcome"] == "error" and "JSON is not defined" in report["error"]


def test_the_templates_own_tests_pass_under_the_harness():
    """The ___TESTS___ scenarios (sGTM's template tests) run with mock, runCode, assertApi."""
    proc = subprocess.run([node_binary(), str(HARNESS), str(TEMPLATE), "--tests"],
                          capture_output=True, text=True, timeout=60)
    results = json.loads(proc.stdout)["scenarios"]
    assert len(results) >= 5
    assert [r for r in results if not r["passed"]] == [] and proc.returncode == 0, proc.stderr
