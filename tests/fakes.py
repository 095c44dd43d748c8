"""In-memory fakes for the ports, used by unit and functional tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Mapping

from capi_relay.core.errors import PublishFailed, StoreUnavailable
from capi_relay.core.graph_outcome import GraphOutcome, classify
from capi_relay_ops.preview import ProfilesFile


class FakeClock:
    def __init__(self, now: float = 1_732_450_000.0):
        self.t = now

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


class FakePublisher:
    def __init__(self, fail: bool = False):
        self.messages: list[tuple[bytes, dict[str, str]]] = []
        self.fail = fail
        self.subscribed = True  # TopicProbe: whether the topic has a subscription
        self.probes = 0
        self._ids = itertools.count(1)

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        if self.fail:
            raise PublishFailed("fake publisher is down")
        self.messages.append((data, dict(attributes)))
        return str(next(self._ids))

    def has_subscription(self) -> bool:
        self.probes += 1
        if self.fail:
            raise PublishFailed("fake publisher is down")
        return self.subscribed


class FakeSecret:
    def __init__(self, *tokens: str):
        self.tokens = list(tokens) or ["token-1"]
        self.reads = 0

    def get(self, *, refresh: bool = False) -> str:
        if refresh or self.reads == 0:
            self.reads += 1
        return self.tokens[min(self.reads - 1, len(self.tokens) - 1)]


class ScriptedGraph:
    """A CapiClient that answers from a script of (status, body) or a function of the batch."""

    def __init__(self, answer=None):
        self.calls: list[tuple[list[dict[str, Any]], str]] = []
        self.test_codes: list[str | None] = []  # the test_event_code of each call
        self.statuses: list[int | None] = []  # what each call was answered
        self.answer = answer or (lambda events, token: (200, {
            "events_received": len(events), "fbtrace_id": "Ftrace"}))

    def send(self, events, access_token, *, test_event_code=None) -> GraphOutcome:
        self.calls.append((list(events), access_token))
        self.test_codes.append(test_event_code)
        status, body = self.answer(events, access_token)
        self.statuses.append(status)
        if status is None:
            return classify(None, None, transport_error=True)
        return classify(status, body)

    @property
    def sent_ids(self) -> list[str]:
        return [e["event_id"] for events, _ in self.calls for e in events]

    @property
    def accepted_ids(self) -> list[str]:
        """The event ids of the calls answered 200."""
        answered = zip(self.calls, self.statuses, strict=False)  # an answer may have raised
        return [e["event_id"] for (events, _), status in answered if status == 200
                for e in events]


def graph_error(code: int, subcode: int | None = None, *, status: int = 400,
                transient: bool = False) -> tuple[int, dict[str, Any]]:
    error: dict[str, Any] = {"message": "error", "type": "OAuthException", "code": code,
                             "is_transient": transient, "fbtrace_id": "Ferr"}
    if subcode is not None:
        error["error_subcode"] = subcode
    return status, {"error": error}


class MemoryProfileStore(ProfilesFile):
    """The preview's in-memory ProfileStore, counting round trips; ``fail_reads`` /
    ``fail_writes`` simulate an unreachable Firestore."""

    def __init__(self, docs: Mapping[str, dict[str, Any]] | None = None):
        super().__init__(docs)
        self.reads = 0         # round trips (fetch calls)
        self.read_ids: list[tuple[str, ...]] = []
        self.commits = 0       # batches written
        self.fail_reads = False
        self.fail_writes = False

    def fetch(self, doc_ids):
        if self.fail_reads:
            raise StoreUnavailable("fake profile store is down")
        self.reads += 1
        self.read_ids.append(tuple(doc_ids))
        return super().fetch(doc_ids)

    def save(self, writes) -> int:
        if self.fail_writes:
            raise StoreUnavailable("fake profile store is down")
        for start in range(0, len(writes), 500):  # Firestore's batch limit
            self.commits += 1
            super().save(writes[start:start + 500])
        return len(writes)


class MemoryBackend:
    """An in-memory backend with the same conditional-write semantics (tests, the bench)."""

    def __init__(self) -> None:
        self.records: dict[str, tuple[dict[str, Any], int]] = {}

    def get(self, key: str):
        found = self.records.get(key)
        return (dict(found[0]), found[1]) if found else None

    def create(self, key: str, record: dict[str, Any]) -> bool:
        if key in self.records:
            return False
        self.records[key] = (dict(record), 1)
        return True

    def replace(self, key: str, record: dict[str, Any], version: Any) -> bool:
        found = self.records.get(key)
        if found is None or found[1] != version:
            return False
        self.records[key] = (dict(record), version + 1)
        return True

    def put(self, key: str, record: dict[str, Any]) -> None:
        found = self.records.get(key)
        self.records[key] = (dict(record), found[1] + 1 if found else 1)


def make_processor(graph=None, secret=None, *, backend=None, dead_letter=None, clock=None,
                   enrich=None, rules=None, batch_window=0.0, pixel_id="px", max_attempts=8,
                   consent_policy="strict", consent_missing="send", test_event_code=None,
                   lease_seconds=60.0, ttl_seconds=3600.0, sleep=lambda s: None, ledger=None):
    """A ProcessService wired with fakes, as bootstrap wires the real one: ledger, sender,
    pipeline rules, optional enrichment and coalescer."""
    from dataclasses import replace

    from capi_relay.app.coalescer import Coalescer
    from capi_relay.app.ledger import DeliveryLedger
    from capi_relay.app.process import DeliveryPolicy, ProcessService
    from capi_relay.app.sender import GraphSender, SenderConfig
    from capi_relay.core import pipeline

    policy = replace(rules or pipeline.DEFAULT_POLICY, consent_policy=consent_policy,
                     consent_missing=consent_missing)
    return ProcessService(
        ledger=ledger or DeliveryLedger(backend if backend is not None else MemoryBackend(),
                                        lease_seconds=lease_seconds, ttl_seconds=ttl_seconds,
                                        dead_letter=dead_letter),
        sender=GraphSender(graph if graph is not None else ScriptedGraph(),
                           secret or FakeSecret(),
                           SenderConfig(test_event_code=test_event_code), sleep=sleep),
        clock=clock or FakeClock(),
        policy=DeliveryPolicy(pixel_id=pixel_id, max_attempts=max_attempts),
        rules=policy, enrich=enrich, coalescer=Coalescer(batch_window))


class MemoryRunStore:
    """The puller's run records in memory (RunStore), with ``find`` as Firestore answers it:
    every record whose ``keys`` holds one of the keys, one query per 30 keys."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.queries = 0
        self.writes = 0
        self.fail: Exception | None = None  # raised by every call while set

    def _check(self) -> None:
        if self.fail is not None:
            raise self.fail

    def find(self, keys):
        self._check()
        wanted = list(dict.fromkeys(keys))
        self.queries += -(-len(wanted) // 30)
        wanted_set = set(wanted)
        return [dict(r) for r in self.records.values() if wanted_set & set(r.get("keys") or ())]

    def create(self, run_id: str, record: dict[str, Any]) -> None:
        self._check()
        assert run_id not in self.records, run_id
        self.records[run_id] = dict(record)
        self.writes += 1

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        self._check()
        self.records[run_id] = dict(record)
        self.writes += 1


@dataclass
class Pulled:
    ack_id: str
    data: bytes
    attributes: dict[str, str]
    delivery_attempt: int = 1


class FakeSubscription:
    """A pull subscription: published messages wait until acked; ``retry_later`` hides them
    until ``release`` (the next run) and counts the attempt, as Pub/Sub's delivery attempt."""

    def __init__(self) -> None:
        self.waiting: dict[str, Pulled] = {}
        self.out: dict[str, Pulled] = {}      # pulled, not yet acked or handed back
        self.later: dict[str, tuple[Pulled, int]] = {}
        self.acked: list[str] = []
        self.pulls = 0
        self._ids = 0

    def publish(self, data: bytes, attributes=None) -> str:
        self._ids += 1
        ack_id = f"m{self._ids}"
        self.waiting[ack_id] = Pulled(ack_id, data, dict(attributes or {}))
        return ack_id

    def pull(self, max_messages: int):
        self.pulls += 1
        taken = list(self.waiting)[:max_messages]
        out = [self.waiting.pop(ack_id) for ack_id in taken]
        self.out.update({m.ack_id: m for m in out})
        return out

    def ack(self, ack_ids) -> None:
        for ack_id in ack_ids:
            self.out.pop(ack_id)
            self.acked.append(ack_id)

    def retry_later(self, ack_ids, seconds: int) -> None:
        for ack_id in ack_ids:
            self.later[ack_id] = (self.out.pop(ack_id), seconds)

    def release(self) -> None:
        """The backoff passed: handed-back (and unacknowledged) messages wait again, their
        delivery attempt counted."""
        for message in [m for m, _ in self.later.values()] + list(self.out.values()):
            message.delivery_attempt += 1
            self.waiting[message.ack_id] = message
        self.later.clear()
        self.out.clear()


def make_puller(graph=None, *, store=None, subscription=None, dead_letter=None, clock=None,
                lease_seconds=60.0, ttl_seconds=3600.0, **processor):
    """A PullService over fakes, as bootstrap wires the real one: a ProcessService recording to
    a RunLedger over ``store`` (MemoryRunStore), reading ``subscription`` (FakeSubscription)."""
    from capi_relay.app.pull import PullService
    from capi_relay.app.run_ledger import RunLedger

    clock = clock or FakeClock()
    ids = itertools.count(1)
    ledger = RunLedger(store if store is not None else MemoryRunStore(),
                       lease_seconds=lease_seconds, ttl_seconds=ttl_seconds,
                       dead_letter=dead_letter, new_id=lambda: str(next(ids)))
    service = make_processor(graph, clock=clock, ledger=ledger, **processor)
    return PullService(service, ledger, subscription if subscription is not None
                       else FakeSubscription(), clock)
