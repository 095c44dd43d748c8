"""Counting decorators for the ports: every call the relay makes to a paid service, tallied.

Each wrapper forwards to the real port (a fake from tests/fakes.py in the bench and the tests)
and records what Google or Meta would bill or what would take time: Pub/Sub publishes and their
billable bytes, Firestore document reads, writes and round trips, Graph requests and the events
in them, Secret Manager accesses. Counts go to one ``Tally`` for the whole run and, per thread,
to the call in progress (``Tally.call``), so concurrent function calls keep their own counts.

Latency: each operation also adds its assumed round-trip time (``LATENCY``) to the call in
progress; with ``sleep=True`` the wrapper really sleeps it (the steady-traffic run, where the
time requests overlap decides what is billed).

Used by ``benchmarks/cost.py`` and by ``tests/unit/test_cost_model.py``.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

#: Pub/Sub bills at least 1000 bytes per publish, push or pull request; a message's size is
#: its data, each attribute's key and value, 20 bytes of timestamp and its message_id.
#: https://cloud.google.com/pubsub/pricing (checked 2026-12-01)
PUBSUB_MIN_BYTES = 1000
PUBSUB_MESSAGE_OVERHEAD = 20 + 16   # timestamp + a 16-digit message id

#: Assumed round trips from a Cloud Run instance in the same region (seconds). Not measured
#: here (no Google Cloud from this machine): typical figures, stated so they can be changed.
LATENCY: Mapping[str, float] = {
    "pubsub.publish": 0.020,       # publish and wait for the server's ack
    "firestore.read": 0.010,       # one get / batchGet round trip
    "firestore.write": 0.015,      # one commit (single write or batch)
    "graph.request": 0.200,        # Meta's Graph API from a Google region
    "secret.access": 0.030,
    "pubsub.pull": 0.020,          # one pull, acknowledge or modifyAckDeadline request
}


def pubsub_bytes(data: bytes, attributes: Mapping[str, str]) -> int:
    """The billable volume of a one-message publish or push request."""
    size = len(data) + sum(len(k) + len(v) for k, v in attributes.items()) + \
        PUBSUB_MESSAGE_OVERHEAD
    return max(PUBSUB_MIN_BYTES, size)


@dataclass
class Call:
    """One function invocation: its counts and the I/O time it spent waiting."""

    function: str
    counts: Counter = field(default_factory=Counter)
    io_seconds: float = 0.0
    wall_seconds: float = 0.0      # measured in-process time (CPU, locks, the batch window)
    cpu_seconds: float = 0.0       # this thread's CPU time within it
    started: float = 0.0


class Tally:
    """Counts for a whole run, and per invocation."""

    def __init__(self, *, sleep: bool = False):
        self.totals: Counter = Counter()
        self.calls: list[Call] = []
        self.sleep = sleep
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def call(self, function: str) -> Iterator[Call]:
        """Brackets one function invocation (ingest or process) on this thread."""
        record = Call(function)
        outer = getattr(self._local, "call", None)
        self._local.call = record
        record.started = time.perf_counter()
        cpu = time.thread_time()
        try:
            yield record
        finally:
            record.wall_seconds = time.perf_counter() - record.started
            record.cpu_seconds = time.thread_time() - cpu
            self._local.call = outer
            with self._lock:
                self.calls.append(record)
                self.totals[f"{function}.invocations"] += 1

    def add(self, name: str, amount: int = 1, *, latency: str | None = None) -> None:
        with self._lock:
            self.totals[name] += amount
        record = getattr(self._local, "call", None)
        if record is not None:
            record.counts[name] += amount
        if latency is not None:
            seconds = LATENCY[latency]
            if record is not None:
                record.io_seconds += seconds
            if self.sleep:
                time.sleep(seconds)


class CountingPublisher:
    """Publisher port: publishes and their billable bytes; ``topic`` names the line."""

    def __init__(self, inner: Any, tally: Tally, topic: str = "events"):
        self.inner, self.tally, self.topic = inner, tally, topic

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        self.tally.add(f"pubsub.publish.{self.topic}", latency="pubsub.publish")
        self.tally.add("pubsub.bytes", pubsub_bytes(data, attributes))
        return self.inner.publish(data, attributes)


class CountingIdempotencyBackend:
    """IdempotencyBackend port: each get is a document read, each create/replace/put a write
    (a conditional write that fails is still a round trip and is counted as a write)."""

    def __init__(self, inner: Any, tally: Tally):
        self.inner, self.tally = inner, tally

    def get(self, key: str):
        self.tally.add("firestore.reads", latency="firestore.read")
        return self.inner.get(key)

    def create(self, key: str, record: dict[str, Any]) -> bool:
        self.tally.add("firestore.writes", latency="firestore.write")
        created = self.inner.create(key, record)
        if created:
            self.tally.add("firestore.ttl_docs")   # deleted later by the TTL policy
        return created

    def replace(self, key: str, record: dict[str, Any], version: Any) -> bool:
        self.tally.add("firestore.writes", latency="firestore.write")
        return self.inner.replace(key, record, version)

    def put(self, key: str, record: dict[str, Any]) -> None:
        self.tally.add("firestore.writes", latency="firestore.write")
        self.inner.put(key, record)


class CountingRunStore:
    """RunStore port (the scheduled puller's ledger): a find is one query per 30 keys, each
    billed one read per record it returns and at least one; create and put one write each."""

    def __init__(self, inner: Any, tally: Tally):
        self.inner, self.tally = inner, tally

    def find(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        wanted = list(dict.fromkeys(keys))
        records = []
        for start in range(0, len(wanted), 30):
            found = self.inner.find(wanted[start:start + 30])
            self.tally.add("firestore.reads", max(1, len(found)), latency="firestore.read")
            records.extend(found)
        return records

    def create(self, run_id: str, record: dict[str, Any]) -> None:
        self.tally.add("firestore.writes", latency="firestore.write")
        self.tally.add("ledger.writes")
        self.tally.add("firestore.ttl_docs")
        self.inner.create(run_id, record)

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        self.tally.add("firestore.writes", latency="firestore.write")
        self.tally.add("ledger.writes")
        self.inner.put(run_id, record)


class CountingSubscription:
    """Subscription port: pull requests, billed like a push (the messages' bytes, at least
    1000 per request); acknowledge and modifyAckDeadline requests are round trips only."""

    def __init__(self, inner: Any, tally: Tally):
        self.inner, self.tally = inner, tally

    def pull(self, max_messages: int):
        messages = self.inner.pull(max_messages)
        self.tally.add("pubsub.pulls", latency="pubsub.pull")
        size = sum(len(m.data) + sum(len(k) + len(v) for k, v in m.attributes.items())
                   + PUBSUB_MESSAGE_OVERHEAD for m in messages)
        self.tally.add("pubsub.bytes", max(PUBSUB_MIN_BYTES, size))
        return messages

    def ack(self, ack_ids: Sequence[str]) -> None:
        self.tally.add("pubsub.acks", latency="pubsub.pull")
        self.inner.ack(ack_ids)

    def retry_later(self, ack_ids: Sequence[str], seconds: int) -> None:
        self.tally.add("pubsub.acks", latency="pubsub.pull")
        self.inner.retry_later(ack_ids, seconds)


class CountingProfileStore:
    """ProfileStore port: a fetch bills one read per document asked for (found or not) in one
    round trip; a save bills one write per document, one round trip per 500."""

    def __init__(self, inner: Any, tally: Tally):
        self.inner, self.tally = inner, tally

    def fetch(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        self.tally.add("firestore.lookups")
        self.tally.add("firestore.reads", len(doc_ids), latency="firestore.read")
        return self.inner.fetch(doc_ids)

    def save(self, writes: Sequence[Any]) -> int:
        for _ in range(0, len(writes), 500):
            self.tally.add("firestore.commits", latency="firestore.write")
        self.tally.add("firestore.writes", len(writes))
        new = sum(1 for w in writes if w.doc_id not in getattr(self.inner, "docs", {})
                  and "expire_at" in w.data)
        if new:
            self.tally.add("firestore.ttl_docs", new)
        return self.inner.save(writes)


class CountingGraph:
    """CapiClient port: Graph requests and the events they carry. A request sent while another
    is in flight counts as ``graph.overlapping``: its events could have waited for the one in
    flight and gone out together (one request per up to 1000 waiting events)."""

    def __init__(self, inner: Any, tally: Tally):
        self.inner, self.tally = inner, tally
        self._in_flight = 0
        self._lock = threading.Lock()

    def send(self, events, access_token, *, test_event_code=None):
        with self._lock:
            overlapping = self._in_flight > 0
            self._in_flight += 1
        try:
            if overlapping:
                self.tally.add("graph.overlapping")
            self.tally.add("graph.events", len(events))
            self.tally.add("graph.requests", latency="graph.request")
            return self.inner.send(events, access_token, test_event_code=test_event_code)
        finally:
            with self._lock:
                self._in_flight -= 1


class CountingSecretClient:
    """A Secret Manager client for ``adapters.secrets.SecretManagerSource``: counts the real
    accesses, which the adapter caches per instance."""

    def __init__(self, tally: Tally, token: str = "token-1"):
        self.tally, self.token = tally, token

    def access_secret_version(self, *, name: str):
        self.tally.add("secret.accesses", latency="secret.access")
        payload = type("Payload", (), {"data": self.token.encode()})()
        return type("Response", (), {"payload": payload})()


class LogCount:
    """A log stream that counts lines and bytes and keeps nothing."""

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0
        self._lock = threading.Lock()

    def write(self, text: str) -> int:
        with self._lock:
            self.lines += text.count("\n")
            self.bytes += len(text.encode())
        return len(text)

    def flush(self) -> None:
        pass


@contextlib.contextmanager
def quiet_logs() -> Iterator[LogCount]:
    """The relay's logs go nowhere inside, counted: the services log once or more per event."""
    from capi_relay import log

    stream = LogCount()
    log.set_stream(stream)
    try:
        yield stream
    finally:
        log.set_stream(None)
