"""The process service: sequences the pipeline, the ledger and the sender for one message.

    decode -> pipeline.decide (consent, enrichment, regional, guard, Meta's rules)
           -> routing (which pixels) -> ledger.claim, one per (pixel, event)
           -> coalescer + one sender per pixel -> ledger: settle, dead-letter

Each pixel's copy of an event is claimed, sent and settled on its own: a pixel whose token is
rejected, whose requests fail or that refuses the event holds, retries or dead-letters only its
copies; the other pixels' are sent and recorded, so a redelivery sends only what is still owed.

Raise means retry, return means ack: ``process`` raises a TransientError (TokenProblem,
Throttled, GraphUnavailable, or the error that interrupted it) when any event in the message
still needs another try; everything else is recorded and acknowledged.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Mapping, Sequence

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
from capi_relay.core.routing import Pixel, pixels_for


@dataclass
class _Item:
    """One event's journey through a process call."""

    queued: QueuedEvent
    event: CapiEvent
    key: str
    pixel: str
    attempts: int = 0
    outcome: Outcome = Outcome.PENDING
    dead: DeadLetter | None = None
    hold: Hold | None = None
    graph: GraphOutcome | None = None
    error: RelayError | None = None  # what its pixel's sender raised (held for it)
    fbtrace_id: str | None = None


@dataclass
class ProcessReport:
    sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    consent_dropped: int = 0
    retry: int = 0
    unrouted: int = 0  # events no pixel's route takes: acknowledged, not sent
    reasons: dict[str, int] = field(default_factory=dict)  # DeadReason value -> count


@dataclass(frozen=True)
class DeliveryPolicy:
    """The process service's own settings: META_PIXEL_ID (the ledger key), MAX_DELIVERY_ATTEMPTS."""

    pixel_id: str
    max_attempts: int


