"""The scheduled puller wired with fakes: one ledger record per run, one Graph request per
1,000 events, acknowledgement only of settled messages, redelivery of held ones."""

from capi_relay.app.ledger import event_key
from capi_relay.app.pull import PullService, retry_delay
from capi_relay.app.run_ledger import RunLedger, key_status
from capi_relay.core.envelope import QueuedEvent, encode
from capi_relay.core.errors import StoreUnavailable
from capi_relay.core.mapping import to_capi_event
from fakes import (  # noqa: I001
    FakeClock,
    FakePublisher,
    FakeSubscription,
    MemoryRunStore,
    ScriptedGraph,
    graph_error,
    make_puller,
)

NOW = 1_732_450_000.0


def message(i, *, age=0, name="page_view", email=True):
    raw = {"event_name": name, "event_id": f"e{i}", "event_time": NOW - age,
           "page_location": "https://example.com/", "user_agent": "UA/1",
           "ip_override": "203.0.113.1"}
    if email:
        raw["email"] = f"user{i}@example.com"
    mapped = to_capi_event(raw, now=NOW - age, new_id=lambda: "x")
    return encode([QueuedEvent(mapped.event, None, {}, ())])


def build(graph=None, store=None, **kw):
    store = store if store is not None else MemoryRunStore()
    sub, dead = FakeSubscription(), FakePublisher()
    puller = make_puller(graph, store=store, subscription=sub, dead_letter=dead,
                         clock=FakeClock(NOW), **kw)
    return puller, store, sub, dead


def test_a_run_sends_everything_waiting_in_one_request_with_two_writes():
    puller, store, sub, _ = build()
    for i in range(40):
        sub.publish(message(i))
    report = puller.run()
    graph = puller.service.sender.client
    assert len(graph.calls) == 1 and sorted(graph.sent_ids) == sorted(f"e{i}" for i in range(40))
    assert report.process.sent == 40 and report.acked == 40 and not sub.waiting and not sub.out
    assert store.writes == 2 and store.queries == 2  # 40 keys: two queries of <= 30
    [record] = store.records.values()
    assert record["state"] == "done" and len(record["keys"]) == 40 and record["failed"] == []


def test_more_than_1000_events_go_in_requests_of_1000():
    puller, store, sub, _ = build()
    for i in range(2300):
        sub.publish(message(i))
    report = puller.run()
    sizes = [len(events) for events, _ in puller.service.sender.client.calls]
    assert sizes == [1000, 1000, 300] and report.process.sent == 2300
    assert report.batches == 3 and store.writes == 6


def test_an_event_sent_by_an_earlier_run_is_acknowledged_not_resent():
    puller, store, sub, _ = build()
    sub.publish(message(1))
    puller.run()
    sub.publish(message(1))   # the source sent it again
    sub.publish(message(2))
    report = puller.run()
    assert puller.service.sender.client.sent_ids == ["e1", "e2"]
    assert report.process.duplicates == 1 and report.acked == 2 and not sub.waiting


def test_two_copies_in_one_run_are_sent_once():
    puller, _, sub, _ = build()
    sub.publish(message(7))
    sub.publish(message(7))
    report = puller.run()
    assert puller.service.sender.client.sent_ids == ["e7"]
    assert report.process.duplicates == 1 and report.acked == 2


def test_meta_unavailable_holds_the_batch_then_the_next_run_sends_it():
    answers = iter([(503, {})] * 3 + [(200, {"events_received": 3, "fbtrace_id": "F"})])
    puller, store, sub, _ = build(ScriptedGraph(lambda events, token: next(answers)))
    for i in range(3):
        sub.publish(message(i))
    report = puller.run()
    assert report.held == 3 and report.acked == 0 and report.process.sent == 0
    assert {seconds for _, seconds in sub.later.values()} == {retry_delay(1)}
    [record] = store.records.values()
    assert record["state"] == "done" and record["keys"] == []  # nothing claimed for good
    sub.release()
    report = puller.run()
    assert report.process.sent == 3 and report.acked == 3 and not sub.later


