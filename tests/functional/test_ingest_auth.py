"""Source authentication through the ingest entry point (issue 12's contract), with fakes.

Keys configured: a valid ``Authorization: Bearer <key>`` is accepted; otherwise only a browser
whose Origin (or, for /g/collect GETs, Referer) is in ALLOWED_ORIGINS. No key and no origin ->
401, a wrong key -> 401, an origin not listed -> 403. No key configured: open, with a warning.
"""

import io
import json
from pathlib import Path

import pytest
from functions_framework import create_app

from capi_relay import bootstrap, log
from capi_relay.adapters.secrets import SecretManagerSource
from capi_relay.app.health import Readiness
from capi_relay.app.ingest import IngestService
from capi_relay.app.keys import Gate, IngestKeys
from capi_relay.config import Settings
from capi_relay.core.auth import parse_event_names, parse_keys
from capi_relay.core.envelope import decode
from fakes import FakeClock, FakePublisher
from samples import NOW, load_event

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
SITE = "https://shop.example.com"
SGTM_KEY = "sgtm-key-0123456789abcdef"
BACKEND_KEY = "backend-key-fedcba9876543210"
ROTATED_KEY = "rotated-key-aaaabbbbccccdddd"
WRONG_KEY = "wrong-key-0000000000000000"
ALL_KEYS = (SGTM_KEY, BACKEND_KEY, ROTATED_KEY, WRONG_KEY)
UA = {"User-Agent": "Mozilla/5.0 test"}
HIT = ("v=2&tid=G-ABC123XYZ&cid=1234567890.1732450000&en=page_view"
       "&dl=https%3A%2F%2Fshop.example.com%2Fthanks")


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture
def logged():
    stream = io.StringIO()
    log.set_stream(stream)
    yield stream
    log.set_stream(None)


def make_client(publisher, *, keys="", secret=None, browser_events=None, clock=None):
    ids = iter(f"id-{i}" for i in range(10_000))
    clock = clock or FakeClock(NOW)
    settings = Settings(project="p", topic="t", pixel_id="px", allowed_origins=(SITE,))
    gate = Gate(IngestKeys(parse_keys(keys, source="INGEST_KEYS"), secret, clock),
                settings.allowed_origins,
                parse_event_names(browser_events, source="BROWSER_EVENTS"))
    bootstrap.use(settings=settings, publisher=publisher, gate=gate,
                  ingest=IngestService(publisher, clock, lambda: next(ids)),
                  readiness=Readiness(publisher, clock))
    return create_app(target="ingest", source=MAIN, signature_type="http").test_client()


@pytest.fixture
def client(publisher):
    return make_client(publisher, keys=f"{SGTM_KEY}:Purchase|Lead,{BACKEND_KEY}",
                       browser_events="PageView,ViewContent")


def names(publisher):
    return [q.event.event_name for data, _ in publisher.messages for q in decode(data)]


def bearer(key):
    return {**UA, "Authorization": f"Bearer {key}"}


def test_a_valid_key_is_accepted_without_origin(client, publisher):
    response = client.post("/", json=load_event("lead.json"), headers=bearer(BACKEND_KEY))
    assert response.status_code == 202, response.json
    assert names(publisher) == ["Lead"]


def test_no_key_and_no_origin_is_401(client, publisher):
    response = client.post("/", json=load_event("page_view.json"), headers=UA)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "key" in response.json["error"] and publisher.messages == []


def test_a_wrong_key_is_401_even_from_an_allowed_origin(client, publisher):
    for headers in (bearer(WRONG_KEY), {**bearer(WRONG_KEY), "Origin": SITE},
                    {**UA, "Authorization": "Basic " + WRONG_KEY},
                    {**UA, "Authorization": "Bearer"}):
        response = client.post("/", json=load_event("page_view.json"), headers=headers)
        assert response.status_code == 401, headers
    assert publisher.messages == []


def test_an_origin_not_listed_is_403(client, publisher):
    response = client.post("/", json=load_event("page_view.json"),
                           headers={**UA, "Origin": "https://evil.example"})
    assert response.status_code == 403 and "ALLOWED_ORIGINS" in response.json["error"]
    assert publisher.messages == []


def test_a_listed_browser_origin_is_accepted_for_browser_events_only(client, publisher):
    purchase = load_event("ga4_purchase_sgtm.json")
    response = client.post("/", json=[load_event("page_view.json"), purchase],
                           headers={**UA, "Origin": SITE})
    assert response.status_code == 202
    assert response.json["accepted"] == 1
    assert response.json["rejected"] == [
        {"index": 1, "errors": ["event_name: not allowed for this source"]}]
    assert names(publisher) == ["PageView"]
    assert response.headers["Access-Control-Allow-Origin"] == SITE


