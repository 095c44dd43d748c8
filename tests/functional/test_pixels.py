"""Several pixels (issue 14): the processor fans each event out to the pixels whose route it
matches, with one claim, one sender and one token per pixel; a failing pixel holds, retries or
dead-letters only its own copies. Wired with fakes."""

import io
import json
import threading
import time
from dataclasses import replace

import pytest

from capi_relay import bootstrap, log
from capi_relay.app.coalescer import Coalescer
from capi_relay.app.ledger import DeliveryLedger, event_key
from capi_relay.app.process import DeliveryPolicy, ProcessService
from capi_relay.app.sender import GraphSender, SenderConfig
from capi_relay.core.envelope import QueuedEvent, decode, encode
from capi_relay.core.errors import GraphUnavailable, TokenProblem, TransientError
from capi_relay.core.mapping import to_capi_event
from capi_relay.core.routing import Pixel, Route
from fakes import FakeClock, FakePublisher, FakeSecret, MemoryBackend, ScriptedGraph, graph_error

NOW = 1_732_450_000.0
A, B = "1111111111", "2222222222"
OK = (200, {"events_received": 1, "fbtrace_id": "F"})


def event(i, *, host="shop-a.example", name="purchase", source=None, age=0):
    raw = {"event_name": name, "event_id": f"e{i}", "event_time": NOW - age,
           "page_location": f"https://{host}/thanks", "user_agent": "UA/1",
           "ip_override": "203.0.113.1", "email": f"user{i}@example.com",
           "value": 10, "currency": "EUR"}
    mapped = to_capi_event(raw, now=NOW - age, new_id=lambda: "x")
    assert mapped.event is not None, mapped.reasons
    return QueuedEvent(mapped.event, None, {}, (), source)


class Relay:
    """A processor feeding pixels A and B, each with its own fake Graph edge and token."""

    def __init__(self, routes=None, *, graph_a=None, graph_b=None, secret_a=None, secret_b=None,
                 codes=(None, "TESTB"), window=0.0):
        routes = routes or {}
        self.graphs = {A: graph_a or ScriptedGraph(), B: graph_b or ScriptedGraph()}
        self.secrets = {A: secret_a or FakeSecret("token-a"), B: secret_b or FakeSecret("token-b")}
        self.backend, self.dead = MemoryBackend(), FakePublisher()
        self.clock = FakeClock(NOW)
        self.pixels = [Pixel(pid, routes.get(pid, Route()), code)
                       for pid, code in zip((A, B), codes, strict=True)]
        self.service = ProcessService(
            ledger=DeliveryLedger(self.backend, lease_seconds=60, ttl_seconds=3600,
                                  dead_letter=self.dead),
            pixels=[(p, GraphSender(self.graphs[p.id], self.secrets[p.id],
                                    SenderConfig(p.test_event_code, pixel_id=p.id),
                                    sleep=lambda s: None)) for p in self.pixels],
            clock=self.clock, policy=DeliveryPolicy(pixel_id=A, max_attempts=8),
            coalescer=Coalescer(window))

    def process(self, events, **attributes):
        return self.service.process(encode(events), attributes)

    def sent(self, pixel):
        """What the pixel's Graph edge accepted."""
        return sorted(self.graphs[pixel].accepted_ids)

    def state(self, pixel, queued):
        record = self.backend.get(event_key(pixel, queued.event.event_name,
                                            queued.event.event_id))
        return record[0]["state"] if record else None


@pytest.fixture
def logged():
    stream = io.StringIO()
    log.set_stream(stream)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    log.set_stream(None)


def test_routing_by_host_event_name_and_source_key():
    relay = Relay({A: Route(hosts=("shop-a.example",)),
                   B: Route(event_names=frozenset({"Purchase"}),
                            source_keys=frozenset({"shop-sgtm"}))})
    events = [event(1),                                          # A only: no key name
              event(2, source="shop-sgtm"),                      # A and B
              event(3, host="shop-b.example", source="shop-sgtm"),  # B only
              event(4, host="shop-b.example", name="page_view", source="shop-sgtm")]  # neither
    report = relay.process(events)
    assert relay.sent(A) == ["e1", "e2"] and relay.sent(B) == ["e2", "e3"]
    assert report.sent == 4 and report.unrouted == 1
    # each pixel's own token and test event code
    assert {token for _, token in relay.graphs[A].calls} == {"token-a"}
    assert {token for _, token in relay.graphs[B].calls} == {"token-b"}
    assert relay.graphs[A].test_codes == [None] and relay.graphs[B].test_codes == ["TESTB"]
    # claims per pixel: the same event is recorded sent twice, under two keys
    assert relay.state(A, events[1]) == relay.state(B, events[1]) == "sent"
    assert relay.state(B, events[0]) is None and relay.state(A, events[2]) is None


def test_without_routes_every_pixel_gets_every_event_in_one_request_each():
    relay = Relay()
    relay.process([event(i) for i in range(30)])
    assert len(relay.graphs[A].calls) == len(relay.graphs[B].calls) == 1
    assert relay.sent(A) == relay.sent(B) == sorted(f"e{i}" for i in range(30))


