"""The scheduled puller: the processor's decisions for every waiting message, in one run.

Cloud Scheduler starts a run (by default once a minute). A run pulls what waits on the
subscription, decides each event as the push processor does (``ProcessService._decide``:
consent, enrichment, regional rules, Meta's rules, routing), claims them all in ONE ledger
record (``RunLedger``), sends up to 1,000 events per Graph request per pixel, records the
outcome in the same record, and acknowledges each message whose events are all settled. A
message with an event held for another try (token rejected, Meta or Firestore unavailable)
is handed back to be delivered again after a backoff; Pub/Sub counts its attempts.

It trades delivery delay (up to one schedule period) for cost: a run costs the same few
round trips whether it carries 3 events or 3,000.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

from capi_relay import log
from capi_relay.app.ports import Clock, Received, Subscription
from capi_relay.app.process import ProcessReport, ProcessService, _Item
from capi_relay.app.run_ledger import RunLedger
from capi_relay.core.delivery import Outcome
from capi_relay.core.envelope import QueuedEvent, decode
from capi_relay.core.errors import InvalidEvent, RelayError
from capi_relay.core.meta_rules import MAX_EVENTS_PER_REQUEST

#: a pull returns at most this many messages (Pub/Sub's limit)
PULL_MAX_MESSAGES = 1000
#: a held message comes back after RETRY_BASE_SECONDS * 2^(attempt - 1), at most 600 s (the
#: longest ack deadline Pub/Sub allows)
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 600


def retry_delay(attempt: int) -> int:
    return min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** max(0, min(attempt, 16) - 1))


@dataclass
class PullReport:
    messages: int = 0
    acked: int = 0
    held: int = 0
    batches: int = 0
    process: ProcessReport = field(default_factory=ProcessReport)

    def add(self, other: ProcessReport) -> None:
        total = self.process
        for name in ("sent", "duplicates", "dead_lettered", "consent_dropped", "retry",
                     "unrouted"):
            setattr(total, name, getattr(total, name) + getattr(other, name))
        for reason, count in other.reasons.items():
            total.reasons[reason] = total.reasons.get(reason, 0) + count

    def summary(self) -> dict[str, int]:
        p = self.process
        return {"messages": self.messages, "acked": self.acked, "held": self.held,
                "batches": self.batches, "sent": p.sent, "skipped": p.duplicates,
                "dead_lettered": p.dead_lettered, "consent": p.consent_dropped,
                "unrouted": p.unrouted}


class PullService:
    """``service``: a ProcessService whose ledger is ``ledger`` (bootstrap wires both).
    ``budget_seconds``: a run stops pulling after this long (below the schedule period, so
    that runs do not overlap)."""

    def __init__(self, service: ProcessService, ledger: RunLedger, subscription: Subscription,
                 clock: Clock, *, budget_seconds: float = 45.0,
                 monotonic: Callable[[], float] = time.monotonic):
        if service.ledger is not ledger:
            raise ValueError("the process service must record to the run ledger")
        self.service = service
        self.ledger = ledger
        self.subscription = subscription
        self.clock = clock
        self.budget_seconds = budget_seconds
        self.monotonic = monotonic

    def run(self) -> PullReport:
        """Pulls and delivers until nothing waits or the budget is spent. Raises only what
        pulling raises (nothing pulled is lost: unacknowledged messages come back)."""
        report = PullReport()
        deadline = self.monotonic() + self.budget_seconds
        while self.monotonic() < deadline:
            messages = self._gather()
            if not messages:
                break
            self.deliver(messages, report)
        log.info("pull run", component="process", **report.summary())
        return report

    def _gather(self) -> list[Received]:
        """Messages for one batch: pulls until about 1,000 events (one Graph request; the
        ingest's ``count`` attribute says how many a message holds) wait or the subscription
        is empty."""
        messages: list[Received] = []
        events = 0
        while events < MAX_EVENTS_PER_REQUEST and len(messages) < PULL_MAX_MESSAGES:
            pulled = self.subscription.pull(PULL_MAX_MESSAGES - len(messages))
            if not pulled:
                break
            messages.extend(pulled)
            events += sum(_count(m) for m in pulled)
        return messages

    def deliver(self, messages: Sequence[Received], report: PullReport | None = None) -> PullReport:
        """One batch: decide, claim (one record), send, settle, record, acknowledge."""
        report = report if report is not None else PullReport()
        report.messages += len(messages)
        report.batches += 1
        batch = ProcessReport()
        now = self.clock.now()
        service = self.service
        acked: list[str] = []
        back: list[Received] = []   # handed back whatever becomes of the rest
        decoded: list[tuple[Received, list[QueuedEvent]]] = []
        for message in messages:
            try:
                decoded.append((message, decode(message.data)))
            except InvalidEvent as exc:
                try:
                    service.dead_letter_undecodable(message.data, exc, batch)
                except RelayError:
                    back.append(message)
                else:
                    acked.append(message.ack_id)
        items = service.decide_all([q for _, queued in decoded for q in queued], now, batch)
        owned = _by_message(decoded, items)
        try:
            to_send = self._claim(owned, now, batch)
            self.ledger.begin(now)
        except RelayError as exc:  # the ledger could not be read or written: nothing was sent
            log.error("pull batch held: ledger unavailable", component="process",
                      error_type=type(exc).__name__, count=len(owned))
            return self._finish(report, batch, acked, back + [m for m, _ in owned])
        if to_send:
            service._send(to_send)
        try:
            service._settle(items, batch)
        except RelayError as exc:  # a dead letter not published: record the rest, retry all
            log.error("pull batch held: dead letter not published", component="process",
                      error_type=type(exc).__name__, count=len(owned))
            back += [m for m, _ in owned]
            owned = []
        try:
            self.ledger.commit(self.clock.now())
        except RelayError as exc:  # sent but not recorded: redelivered, sent at worst twice
            log.error("pull batch held: outcome not recorded", component="process",
                      error_type=type(exc).__name__, count=len(owned))
            return self._finish(report, batch, acked, back + [m for m, _ in owned])
        for message, its in owned:
            if any(item.outcome is Outcome.HELD for item in its):
                back.append(message)
            else:
                acked.append(message.ack_id)
        return self._finish(report, batch, acked, back)

    def _claim(self, owned: list[tuple[Received, list[_Item]]], now: float,
               batch: ProcessReport) -> list[_Item]:
        """Every event's claim, from one read of the ledger; a replayed message's events may
        be sent again though they were dead-lettered."""
        attempts: dict[str, int] = {}
        for message, items in owned:
            for item in items:
                attempts[item.key] = max(attempts.get(item.key, 0), message.delivery_attempt)
        self.ledger.prefetch(attempts, now)
        fresh = [i for m, its in owned if m.attributes.get("replay") != "1" for i in its]
        replayed = [i for m, its in owned if m.attributes.get("replay") == "1" for i in its]
        return self.service._claim_all(fresh, now, batch) + \
            self.service._claim_all(replayed, now, batch, replay=True)

    def _finish(self, report: PullReport, batch: ProcessReport, acked: list[str],
                back: list[Received]) -> PullReport:
        self._ack(acked, report)
        self._hand_back(back, report)
        report.add(batch)
        return report

    def _ack(self, ack_ids: list[str], report: PullReport) -> None:
        if ack_ids:
            self.subscription.ack(ack_ids)
            report.acked += len(ack_ids)

    def _hand_back(self, messages: Sequence[Received], report: PullReport) -> None:
        by_delay: dict[int, list[str]] = {}
        for message in messages:
            by_delay.setdefault(retry_delay(message.delivery_attempt), []).append(message.ack_id)
        for seconds, ack_ids in sorted(by_delay.items()):
            try:
                self.subscription.retry_later(ack_ids, seconds)
            except RelayError:  # they come back anyway once their ack deadline passes
                pass
        report.held += len(messages)



def _by_message(decoded: list[tuple[Received, list[QueuedEvent]]],
                items: list[_Item]) -> list[tuple[Received, list[_Item]]]:
    """Each message with the items of its events (``items`` in the order of ``decoded``)."""
    owner = {id(q): message for message, queued in decoded for q in queued}
    mine: dict[int, list[_Item]] = {id(message): [] for message, _ in decoded}
    for item in items:
        mine[id(owner[id(item.queued)])].append(item)
    return [(message, mine[id(message)]) for message, _ in decoded]


def _count(message: Received) -> int:
    """How many events a message says it holds (at least 1; the ingest writes ``count``)."""
    text = message.attributes.get("count", "")
    return max(1, min(int(text), MAX_EVENTS_PER_REQUEST)) if text.isdigit() else 1
