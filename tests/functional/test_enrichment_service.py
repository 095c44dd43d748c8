"""ProcessService with the Enricher on an in-memory profile store: fill, write-back, rules."""

import json
from dataclasses import replace

from capi_relay.app.enrichment import Enricher
from capi_relay.bootstrap import build_enricher, rules_from
from capi_relay.config import Settings
from capi_relay.core import pipeline
from capi_relay.core.envelope import QueuedEvent, decode, encode
from capi_relay.core.mapping import to_capi_event
from capi_relay.core.model import HASHED_KEYS, CapiEvent, UserData
from capi_relay.core.normalize import prepare, sha256_hex
from capi_relay.core.pipeline import guard_hashed
from capi_relay.core.profiles import Profile
from capi_relay.core.regional import RegionalRules
from fakes import (
    FakeClock,
    FakePublisher,
    MemoryProfileStore,
    ScriptedGraph,
    make_processor,
)
from samples import NOW, load_event

USER = prepare("external_id", "customer-1001")
CRM_DB = prepare("db", "1990-05-17")
CRM_GE = prepare("ge", "female")
CID = "1234567890.1732450000"


def queued(name, *, consent=None, client_id=None, age=0, **extra):
    raw = {**load_event(name), **extra}
    mapped = to_capi_event(raw, now=NOW - age, new_id=lambda: "id-x")
    assert mapped.ok, mapped.reasons
    return QueuedEvent(mapped.event, client_id if client_id is not None else mapped.client_id,
                       consent or {}, ())


def build(store=None, *, rules=None, writeback=True, **policy):
    store = store if store is not None else MemoryProfileStore()
    graph = ScriptedGraph()
    dead = FakePublisher()
    service = make_processor(
        graph, clock=FakeClock(NOW), dead_letter=dead,
        rules=pipeline.Policy(regional=rules) if rules else None,
        enrich=Enricher(store, writeback=writeback), **policy)
    return service, store, graph, dead


def sent(graph, event_id):
    return next(e for events, _ in graph.calls for e in events if e["event_id"] == event_id)


def crm_profile():
    return {"xid_" + USER: Profile(USER, {"db": (CRM_DB,), "ge": (CRM_GE,),
                                          "em": (sha256_hex("crm@example.com"),)}).to_doc()}


def test_identified_event_gets_only_missing_keys_from_its_profile():
    service, store, graph, _ = build(MemoryProfileStore(crm_profile()))
    event = queued("ga4_purchase_sgtm.json")
    service.process(encode([event]))
    user_data = sent(graph, "sgtm-purchase-1001")["user_data"]
    own = event.event.user_data.to_wire()
    assert user_data["em"] == own["em"]  # the event's email wins over the CRM's
    assert user_data["db"] == [CRM_DB] and user_data["ge"] == [CRM_GE]
    assert {k: v for k, v in user_data.items() if k not in ("db", "ge")} == own
    assert store.reads == 1


def test_write_back_then_anonymous_page_view_from_the_same_browser_is_enriched(logs):
    service, store, graph, _ = build()
    purchase = queued("ga4_purchase_sgtm.json")
    service.process(encode([purchase]))
    assert store.commits == 1  # profile + two links in one batch
    anonymous = queued("page_view.json", client_id=CID)  # same GA4 client id, other fbp
    before = set(anonymous.event.user_data.present_keys())
    service.process(encode([anonymous]))
    user_data = sent(graph, "pv-4004")["user_data"]
    identified = purchase.event.user_data.to_wire()
    for key in ("em", "ph", "fn", "ln", "ct", "zp", "country", "external_id"):
        assert user_data[key] == identified[key]
    assert user_data["fbp"] == anonymous.event.user_data.fbp  # never taken from a profile
    assert len(set(user_data) - before) == 8
    assert store.reads == 2 and store.commits == 1  # an anonymous event writes nothing
    # the keys added are counted on the "sent" line (one per Graph request); only the
    # write-back has a line of its own
    sent_lines = [r for r in logs() if r["message"] == "sent"]
    assert "enriched_keys" not in sent_lines[0]  # the purchase had nothing added
    assert sent_lines[-1]["enriched_keys"] == {"PageView": dict.fromkeys(
        ["events", "em", "ph", "fn", "ln", "ct", "zp", "country", "external_id"], 1)}
    (written,) = [r for r in logs() if r["message"] == "profile written back"]
    assert written["remembered"] == ["client_id", "fbp", "profile"]
    assert written["event_name"] == "Purchase"
    assert not [r for r in logs() if r["message"] == "enriched"]


