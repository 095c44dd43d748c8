"""The Graph stand-in over real HTTP: Meta's rules and error format, fault injection, logging."""

from __future__ import annotations

import copy
import hashlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from capi_relay.core.graph_outcome import Verdict, classify
from capi_relay_dev.graph_standin import (
    MAX_AGE_PHYSICAL_STORE_SECONDS,
    MAX_AGE_SECONDS,
    GraphStandin,
    Subcode,
)

NOW = 1_750_000_000
TOKEN = "standin-token-123"
PIXEL = "1234567890"
EMAIL_HASH = hashlib.sha256(b"jane@example.com").hexdigest()
PHONE_HASH = hashlib.sha256(b"16505551234").hexdigest()
FUNCTIONS = Path(__file__).resolve().parents[2] / "functions"


def website_event(**changes) -> dict:
    event = {
        "event_name": "Purchase",
        "event_time": NOW - 60,
        "event_id": "order-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/checkout",
        "user_data": {
            "em": [EMAIL_HASH],
            "ph": PHONE_HASH,
            "client_ip_address": "203.0.113.7",
            "client_user_agent": "Mozilla/5.0",
            "fbc": "fb.1.1749999000000.IwAR2F4-dbP0l7Mn1IawQQ",
            "fbp": "fb.1.1749999000000.1116446470",
        },
        "custom_data": {"currency": "EUR", "value": 12.5},
    }
    event.update(changes)
    return event


def with_user_data(**changes) -> dict:
    event = website_event()
    event["user_data"] = {**event["user_data"], **changes}
    return {k: v for k, v in event.items()}


@pytest.fixture
def log():
    return io.StringIO()


@pytest.fixture
def standin(log):
    with GraphStandin("127.0.0.1", 0, expected_token=TOKEN, clock=lambda: NOW, log=log) as server:
        yield server


def events_url(standin: GraphStandin) -> str:
    return f"{standin.url}/v21.0/{PIXEL}/events"


def post(standin, data, token=TOKEN, **extra):
    body = {"data": data, **({"access_token": token} if token is not None else {}), **extra}
    return requests.post(events_url(standin), json=body, timeout=5)


def error_of(response) -> dict:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["type"] == "OAuthException"
    assert error["fbtrace_id"].startswith("A")
    return error


# --- accepted ------------------------------------------------------------------------------------

def test_valid_batch_is_accepted_and_recorded(standin):
    events = [website_event(), website_event(event_id="order-2", event_name="AddToCart")]
    response = post(standin, events, test_event_code="TEST123")
    assert response.status_code == 200
    body = response.json()
    assert body["events_received"] == 2 and body["messages"] == []
    assert body["fbtrace_id"].startswith("A")
    assert [e["event_id"] for e in standin.accepted] == ["order-1", "order-2"]
    assert all(e["test_event_code"] == "TEST123" for e in standin.accepted)
    assert classify(response.status_code, body).verdict is Verdict.OK


def test_form_encoded_and_query_token_as_meta_documents(standin):
    response = requests.post(events_url(standin), params={"access_token": TOKEN},
                             data={"data": json.dumps([website_event()])}, timeout=5)
    assert response.status_code == 200, response.text
    assert standin.accepted[0]["event_id"] == "order-1"
    assert "test_event_code" not in standin.accepted[0]


def test_multipart_like_curl_dash_f(standin):
    files = {"data": (None, json.dumps([website_event()])), "access_token": (None, TOKEN)}
    response = requests.post(events_url(standin), files=files, timeout=5)
    assert response.status_code == 200, response.text
    assert len(standin.accepted) == 1


