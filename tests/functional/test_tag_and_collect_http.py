"""GET /tag.js and GA4's /g/collect through functions-framework's test client, with fakes."""

import gzip
import json
import re
from pathlib import Path

import pytest
from functions_framework import create_app

from capi_relay import bootstrap
from capi_relay.app.ingest import IngestService
from capi_relay.config import Settings
from capi_relay.core.envelope import decode
from capi_relay.core.mapping import EVENT_NAMES, PLATFORM_EVENT_NAMES
from fakes import FakeClock, FakePublisher, ScriptedGraph, make_processor
from samples import NOW

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")
TAG_SOURCE = (Path(__file__).resolve().parents[2] / "functions" / "capi_relay" / "entrypoints"
              / "static" / "tag.js")
SITE = "https://shop.example.com"
UA = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/130.0"}
HIT = ("v=2&tid=G-ABC123XYZ&gcs=G111&cid=1234567890.1732450000&sid=1732450000"
       "&dl=https%3A%2F%2Fshop.example.com%2Fthanks&dr=https%3A%2F%2Fshop.example.com%2Fcart")


@pytest.fixture
def publisher():
    return FakePublisher()


@pytest.fixture
def client(publisher):
    ids = iter(f"id-{i}" for i in range(10_000))
    settings = Settings(project="p", topic="t", pixel_id="px", allowed_origins=(SITE,))
    bootstrap.use(settings=settings, publisher=publisher,
                  ingest=IngestService(publisher, FakeClock(NOW), lambda: next(ids)))
    return create_app(target="ingest", source=MAIN, signature_type="http").test_client()


def published(publisher):
    return [q for data, _ in publisher.messages for q in decode(data)]


# -- /tag.js ------------------------------------------------------------------------------