class ProcessService:
    """``pixels``: each pixel with its route and its own sender (client, token, test code), in
    order; without it, ``sender`` delivers every event to ``policy.pixel_id``."""

    def __init__(self, *, ledger: DeliveryLedger, clock: Clock, policy: DeliveryPolicy,
                 sender: GraphSender | None = None,
                 pixels: Sequence[tuple[Pixel, GraphSender]] | None = None,
                 rules: pipeline.Policy = pipeline.DEFAULT_POLICY,
                 enrich: pipeline.Enrich | None = None, coalescer: Coalescer | None = None):
        if pixels is None:
            if sender is None:
                raise ValueError("ProcessService needs a sender or pixels")
            pixels = ((Pixel(policy.pixel_id), sender),)
        self.pixels = tuple(pixel for pixel, _ in pixels)
        self.senders = {pixel.id: pixel_sender for pixel, pixel_sender in pixels}
        self.sender = self.senders.get(policy.pixel_id) or pixels[0][1]  # the main pixel's
        self.ledger = ledger
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
            self.dead_letter_undecodable(data, exc, report)
            return report

        now = self.clock.now()
        items = self.decide_all(queued, now, report)
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
                 unrouted=report.unrouted or None, count=len(queued))
        if report.retry:
            raise _retry_error(items, report.retry)
        return report

    def dead_letter_undecodable(self, data: bytes, exc: InvalidEvent,
                                report: ProcessReport) -> None:
        """A message that is no envelope goes to the dead-letter topic as it is (it has no
        event and no key to claim). Raises PublishFailed when the topic does not take it."""
        log.error("undecodable message dead-lettered", component="process",
                  reasons=list(exc.reasons))
        self.ledger.publish_dead(data, DeadLetter(DeadReason.UNDECODABLE).attributes())
        report.dead_lettered += 1
        reason = DeadReason.UNDECODABLE.value
        report.reasons[reason] = report.reasons.get(reason, 0) + 1

    def decide_all(self, queued: Sequence[QueuedEvent], now: float,
                   report: ProcessReport) -> list[_Item]:
        """Every event's items (one per pixel it goes to), logging what monitoring counts:
        events no pixel takes, events Meta could not match."""
        unrouted = report.unrouted
        prefetch = getattr(self.enrich, "prefetch", None)
        if prefetch is not None and len(queued) > 1:  # a batch: its profiles in one read
            prefetch([q for q in queued if self.route(q) and
                      pipeline.enrichable(q, now, self.rules)])
        items = [item for q in queued for item in self._decide(q, now, report)]
        if report.unrouted > unrouted:  # counted by monitoring: events no pixel takes
            log.warning("not sent: no pixel route", component="process",
                        count=report.unrouted - unrouted,
                        events=sorted({q.event.event_name for q in queued if not self.route(q)}))
        insufficient = sum(i.dead is not None and i.dead.reason is
                           DeadReason.INSUFFICIENT_CUSTOMER_INFORMATION for i in items)
        if insufficient:  # counted by monitoring and report: events Meta cannot match
            log.warning("rejected: insufficient customer information", component="process",
                        count=insufficient)
        return items

    def route(self, queued: QueuedEvent) -> tuple[Pixel, ...]:
        """The pixels one queued event goes to. A dead-lettered copy names its pixel (replay
        resends it there alone, if that pixel is still configured)."""
        if queued.pixel is not None:
            return tuple(p for p in self.pixels if p.id == queued.pixel)
        event = queued.event
        return pixels_for(self.pixels, event_name=event.event_name, url=event.event_source_url,
                          source=queued.source)

    def _decide(self, queued: QueuedEvent, now: float, report: ProcessReport) -> list[_Item]:
        """One item per pixel the event goes to (the event decided once for all of them)."""
        targets = self.route(queued)
        if not targets:
            report.unrouted += 1
            return []
        decision = pipeline.decide(queued, now, self.rules, self.enrich)
        if decision.event is None:
            report.consent_dropped += 1
            log.info("not sent: consent", component="process", event_name=queued.event.event_name,
                     event_id=queued.event.event_id, consent=decision.consent.reason)
            return []
        if "guard" in decision.removed:
            log.warning("hashed key dropped: value is not a SHA-256 hash", component="process",
                        event_id=queued.event.event_id, fields=list(decision.removed["guard"]))
        event = decision.event
        if decision.dead is not None:
            # dead whatever the pixel (too old, too little to match): dead-lettered once, under
            # the first pixel's claim; a replay routes it afresh
            item = _Item(queued, event, event_key(targets[0].id, event.event_name,
                                                  event.event_id), targets[0].id)
            item.outcome, item.dead = Outcome.DEAD, decision.dead
            return [item]
        return [_Item(queued, event, event_key(p.id, event.event_name, event.event_id), p.id)
                for p in targets]

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
        """The coalescer's delivery: per pixel, one sender call for every caller's copies.

        Pixels are sent to side by side, each on its own sender: one pixel's slow or failing
        requests, or an unreadable token, neither delay nor hold the others' copies."""
        by_pixel: dict[str, list[_Item]] = {}
        for item in batch:
            by_pixel.setdefault(item.pixel, []).append(item)
        if len(by_pixel) == 1:
            self._send_pixel(*by_pixel.items())
            return
        with ThreadPoolExecutor(max_workers=len(by_pixel)) as pool:
            for done in [pool.submit(self._send_pixel, entry) for entry in by_pixel.items()]:
                done.result()  # re-raises what is not a RelayError (a bug): as before

    def _send_pixel(self, entry: tuple[str, list[_Item]]) -> None:
        pixel, items = entry
        try:
            deliveries = self.senders[pixel].send([i.event for i in items])
        except RelayError as exc:  # e.g. its token secret unreadable: this pixel's copies wait
            log.error("send failed, will retry", component="process", pixel_id=pixel,
                      error_type=type(exc).__name__, batch_size=len(items))
            for item in items:
                item.outcome, item.hold, item.error = Outcome.HELD, Hold.INTERRUPTED, exc
            return
        for item, delivery in zip(items, deliveries, strict=True):
            item.outcome, item.fbtrace_id = delivery.outcome, delivery.fbtrace_id
            item.dead, item.hold, item.graph = delivery.dead, delivery.hold, delivery.graph

    def _settle(self, items: list[_Item], report: ProcessReport) -> None:
        now = self.clock.now()
        for item in items:
            if item.outcome is Outcome.SENT:
                self.ledger.mark_sent(item.key, now, item.attempts, item.fbtrace_id)
                report.sent += 1
            elif item.outcome is Outcome.DEAD:
                # a copy dead for its pixel alone (Meta refused it, retries ran out) names the
                # pixel, so a replay resends it there only
                pixel = item.pixel if item.dead.reason in PER_PIXEL else None
                self.ledger.dead_letter(item.key, replace(item.queued, event=item.event,
                                                          pixel=pixel),
                                        now, item.attempts, item.dead, pixel_id=pixel)
                report.dead_lettered += 1
                reason = item.dead.reason.value
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
            elif item.outcome is Outcome.HELD:
                if item.hold is not Hold.BUSY:  # a busy claim is someone else's to settle
                    # a token problem is the operator's to fix: it does not use up attempts
                    attempts = item.attempts - 1 if item.hold is Hold.TOKEN else item.attempts
                    self.ledger.release(item.key, now, attempts)
                report.retry += 1
        held_by_token: dict[str, int] = {}
        for item in items:
            if item.hold is Hold.TOKEN:
                held_by_token[item.pixel] = held_by_token.get(item.pixel, 0) + 1
        for pixel, count in held_by_token.items():  # per pixel: the others' went out
            log.error("access token rejected by Meta; events held for retry", component="process",
                      cause="token", count=count, pixel_id=pixel)


#: dead-letter reasons that concern one pixel's copy, not the event
PER_PIXEL = frozenset({DeadReason.REJECTED, DeadReason.RETRIES_EXHAUSTED})


def _retry_error(items: list[_Item], count: int) -> TransientError:
    """The exception that sends the message back: the most telling cause among held events."""
    held = [i for i in items if i.outcome is Outcome.HELD]
    if any(i.hold is Hold.TOKEN for i in held):
        return TokenProblem(f"{count} event(s) held: Meta rejected the token")
    for item in held:
        error = item.graph.to_error() if item.graph is not None else item.error
        if isinstance(error, TransientError):
            return error
    return TransientError(f"{count} event(s) need another try")
