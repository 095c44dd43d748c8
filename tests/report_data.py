"""Real relay log lines for the report tests: ingest and process run over fakes, logs captured.

The services write the lines themselves (log.py), so a renamed message or field shows up in the
report tests as well as in tests/infra/test_monitoring.py.
"""

from __future__ import annotations

import io
import itertools

from capi_relay import log
from capi_relay.app.enrichment import Enricher
from capi_relay.app.ingest import IngestService
from capi_relay.core.errors import RelayError
from capi_relay.core.mapping import DEFAULT_CONFIG, RequestContext
from capi_relay.core.normalize import prepare, sha256_hex
from capi_relay.core.profiles import Profile
from fakes import (
    FakeClock,
    FakePublisher,
    MemoryProfileStore,
    ScriptedGraph,
    graph_error,
    make_processor,
)

NOW = 1_764_590_400.0  # 2025-12-01 12:00 UTC
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0"


def _Context():  # noqa: N802 (the name the calls below use)
    return RequestContext()


def _purchase(i: int, **extra) -> dict:
    return {"event_name": "purchase", "event_id": f"p{i}", "page_location":
            "https://shop.example/checkout", "user_agent": UA, "ip_override": "203.0.113.9",
            "email": f"buyer{i}@example.com", "currency": "EUR", "value": 10 + i,
            "fbp": f"fb.1.1764590000000.{1000 + i}", **extra}


def _page_view(i: int) -> dict:
    return {"event_name": "page_view", "event_id": f"v{i}", "page_location":
            "https://shop.example/", "user_agent": UA, "ip_override": "203.0.113.9",
            "fbp": f"fb.1.1764590000000.{2000 + i}"}


def _lead(i: int) -> dict:
    return {"event_name": "generate_lead", "event_id": f"l{i}", "action_source":
            "system_generated", "user_id": f"customer-{i}"}


def relay_log(now: float = NOW) -> str:
    """The log of one small day: purchases (some with phone), page views, CRM leads enriched
    from profiles, a consent drop, a too-old event, one Meta rejects, thin events, a token
    error."""
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        clock = FakeClock(now)
        queue = FakePublisher()
        ids = (f"id-{n}" for n in itertools.count())
        ingest = IngestService(queue, clock, lambda: next(ids), DEFAULT_CONFIG)
        events = [_purchase(i, **({"phone": "+44 20 7946 0018"} if i % 2 else {}))
                  for i in range(6)]
        events += [_page_view(i) for i in range(10)]
        events += [_lead(i) for i in range(4)]
        events.append(_purchase(90, consent={"ad_user_data": "denied"}))
        events.append(_purchase(92))  # Meta rejects this one: no match (as the stand-in does)
        ingest.ingest(events, _Context())
        ingest.ingest([{"event_name": "page_view", "action_source": "system_generated",
                        "gender": "f"}] * 2, _Context())  # thin: dead-lettered by the processor
        main, thin = queue.messages
        ingest.ingest([_page_view(91)], _Context())  # processed 8 days late: too old
        ingest.ingest([_purchase(93)], _Context())   # meets an expired token
        late, refused = queue.messages[2:]

        profiles = {}
        for i in range(3):  # three of the four leads are known to the CRM
            xid = prepare("external_id", f"customer-{i}")
            profiles["xid_" + xid] = Profile(xid, {
                "em": (sha256_hex(f"crm{i}@example.com"),),
                "db": (prepare("db", "1990-05-17"),)}).to_doc()

        def answer(batch, token):
            if any(e["event_id"] == "p92" for e in batch):
                return graph_error(100, 2804050)
            return 200, {"events_received": len(batch), "fbtrace_id": "Freport"}

        def service(graph):
            return make_processor(graph, clock=clock, pixel_id="1234567890",
                                  dead_letter=FakePublisher(),
                                  enrich=Enricher(MemoryProfileStore(profiles)))

        service(ScriptedGraph(answer)).process(*main)
        service(ScriptedGraph(answer)).process(*thin)  # Meta's rule, judged after enrichment
        try:
            service(ScriptedGraph(lambda batch, token: graph_error(190, 463))).process(*refused)
        except RelayError:
            pass  # held for retry, as in production
        clock.advance(8 * 86400)
        service(ScriptedGraph(answer)).process(*late)
    finally:
        log.set_stream(None)
    return stream.getvalue()
