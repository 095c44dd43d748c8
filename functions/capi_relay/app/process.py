"""The process service: sequences the pipeline, the ledger and the sender for one message.

    decode -> pipeline.decide (consent, enrichment, regional, guard, Meta's rules)
           -> ledger.claim -> coalescer + sender.send -> ledger: settle, dead-letter

Raise means retry, return means ack: ``process`` raises a TransientError (TokenProblem,
Throttled, GraphUnavailable, or the error that interrupted it) when any event in the message
still needs another try; everything else is recorded and acknowledged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Mapping

from capi_relay import log
from capi_relay.app.coalescer import Arrival, Coalescer
from capi_relay.app.ledger import Claim, DeliveryLedger, event_key
from capi_relay.app.ports import Clock
from capi_relay.app.sender import GraphSender
from capi_relay.core import pipeline
from capi_relay.core.delivery import DeadLetter, DeadReason, Hold, Outcome
from capi_relay.core.envelope import QueuedEvent, decode
from capi_relay.core.errors import InvalidEvent, RelayError, TokenProblem, TransientError
from capi_relay.core.graph_outcome import GraphOutcome
from capi_relay.core.model import CapiEvent


@dataclass
class _Item:
    """One event's journey through a process call."""

    queued: QueuedEvent
    event: CapiEvent
    key: str
    attempts: int = 0
    outcome: Outcome = Outcome.PENDING
    dead: DeadLetter | None = None
    hold: Hold | None = None
    graph: GraphOutcome | None = None
    fbtrace_id: str | None = None


@dataclass
class ProcessReport:
    sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    consent_dropped: int = 0
    retry: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # DeadReason value -> count


@dataclass(frozen=True)
class DeliveryPolicy:
    """The process service's own settings: META_PIXEL_ID (the ledger key), MAX_DELIVERY_ATTEMPTS."""

    pixel_id: str
    max_attempts: int