def test_a_bad_event_is_dead_lettered_once_and_its_neighbours_sent():
    def answer(events, token):
        if any(e["event_id"] == "e2" for e in events):
            return graph_error(100, 2804003)
        return 200, {"events_received": len(events), "fbtrace_id": "F"}

    puller, store, sub, dead = build(ScriptedGraph(answer))
    for i in range(5):
        sub.publish(message(i))
    report = puller.run()
    assert report.process.sent == 4 and report.process.dead_lettered == 1 and report.acked == 5
    assert [attrs["event_id"] for _, attrs in dead.messages] == ["e2"]
    [record] = store.records.values()
    assert record["failed"] == [k for k in record["keys"] if k in record["failed"]]
    assert len(record["failed"]) == 1
    sub.publish(message(2))   # the same bad event again: already failed, not resent
    report = puller.run()
    assert report.process.duplicates == 1 and len(dead.messages) == 1


def test_a_replayed_dead_letter_is_sent_again():
    calls = []

    def answer(events, token):
        calls.append(len(calls))
        if len(calls) == 1:
            return graph_error(100, 2804003)
        return 200, {"events_received": len(events), "fbtrace_id": "F"}

    puller, _, sub, dead = build(ScriptedGraph(answer))
    sub.publish(message(1))
    puller.run()
    assert len(dead.messages) == 1
    data, _ = dead.messages[0]
    sub.publish(data, {"replay": "1"})
    report = puller.run()
    assert report.process.sent == 1 and report.acked == 1


def test_a_store_outage_sends_nothing_and_hands_everything_back():
    puller, store, sub, _ = build()
    for i in range(3):
        sub.publish(message(i))
    store.fail = StoreUnavailable("down")
    report = puller.run()
    assert report.held == 3 and not puller.service.sender.client.calls and report.acked == 0
    store.fail = None
    sub.release()
    assert puller.run().process.sent == 3


def test_a_run_that_died_mid_send_blocks_its_keys_until_the_lease_runs_out():
    store = MemoryRunStore()
    store.records["run-old"] = {"state": "in_progress", "keys": [], "lease_until": NOW + 30,
                                "expire_at": NOW + 3600}
    puller, _, sub, _ = build(store=store)
    sub.publish(message(1))
    store.records["run-old"]["keys"] = [event_key("px", "PageView", "e1")]  # it had claimed e1
    report = puller.run()
    assert report.held == 1 and not puller.service.sender.client.calls
    sub.release()
    puller.clock.advance(31)   # the lease ran out: the dead run is presumed gone
    report = puller.run()
    assert report.process.sent == 1 and report.acked == 1


def test_retries_exhausted_by_delivery_attempts_are_dead_lettered():
    puller, _, sub, dead = build(max_attempts=3)
    sub.publish(message(1))
    sub.waiting["m1"].delivery_attempt = 4
    report = puller.run()
    assert report.process.dead_lettered == 1 and report.acked == 1
    assert dead.messages[0][1]["reason"] == "retries_exhausted"


def test_undecodable_and_too_old_events_are_dead_lettered_and_acknowledged():
    puller, _, sub, dead = build()
    sub.publish(b"not json")
    sub.publish(message(1, age=8 * 86400))
    sub.publish(message(2))
    report = puller.run()
    assert report.acked == 3 and report.process.sent == 1
    assert sorted(attrs["reason"] for _, attrs in dead.messages) == ["too_old", "undecodable"]


def test_nothing_waiting_costs_no_store_access():
    puller, store, sub, _ = build()
    report = puller.run()
    assert report.messages == 0 and store.writes == 0 and store.queries == 0 and sub.pulls == 1


def test_key_status_strongest_record_wins_and_expired_ones_are_ignored():
    records = [
        {"state": "in_progress", "keys": ["a", "b"], "lease_until": NOW + 10,
         "expire_at": NOW + 99},
        {"state": "done", "keys": ["a", "c"], "failed": ["c"], "expire_at": NOW + 99},
        {"state": "done", "keys": ["d"], "failed": [], "expire_at": NOW - 1},
        {"state": "in_progress", "keys": ["e"], "lease_until": NOW - 1, "expire_at": NOW + 99},
    ]
    assert key_status(records, NOW) == {"a": "sent", "b": "leased", "c": "failed"}