@pytest.mark.parametrize("event", [
    with_user_data(external_id="crm-42"),                      # external_id may be unhashed
    with_user_data(external_id=[hashlib.sha256(b"crm-42").hexdigest()]),
    with_user_data(em=f"{EMAIL_HASH}.AQYBAQAA"),                 # Parameter Builder output
    with_user_data(em=[EMAIL_HASH, PHONE_HASH]),
    with_user_data(fbc="fb.1.1749999000000.IwAR2F4-dbP0l7Mn1IawQQ.AQYBAQAA"),
    with_user_data(client_ip_address="2001:db8::7"),
    website_event(event_time=NOW - MAX_AGE_SECONDS + 1),
    website_event(event_time=NOW + 60),                          # small clock skew
    website_event(action_source="physical_store", event_time=NOW - 30 * 86400,
                  event_source_url=None),
    website_event(action_source="system_generated", event_source_url=None,
                  user_data={"external_id": "crm-42"}),
], ids=["external-id-plain", "external-id-hashed", "param-builder", "hash-list", "fbc-appendix",
        "ipv6", "six-days-old", "skew", "store-30-days", "system-generated-minimal"])
def test_valid_variants_are_accepted(standin, event):
    response = post(standin, [event])
    assert response.status_code == 200, response.text


# --- rejected ------------------------------------------------------------------------------------

def _without(event: dict, *path: str) -> dict:
    event = copy.deepcopy(event)
    target = event
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return event


REJECTIONS = [
    ("too-old", website_event(event_time=NOW - MAX_AGE_SECONDS - 1), Subcode.EVENT_TOO_OLD),
    ("store-too-old", website_event(action_source="physical_store",
                                    event_time=NOW - MAX_AGE_PHYSICAL_STORE_SECONDS - 1),
     Subcode.EVENT_TOO_OLD),
    ("future", website_event(event_time=NOW + 3600), Subcode.EVENT_IN_FUTURE),
    ("milliseconds", website_event(event_time=NOW * 1000), Subcode.EVENT_IN_FUTURE),
    ("time-as-string", website_event(event_time=str(NOW)), Subcode.INVALID_PARAMETER),
    ("bad-action-source", website_event(action_source="web"), Subcode.INVALID_ACTION_SOURCE),
    ("no-action-source", _without(website_event(), "action_source"), Subcode.MISSING_PARAMETER),
    ("no-event-name", _without(website_event(), "event_name"), Subcode.MISSING_PARAMETER),
    ("website-without-url", _without(website_event(), "event_source_url"),
     Subcode.WEBSITE_PARAMETERS),
    ("website-without-ua", _without(website_event(), "user_data", "client_user_agent"),
     Subcode.WEBSITE_PARAMETERS),
    ("unhashed-email", with_user_data(em=["jane@example.com"]), Subcode.NOT_HASHED),
    ("uppercase-hash", with_user_data(ph=PHONE_HASH.upper()), Subcode.NOT_HASHED),
    ("unhashed-country", with_user_data(country="us"), Subcode.NOT_HASHED),
    ("hashed-ip", with_user_data(client_ip_address=hashlib.sha256(b"203.0.113.7").hexdigest()),
     Subcode.MUST_NOT_BE_HASHED),
    ("hashed-fbp", with_user_data(fbp=EMAIL_HASH), Subcode.MUST_NOT_BE_HASHED),
    ("bad-ip", with_user_data(client_ip_address="not-an-ip"), Subcode.INVALID_IP),
    ("bad-fbc", with_user_data(fbc="IwAR2F4-dbP0l7Mn1IawQQ"), Subcode.INVALID_FBC),
    ("no-match-keys", website_event(user_data={"client_user_agent": "Mozilla/5.0"}),
     Subcode.NO_MATCH_KEYS),
    ("no-user-data", _without(website_event(), "user_data"), Subcode.MISSING_PARAMETER),
]