def test_a_key_with_an_allow_list_may_send_only_those_events(client, publisher):
    response = client.post("/", json=[load_event("ga4_purchase_sgtm.json"),
                                      load_event("page_view.json")], headers=bearer(SGTM_KEY))
    assert response.status_code == 202
    assert response.json["rejected"] == [
        {"index": 1, "errors": ["event_name: not allowed for this source"]}]
    assert names(publisher) == ["Purchase"]


def test_a_named_key_puts_its_name_on_each_queued_event_never_the_key(publisher, logged):
    client = make_client(publisher, keys=f"shop-sgtm@{SGTM_KEY}:Purchase|PageView,{BACKEND_KEY}")
    assert client.post("/", json=[load_event("ga4_purchase_sgtm.json")],
                       headers=bearer(SGTM_KEY)).status_code == 202
    assert client.get(f"/g/collect?{HIT}", headers=bearer(SGTM_KEY)).status_code == 204
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(BACKEND_KEY)).status_code == 202
    assert client.post("/", json=load_event("page_view.json"),
                       headers={**UA, "Origin": SITE}).status_code == 202
    queued = [q for data, _ in publisher.messages for q in decode(data)]
    assert [(q.event.event_name, q.source) for q in queued] == [
        ("Purchase", "shop-sgtm"), ("PageView", "shop-sgtm"), ("Lead", None), ("PageView", None)]
    for data, attributes in publisher.messages:
        assert SGTM_KEY.encode() not in data and SGTM_KEY not in str(attributes)
    assert SGTM_KEY not in logged.getvalue()


def test_collect_get_accepted_by_referer_host_when_no_origin(client, publisher):
    ok = client.get(f"/g/collect?{HIT}", headers={**UA, "Referer": f"{SITE}/thanks?x=1"})
    assert ok.status_code == 204 and names(publisher) == ["PageView"]
    assert client.get(f"/g/collect?{HIT}", headers=UA).status_code == 401
    other = client.get(f"/g/collect?{HIT}", headers={**UA, "Referer": "https://evil.example/"})
    assert other.status_code == 403
    assert client.get(f"/g/collect?{HIT}", headers=bearer(WRONG_KEY)).status_code == 401
    assert names(publisher) == ["PageView"]


def test_collect_post_needs_an_origin_not_a_referer(client, publisher):
    body = b"en=page_view&dl=https%3A%2F%2Fshop.example.com%2F"
    query = "/g/collect?v=2&tid=G-ABC123XYZ&cid=1.2"
    refused = client.post(query, data=body, headers={**UA, "Referer": f"{SITE}/"})
    assert refused.status_code == 401
    accepted = client.post(query, data=body, headers={**UA, "Origin": SITE})
    assert accepted.status_code == 204 and names(publisher) == ["PageView"]


def test_health_tag_and_preflight_stay_open(client):
    assert client.get("/healthz").status_code == 200
    assert client.get("/tag.js").status_code == 200
    preflight = client.options("/", headers={"Origin": SITE})
    assert preflight.status_code == 204
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]


def test_without_keys_the_endpoint_is_open_and_says_so(publisher, logged, monkeypatch):
    for name in ("INGEST_KEYS", "INGEST_KEYS_SECRET", "BROWSER_EVENTS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOOGLE_CLOUD_PROJECT", "p")
    monkeypatch.setenv("PUBSUB_TOPIC", "t")
    monkeypatch.setenv("META_PIXEL_ID", "1")
    bootstrap.reset()
    gate = bootstrap.gate()
    warnings = [json.loads(line) for line in logged.getvalue().splitlines()]
    assert [w["message"] for w in warnings if w["severity"] == "WARNING"] == [
        "ingest endpoint is open: no INGEST_KEYS or INGEST_KEYS_SECRET configured, "
        "anyone may post events"]
    client = make_client(publisher)
    assert not gate.keys.configured
    response = client.post("/", json=load_event("page_view.json"), headers=UA)
    assert response.status_code == 202


class RotatingSecretClient:
    """Secret Manager's client, as SecretManagerSource calls it; versions change over time."""

    def __init__(self, text):
        self.text = text
        self.calls = 0

    def access_secret_version(self, name):
        self.calls += 1

        class Payload:
            data = self.text.encode()

        class Response:
            payload = Payload()
        return Response()