def test_the_puller_refuses_a_service_recording_elsewhere():
    store = MemoryRunStore()
    ledger = RunLedger(store, lease_seconds=60, ttl_seconds=3600)
    other = make_puller()
    try:
        PullService(other.service, ledger, FakeSubscription(), FakeClock(NOW))
    except ValueError:
        return
    raise AssertionError("a service with another ledger was accepted")


def _browser_message(i, consent=None):
    raw = {"event_name": "page_view", "event_id": f"b{i}", "event_time": NOW,
           "page_location": "https://example.com/", "user_agent": "UA/1",
           "ip_override": "203.0.113.1", "client_id": f"{i}.1700000000"}
    mapped = to_capi_event(raw, now=NOW, new_id=lambda: "x")
    return encode([QueuedEvent(mapped.event, mapped.client_id, consent or {}, ())])


def test_a_batch_reads_its_browsers_profiles_in_one_round_trip_skipping_refused_ones():
    from capi_relay.app.enrichment import Enricher
    from capi_relay.app.profile_cache import ProfileCache
    from fakes import MemoryProfileStore

    store = MemoryProfileStore()
    puller, _, sub, _ = build(enrich=Enricher(ProfileCache(store)))
    for i in range(12):
        sub.publish(_browser_message(i))
    for i in range(12, 15):   # ad storage denied: not sent, so not looked up
        sub.publish(_browser_message(i, consent={"x-ga-gcs": "G100"}))
    report = puller.run()
    assert report.process.sent == 12 and report.process.consent_dropped == 3
    assert store.reads == 1 and len(store.read_ids[0]) == 12


def _many(start, n):
    events = []
    for i in range(start, start + n):
        raw = {"event_name": "page_view", "event_id": f"e{i}", "event_time": NOW,
               "page_location": "https://example.com/", "user_agent": "UA/1",
               "ip_override": "203.0.113.1", "email": f"user{i}@example.com"}
        events.append(QueuedEvent(to_capi_event(raw, now=NOW, new_id=lambda: "x").event,
                                  None, {}, ()))
    return encode(events)


def test_a_record_holds_at_most_1000_keys_and_a_batch_about_1000_events():
    from capi_relay.app.run_ledger import RECORD_KEYS

    puller, store, sub, _ = build()
    sub.publish(_many(0, 600), {"count": "600"})
    sub.publish(_many(600, 600), {"count": "600"})
    sub.publish(_many(1200, 600), {"count": "600"})
    first = sub.pull  # one pull hands out every waiting message, as Pub/Sub may
    calls = []
    sub.pull = lambda n: calls.append(n) or first(n)
    report = puller.run()
    assert report.process.sent == 1800 and report.batches == 1 and len(calls) == 2
    assert [len(events) for events, _ in puller.service.sender.client.calls] == [1000, 800]
    sizes = sorted(len(r["keys"]) for r in store.records.values())
    assert sizes == [800, RECORD_KEYS] and store.writes == 4
    assert all(r["state"] == "done" for r in store.records.values())


def test_a_batch_stops_pulling_once_1000_events_wait():
    puller, _, sub, _ = build()
    for start in range(0, 3000, 1000):
        sub.publish(_many(start, 1000), {"count": "1000"})
    pulled = []
    original = sub.pull
    sub.pull = lambda n: (lambda got: pulled.append(len(got)) or got)(original(min(n, 1)))
    report = puller.run()
    assert report.batches == 3 and report.process.sent == 3000
    assert pulled[:3] == [1, 1, 1]   # each batch: one message of 1,000 events, then deliver


def test_the_pull_entry_point_answers_counts_405_and_503():
    import json

    from capi_relay.core.errors import TransientError
    from capi_relay.entrypoints import web

    class Request:
        def __init__(self, method):
            self.method = method

    puller, _, sub, _ = build()
    sub.publish(message(1))
    body, status, _ = web.handle_pull(Request("POST"), lambda: puller)
    assert status == 200 and json.loads(body)["sent"] == 1 and json.loads(body)["acked"] == 1
    assert web.handle_pull(Request("GET"), lambda: puller)[1] == 405

    def broken():
        raise TransientError("pull failed: Unavailable")

    class Broken:
        run = staticmethod(broken)

    body, status, _ = web.handle_pull(Request("POST"), lambda: Broken())
    assert status == 503 and json.loads(body) == {"error": "TransientError"}