@pytest.mark.parametrize("name, bad, subcode", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_each_rule_rejects_the_whole_batch(standin, name, bad, subcode):
    response = post(standin, [website_event(), website_event(event_id="x"), bad])
    error = error_of(response)
    assert (error["code"], error["error_subcode"]) == (100, int(subcode))
    assert error["message"] == "Invalid parameter" and error["is_transient"] is False
    assert "index 2" in error["error_user_msg"]
    for value in ("jane@example.com", EMAIL_HASH, "203.0.113.7", "Mozilla"):
        assert value not in response.text
    assert standin.accepted == []  # the two valid events went nowhere either
    assert classify(400, response.json()).verdict is Verdict.INVALID_EVENT


@pytest.mark.parametrize("data, fragment", [
    ([website_event()] * 1001, "at most 1000"),
    ([], "non-empty"),
    (None, "required"),
    ("not a list", "non-empty"),
])
def test_request_level_problems_are_code_100_without_subcode(standin, data, fragment):
    body = {"access_token": TOKEN}
    if data is not None:
        body["data"] = data
    response = requests.post(events_url(standin), json=body, timeout=5)
    error = error_of(response)
    assert error["code"] == 100 and "error_subcode" not in error
    assert fragment in error["message"]
    assert classify(400, response.json()).verdict is Verdict.PERMANENT


def test_exactly_1000_events_are_accepted(standin):
    assert post(standin, [website_event()] * 1000).json()["events_received"] == 1000


def test_missing_token_is_code_104(standin):
    error = error_of(post(standin, [website_event()], token=None))
    assert error["code"] == 104
    assert standin.accepted == []


def test_wrong_token_is_code_190(standin):
    response = post(standin, [website_event()], token="someone-elses-token")
    error = error_of(response)
    assert error["code"] == 190
    assert classify(400, response.json()).verdict is Verdict.TOKEN
    assert standin.accepted == []


def test_any_token_is_accepted_without_expected_token(log):
    with GraphStandin(clock=lambda: NOW, log=log) as server:
        assert post(server, [website_event()], token="anything").status_code == 200


def test_unknown_path_and_wrong_method(standin):
    assert requests.get(f"{standin.url}/nope", timeout=5).status_code == 404
    response = requests.get(events_url(standin), timeout=5)
    assert response.status_code == 400 and response.json()["error"]["code"] == 100


# --- control endpoints ---------------------------------------------------------------------------

def test_events_endpoint_lists_and_clears(standin):
    post(standin, [website_event()])
    assert requests.get(f"{standin.url}/healthz", timeout=5).json() == {"status": "ok"}
    listed = requests.get(f"{standin.url}/_standin/events", timeout=5).json()
    assert [e["event_id"] for e in listed] == ["order-1"]
    assert requests.delete(f"{standin.url}/_standin/events", timeout=5).json() == {"cleared": 1}
    assert requests.get(f"{standin.url}/_standin/events", timeout=5).json() == []
    assert standin.requests == 5


# --- faults --------------------------------------------------------------------------------------

def _statuses(server: GraphStandin, n: int) -> list[tuple[int, int | None]]:
    out = []
    for _ in range(n):
        response = post(server, [website_event()])
        out.append((response.status_code, response.json().get("error", {}).get("code")))
    return out


def test_faults_are_deterministic_with_a_seed(log):
    runs = []
    for _ in range(2):
        with GraphStandin(expected_token=TOKEN, clock=lambda: NOW, log=log, seed=42,
                          error_rate_5xx=0.3, throttle_rate=0.3) as server:
            runs.append(_statuses(server, 30))
            accepted = len(server.accepted)
    assert runs[0] == runs[1]
    kinds = {code for _, code in runs[0]}
    assert kinds == {None, 2, 17}  # some pass, some 5xx (code 2), some throttled (code 17)
    assert accepted == sum(1 for status, _ in runs[0] if status == 200)  # faults record nothing
    assert all(status == 503 for status, code in runs[0] if code == 2)


def test_fault_answers_classify_as_meta_would(log):
    with GraphStandin(expected_token=TOKEN, clock=lambda: NOW, log=log, seed=1,
                      error_rate_5xx=1.0) as server:
        response = post(server, [website_event()])
        assert classify(response.status_code, response.json()).verdict is Verdict.TRANSIENT
        server.set_faults(error_rate_5xx=0.0, throttle_rate=1.0)
        response = post(server, [website_event()])
        assert classify(response.status_code, response.json()).verdict is Verdict.THROTTLED
        assert server.accepted == []


def test_faults_come_before_validation(log):
    with GraphStandin(expected_token=TOKEN, clock=lambda: NOW, log=log,
                      expired_token_first_n=1) as server:
        response = post(server, [], token=None)  # would be 104, but the fault answers first
        assert response.json()["error"]["code"] == 190


def test_expired_token_for_the_first_n_requests(standin):
    requests.post(f"{standin.url}/_standin/faults", json={"expired_token_first_n": 2}, timeout=5)
    answers = [post(standin, [website_event()]) for _ in range(3)]
    assert [a.status_code for a in answers] == [400, 400, 200]
    for answer in answers[:2]:
        error = answer.json()["error"]
        assert (error["code"], error["error_subcode"]) == (190, 463)
    assert len(standin.accepted) == 1


def test_faults_endpoint_validates_and_reports(standin):
    url = f"{standin.url}/_standin/faults"
    assert requests.post(url, json={"throttle_rate": 2}, timeout=5).status_code == 400
    assert requests.post(url, json={"bogus": 1}, timeout=5).status_code == 400
    assert requests.post(url, json=[1], timeout=5).status_code == 400
    reply = requests.post(url, json={"throttle_rate": 0.5, "seed": 3}, timeout=5)
    assert reply.status_code == 200
    assert requests.get(url, timeout=5).json() == {
        "error_rate_5xx": 0.0, "throttle_rate": 0.5, "expired_token_first_n": 0, "seed": 3,
        "reject_marker": None, "delay_seconds": 0.0, "dataset_quality_denied": False}


def test_reject_marker_rejects_the_whole_batch_naming_the_index(standin):
    standin.set_faults(reject_marker="x_invalid")
    events = [website_event(), website_event(custom_data={"x_invalid": True})]
    response = post(standin, events)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == 100 and 2804000 <= error["error_subcode"] <= 2804999
    assert "index 1" in error["error_user_msg"]
    assert standin.accepted == []


def test_duplicates_counted_as_meta_would_deduplicate(standin):
    first = website_event(event_id="same")
    assert post(standin, [first]).status_code == 200
    assert post(standin, [first, website_event(event_id="other")]).status_code == 200
    assert len(standin.accepted) == 3 and standin.duplicates == 1


def test_reseeding_replays_the_sequence(standin):
    url = f"{standin.url}/_standin/faults"
    requests.post(url, json={"error_rate_5xx": 0.5, "seed": 9}, timeout=5)
    first = _statuses(standin, 12)
    requests.post(url, json={"seed": 9}, timeout=5)
    assert _statuses(standin, 12) == first


def test_bad_fault_settings_at_construction():
    with pytest.raises(ValueError):
        GraphStandin(error_rate_5xx=1.5)
    with pytest.raises(ValueError):
        GraphStandin(expired_token_first_n=-1)


# --- logging -------------------------------------------------------------------------------------

def test_log_has_one_line_per_request_without_tokens_or_user_data(standin, log):
    post(standin, [website_event()])
    post(standin, [with_user_data(em="jane@example.com")])
    requests.post(events_url(standin), params={"access_token": TOKEN},
                  data={"data": json.dumps([website_event()])}, timeout=5)
    lines = [json.loads(line) for line in log.getvalue().splitlines()]
    assert [line["status"] for line in lines] == [200, 400, 200]
    assert lines[0]["events"] == 1 and lines[1]["subcode"] == Subcode.NOT_HASHED
    text = log.getvalue()
    for secret in (TOKEN, "access_token", EMAIL_HASH, "jane@example.com", "203.0.113.7"):
        assert secret not in text
    assert all(line["path"] == f"/v21.0/{PIXEL}/events" for line in lines)


# --- command line --------------------------------------------------------------------------------

def test_command_line_serves_until_terminated():
    env = {**os.environ, "PYTHONPATH": str(FUNCTIONS)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "capi_relay_dev.graph_standin", "--port", "0", "--token", TOKEN],
        stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        first = json.loads(proc.stderr.readline())
        url = first["url"]
        assert requests.get(f"{url}/healthz", timeout=5).status_code == 200
        reply = requests.post(f"{url}/v21.0/{PIXEL}/events", timeout=5,
                              json={"data": [website_event(event_time=None)],
                                    "access_token": TOKEN})
        assert reply.json()["error"]["error_subcode"] == Subcode.MISSING_PARAMETER
    finally:
        proc.terminate()
        proc.wait(timeout=5)
        proc.stderr.close()
