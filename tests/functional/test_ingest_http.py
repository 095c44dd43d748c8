"""The ingest entry point through functions-framework's test client, wired with fakes."""

import json
from pathlib import Path

import pytest
from functions_framework import create_app

from capi_relay import bootstrap
from capi_relay.app.health import Readiness
from capi_relay.app.ingest import IngestService
from capi_relay.config import Settings
from capi_relay.core.envelope import decode
from fakes import FakeClock, FakePublisher
from samples import NOW, load_event

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
UA = {"User-Agent": "Mozilla/5.0 test"}


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture
def client(publisher):
    ids = iter(f"id-{i}" for i in range(10_000))
    settings = Settings(project="p", topic="t", pixel_id="px",
                        allowed_origins=("https://shop.example.com",))
    bootstrap.use(settings=settings, publisher=publisher,
                  ingest=IngestService(publisher, FakeClock(NOW), lambda: next(ids)),
                  readiness=Readiness(publisher, FakeClock(NOW)))
    return create_app(target="ingest", source=MAIN, signature_type="http").test_client()


def published(publisher):
    return [q for data, _ in publisher.messages for q in decode(data)]


def test_good_and_bad_events_in_one_body(client, publisher):
    good = load_event("page_view.json")
    bad = {"event_name": "page_view", "email": "secret.person@example.com"}
    response = client.post("/", json={"events": [bad, good]}, headers=UA)
    assert response.status_code == 202
    body = response.get_json()
    assert body["accepted"] == 1
    assert body["rejected"][0]["index"] == 0
    assert "event_source_url: required for website events" in body["rejected"][0]["errors"]
    assert "secret.person" not in response.get_data(as_text=True)
    assert [q.event.event_id for q in published(publisher)] == ["pv-4004"]


def test_batch_published_as_one_message(client, publisher):
    response = client.post("/", data=(Path(__file__).parents[1] / "events" /
                                      "batch_50.json").read_bytes(),
                           content_type="application/json", headers=UA)
    assert response.status_code == 202 and response.get_json()["accepted"] == 50
    assert len(publisher.messages) == 1 and len(published(publisher)) == 50


