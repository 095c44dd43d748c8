"""Preview and the relay decide alike: the same inputs through ``capi-relay preview``'s
``preview()`` and through ingest -> Pub/Sub (fake) -> processor -> Graph (fake) give the same
events to Meta, and the same reasons for the rest."""

import itertools
import json

import pytest

from capi_relay.app.enrichment import Enricher
from capi_relay.app.ingest import IngestService, RequestContext
from capi_relay.bootstrap import rules_from
from capi_relay.core.normalize import sha256_hex
from capi_relay.core.profiles import Profile, link_doc_id
from capi_relay_ops.preview import ProfilesFile, preview, settings_for
from fakes import FakeClock, FakePublisher, MemoryProfileStore, ScriptedGraph, make_processor
from samples import NOW, load_event

SGTM = load_event("ga4_purchase_sgtm.json")
PAGE_VIEW = load_event("page_view.json")
LEAD = load_event("lead.json")
USER = sha256_hex("customer-9")


def inputs():
    """Every consent signal the issue names, both ways, plus events the later steps act on."""
    return [
        SGTM,                                                              # gcs G111: send
        {**SGTM, "event_id": "gcs-denied", "x-ga-gcs": "G100"},
        {**LEAD, "event_id": "gcd-denied", "x-ga-gcd": "13p3p3p3p5"},
        {**LEAD, "event_id": "gcd-q", "x-ga-gcd": "13q3t3t3t5"},
        {**LEAD, "event_id": "gcd-m-u", "x-ga-gcd": "13t3m3u3t5"},
        {**LEAD, "event_id": "state-bool", "x-ga-gcd": None,
         "consent_state": {"ad_storage": False, "ad_user_data": True}},
        {**LEAD, "event_id": "state-str", "x-ga-gcd": None,
         "consent_state": {"ad_storage": "granted", "ad_user_data": "denied"}},
        {**LEAD, "event_id": "state-granted", "x-ga-gcd": None,
         "consent_state": {"ad_storage": "granted", "ad_user_data": True}},
        PAGE_VIEW,                                                         # no signal
        {**PAGE_VIEW, "event_id": "linked", "client_id": "777.888"},      # enriched by link
        {"event_name": "page_view"},                                      # rejected by ingest
        {**PAGE_VIEW, "event_id": "six-days-old", "event_time": NOW - 6 * 86400},
    ]


def profiles():
    doc = Profile(USER, {"em": (sha256_hex("linked@example.com"),),
                         "country": (sha256_hex("de"),)}, expire_at=NOW + 86400).to_doc()
    return {link_doc_id("client_id", "777.888"): doc}


def through_the_relay(events, settings, docs, now):
    ids = itertools.count()
    publisher = FakePublisher()
    IngestService(publisher, FakeClock(now), lambda: f"gen-{next(ids)}",
                  rules_from(settings).mapping).ingest(events, RequestContext())
    graph, dead = ScriptedGraph(), FakePublisher()
    store = MemoryProfileStore(docs)
    service = make_processor(graph, clock=FakeClock(now), dead_letter=dead,
                             rules=rules_from(settings), enrich=Enricher(store),
                             consent_policy=settings.consent_policy,
                             consent_missing=settings.consent_missing)
    for data, _ in publisher.messages:
        service.process(data)
    sent = [e for events_, _ in graph.calls for e in events_]
    letters = sorted((a["event_id"], a["reason"]) for _, a in dead.messages)
    return sent, letters


def through_preview(events, settings, docs, now):
    ids = itertools.count()
    out = preview(events, now=now, rules=rules_from(settings),
                  enrich=Enricher(ProfilesFile(docs)), new_id=lambda: f"gen-{next(ids)}")
    letters = sorted((r["event_id"], r["reason"]) for r in out.get("not_sent", ())
                     if r["reason"] not in ("consent", "duplicate"))
    return out, letters


@pytest.mark.parametrize("env,dead", [
    ({}, []),
    ({"CONSENT_POLICY": "strip_user_data"}, []),
    ({"CONSENT_MISSING": "drop"}, []),
    # a German event stripped by consent and without its IP has only a user agent left
    ({"CONSENT_POLICY": "strip_user_data", "LDU_REGIONS": "de",
      "REDACT_FIELDS": json.dumps({"eu": ["client_ip_address"]})},
     [("gcs-denied", "insufficient_customer_information")]),
])
def test_preview_prints_exactly_what_the_graph_fake_receives(env, dead):
    settings = settings_for({}, env)
    events = [{k: v for k, v in e.items() if v is not None} for e in inputs()]
    sent, letters = through_the_relay(events, settings, profiles(), NOW)
    shown, shown_letters = through_preview(events, settings, profiles(), NOW)
    assert shown["data"] == sent
    assert shown_letters == letters == dead
    assert sent  # every setting still sends something: the comparison is not vacuous


def test_denied_consent_is_not_in_preview_data_and_says_why():
    settings = settings_for({}, {})
    events = [{k: v for k, v in e.items() if v is not None} for e in inputs()]
    out, _ = through_preview(events, settings, profiles(), NOW)
    withheld = {r["event_id"]: r["detail"] for r in out["not_sent"] if r["reason"] == "consent"}
    assert withheld == {
        "gcs-denied": "denied:ad_storage",
        "gcd-denied": "denied:ad_storage,ad_user_data",
        "gcd-q": "denied:ad_storage",
        "gcd-m-u": "denied:ad_user_data",
        "state-bool": "denied:ad_storage",
        "state-str": "denied:ad_user_data",
    }
    sent_ids = {e["event_id"] for e in out["data"]}
    assert not sent_ids & set(withheld)
    assert {"sgtm-purchase-1001", "state-granted", "pv-4004", "linked"} <= sent_ids
    assert [r["index"] for r in out["rejected"]] == [10]


def test_strip_user_data_keeps_ip_and_agent_and_says_what_it_removed():
    out, _ = through_preview([{**LEAD, "x-ga-gcd": "13p3p3p3p5"}],
                             settings_for({}, {"CONSENT_POLICY": "strip_user_data"}), {}, NOW)
    (event,) = out["data"]
    assert set(event["user_data"]) == {"client_ip_address", "client_user_agent"}
    assert {"index": 0, "step": "consent", "fields": ["em", "ph", "country"]} in out["dropped"]


def test_profiles_fill_only_what_consent_allows():
    events = [{**PAGE_VIEW, "client_id": "777.888"},
              {**PAGE_VIEW, "event_id": "denied", "client_id": "777.888", "x-ga-gcs": "G100"}]
    out, _ = through_preview(events, settings_for({}, {"CONSENT_POLICY": "strip_user_data"}),
                             profiles(), NOW)
    enriched, stripped = out["data"]
    assert enriched["user_data"]["em"] == [sha256_hex("linked@example.com")]
    assert "em" not in stripped["user_data"] and "fbp" not in stripped["user_data"]
