"""Cost per million events, from counted operations: the real services over a realistic mix.

The ingest and process services run as ``bootstrap`` wires them, with the in-memory fakes of
tests/fakes.py behind counting decorators (``counting.py``). Every event is posted to ingest on
its own (as the web tag and sGTM do), every message ingest publishes is pushed to process.
What is counted per event (invocations, Pub/Sub requests and billable bytes, Firestore reads,
writes and TTL deletes, Graph requests, secret accesses, log bytes) and the time each function
call is billed for become dollars with ``PRICES``.

Two traffic shapes:

* **sparse**: 1 M events a month, spread out, so no two requests overlap. Each call is billed
  alone: its measured in-process time plus the assumed round trips of its counted operations
  (``counting.LATENCY``), rounded up to 100 ms.
* **steady**: 40 events/s sustained. The same services run on threads at that rate with the
  round trips really slept; each function's instances are billed for the time at least one
  request is active (requests share an instance up to the configured concurrency), each busy
  stretch rounded up to 100 ms.

Beside them, server-side GTM on Cloud Run priced the same way: always on (warm instances, as
sGTM production guides advise) and lean (scale to zero, one Graph call per event).
"""

from __future__ import annotations

import math
import random
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import counting
from counting import Tally

_ROOT = Path(__file__).resolve().parent.parent
for _path in (_ROOT / "functions", _ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

MONTH_SECONDS = 30 * 86400
SPARSE_EVENTS_PER_MONTH = 1_000_000
STEADY_RATE = 40.0          # events per second
REDELIVERY_DELAY = 1.0      # seconds before a refused push comes back (steady run)
NOW = 1_732_450_000.0

#: One price table. Tier-1 regions, list prices, free tiers ignored.
PRICES: dict[str, tuple[float, str]] = {
    # name: (USD per unit, source, checked)
    "run.request": (0.40 / 1e6, "https://cloud.google.com/run/pricing (request-based billing; "
                                "checked 2026-12-01)"),
    "run.vcpu_second": (0.000024, "https://cloud.google.com/run/pricing (checked 2026-12-01)"),
    "run.gib_second": (0.0000025, "https://cloud.google.com/run/pricing (checked 2026-12-01)"),
    "run.instance_vcpu_second": (0.000018, "https://cloud.google.com/run/pricing, instance-"
                                           "based billing (checked 2026-12-01)"),
    "run.instance_gib_second": (0.000002, "https://cloud.google.com/run/pricing, instance-"
                                          "based billing (checked 2026-12-01)"),
    "pubsub.byte": (40.0 / 2**40, "https://cloud.google.com/pubsub/pricing: $40 per TiB, "
                                  "1000 bytes minimum per request (checked 2026-12-01)"),
    "firestore.read": (0.06 / 1e5, "https://cloud.google.com/firestore/pricing nam5 "
                                   "(checked 2026-11-24)"),
    "firestore.write": (0.18 / 1e5, "https://cloud.google.com/firestore/pricing nam5 "
                                    "(checked 2026-11-24)"),
    "firestore.delete": (0.02 / 1e5, "https://cloud.google.com/firestore/pricing nam5 "
                                     "(checked 2026-11-24)"),
    "secret.access": (0.03 / 1e4, "https://cloud.google.com/secret-manager/pricing "
                                  "(checked 2026-11-24)"),
    "logging.byte": (0.50 / 2**30, "https://cloud.google.com/stackdriver/pricing: $0.50 per "
                                   "GiB ingested beyond 50 GiB a month (checked 2026-11-24)"),
}


def price(name: str) -> float:
    return PRICES[name][0]


@dataclass(frozen=True)
class FunctionSize:
    """What a function is deployed with (infra/variables.tf defaults)."""

    vcpu: float = 1.0
    gib: float = 0.5
    concurrency: int = 1


INGEST = FunctionSize(0.1667, 0.25, 1)
PROCESS = FunctionSize(1.0, 0.5, 20)
#: Cloud Logging bills a LogEntry, not just our JSON line: resource, labels, timestamps, ids.
LOG_ENTRY_OVERHEAD = 500
#: Cloud Run's own request log entry per invocation (assumed size)
REQUEST_LOG_BYTES = 800
#: infra/variables.tf ``exclude_request_logs`` (on by default, infra/logging.tf): the request log
#: entries of requests that succeeded are kept out of Cloud Logging; a status of 400 or more
#: (here: a push the processor refused, for redelivery) is still stored and billed.
EXCLUDE_REQUEST_LOGS = True


# --- the mix --------------------------------------------------------------------------------

def make_mix(n: int, seed: int = 13) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
    """``n`` events from browsing sessions, and the browsers already known to the profile store.

    A session is one browser (client_id, fbp): 2-5 page views, 1-2 product views, an add to
    cart 40 % of the time, then a purchase (identified: user id, email, phone) 12 % of the time
    or a lead (email, phone) 8 %. A quarter of the browsers bought before, so a profile link
    exists for them. 5 % of events arrive twice (browser and server both send, or a retry).
    """
    rng = random.Random(seed)
    events: list[dict[str, Any]] = []
    known: list[tuple[str, str]] = []
    browser = 0
    while len(events) < n:
        browser += 1
        client_id, fbp = f"{browser}.1732400000", f"fb.1.1732400000000.{browser}"
        if rng.random() < 0.25:
            known.append((client_id, f"customer-{browser}"))
        base = {"client_id": client_id, "x-fb-ck-fbp": fbp,
                "ip_override": f"198.51.{browser // 250 % 250}.{browser % 250 + 1}",
                "user_agent": "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0"}
        session: list[dict[str, Any]] = []
        for page in range(rng.randint(2, 5)):
            session.append({"event_name": "page_view",
                            "page_location": f"https://shop.example.com/p/{page}"})
        item = {"item_id": f"SKU-{browser % 97}", "item_name": "Trail shoe", "price": 89.0,
                "quantity": 1}
        for _ in range(rng.randint(1, 2)):
            session.append({"event_name": "view_item", "items": [item], "currency": "EUR",
                            "value": 89.0, "page_location": "https://shop.example.com/p/1"})
        if rng.random() < 0.4:
            session.append({"event_name": "add_to_cart", "items": [item], "currency": "EUR",
                            "value": 89.0, "page_location": "https://shop.example.com/p/1"})
        roll = rng.random()
        if roll < 0.12:
            session.append({"event_name": "purchase", "transaction_id": f"T{browser}",
                            "items": [item], "currency": "EUR", "value": 89.0,
                            "user_id": f"customer-{browser}",
                            "email": f"buyer{browser}@example.com",
                            "phone": f"+49 170 {browser:07d}",
                            "page_location": "https://shop.example.com/checkout/done"})
        elif roll < 0.20:
            session.append({"event_name": "generate_lead", "email": f"lead{browser}@example.net",
                            "phone": f"+44 20 7946 {browser % 10000:04d}",
                            "page_location": "https://shop.example.com/contact"})
        for index, event in enumerate(session):
            event.update(base)
            event["event_id"] = f"b{browser}-{index}"
            events.append(event)
            if rng.random() < 0.05:
                events.append(dict(event))
    return events[:n], known


# --- the services, wired as bootstrap wires them, over counted fakes ------------------------

@dataclass
class Relay:
    ingest: Any
    process: Any
    tally: Tally
    profiles: Any
    graph: Any
    published: list[tuple[bytes, dict[str, str]]] = field(default_factory=list)


def build_relay(tally: Tally, *, batch_window: float | None = None,
                deliver: Callable[[bytes, dict[str, str]], None] | None = None) -> Relay:
    """IngestService and ProcessService as ``bootstrap`` builds them, every port counted.
    ``deliver`` receives each published message (the push subscription); without it they
    are kept in ``Relay.published``."""
    import fakes
    from capi_relay import bootstrap
    from capi_relay.adapters.secrets import SecretManagerSource
    from capi_relay.app.coalescer import Coalescer
    from capi_relay.app.enrichment import Enricher
    from capi_relay.app.ingest import IngestService
    from capi_relay.app.ledger import DeliveryLedger
    from capi_relay.app.process import DeliveryPolicy, ProcessService
    from capi_relay.app.profile_cache import ProfileCache
    from capi_relay.app.sender import GraphSender, SenderConfig
    from capi_relay.config import Settings

    settings = Settings(project="bench", topic="events", pixel_id="1234567890",
                        token_secret="projects/bench/secrets/token/versions/latest")
    relay_published: list[tuple[bytes, dict[str, str]]] = []

    class _Topic:
        def publish(self, data: bytes, attributes):
            if deliver is not None:
                deliver(data, dict(attributes))
            else:
                relay_published.append((data, dict(attributes)))
            return "1"

    counter = iter(range(1, 1 << 62))
    ingest = IngestService(counting.CountingPublisher(_Topic(), tally), fakes.FakeClock(NOW),
                           lambda: f"gen-{next(counter)}", bootstrap.mapping_from(settings))
    store = fakes.MemoryProfileStore()
    graph = fakes.ScriptedGraph()
    window = settings.batch_window_ms / 1000 if batch_window is None else batch_window
    secrets = SecretManagerSource(settings.token_secret,
                                  client=counting.CountingSecretClient(tally))
    process = ProcessService(
        ledger=DeliveryLedger(
            counting.CountingIdempotencyBackend(fakes.MemoryBackend(), tally),
            lease_seconds=settings.lease_seconds,
            ttl_seconds=settings.idempotency_ttl_hours * 3600,
            dead_letter=counting.CountingPublisher(fakes.FakePublisher(), tally,
                                                   "dead_letter")),
        sender=GraphSender(counting.CountingGraph(graph, tally), secrets,
                           SenderConfig(test_event_code=settings.test_event_code)),
        clock=fakes.FakeClock(NOW),
        policy=DeliveryPolicy(pixel_id=settings.pixel_id, max_attempts=settings.max_attempts),
        rules=bootstrap.rules_from(settings),
        enrich=Enricher(ProfileCache(counting.CountingProfileStore(store, tally)),
                        writeback=settings.profile_writeback),
        coalescer=Coalescer(window))
    return Relay(ingest, process, tally, store, graph, relay_published)


def seed_known(store: Any, known: list[tuple[str, str]]) -> None:
    """Profiles and browser links for the returning buyers, as an earlier purchase left them."""
    from capi_relay.core import profiles
    from capi_relay.core.normalize import sha256_hex

    for client_id, customer in known:
        number = customer.rsplit("-", 1)[1]
        profile = profiles.Profile(
            external_id=sha256_hex(customer),
            keys={"em": (sha256_hex(f"buyer{number}@example.com"),),
                  "ph": (sha256_hex(f"49170{int(number):07d}"),)},
            expire_at=NOW + 20 * 86400, updated_at=NOW - 86400)
        store.docs[profiles.link_doc_id("client_id", client_id)] = profile.to_doc()
        store.docs[profiles.profile_doc_id(profile.external_id)] = \
            profiles.Profile(profile.external_id, profile.keys, updated_at=NOW).to_doc()


def _ingest(relay: Relay, raw: dict[str, Any]) -> None:
    from capi_relay.app.ingest import RequestContext

    with relay.tally.call("ingest"):
        relay.ingest.ingest([raw], RequestContext())


def _process(relay: Relay, data: bytes, attributes: dict[str, str]) -> bool:
    """One push delivery; False when the processor asked for a redelivery (raised)."""
    from capi_relay.core.errors import RelayError

    relay.tally.add("pubsub.push")
    relay.tally.add("pubsub.bytes", counting.pubsub_bytes(data, attributes))
    with relay.tally.call("process"):
        try:
            relay.process.process(data, attributes)
        except RelayError:
            relay.tally.add("process.redeliveries")
            return False
    return True


# --- the two runs ---------------------------------------------------------------------------

@dataclass
class Run:
    """What one traffic shape did: counts, and every function call with its times."""

    name: str
    events: int
    totals: Counter
    calls: list[counting.Call]
    requests_per_event: float
    log_bytes_per_event: float     # our own lines: their JSON and each LogEntry's overhead
    note: str = ""

    def per_event(self, name: str) -> float:
        return self.totals[name] / self.events

    def billed_seconds(self, function: str, size: FunctionSize) -> float:
        """Instance seconds billed per event for ``function`` deployed at ``size``.

        A call's time is its round trips plus its in-process time, its CPU time stretched by
        1/vCPU below one vCPU. Sparse: each call alone, rounded up to 100 ms. Steady: calls
        share instances up to the size's concurrency (``busy_seconds``)."""
        calls = [c for c in self.calls if c.function == function]
        if self.name == "sparse":
            total = 0.0
            for call in calls:
                seconds = call.io_seconds + call.wall_seconds + \
                    call.cpu_seconds * (1 / min(size.vcpu, 1.0) - 1)
                total += max(1, math.ceil(seconds * 10 - 1e-9)) / 10
            return total / self.events
        return busy_seconds(calls, size)[0] / self.events

    def request_log_entries(self, excluded: bool = EXCLUDE_REQUEST_LOGS) -> float:
        """Cloud Run request log entries stored per event: one per invocation, or with the
        exclusion only those of failed requests (pushes refused for redelivery)."""
        return self.per_event("process.redeliveries") if excluded else self.requests_per_event

    def stored_log_bytes(self, excluded: bool = EXCLUDE_REQUEST_LOGS) -> float:
        """Bytes Cloud Logging stores and bills per event: our lines and Cloud Run's."""
        return self.log_bytes_per_event + self.request_log_entries(excluded) * REQUEST_LOG_BYTES

    def peak_concurrency(self, function: str) -> int:
        return busy_seconds([c for c in self.calls if c.function == function],
                            FunctionSize(concurrency=1000))[1]


def run_sparse(events: list[dict[str, Any]], known: list[tuple[str, str]], *,
               batch_window: float | None = None) -> Run:
    """Each event alone: ingest, then the push of what it published; billed call by call."""
    tally = Tally()
    relay = build_relay(tally, batch_window=batch_window)
    seed_known(relay.profiles, known)
    with counting.quiet_logs() as logs:
        for raw in events:
            _ingest(relay, raw)
            while relay.published:
                _process(relay, *relay.published.pop(0))
    n = len(events)
    return Run("sparse", n, tally.totals, tally.calls, requests_per_event=len(tally.calls) / n,
               log_bytes_per_event=_log_bytes(logs) / n)


def run_steady(events: list[dict[str, Any]], known: list[tuple[str, str]], *,
               rate: float = STEADY_RATE, batch_window: float | None = None,
               seed: int = 40) -> Run:
    """The events posted at ``rate`` per second (Poisson arrivals) on threads, round trips
    slept; each function billed for its instances' busy time."""
    tally = Tally(sleep=True)
    threads: list[threading.Thread] = []
    lock = threading.Lock()

    def spawn(target, *args) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with lock:
            threads.append(thread)
        thread.start()

    holder: dict[str, Relay] = {}

    def push(data: bytes, attributes: dict[str, str], tries: int = 1) -> None:
        # Pub/Sub redelivers what the processor refused after the subscription's backoff
        # (10 s minimum in infra/pubsub.tf; REDELIVERY_DELAY here keeps the run short).
        if not _process(holder["relay"], data, attributes) and tries < 5:
            time.sleep(REDELIVERY_DELAY)
            push(data, attributes, tries + 1)

    relay = build_relay(tally, batch_window=batch_window,
                        deliver=lambda data, attrs: spawn(push, data, attrs))
    holder["relay"] = relay
    seed_known(relay.profiles, known)
    rng = random.Random(seed)
    with counting.quiet_logs() as logs:
        start = time.perf_counter()
        due = start
        for raw in events:
            due += rng.expovariate(rate)
            delay = due - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            spawn(_ingest, relay, raw)
        while True:
            with lock:
                pending = [t for t in threads if t.is_alive()]
            if not pending:
                break
            for thread in pending:
                thread.join()
    n = len(events)
    return Run("steady", n, tally.totals, tally.calls, requests_per_event=len(tally.calls) / n,
               log_bytes_per_event=_log_bytes(logs) / n,
               note=f"{n} events at {rate:.0f}/s")


def busy_seconds(calls: list[counting.Call], size: FunctionSize) -> tuple[float, int]:
    """Billed instance seconds and the peak of concurrent requests. Calls go to the first
    instance with a free slot; an instance bills every 100 ms slice in which any of its
    requests is active (Cloud Run rounds billable time up to 100 ms). Below one vCPU, a call's
    CPU time is stretched by 1/vCPU."""
    concurrency = size.concurrency
    stretch = 1 / min(size.vcpu, 1.0) - 1
    spans = sorted((c.started, c.started + c.wall_seconds +
                    stretch * c.cpu_seconds) for c in calls)
    instances: list[list[tuple[float, float]]] = []
    peak = 0
    for start, end in spans:
        active = sum(1 for s, e in spans if s <= start < e)
        peak = max(peak, active)
        for placed in instances:
            if sum(1 for s, e in placed if s <= start < e) < concurrency:
                placed.append((start, end))
                break
        else:
            instances.append([(start, end)])
    slices = 0
    for placed in instances:
        touched: set[int] = set()
        for start, end in placed:
            touched.update(range(int(start * 10), int(math.ceil(end * 10))))
        slices += len(touched)
    return slices / 10, peak


def _log_bytes(logs: counting.LogCount) -> float:
    return logs.bytes + logs.lines * LOG_ENTRY_OVERHEAD


# --- dollars --------------------------------------------------------------------------------

def breakdown(run: Run, sizes: dict[str, FunctionSize] | None = None, *,
              exclude_request_logs: bool = EXCLUDE_REQUEST_LOGS) -> dict[str, float]:
    """USD per million events, by line; ``sizes`` per function (default: as deployed)."""
    sizes = {"ingest": INGEST, "process": PROCESS, **(sizes or {})}
    m = 1e6
    lines: dict[str, float] = {}
    lines["Cloud Run requests"] = run.requests_per_event * price("run.request") * m
    for function, size in sizes.items():
        seconds = run.billed_seconds(function, size)
        lines[f"Cloud Run {function} CPU+memory"] = seconds * (
            size.vcpu * price("run.vcpu_second") + size.gib * price("run.gib_second")) * m
    lines["Pub/Sub"] = run.per_event("pubsub.bytes") * price("pubsub.byte") * m
    lines["Firestore reads"] = run.per_event("firestore.reads") * price("firestore.read") * m
    lines["Firestore writes"] = run.per_event("firestore.writes") * price("firestore.write") * m
    lines["Firestore TTL deletes"] = run.per_event("firestore.ttl_docs") * \
        price("firestore.delete") * m
    lines["Secret Manager"] = run.per_event("secret.accesses") * price("secret.access") * m
    lines["Cloud Logging"] = run.stored_log_bytes(exclude_request_logs) * \
        price("logging.byte") * m
    return lines


def total(run: Run, sizes: dict[str, FunctionSize] | None = None, *,
          exclude_request_logs: bool = EXCLUDE_REQUEST_LOGS) -> float:
    return sum(breakdown(run, sizes, exclude_request_logs=exclude_request_logs).values())


def one_ledger_write(run: Run) -> float:
    """Estimate: USD per million events if the ledger wrote once per sent event (the claim)
    instead of twice (claim, then outcome): the outcome writes of sent events priced away."""
    return total(run) - run.per_event("graph.events") * price("firestore.write") * 1e6


#: sGTM on Cloud Run: 1 vCPU, 512 MiB, concurrency 80 (Google's image defaults); always-on
#: keeps 2 instances warm all month (sGTM production guides advise min instances >= 2).
SGTM_SIZE = FunctionSize(1.0, 0.5, 80)
SGTM_WARM_INSTANCES = 2
SGTM_CPU_SECONDS = 0.005     # its own work per request (assumed: "single-digit milliseconds")


def sgtm_lean(events_per_second: float) -> dict[str, float]:
    """Scale to zero, one request and one Graph call per event, request-based billing."""
    seconds = SGTM_CPU_SECONDS + counting.LATENCY["graph.request"]
    if events_per_second * seconds < 0.05:       # sparse: each request billed alone
        billed = math.ceil(seconds * 10) / 10
    else:                                         # overlapping: the busy share of each second
        busy = 1 - math.exp(-events_per_second * seconds)
        billed = busy / events_per_second
    size = SGTM_SIZE
    return {"requests": price("run.request") * 1e6,
            "CPU+memory": billed * (size.vcpu * price("run.vcpu_second") +
                                    size.gib * price("run.gib_second")) * 1e6}


def sgtm_always_on(events_per_month: float) -> dict[str, float]:
    """Warm instances all month at instance-based rates, shared by the month's events."""
    size = SGTM_SIZE
    month = SGTM_WARM_INSTANCES * MONTH_SECONDS * (
        size.vcpu * price("run.instance_vcpu_second") +
        size.gib * price("run.instance_gib_second"))
    return {"warm instances": month / events_per_month * 1e6}


# --- scheduled pull: the puller measured the same way -----------------------------------------

PULL_PERIOD = 60.0           # Cloud Scheduler's finest schedule: once a minute
#: Cloud Scheduler: $0.10 per job a month (3 jobs free per billing account)
#: https://cloud.google.com/scheduler/pricing (checked 2026-11-24)
SCHEDULER_JOB_MONTH = 0.10


def build_puller(tally: Tally, relay: Relay, subscription: Any) -> Any:
    """PullService as ``bootstrap.pull_service`` builds it, every port counted, sharing
    ``relay``'s profile store and Graph fake (one puller instance, warm from run to run: Cloud
    Run keeps an idle instance for minutes, and runs come every minute)."""
    import fakes
    from capi_relay import bootstrap
    from capi_relay.adapters.secrets import SecretManagerSource
    from capi_relay.app.enrichment import Enricher
    from capi_relay.app.process import DeliveryPolicy, ProcessService
    from capi_relay.app.profile_cache import ProfileCache
    from capi_relay.app.pull import PullService
    from capi_relay.app.run_ledger import RunLedger
    from capi_relay.app.sender import GraphSender, SenderConfig
    from capi_relay.config import Settings

    settings = Settings(project="bench", topic="events", pixel_id="1234567890",
                        token_secret="projects/bench/secrets/token/versions/latest",
                        pull_subscription="events-pull")
    counter = iter(range(1, 1 << 62))
    ledger = RunLedger(counting.CountingRunStore(fakes.MemoryRunStore(), tally),
                       lease_seconds=settings.lease_seconds,
                       ttl_seconds=settings.idempotency_ttl_hours * 3600,
                       dead_letter=counting.CountingPublisher(fakes.FakePublisher(), tally,
                                                              "dead_letter"),
                       new_id=lambda: str(next(counter)))
    secrets = SecretManagerSource(settings.token_secret,
                                  client=counting.CountingSecretClient(tally))
    clock = fakes.FakeClock(NOW)
    process = ProcessService(
        ledger=ledger,
        sender=GraphSender(counting.CountingGraph(relay.graph, tally), secrets,
                           SenderConfig(test_event_code=settings.test_event_code)),
        clock=clock,
        policy=DeliveryPolicy(pixel_id=settings.pixel_id, max_attempts=settings.max_attempts),
        rules=bootstrap.rules_from(settings),
        enrich=Enricher(ProfileCache(counting.CountingProfileStore(relay.profiles, tally)),
                        writeback=settings.profile_writeback))
    return PullService(process, ledger, counting.CountingSubscription(subscription, tally),
                       clock, budget_seconds=settings.pull_budget_seconds)


def run_pull(events: list[dict[str, Any]], known: list[tuple[str, str]], *,
             events_per_run: int, name: str) -> Run:
    """Each event posted to ingest on its own; every ``events_per_run`` events (what waits
    when Cloud Scheduler starts a run), one puller run over what waits. A run is one function
    call, billed alone (runs never overlap): its in-process time plus its counted round trips,
    rounded up to 100 ms."""
    import fakes

    tally = Tally()
    subscription = fakes.FakeSubscription()
    relay = build_relay(tally, deliver=lambda data, attrs: subscription.publish(data, attrs))
    seed_known(relay.profiles, known)
    puller = build_puller(tally, relay, subscription)
    with counting.quiet_logs() as logs:
        for index, raw in enumerate(events, 1):
            _ingest(relay, raw)
            if index % events_per_run == 0 or index == len(events):
                with tally.call("pull"):
                    puller.run()
    n = len(events)
    return Run(name, n, tally.totals, tally.calls, requests_per_event=len(tally.calls) / n,
               log_bytes_per_event=_log_bytes(logs) / n,
               note=f"{n} events, a run every {events_per_run}")


def pull_breakdown(pull: Run, push: Run, events_per_second: float) -> dict[str, float]:
    """USD per million events with scheduled pull. The ingest is the same function whichever
    the delivery, so its line is the push run's of the same traffic shape (``push``: where
    its requests overlap or not); the puller's runs are billed each alone."""
    m = 1e6
    lines = breakdown(pull, {"ingest": INGEST})
    lines["Cloud Run ingest CPU+memory"] = breakdown(push)["Cloud Run ingest CPU+memory"]
    calls = [c for c in pull.calls if c.function == "pull"]
    billed = sum(max(1, math.ceil((c.io_seconds + c.wall_seconds) * 10 - 1e-9)) / 10
                 for c in calls) / pull.events
    lines["Cloud Run process CPU+memory"] = billed * (
        PROCESS.vcpu * price("run.vcpu_second") + PROCESS.gib * price("run.gib_second")) * m
    lines["Cloud Scheduler"] = SCHEDULER_JOB_MONTH / (events_per_second * MONTH_SECONDS) * m
    return lines


def events_per_run(events_per_second: float, period: float = PULL_PERIOD) -> int:
    return max(1, round(events_per_second * period))