def test_request_context_fills_ip_agent_and_cookies(client, publisher):
    event = {"event": "add_to_cart", "page_url": "https://shop.example.com/p/1"}
    client.set_cookie("_fbp", "fb.1.1700000000000.42", domain="localhost")
    response = client.post("/", json=event, headers={
        "User-Agent": "Mozilla/5.0 ctx", "X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
    assert response.status_code == 202
    user = published(publisher)[0].event.user_data
    assert user.client_ip_address == "198.51.100.7"
    assert user.client_user_agent == "Mozilla/5.0 ctx"
    assert user.fbp == "fb.1.1700000000000.42"


def test_event_without_id_gets_one_that_survives_to_the_queue(client, publisher):
    event = {"event_name": "page_view", "page_location": "https://x.example/"}
    response = client.post("/", json=event, headers=UA)
    event_id = response.get_json()["event_ids"][0]
    assert event_id.startswith("id-")
    assert published(publisher)[0].event.event_id == event_id


def test_no_good_event_is_400_with_reasons(client, publisher):
    response = client.post("/", json=[{"event_name": ""}], headers=UA)
    assert response.status_code == 400
    assert response.get_json()["rejected"][0]["errors"][0] == "event_name: missing"
    assert publisher.messages == []


@pytest.mark.parametrize("body,status,error", [
    (b"{not json", 400, "body: not valid JSON"),
    (b"42", 400, "body: must be an event object"),
    (b"[]", 400, "events: empty"),
    (b'{"event_name": "x", "value": NaN}', 400, "body: not valid JSON"),
    (b"[" * 100_000 + b"]" * 100_000, 400, "body: not valid JSON"),
])
def test_malformed_bodies(client, body, status, error):
    response = client.post("/", data=body, content_type="application/json")
    assert response.status_code == status
    assert response.get_json()["error"].startswith(error)


def test_too_large_and_too_many(client):
    padded = b'{"event_name":"x","pad":"' + b"a" * 1000 + b'"}'
    big = b'{"events":[' + b",".join([padded] * 1100) + b"]}"
    assert client.post("/", data=big, content_type="application/json").status_code == 413
    many = json.dumps({"events": [{"event_name": "x"}] * 1001})
    response = client.post("/", data=many, content_type="application/json")
    assert response.status_code == 413 and "1000" in response.get_json()["error"]


def test_other_methods_405(client):
    assert client.put("/", json={}).status_code == 405
    assert client.delete("/").status_code == 405


def test_cors_preflight_only_for_configured_origins(client):
    ok = client.options("/", headers={"Origin": "https://shop.example.com",
                                      "Access-Control-Request-Method": "POST"})
    assert ok.status_code == 204
    assert ok.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    denied = client.options("/", headers={"Origin": "https://evil.example"})
    assert denied.status_code == 403 and "Access-Control-Allow-Origin" not in denied.headers


def test_publish_failure_is_503_not_500(client, publisher):
    publisher.fail = True
    response = client.post("/", json=load_event("page_view.json"), headers=UA)
    assert response.status_code == 503 and response.headers["Retry-After"]


def test_healthz_is_ready_only_when_the_topic_has_a_subscription(client, publisher):
    publisher.subscribed = False  # Pub/Sub would drop what is published now
    response = client.get("/healthz")
    assert response.status_code == 503 and response.json == {"status": "not ready"}
    bootstrap.readiness().clock.advance(2)  # past the short cache of a "not ready"
    publisher.subscribed = True
    assert client.get("/healthz").status_code == 200
    assert publisher.messages == []  # a probe never publishes


def test_healthz_checks_at_most_once_per_cache_period(client, publisher):
    for _ in range(20):
        assert client.get("/healthz").status_code == 200
    assert publisher.probes == 1
    publisher.fail = True
    bootstrap.readiness().clock.advance(31)
    assert client.get("/healthz").status_code == 503


@pytest.mark.parametrize("raw_email", [
    b'"jane\\ud800@example.com"',      # a lone surrogate escape: valid JSON, not encodable
    b'"jane\\u0000@example.com"',      # NUL
    b'"jane\xff@example.com"',         # a byte that is not UTF-8
])
def test_one_unencodable_value_costs_that_field_never_the_event(client, publisher, raw_email):
    body = (b'{"event_name":"purchase","page_location":"https://shop.example.com/t",'
            b'"value":5,"currency":"EUR","phone":"+49 30 1234567","email":' + raw_email + b'}')
    response = client.post("/", data=body, content_type="application/json", headers=UA)
    assert response.status_code == 202, response.get_data(as_text=True)
    answer = response.get_json()
    assert answer["accepted"] == 1
    assert any(f.startswith("user_data.em") for f in answer["dropped"][0]["fields"])
    assert "jane" not in response.get_data(as_text=True)
    (queued,) = published(publisher)
    assert queued.event.user_data.ph and not queued.event.user_data.em


def test_a_measurement_protocol_body_is_one_event_per_entry(client, publisher):
    body = {"client_id": "555.666", "user_id": "u-1",
            "events": [{"name": "begin_checkout", "params": {
                           "page_location": "https://shop.example.com/c", "value": 2,
                           "currency": "EUR"}},
                       {"name": "purchase", "params": {
                           "page_location": "https://shop.example.com/t", "value": 2,
                           "currency": "EUR", "transaction_id": "T-7"}}]}
    response = client.post("/", json=body, headers=UA)
    assert response.status_code == 202 and response.get_json()["accepted"] == 2
    events = [q.event for q in published(publisher)]
    assert [e.event_name for e in events] == ["InitiateCheckout", "Purchase"]
    assert all(e.user_data.external_id for e in events)
    assert [q.client_id for q in published(publisher)] == ["555.666", "555.666"]