def test_rotation_through_the_secret_adapter_without_redeploy(publisher):
    secret_client = RotatingSecretClient(f"# sGTM\n{SGTM_KEY}\n")
    clock = FakeClock(NOW)
    source = SecretManagerSource("projects/p/secrets/ingest-keys/versions/latest",
                                 client=secret_client)
    client = make_client(publisher, secret=source, clock=clock)
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(SGTM_KEY)).status_code == 202
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(SGTM_KEY)).status_code == 202
    assert secret_client.calls == 1  # known keys cost no read

    secret_client.text = f"{SGTM_KEY}\n{ROTATED_KEY}:Lead\n"  # a new version is added
    clock.advance(11)
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(ROTATED_KEY)).status_code == 202
    assert secret_client.calls == 2

    secret_client.text = f"{ROTATED_KEY}:Lead\n"  # the old key is retired
    clock.advance(11)
    for _ in range(200):  # a flood of bad keys: at most one read per interval
        assert client.post("/", json=load_event("lead.json"),
                           headers=bearer(WRONG_KEY)).status_code == 401
    assert secret_client.calls == 3
    clock.advance(11)
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(WRONG_KEY)).status_code == 401
    assert secret_client.calls == 4
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(SGTM_KEY)).status_code == 401  # retired: refused
    assert secret_client.calls == 4


def test_no_key_ever_appears_in_a_log_line_or_a_response(publisher, logged):
    secret_client = RotatingSecretClient(f"{SGTM_KEY}\n{ROTATED_KEY}:Lead\n")
    clock = FakeClock(NOW)
    source = SecretManagerSource("projects/p/secrets/ingest-keys/versions/latest",
                                 client=secret_client)
    client = make_client(publisher, keys=BACKEND_KEY, secret=source, clock=clock,
                         browser_events="PageView")
    bodies = []
    for headers in (bearer(SGTM_KEY), bearer(BACKEND_KEY), bearer(ROTATED_KEY),
                    bearer(WRONG_KEY), {**UA, "Origin": "https://evil.example"}, UA):
        for event in ("page_view.json", "ga4_purchase_sgtm.json", "lead.json"):
            response = client.post("/", json=load_event(event), headers=headers)
            assert response.status_code < 500
            bodies.append(response.get_data(as_text=True) + json.dumps(dict(response.headers)))
        clock.advance(11)
    response = client.get(f"/g/collect?{HIT}", headers=bearer(WRONG_KEY))
    bodies.append(response.get_data(as_text=True) + json.dumps(dict(response.headers)))
    text = logged.getvalue()
    assert "request refused" in text and "ingest keys read" in text
    everything = text + "".join(bodies) + repr(bootstrap.gate().keys.static)
    for key in ALL_KEYS:
        assert key not in everything


def test_a_malformed_key_setting_names_the_variable_not_the_key():
    with pytest.raises(Exception) as raised:
        Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t",
                           "META_PIXEL_ID": "1", "INGEST_KEYS": f"{SGTM_KEY},has space"})
    assert "INGEST_KEYS: key 2" in str(raised.value) and SGTM_KEY not in str(raised.value)


class BrokenSecretClient:
    def __init__(self):
        self.calls = 0

    def access_secret_version(self, name):
        self.calls += 1
        raise PermissionError("no version yet")


def test_an_unreadable_keys_secret_is_503_for_keyed_sources_browsers_still_pass(publisher,
                                                                                logged):
    secret_client = BrokenSecretClient()
    clock = FakeClock(NOW)
    source = SecretManagerSource("projects/p/secrets/ingest-keys/versions/latest",
                                 client=secret_client)
    client = make_client(publisher, secret=source, clock=clock)
    response = client.post("/", json=load_event("lead.json"), headers=bearer(SGTM_KEY))
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert client.post("/", json=load_event("lead.json"),
                       headers=bearer(SGTM_KEY)).status_code == 503
    assert secret_client.calls == 1  # the re-read interval holds for failures too
    assert client.post("/", json=load_event("page_view.json"),
                       headers={**UA, "Origin": SITE}).status_code == 202
    assert client.post("/", json=load_event("page_view.json"), headers=UA).status_code == 401
    errors = [json.loads(line) for line in logged.getvalue().splitlines()
              if '"ingest keys not read"' in line]
    assert errors and errors[0]["error_type"] == "TransientError"
    assert SGTM_KEY not in logged.getvalue()