def test_browser_linked_by_fbp_alone():
    service, store, graph, _ = build()
    service.process(encode([queued("ga4_purchase_sgtm.json")]))
    fbp = queued("ga4_purchase_sgtm.json").event.user_data.fbp
    anonymous = queued("page_view.json", client_id="other.1", **{"x-fb-ck-fbp": fbp})
    service.process(encode([anonymous]))
    assert sent(graph, "pv-4004")["user_data"]["external_id"] == [USER]


def test_second_visit_of_a_known_user_costs_one_read_and_no_write():
    service, store, graph, _ = build()
    service.process(encode([queued("ga4_purchase_sgtm.json")]))
    again = queued("ga4_purchase_sgtm.json", event_id="sgtm-purchase-1002")
    service.process(encode([again]))
    assert store.reads == 2 and store.commits == 1
    assert all(len(ids) == 3 for ids in store.read_ids)  # profile + cid link + fbp link


def test_write_back_can_be_turned_off():
    service, store, _, _ = build(writeback=False)
    service.process(encode([queued("ga4_purchase_sgtm.json")]))
    assert store.reads == 1 and store.docs == {}


def test_event_without_any_id_costs_no_read():
    service, store, graph, _ = build()
    service.process(encode([queued("lead.json")]))
    assert store.reads == 0 and graph.sent_ids == ["lead-3003"]


def test_consent_stripped_event_is_neither_enriched_nor_remembered():
    service, store, graph, _ = build(MemoryProfileStore(crm_profile()),
                                     consent_policy="strip_user_data")
    service.process(encode([queued("ga4_purchase_sgtm.json", consent={"x-ga-gcs": "G100"})]))
    assert store.reads == 0 and len(store.docs) == 1
    assert set(sent(graph, "sgtm-purchase-1001")["user_data"]) == {
        "client_ip_address", "client_user_agent"}


def test_consent_dropped_and_too_old_events_cost_no_read():
    service, store, graph, dead = build(MemoryProfileStore(crm_profile()))
    service.process(encode([queued("ga4_purchase_sgtm.json", consent={"x-ga-gcs": "G100"})]))
    report = service.process(encode([queued("ga4_purchase_sgtm.json", age=8 * 86400,
                                            event_id="old-1")]))
    assert store.reads == 0 and graph.calls == []
    assert report.dead_lettered == 1 and dead.messages[0][1]["reason"] == "too_old"


def test_profile_store_down_sends_the_event_as_it_is(logs):
    store = MemoryProfileStore(crm_profile())
    store.fail_reads = True
    service, _, graph, _ = build(store)
    event = queued("ga4_purchase_sgtm.json")
    assert service.process(encode([event])).sent == 1
    assert sent(graph, "sgtm-purchase-1001")["user_data"] == event.event.user_data.to_wire()
    warning = next(r for r in logs() if r["message"].startswith("profile lookup failed"))
    assert warning["error_type"] == "StoreUnavailable" and warning["event_id"]


def test_write_back_failure_still_sends_the_enriched_event(logs):
    store = MemoryProfileStore(crm_profile())
    store.fail_writes = True
    service, _, graph, _ = build(store)
    assert service.process(encode([queued("ga4_purchase_sgtm.json")])).sent == 1
    assert sent(graph, "sgtm-purchase-1001")["user_data"]["db"] == [CRM_DB]
    assert any(r["message"] == "profile write-back failed" for r in logs())


def test_raw_value_in_a_message_is_dropped_before_sending_and_logged_by_name(logs):
    service, _, graph, _ = build()
    event = queued("page_view.json").event
    tampered = CapiEvent.from_wire({**event.to_wire(), "user_data": {
        **event.user_data.to_wire(), "em": ["jane.doe@example.com", sha256_hex("ok")],
        "ph": ["+491701234567"]}})
    service.process(encode([QueuedEvent(tampered)]))
    user_data = sent(graph, "pv-4004")["user_data"]
    assert user_data["em"] == [sha256_hex("ok")] and "ph" not in user_data
    warning = next(r for r in logs() if r["message"].startswith("hashed key dropped"))
    assert warning["fields"] == ["em", "ph"]
    text = json.dumps(logs())
    assert "jane.doe" not in text and "491701234567" not in text


def test_guard_accepts_hashes_and_parameter_builder_values():
    pb = sha256_hex("x") + ".AQ"
    user_data = UserData(em=(pb, sha256_hex("y").upper()), fbp="fb.1.2.3")
    assert guard_hashed(user_data) == (user_data, ())