class ProcessService:
    def __init__(self, *, ledger: DeliveryLedger, sender: GraphSender, clock: Clock,
                 policy: DeliveryPolicy, rules: pipeline.Policy = pipeline.DEFAULT_POLICY,
                 enrich: pipeline.Enrich | None = None, coalescer: Coalescer | None = None):
        self.ledger = ledger
        self.sender = sender
        self.clock = clock
        self.policy = policy
        self.rules = rules
        self.enrich = enrich
        self.coalescer = coalescer or Coalescer(0)

    def process(self, data: bytes, attributes: Mapping[str, str] | None = None) -> ProcessReport:
        # announced before decoding and claiming, so that a concurrent leader waits for it
        with self.coalescer.arrival() as arrival:
            return self._process(data, attributes, arrival)

    def _process(self, data: bytes, attributes: Mapping[str, str] | None,
                 arrival: Arrival) -> ProcessReport:
        report = ProcessReport()
        try:
            queued = decode(data)
        except InvalidEvent as exc:
            log.error("undecodable message dead-lettered", component="process",
                      reasons=list(exc.reasons))
            self.ledger.publish_dead(data, DeadLetter(DeadReason.UNDECODABLE).attributes())
            report.dead_lettered += 1
            report.reasons[DeadReason.UNDECODABLE.value] = 1
            return report

        now = self.clock.now()
        items = [item for item in (self._decide(q, now, report) for q in queued) if item]
        insufficient = sum(i.dead is not None and i.dead.reason is
                           DeadReason.INSUFFICIENT_CUSTOMER_INFORMATION for i in items)
        if insufficient:  # counted by monitoring and report: events Meta cannot match
            log.warning("rejected: insufficient customer information", component="process",
                        count=insufficient)
        replay = (attributes or {}).get("replay") == "1"
        to_send = self._claim_all(items, now, report, replay=replay)
        try:
            if to_send:
                arrival.run(to_send, self._send)
        except RelayError:
            for item in to_send:  # give the claims back now, not when their lease runs out
                if item.outcome is Outcome.PENDING:
                    item.outcome, item.hold = Outcome.HELD, Hold.INTERRUPTED
            self._settle(items, report)
            raise
        self._settle(items, report)
        log.info("processed", component="process", sent=report.sent,
                 skipped=report.duplicates, dead_lettered=report.dead_lettered,
                 consent=report.consent_dropped or None, released=report.retry or None,
                 count=len(queued))
        if report.retry:
            raise _retry_error(items, report.retry)
        return report

    def _decide(self, queued: QueuedEvent, now: float, report: ProcessReport) -> _Item | None:
        decision = pipeline.decide(queued, now, self.rules, self.enrich)
        if decision.event is None:
            report.consent_dropped += 1
            log.info("not sent: consent", component="process", event_name=queued.event.event_name,
                     event_id=queued.event.event_id, consent=decision.consent.reason)
            return None
        if "guard" in decision.removed:
            log.warning("hashed key dropped: value is not a SHA-256 hash", component="process",
                        event_id=queued.event.event_id, fields=list(decision.removed["guard"]))
        event = decision.event
        item = _Item(queued, event, event_key(self.policy.pixel_id, event.event_name,
                                              event.event_id))
        if decision.dead is not None:
            item.outcome, item.dead = Outcome.DEAD, decision.dead
        return item

    def _claim_all(self, items: list[_Item], now: float, report: ProcessReport, *,
                   replay: bool = False) -> list[_Item]:
        to_send = []
        for item in items:
            claim = self.ledger.claim(item.key, now, replay=replay)
            item.attempts = claim.attempts
            if claim.claim in (Claim.ALREADY_SENT, Claim.ALREADY_FAILED):
                item.outcome = Outcome.SKIPPED
                report.duplicates += 1
            elif claim.claim is Claim.BUSY:
                item.outcome, item.hold = Outcome.HELD, Hold.BUSY
            elif item.outcome is Outcome.DEAD:
                pass  # claimed so that it is dead-lettered exactly once
            elif claim.attempts > self.policy.max_attempts:
                item.outcome = Outcome.DEAD
                item.dead = DeadLetter(DeadReason.RETRIES_EXHAUSTED,
                                       message=f"{claim.attempts - 1} attempts")
            else:
                to_send.append(item)
        return to_send

    def _send(self, batch: list[_Item]) -> None:
        """The coalescer's delivery: one sender call for every caller's events."""
        for item, delivery in zip(batch, self.sender.send([i.event for i in batch]),
                                    strict=True):
            item.outcome, item.fbtrace_id = delivery.outcome, delivery.fbtrace_id
            item.dead, item.hold, item.graph = delivery.dead, delivery.hold, delivery.graph

    def _settle(self, items: list[_Item], report: ProcessReport) -> None:
        now = self.clock.now()
        for item in items:
            if item.outcome is Outcome.SENT:
                self.ledger.mark_sent(item.key, now, item.attempts, item.fbtrace_id)
                report.sent += 1
            elif item.outcome is Outcome.DEAD:
                self.ledger.dead_letter(item.key, replace(item.queued, event=item.event), now,
                                        item.attempts, item.dead)
                report.dead_lettered += 1
                reason = item.dead.reason.value
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
            elif item.outcome is Outcome.HELD:
                if item.hold is not Hold.BUSY:  # a busy claim is someone else's to settle
                    # a token problem is the operator's to fix: it does not use up attempts
                    attempts = item.attempts - 1 if item.hold is Hold.TOKEN else item.attempts
                    self.ledger.release(item.key, now, attempts)
                report.retry += 1
        held_by_token = sum(i.hold is Hold.TOKEN for i in items)
        if held_by_token:
            log.error("access token rejected by Meta; events held for retry", component="process",
                      cause="token", count=held_by_token)


def _retry_error(items: list[_Item], count: int) -> TransientError:
    """The exception that sends the message back: the most telling cause among held events."""
    held = [i for i in items if i.outcome is Outcome.HELD]
    if any(i.hold is Hold.TOKEN for i in held):
        return TokenProblem(f"{count} event(s) held: Meta rejected the token")
    for item in held:
        if item.graph is not None:
            error = item.graph.to_error()
            if isinstance(error, TransientError):
                return error
    return TransientError(f"{count} event(s) need another try")