def test_tag_is_served_cacheable_and_small(client):
    response = client.get("/tag.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("application/javascript")
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.data == TAG_SOURCE.read_bytes()
    assert len(gzip.compress(response.data)) < 4096
    etag = response.headers["ETag"]
    again = client.get("/tag.js", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.data == b"" and again.headers["ETag"] == etag


def test_tag_gzipped_when_the_browser_accepts_it(client):
    response = client.get("/tag.js", headers={"Accept-Encoding": "gzip, deflate, br"})
    assert response.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(response.data) == TAG_SOURCE.read_bytes()
    assert response.headers["ETag"] != client.get("/tag.js").headers["ETag"]
    assert "Accept-Encoding" in response.headers["Vary"]


def test_tag_only_answers_get(client):
    assert client.post("/tag.js", data=b"x").status_code == 405


def test_tag_maps_event_names_like_the_server():
    table = re.search(r"var EVENT_NAMES = \{(.*?)\};", TAG_SOURCE.read_text(), re.S).group(1)
    pairs = dict(re.findall(r"'?([\w.]+)'?: '(\w+)'", table))
    assert pairs == dict(EVENT_NAMES)
    platform = re.search(r"var PLATFORM_EVENT_NAMES = \{(.*?)\};", TAG_SOURCE.read_text(),
                         re.S).group(1)
    assert dict(re.findall(r"(\w+): '(\w+)'", platform)) == dict(PLATFORM_EVENT_NAMES)


def test_what_the_tag_posts_is_accepted_without_a_preflight(client, publisher):
    """The tag's body: text/plain JSON with cookie values, consent, the site's user_data."""
    event = {"event_name": "purchase", "event_id": "tag-1", "event_time": int(NOW * 1000),
             "page_location": f"{SITE}/thanks?fbclid=ABC", "page_referrer": f"{SITE}/cart",
             "_fbp": "fb.1.1732450000000.1234567890", "_fbc": "fb.1.1732450000000.ABC",
             "value": 9.99, "currency": "EUR", "transaction_id": "T-1",
             "items": [{"item_id": "SKU-1", "quantity": 1, "price": 9.99}],
             "user_data": {"email": "Jane@Example.com"},
             "consent": {"ad_storage": "granted", "ad_user_data": "granted"}}
    response = client.post("/", data=json.dumps(event), content_type="text/plain;charset=UTF-8",
                           headers={"Origin": SITE, **UA})
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert response.headers["Access-Control-Allow-Credentials"] == "true"
    (queued,) = published(publisher)
    assert queued.event.event_id == "tag-1" and queued.event.event_name == "Purchase"
    assert queued.event.user_data.fbp == event["_fbp"]
    assert queued.event.user_data.fbc == event["_fbc"]  # same click: kept, not rebuilt
    assert queued.event.user_data.em
    assert queued.consent == {"consent": event["consent"]}


# -- /g/collect ---------------------------------------------------------------------------

def test_collect_get_publishes_and_answers_like_ga4(client, publisher):
    client.set_cookie("_fbp", "fb.1.1732450000000.1234567890", domain="localhost")
    response = client.get(f"/g/collect?{HIT}&en=page_view", headers={
        **UA, "X-Forwarded-For": "198.51.100.7, 10.0.0.1"})
    assert response.status_code == 204 and response.data == b""
    (queued,) = published(publisher)
    assert queued.event.event_name == "PageView"
    assert queued.event.event_source_url == f"{SITE}/thanks"
    assert queued.event.referrer_url == f"{SITE}/cart"
    assert queued.client_id == "1234567890.1732450000"
    user = queued.event.user_data
    assert user.client_ip_address == "198.51.100.7"
    assert user.client_user_agent == UA["User-Agent"]
    assert user.fbp == "fb.1.1732450000000.1234567890"
    assert queued.consent == {"x-ga-gcs": "G111"}


def test_collect_post_with_several_events_one_message(client, publisher):
    body = "\n".join([
        "en=view_item&pr1=idSKU-1~nmTrail%20shoe~pr99.9~qt1",
        "en=purchase&ep.transaction_id=T-7&epn.value=114.9&cu=EUR"
        "&pr1=idSKU-1~nmTrail%20shoe~pr99.9~qt1&pr2=idSKU-2~nmSocks~pr7.5~qt2",
    ])
    response = client.post(f"/g/collect?{HIT}", data=body, content_type="text/plain",
                           headers=UA)
    assert response.status_code == 204 and response.data == b""
    assert len(publisher.messages) == 1
    view, purchase = published(publisher)
    assert view.event.event_name == "ViewContent"
    wire = purchase.event.to_wire()
    assert wire["custom_data"]["order_id"] == "T-7" and wire["custom_data"]["value"] == 114.9
    assert [c["quantity"] for c in wire["custom_data"]["contents"]] == [1, 2]


@pytest.mark.parametrize("query,body,field", [
    (HIT + "&en=purchase&epn.value=lots&cu=EUR", None, "epn.value"),
    (HIT, "cid=1", "en"),
    ("v=1&t=pageview", None, "v"),
    (HIT + "&en=x&pr1=qt1", None, "pr1"),
])
def test_collect_bad_input_is_2xx_and_a_warning_naming_the_field(client, logs, query, body,
                                                                  field):
    if body is None:
        response = client.get(f"/g/collect?{query}", headers=UA)
    else:
        response = client.post(f"/g/collect?{query}", data=body, headers=UA)
    assert response.status_code == 204 and response.data == b""
    warnings = [r for r in logs() if r["severity"] == "WARNING"]
    assert any(field in r.get("fields", []) for r in warnings), warnings


def test_collect_rejected_event_is_2xx_and_logged_by_field(client, logs, publisher):
    response = client.get("/g/collect?v=2&en=purchase&cid=1.2&epn.value=5&cu=EUR", headers=UA)
    assert response.status_code == 204 and response.data == b""
    assert publisher.messages == []
    (warning,) = [r for r in logs() if r["severity"] == "WARNING"
                  and "endpoint is open" not in r["message"]]  # no keys here: open, said once
    assert "event_source_url: required for website events" in warning["reasons"]


def test_collect_oversized_body_is_2xx_and_named(client, logs, publisher):
    response = client.post(f"/g/collect?{HIT}", data=b"en=x&ep.pad=" + b"a" * 1_000_001)
    assert response.status_code == 204 and publisher.messages == []
    assert any("body" in r.get("fields", []) for r in logs())


def test_collect_never_answers_500(client, logs, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("bug with jane@example.com in it")

    monkeypatch.setattr(IngestService, "ingest", broken)
    response = client.get(f"/g/collect?{HIT}&en=page_view", headers=UA)
    assert response.status_code == 204
    (error,) = [r for r in logs() if r["severity"] == "ERROR"]
    assert error["error_type"] == "RuntimeError" and "jane" not in json.dumps(error)


def test_collect_queue_down_is_503_without_body(client, publisher):
    publisher.fail = True
    response = client.get(f"/g/collect?{HIT}&en=page_view", headers=UA)
    assert response.status_code == 503 and response.data == b""


def test_collect_other_methods_405(client):
    assert client.put("/g/collect", data=b"").status_code == 405


def test_collect_cors_for_configured_origins_only(client):
    preflight = client.options("/g/collect", headers={
        "Origin": SITE, "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204
    assert "POST" in preflight.headers["Access-Control-Allow-Methods"]
    ok = client.post(f"/g/collect?{HIT}&en=page_view", headers={"Origin": SITE, **UA})
    assert ok.headers["Access-Control-Allow-Origin"] == SITE
    assert ok.headers["Access-Control-Allow-Credentials"] == "true"
    other = client.post(f"/g/collect?{HIT}&en=page_view",
                        headers={"Origin": "https://evil.example", **UA})
    assert other.status_code == 204
    assert "Access-Control-Allow-Origin" not in other.headers
    assert "Access-Control-Allow-Credentials" not in other.headers
    assert client.options("/g/collect", headers={"Origin": "https://evil.example"}
                          ).status_code == 403


def test_collect_consent_denied_reaches_the_queue_and_the_processor_drops_it(client,
                                                                               publisher):
    denied = HIT.replace("gcs=G111", "gcs=G100")
    assert client.get(f"/g/collect?{denied}&en=page_view", headers=UA).status_code == 204
    (data, _), = publisher.messages
    graph = ScriptedGraph()
    processor = make_processor(graph, clock=FakeClock(NOW))
    report = processor.process(data)
    assert report.consent_dropped == 1 and report.sent == 0 and graph.calls == []
