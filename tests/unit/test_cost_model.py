"""The cost model counts what the code does: exact operations per event, per kind of event.

``make bench`` prices these counts (benchmarks/cost.py); if the services start doing more or
less Firestore, Pub/Sub or Graph work per event, these tests say so before the price drifts.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import cost  # noqa: E402  (benchmarks/ is not a package)
import counting  # noqa: E402

BROWSER = {"client_id": "77.1732400000", "x-fb-ck-fbp": "fb.1.1732400000000.77",
           "ip_override": "198.51.100.7", "user_agent": "Mozilla/5.0 (X11; Linux x86_64)",
           "page_location": "https://shop.example.com/p/1"}
PURCHASE = {**BROWSER, "event_name": "purchase", "event_id": "T77", "currency": "EUR",
            "value": 89.0, "user_id": "customer-77", "email": "buyer77@example.com",
            "phone": "+49 170 0000077",
            "items": [{"item_id": "SKU-1", "price": 89.0, "quantity": 1}]}


@pytest.fixture
def relay():
    tally = counting.Tally()
    built = cost.build_relay(tally, batch_window=0)
    with counting.quiet_logs():
        yield built


def post(relay, raw) -> tuple[dict, dict]:
    """Posts one event, pushes what ingest published; the (ingest, process) call counts."""
    before = len(relay.tally.calls)
    cost._ingest(relay, raw)
    while relay.published:
        cost._process(relay, *relay.published.pop(0))
    calls = {c.function: dict(c.counts) for c in relay.tally.calls[before:]}
    return calls.get("ingest", {}), calls.get("process", {})


def known_customer(relay, *, links=("client_id", "fbp")) -> None:
    """The profile and browser links a past purchase of customer 77 left behind."""
    from capi_relay.core import profiles
    from capi_relay.core.normalize import sha256_hex

    profile = profiles.Profile(sha256_hex("customer-77"),
                               {"em": (sha256_hex("buyer77@example.com"),),
                                "ph": (sha256_hex("491700000077"),)},
                               expire_at=cost.NOW + profiles.LINK_TTL_SECONDS, updated_at=cost.NOW)
    relay.profiles.docs[profiles.profile_doc_id(profile.external_id)] = profiles.Profile(
        profile.external_id, profile.keys, updated_at=cost.NOW).to_doc()
    values = {"client_id": BROWSER["client_id"], "fbp": BROWSER["x-fb-ck-fbp"]}
    for kind in links:
        relay.profiles.docs[profiles.link_doc_id(kind, values[kind])] = profile.to_doc()


def test_ingest_costs_one_publish_per_event(relay):
    ingest, _ = post(relay, {**BROWSER, "event_name": "page_view", "event_id": "pv-1"})
    assert ingest == {"pubsub.publish.events": 1, "pubsub.bytes": counting.PUBSUB_MIN_BYTES}


def test_anonymous_page_view_unknown_browser(relay):
    _, process = post(relay, {**BROWSER, "event_name": "page_view", "event_id": "pv-1"})
    # one batched read of the client_id and fbp links (both missing); the claim is created
    # (one write, one record for the TTL policy to delete) and marked sent (one write)
    assert process["firestore.reads"] == 2
    assert process["firestore.writes"] == 2
    assert process["firestore.ttl_docs"] == 1
    assert process["graph.requests"] == 1 and process["graph.events"] == 1
    assert process["secret.accesses"] == 1      # the first call on an instance reads the token
    _, second = post(relay, {**BROWSER, "event_name": "page_view", "event_id": "pv-2"})
    assert "secret.accesses" not in second       # cached afterwards
    # the same browser's next event: its links (both missing) are remembered for the session
    assert "firestore.reads" not in second
    assert second["firestore.writes"] == 2


def test_purchase_from_a_known_customer_on_a_known_browser(relay):
    known_customer(relay)
    post(relay, {**BROWSER, "event_name": "page_view", "event_id": "warm"})  # token, links
    _, process = post(relay, PURCHASE)
    # the profile document (the browser's two links were read by the page view before);
    # nothing new to remember (same keys, fresh links): only the claim and outcome written
    assert process["firestore.reads"] == 1
    assert process["firestore.writes"] == 2
    assert "firestore.commits" not in process
    assert process["graph.requests"] == 1


def test_strong_keys_still_read_the_profile_it_may_add_more(relay):
    # Issue 13 asked whether an event that already has em, ph and external_id could skip the
    # profile read. It cannot: the read is what tells (1) which keys a profile adds (a CRM
    # import holds fn, ln, zp, ...: here fn and zp reach Meta) and (2) whether there is
    # anything to write back; without it the write-back would have to write blindly, and a
    # write costs three reads. Here the read is one document (the browser's links are
    # remembered from the page view), 0.014 reads per event over the mix.
    from capi_relay.core import profiles
    from capi_relay.core.normalize import sha256_hex

    known_customer(relay)
    doc_id = profiles.profile_doc_id(sha256_hex("customer-77"))
    imported = dict(relay.profiles.docs[doc_id])
    imported["keys"] = {**imported["keys"], "fn": [sha256_hex("jo")],
                        "zp": [sha256_hex("10115")]}
    relay.profiles.docs[doc_id] = imported
    post(relay, {**BROWSER, "event_name": "page_view", "event_id": "warm"})
    _, process = post(relay, PURCHASE)
    assert process["firestore.reads"] == 1
    (sent,), _ = relay.graph.calls[-1]
    assert sent["user_data"]["fn"] == [sha256_hex("jo")]
    assert sent["user_data"]["zp"] == [sha256_hex("10115")]


def test_purchase_from_a_new_customer_writes_profile_and_links(relay):
    _, process = post(relay, PURCHASE)
    assert process["firestore.reads"] == 3
    # claim + outcome, then one commit: the profile and both browser links
    assert process["firestore.commits"] == 1
    assert process["firestore.writes"] == 2 + 3
    assert process["firestore.ttl_docs"] == 1 + 2   # the claim and the two links expire


def test_duplicate_is_not_sent_again(relay):
    post(relay, {**BROWSER, "event_name": "page_view", "event_id": "pv-1"})
    _, process = post(relay, {**BROWSER, "event_name": "page_view", "event_id": "pv-1"})
    # the conditional create fails (a write round trip), the record is read, the event
    # skipped; the links were remembered from the first delivery
    assert process["firestore.writes"] == 1
    assert process["firestore.reads"] == 1
    assert "graph.requests" not in process
    assert len(relay.graph.sent_ids) == 1


def test_mix_counts_add_up():
    events, known = cost.make_mix(200)
    run = cost.run_sparse(events, known, batch_window=0)
    assert run.per_event("ingest.invocations") == 1.0
    assert run.totals["pubsub.push"] == run.totals["pubsub.publish.events"]
    duplicates = len(events) - len({e["event_id"] for e in events})
    assert run.totals["graph.events"] == len(events) - duplicates
    assert cost.total(run) == pytest.approx(sum(cost.breakdown(run).values()))
    assert 0 < cost.breakdown(run)["Firestore writes"]


def test_request_logs_are_priced_only_when_stored():
    # infra/logging.tf keeps successful requests' Cloud Run log entries out of Cloud Logging:
    # with it (the default) only our own lines are billed; without it, two entries per event
    # (the ingest request and the push)
    events, known = cost.make_mix(40)
    run = cost.run_sparse(events, known, batch_window=0)
    assert run.per_event("process.redeliveries") == 0
    assert run.request_log_entries() == 0
    assert run.stored_log_bytes() == run.log_bytes_per_event
    assert run.request_log_entries(excluded=False) == 2.0
    assert run.stored_log_bytes(excluded=False) == \
        run.log_bytes_per_event + 2 * cost.REQUEST_LOG_BYTES
    stored = cost.breakdown(run, exclude_request_logs=False)["Cloud Logging"]
    assert stored - cost.breakdown(run)["Cloud Logging"] == pytest.approx(
        2 * cost.REQUEST_LOG_BYTES * cost.price("logging.byte") * 1e6)


# --- scheduled pull -------------------------------------------------------------------------

def _pull_relay():
    import fakes

    tally = counting.Tally()
    subscription = fakes.FakeSubscription()
    relay = cost.build_relay(tally, deliver=lambda data, attrs: subscription.publish(data, attrs))
    return relay, cost.build_puller(tally, relay, subscription), subscription


def _run(relay, puller) -> dict:
    before = len(relay.tally.calls)
    with relay.tally.call("pull"):
        puller.run()
    return dict(relay.tally.calls[before:][-1].counts)


def test_a_puller_run_writes_one_record_twice_whatever_it_carries():
    with counting.quiet_logs():
        relay, puller, _ = _pull_relay()
        for i in range(45):   # 45 anonymous page views of 45 browsers
            cost._ingest(relay, {**BROWSER, "client_id": f"{i}.1", "x-fb-ck-fbp": f"fb.1.1.{i}",
                                 "event_name": "page_view", "event_id": f"pv-{i}"})
        run = _run(relay, puller)
    # the ledger: 2 queries (30 + 15 keys, none found: one read each), the run record created
    # before sending and overwritten after; the browsers' links: one read each of the two
    # kinds, asked in one batch per event
    assert run["firestore.writes"] == 2 and run["firestore.ttl_docs"] == 1
    assert run["firestore.reads"] == 2 + 45 * 2
    assert run["firestore.lookups"] == 1   # all 90 link documents in one round trip
    assert run["graph.requests"] == 1 and run["graph.events"] == 45
    # pulls until the subscription is empty (one with the messages, one empty), then one
    # more look before the run ends; one acknowledge request for all 45
    assert run["pubsub.pulls"] == 3 and run["pubsub.acks"] == 1


def test_a_run_with_only_duplicates_writes_nothing():
    with counting.quiet_logs():
        relay, puller, _ = _pull_relay()
        page_view = {**BROWSER, "event_name": "page_view", "event_id": "pv-1"}
        cost._ingest(relay, page_view)
        _run(relay, puller)
        cost._ingest(relay, page_view)
        run = _run(relay, puller)
    assert "firestore.writes" not in run and "graph.requests" not in run
    assert run["firestore.reads"] == 1   # the one query that finds the earlier run's record


def test_pull_mix_counts_add_up():
    events, known = cost.make_mix(230)
    run = cost.run_pull(events, known, events_per_run=23, name="pull sparse")
    assert run.totals["pull.invocations"] == 10
    duplicates = len(events) - len({e["event_id"] for e in events})
    assert run.totals["graph.events"] == len(events) - duplicates
    # one record per run, written twice (each run here has something new to send)
    assert run.totals["ledger.writes"] == 20
    assert run.totals["graph.requests"] == 10