def test_regional_rules_apply_after_enrichment_and_before_consent_stripping():
    rules = RegionalRules.from_settings(("de",), {"eu": ["client_ip_address"]})
    # the anonymous page view has no country of its own: it gets DE from the linked profile
    service, store, graph, _ = build(rules=rules)
    service.process(encode([queued("ga4_purchase_sgtm.json")]))
    service.process(encode([queued("page_view.json", client_id=CID)]))
    for event_id in ("sgtm-purchase-1001", "pv-4004"):
        wire = sent(graph, event_id)
        assert wire["data_processing_options"] == ["LDU"]
        assert "client_ip_address" not in wire["user_data"]
    # consent strips the country, yet the rules saw it first. What is left (the user agent
    # alone) is one of Meta's insufficient sets (issue 15), so the event is dead-lettered with
    # that reason instead of sent; the dead letter shows the rules' work.
    stripped, _, graph2, dead = build(rules=rules, consent_policy="strip_user_data")
    stripped.process(encode([queued("ga4_purchase_sgtm.json", consent={"x-ga-gcs": "G100"},
                                    event_id="s-1")]))
    assert graph2.calls == []
    (data, attributes), = dead.messages
    assert attributes["reason"] == "insufficient_customer_information"
    (letter,) = decode(data)
    assert letter.event.data_processing_options == ("LDU",)
    assert letter.event.user_data.present_keys() == ("client_user_agent",)


def test_plain_callable_enricher_still_works():
    calls = []

    def enrich(q, now):
        calls.append(q.event.event_id)
        return q.event

    graph = ScriptedGraph()
    service = make_processor(graph, clock=FakeClock(NOW), enrich=enrich)
    service.process(encode([queued("page_view.json")]))
    assert calls == ["pv-4004"] and graph.sent_ids == ["pv-4004"]


def test_enricher_logs_names_and_kinds_never_values_or_doc_ids(logs):
    service, store, _, _ = build()
    service.process(encode([queued("ga4_purchase_sgtm.json")]))
    service.process(encode([queued("page_view.json", client_id=CID)]))
    text = "\n".join(json.dumps(r) for r in logs())
    for value in [USER, CID, sha256_hex(CID)] + [v for doc in store.docs.values()
                                                 for vs in doc["keys"].values() for v in vs]:
        assert value not in text
    (counted,) = [r["enriched_keys"] for r in logs() if r.get("enriched_keys")]
    assert set(HASHED_KEYS) >= set(counted["PageView"]) - {"events"}


def test_build_enricher_from_settings_does_no_io():
    settings = Settings.from_env({"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t",
                                  "META_PIXEL_ID": "1", "LDU_REGIONS": "us-ca",
                                  "REDACT_FIELDS": '{"eu": ["client_ip_address"]}',
                                  "PROFILES_COLLECTION": "crm_profiles",
                                  "PROFILE_WRITEBACK": "false"})
    enricher = build_enricher(settings)
    firestore = enricher.store.store  # behind the per-instance ProfileCache
    assert firestore.collection == "crm_profiles" and firestore._db is None
    assert enricher.writeback is False
    rules = rules_from(settings).regional
    assert len(rules.ldu) == 1 and len(rules.redact) == 27


def _agent_only(event_id, *, client_id=CID):
    """A queued event with nothing Meta can match on but a user agent (and a client id)."""
    event = queued("page_view.json").event
    thin = replace(event, event_id=event_id,
                   user_data=UserData(client_user_agent=event.user_data.client_user_agent))
    return QueuedEvent(thin, client_id)


def test_too_few_match_keys_after_enrichment_is_dead_lettered_with_its_own_reason():
    service, store, graph, dead = build()
    service.process(encode([queued("ga4_purchase_sgtm.json")]))  # links CID to the user
    report = service.process(encode([_agent_only("thin-linked"),
                                     _agent_only("thin-alone", client_id="999.1")]))
    assert report.sent == 1 and report.dead_lettered == 1
    assert report.reasons == {"insufficient_customer_information": 1}
    assert "em" in sent(graph, "thin-linked")["user_data"]  # enrichment made it sufficient
    (_, attributes), = dead.messages
    assert (attributes["event_id"], attributes["reason"]) == (
        "thin-alone", "insufficient_customer_information")
    assert "code" not in attributes  # the relay's own rule, not an answer from Meta