def test_a_rejected_token_holds_only_that_pixels_copies(logged):
    good = {"token-a-new"}

    def edge_a(events, token):
        return (200, {"events_received": len(events)}) if token in good else graph_error(190)

    secret_a = FakeSecret("token-a-old")  # expired, and the first re-read finds no new one
    relay = Relay(graph_a=ScriptedGraph(edge_a), secret_a=secret_a)
    events = [event(i) for i in range(5)]
    with pytest.raises(TokenProblem):
        relay.process(events)
    assert relay.sent(B) == [f"e{i}" for i in range(5)] and relay.sent(A) == []
    assert all(relay.state(B, q) == "sent" and relay.state(A, q) == "released" for q in events)
    token_lines = [r for r in logged() if r.get("cause") == "token"]
    assert [(r["pixel_id"], r["count"]) for r in token_lines] == [(A, 5)]

    # the operator adds A's new token; Pub/Sub redelivers: A's copies go, B's are not resent
    secret_a.tokens.append("token-a-new")
    b_calls = len(relay.graphs[B].calls)
    report = relay.process(events)
    assert report.sent == 5 and report.duplicates == 5
    assert len(relay.graphs[B].calls) == b_calls
    assert relay.sent(A) == [f"e{i}" for i in range(5)]
    assert relay.graphs[A].calls[-1][1] == "token-a-new"
    assert all(relay.state(A, q) == "sent" for q in events)


def test_a_failing_pixel_is_retried_alone_and_its_attempts_count():
    answers = iter([graph_error(2, status=500, transient=True)] * 3)

    def edge_b(events, token):
        return next(answers, (200, {"events_received": len(events)}))

    relay = Relay(graph_b=ScriptedGraph(edge_b))
    events = [event(i) for i in range(3)]
    with pytest.raises(GraphUnavailable):
        relay.process(events)
    assert relay.sent(A) == ["e0", "e1", "e2"]
    record_b = relay.backend.get(event_key(B, "Purchase", "e0"))[0]
    assert (record_b["state"], record_b["attempts"]) == ("released", 1)  # an attempt used
    assert relay.state(A, events[0]) == "sent"
    a_calls = len(relay.graphs[A].calls)
    report = relay.process(events)  # the redelivery
    assert report.sent == 3 and report.duplicates == 3 and len(relay.graphs[A].calls) == a_calls
    assert all(relay.state(B, q) == "sent" for q in events)


def test_an_unreadable_token_secret_holds_only_its_pixel():
    class Unreadable:
        def get(self, *, refresh=False):
            raise TransientError("reading projects/p/secrets/b/versions/latest failed")

    relay = Relay(secret_b=Unreadable())
    events = [event(1), event(2)]
    with pytest.raises(TransientError, match="reading projects/p/secrets/b"):  # its own error
        relay.process(events)
    assert relay.sent(A) == ["e1", "e2"] and relay.graphs[B].calls == []
    assert [relay.state(B, q) for q in events] == ["released", "released"]


def test_an_event_one_pixel_refuses_is_dead_lettered_for_it_and_replayed_to_it_alone():
    def edge_b(events, token):
        if any(e["event_id"] == "e1" for e in events):
            return graph_error(100, 2804003)
        return 200, {"events_received": len(events)}

    relay = Relay(graph_b=ScriptedGraph(edge_b))
    events = [event(i) for i in range(4)]
    report = relay.process(events)  # acknowledged: nothing left to retry
    assert report.sent == 7 and report.dead_lettered == 1
    assert relay.sent(A) == ["e0", "e1", "e2", "e3"]
    ((data, attributes),) = relay.dead.messages
    assert attributes["pixel_id"] == B and attributes["reason"] == "rejected"
    (copy,) = decode(data)
    assert copy.event.event_id == "e1" and copy.pixel == B
    assert relay.state(A, events[1]) == "sent" and relay.state(B, events[1]) == "failed"

    # fixed at Meta's end, the operator replays the dead letter: only B is sent to
    relay.graphs[B].answer = lambda events, token: (200, {"events_received": len(events)})
    a_calls, b_calls = len(relay.graphs[A].calls), len(relay.graphs[B].calls)
    again = relay.service.process(data, {"replay": "1"})
    assert again.sent == 1 and len(relay.graphs[A].calls) == a_calls
    assert relay.graphs[B].calls[b_calls:] == [([copy.event.to_wire()], "token-b")]


def test_an_event_dead_for_every_pixel_is_dead_lettered_once():
    relay = Relay()
    old = event(9, age=8 * 86400)  # outside Meta's 7-day window
    report = relay.process([old, event(1)])
    assert report.dead_lettered == 1 and len(relay.dead.messages) == 1
    ((data, attributes),) = relay.dead.messages
    assert attributes["reason"] == "too_old" and decode(data)[0].pixel is None
    assert "pixel_id" not in attributes  # dead for every pixel, not for one
    assert relay.sent(A) == relay.sent(B) == ["e1"]
    assert relay.process([old]).dead_lettered == 0  # redelivered: already dead-lettered


