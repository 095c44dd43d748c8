"""Real platform payloads (tests/events/platforms/*.json, each citing its source) map with every
identifier they carry: the hashed keys, value, currency, order id and content ids that come out.

Each input goes through the same steps as a body posted to the relay: ``parse_events`` (a GA4
Measurement Protocol body becomes one event per entry), then ``to_capi_event`` with the HTTP
request's context. A dataLayer push has no page URL of its own; the web tag adds
``page_location`` (tag.js ``track``), so the table does the same where the payload has none.
"""

import json
from pathlib import Path

import pytest

from capi_relay.core.mapping import RequestContext, to_capi_event
from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS
from capi_relay.entrypoints.web import parse_events
from samples import NOW

PLATFORMS = Path(__file__).resolve().parents[1] / "events" / "platforms"
FILES = sorted(PLATFORMS.glob("*.json"))
REQUEST = RequestContext(ip="203.0.113.7", user_agent="Mozilla/5.0 (relay test) Firefox/132.0")
URL_KEYS = ("page_location", "event_source_url", "url", "page_url")


def events_of(payload):
    events, problem = parse_events(json.dumps(payload).encode())
    assert problem is None, problem
    out = []
    for event in events:
        has_url = any(event.get(k) for k in URL_KEYS) or (
            isinstance(event.get("context"), dict))
        if not has_url and event.get("action_source") in (None, "website"):
            event = {**event, "page_location": "https://shop.example.com/thank-you"}
        out.append(event)
    return out


def mapped(event):
    # the fixtures' timestamps are whatever the platform's sample had: judge them "now"
    result = to_capi_event(event, now=NOW, new_id=lambda: "new-id", request=REQUEST,
                           explain=True)
    if not result.ok and all(r.startswith("event_time:") for r in result.reasons):
        event = {k: v for k, v in event.items()
                 if k not in ("event_time", "timestamp", "timestamp_micros")}
        result = to_capi_event(event, now=NOW, new_id=lambda: "new-id", request=REQUEST,
                               explain=True)
    return result


def from_payload(result, key):
    """True when ``key`` came from the payload itself, not from the HTTP request."""
    sources = result.explanation["fields"].get(f"user_data.{key}", [])
    return any(not s.startswith("request.") for s in sources)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_platform_payload_maps_every_identifier(path):
    fixture = json.loads(path.read_text())
    expected = fixture["expect"].get("events") or [fixture["expect"]]
    events = events_of(fixture["input"])
    assert len(events) == len(expected)
    for event, expect in zip(events, expected, strict=True):
        result = mapped(event)
        assert result.ok, result.reasons
        wire = result.event.to_wire()
        user = wire["user_data"]
        assert wire["event_name"] == expect["event_name"]
        assert {k for k in user if k in HASHED_KEYS} == set(expect["hashed_keys"])
        unhashed = {k for k in user if k in NEVER_HASHED_KEYS and from_payload(result, k)}
        assert unhashed == set(expect["unhashed_keys"])
        for key in HASHED_KEYS:
            for value in user.get(key, ()):
                assert len(value) == 64 and int(value, 16) >= 0, key  # hashed, never plain
        custom = wire.get("custom_data", {})
        for name in ("value", "currency", "order_id", "content_ids"):
            if name in expect:
                assert custom.get(name) == expect[name], name
        if "order_id" not in expect:
            assert "order_id" not in custom
        # no "value" expected: the relay may still derive it from the items' prices


def test_there_are_platform_payloads():
    assert len(FILES) >= 20