def test_an_event_no_route_takes_is_acknowledged_and_logged_unsent(logged):
    relay = Relay({A: Route(hosts=("shop-a.example",)), B: Route(hosts=("shop-b.example",))})
    report = relay.process([event(1, host="elsewhere.example", name="lead")])
    assert report.unrouted == 1 and report.sent == 0 and not relay.dead.messages
    assert relay.graphs[A].calls == relay.graphs[B].calls == []
    (line,) = [r for r in logged() if r["message"] == "not sent: no pixel route"]
    assert line["count"] == 1 and line["events"] == ["Lead"]


def test_a_slow_pixel_does_not_hold_the_other_back():
    b_sent = threading.Event()
    waited = []

    def edge_a(events, token):  # A answers only once B has been sent to, or after 5 s
        waited.append(b_sent.wait(5))
        return 200, {"events_received": len(events)}

    def edge_b(events, token):
        b_sent.set()
        return 200, {"events_received": len(events)}

    relay = Relay(graph_a=ScriptedGraph(edge_a), graph_b=ScriptedGraph(edge_b))
    assert relay.process([event(1)]).sent == 2
    assert waited == [True]


def test_concurrent_messages_share_each_pixels_requests():
    first_send = threading.Event()
    calls_a = []

    def edge_a(events, token):  # the first request is slow: the others gather meanwhile
        calls_a.append(len(events))
        if len(calls_a) == 1:
            first_send.wait(5)
        return 200, {"events_received": len(events)}

    relay = Relay(graph_a=ScriptedGraph(edge_a), window=5.0)
    threads = [threading.Thread(target=relay.process, args=([event(i)],)) for i in range(4)]
    threads[0].start()
    time.sleep(0.2)  # it leads alone and is sending
    for thread in threads[1:]:
        thread.start()
    time.sleep(0.3)  # the other three join one batch behind it
    first_send.set()
    for thread in threads:
        thread.join(10)
    assert relay.sent(A) == relay.sent(B) == ["e0", "e1", "e2", "e3"]
    assert sorted(calls_a) == [1, 3]  # two requests to A, not four
    assert sorted(len(events) for events, _ in relay.graphs[B].calls) == [1, 3]


def test_bootstrap_gives_each_pixel_its_client_token_and_test_code(monkeypatch):
    from capi_relay.adapters.secrets import SecretManagerSource, StaticSecret

    pixels = [{"id": "3333333333", "token_env": "TOKEN_C", "test_event_code": "TESTC",
               "route": {"hosts": ["c.example"]}},
              {"id": "4444444444", "token_secret": "projects/p/secrets/d/versions/latest"},
              {"id": "5555555555"}]
    for name, value in {"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": A,
                        "META_ACCESS_TOKEN": "main-token", "META_TEST_EVENT_CODE": "TESTA",
                        "PIXELS": json.dumps(pixels), "TOKEN_C": "token-c"}.items():
        monkeypatch.setenv(name, value)
    bootstrap.reset()
    service = bootstrap.process_service()
    assert [p.id for p in service.pixels] == [A, "3333333333", "4444444444", "5555555555"]
    senders = service.senders
    assert {pid: s.client.pixel_id for pid, s in senders.items()} == {
        pid: pid for pid in senders}
    assert [senders[p.id].config.test_event_code for p in service.pixels] == [
        "TESTA", "TESTC", None, None]
    assert isinstance(senders["3333333333"].secrets, StaticSecret)
    assert senders["3333333333"].secrets.get() == "token-c"
    assert isinstance(senders["4444444444"].secrets, SecretManagerSource)
    # pixels without a token of their own share the deployment's source
    assert senders[A].secrets is senders["5555555555"].secrets
    assert senders[A].secrets.get() == "main-token"
    assert service.pixels[1].route == Route(hosts=("c.example",))
    assert service.sender is senders[A]
    bootstrap.reset()


def test_one_pixel_without_pixels_is_as_before():
    relay = Relay()
    single = ProcessService(ledger=relay.service.ledger, sender=relay.service.senders[A],
                            clock=relay.clock, policy=DeliveryPolicy(pixel_id=A, max_attempts=8))
    assert [p.id for p in single.pixels] == [A] and single.pixels[0].route.takes_all
    one = event(1, source="anything")
    assert single.process(encode([replace(one, source=None)])).sent == 1
    assert relay.state(A, one) == "sent" and relay.graphs[B].calls == []


def test_the_report_counts_each_pixels_events_from_the_processors_lines():
    from capi_relay_ops.report import build_report, render_html, render_text

    stream = io.StringIO()
    log.set_stream(stream)
    try:
        relay = Relay({A: Route(hosts=("shop-a.example",)), B: Route(hosts=("shop-b.example",))})
        relay.process([event(1), event(2), event(3, host="shop-b.example"),
                       event(4, host="elsewhere.example")])
    finally:
        log.set_stream(None)
    report = build_report([stream.getvalue()])
    assert report.sent_by_pixel == {A: 2, B: 1} and report.unrouted == 1
    assert report.events["Purchase"].sent == 3
    assert f"pixels: sent {A} 2, {B} 1; no pixel route: 1" in render_text(report)
    assert f"sent to pixel {B}" in render_html(report)
