"""The process service: consent, enrichment, claims, delivery to Meta, outcomes, dead-letter.

Raise means retry, return means ack: ``process`` raises a TransientError when any event in
the message still needs another try; everything else is recorded and acknowledged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Callable, Mapping

from capi_relay import log
from capi_relay.app.coalescer import Coalescer
from capi_relay.app.idempotency import Claim, Idempotency, event_key
from capi_relay.app.ports import CapiClient, Clock, Publisher, SecretSource
from capi_relay.core import consent as consent_rules
from capi_relay.core.envelope import QueuedEvent, decode, encode
from capi_relay.core.errors import (
    InvalidEvent,
    PublishFailed,
    RelayError,
    TokenProblem,
    TransientError,
)
from capi_relay.core.graph_outcome import GraphOutcome, Verdict, backoff_seconds
from capi_relay.core.meta_rules import (
    INSUFFICIENT_REASON,
    MAX_EVENTS_PER_REQUEST,
    customer_information_problem,
    event_time_problem,
    match_key_counts,
)
from capi_relay.core.model import CapiEvent, UserData


@dataclass
class _Item:
    """One event's journey through a process call."""

    queued: QueuedEvent
    event: CapiEvent
    key: str = ""
    attempts: int = 0
    outcome: str = "pending"   # sent | dead | retry | skipped | dropped
    reason: str = ""
    fbtrace_id: str | None = None


@dataclass
class ProcessReport:
    sent: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    consent_dropped: int = 0
    retry: int = 0
    requests: int = 0
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class DeliveryPolicy:
    pixel_id: str
    test_event_code: str | None = None
    max_attempts: int = 8
    consent_policy: str = "strict"
    consent_missing: str = "send"
    in_call_retries: int = 2


class ProcessService:
    def __init__(self, *, client: CapiClient, secrets: SecretSource, idempotency: Idempotency,
                 clock: Clock, policy: DeliveryPolicy, dead_letter: Publisher | None = None,
                 enrich: Callable[[QueuedEvent, float], CapiEvent] | None = None,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = lambda: 0.5,
                 batch_window: float = 0.0):
        self.client = client
        self.secrets = secrets
        self.idempotency = idempotency
        self.clock = clock
        self.policy = policy
        self.dead_letter = dead_letter
        self.enrich = enrich
        self.sleep = sleep
        self.jitter = jitter
        self.coalescer = Coalescer(batch_window)
        self._report_lock = threading.Lock()

    # -- the message -------------------------------------------------------------------
    def process(self, data: bytes, attributes: Mapping[str, str] | None = None) -> ProcessReport:
        report = ProcessReport()
        try:
            queued = decode(data)
        except InvalidEvent as exc:
            log.error("undecodable message dead-lettered", component="process",
                      reasons=list(exc.reasons))
            self._publish_dead(data, {"reason": "undecodable"})
            report.dead_lettered += 1
            return report

        now = self.clock.now()
        items = [self._prepare(q, now, report) for q in queued]
        items = [i for i in items if i is not None]
        insufficient = sum(i.reason == INSUFFICIENT_REASON for i in items)
        if insufficient:  # counted by monitoring and report: events Meta cannot match
            log.warning("rejected: insufficient customer information", component="process",
                        count=insufficient)
        replay = (attributes or {}).get("replay") == "1"
        to_send = self._claim_all(items, now, report, replay=replay)
        try:
            if to_send:
                self.coalescer.run(to_send, lambda batch: self._deliver_all(batch, report))
        except RelayError:
            for item in to_send:  # give the claims back now, not when their lease runs out
                if item.outcome == "pending":
                    item.outcome, item.reason = "retry", "error"
            self._settle(items, report)
            raise
        self._settle(items, report)
        log.info("processed", component="process", sent=report.sent,
                 skipped=report.duplicates, dead_lettered=report.dead_lettered,
                 consent=report.consent_dropped or None, released=report.retry or None,
                 count=len(queued))
        if report.retry:
            if any(i.outcome == "retry" and i.reason == Verdict.TOKEN.value for i in items):
                raise TokenProblem(f"{report.retry} event(s) held: Meta rejected the token")
            raise TransientError(f"{report.retry} event(s) need another try")
        return report

    def _prepare(self, queued: QueuedEvent, now: float, report: ProcessReport) -> _Item | None:
        decision = consent_rules.decide(queued.consent, policy=self.policy.consent_policy,
                                        missing=self.policy.consent_missing)
        if decision.action is consent_rules.Action.DROP:
            report.consent_dropped += 1
            log.info("not sent: consent", component="process", event_name=queued.event.event_name,
                     event_id=queued.event.event_id, consent=decision.reason)
            return None
        event = queued.event
        problem = event_time_problem(event.event_time, event.action_source, now)
        if self.enrich is not None:
            # Profiles are read and written back only for an event that will be sent with its
            # user data: not when consent strips it, not when it is dead-lettered as too old.
            if decision.action is consent_rules.Action.SEND and problem is None:
                event = self.enrich(queued, now)
            finish = getattr(self.enrich, "finish", None)  # a plain callable has no rules
            if finish is not None:
                # regional rules read the (hashed) country, so they run before stripping
                event = finish(event)
        if decision.action is consent_rules.Action.STRIP_USER_DATA:
            kept = {k: v for k, v in event.user_data.to_wire().items()
                    if k not in consent_rules.STRIPPED_KEYS}
            event = replace(event, user_data=UserData.from_wire(kept))
        item = _Item(queued, event, event_key(self.policy.pixel_id, event.event_name,
                                              event.event_id))
        if problem:
            item.outcome, item.reason = "dead", "too_old"
        elif customer_information_problem(event.user_data):
            # judged here, after enrichment: the profile store may have added an email
            item.outcome, item.reason = "dead", INSUFFICIENT_REASON
        return item

    def _claim_all(self, items: list[_Item], now: float, report: ProcessReport, *,
                   replay: bool = False) -> list[_Item]:
        to_send = []
        for item in items:
            decision = self.idempotency.claim(item.key, now, replay=replay)
            item.attempts = decision.attempts
            if decision.claim in (Claim.ALREADY_SENT, Claim.ALREADY_FAILED):
                item.outcome = "skipped"
                report.duplicates += 1
            elif decision.claim is Claim.BUSY:
                item.outcome, item.reason = "busy", "in_progress_elsewhere"
            elif item.outcome == "dead":
                pass  # claimed so that it is dead-lettered exactly once
            elif decision.attempts > self.policy.max_attempts:
                item.outcome, item.reason = "dead", "retries_exhausted"
            else:
                to_send.append(item)
        return to_send

    # -- delivery ----------------------------------------------------------------------
    def _deliver_all(self, items: list[_Item], report: ProcessReport) -> None:
        for start in range(0, len(items), MAX_EVENTS_PER_REQUEST):
            self._deliver(items[start:start + MAX_EVENTS_PER_REQUEST], report)

    def _deliver(self, batch: list[_Item], report: ProcessReport) -> None:
        outcome = self._send(batch, report)
        if outcome.verdict is Verdict.OK:
            now = self.clock.now()
            for item in batch:
                item.outcome, item.fbtrace_id = "sent", outcome.fbtrace_id
                self.idempotency.mark_sent(item.key, now, item.attempts, outcome.fbtrace_id)
            log.info("sent", component="process", batch_size=len(batch),
                     events_received=outcome.events_received, fbtrace_id=outcome.fbtrace_id,
                     match_keys=match_key_counts(item.event for item in batch))
        elif outcome.verdict in (Verdict.INVALID_EVENT, Verdict.PERMANENT):
            if len(batch) == 1:
                batch[0].outcome = "dead"
                batch[0].reason = f"rejected:{outcome.code}/{outcome.subcode}:{outcome.message}"
                return
            middle = len(batch) // 2  # bisect: find the bad neighbour, send the rest
            self._deliver(batch[:middle], report)
            self._deliver(batch[middle:], report)
        else:
            for item in batch:
                item.outcome, item.reason = "retry", outcome.verdict.value
            cause = f"{outcome.verdict.value} (code {outcome.code}, subcode {outcome.subcode})"
            log.log("ERROR" if outcome.verdict is Verdict.TOKEN else "WARNING",
                    "send failed, will retry", component="process", cause=cause,
                    batch_size=len(batch), fbtrace_id=outcome.fbtrace_id)

    def _send(self, batch: list[_Item], report: ProcessReport) -> GraphOutcome:
        events = [item.event.to_wire() for item in batch]
        refreshed = False
        attempt = 0
        while True:
            token = self.secrets.get(refresh=refreshed)
            with self._report_lock:
                report.requests += 1
            outcome = self.client.send(events, token, test_event_code=self.policy.test_event_code)
            if outcome.verdict is Verdict.TOKEN and not refreshed:
                refreshed = True  # the secret may have been rotated: read it once more
                continue
            if outcome.verdict in (Verdict.TRANSIENT, Verdict.THROTTLED) and \
                    attempt < self.policy.in_call_retries:
                attempt += 1
                self.sleep(min(outcome.retry_after or backoff_seconds(
                    outcome.verdict, attempt, jitter=self.jitter()), 2.0))
                continue
            return outcome

    # -- outcomes ----------------------------------------------------------------------
    def _settle(self, items: list[_Item], report: ProcessReport) -> None:
        now = self.clock.now()
        for item in items:
            if item.outcome == "sent":
                report.sent += 1
            elif item.outcome == "dead":
                self._dead_letter(item, now)
                report.dead_lettered += 1
                reason = item.reason.split(":", 1)[0]
                report.reasons[reason] = report.reasons.get(reason, 0) + 1
            elif item.outcome in ("retry", "busy"):
                if item.outcome == "retry":
                    # a token problem is the operator's to fix: it does not use up attempts
                    attempts = item.attempts - 1 if item.reason == Verdict.TOKEN.value \
                        else item.attempts
                    self.idempotency.release(item.key, now, attempts)
                report.retry += 1
        if any(i.outcome == "retry" and i.reason == Verdict.TOKEN.value for i in items):
            log.error("access token rejected by Meta; events held for retry", component="process",
                      cause="token", count=sum(i.reason == Verdict.TOKEN.value for i in items))

    def _dead_letter(self, item: _Item, now: float) -> None:
        event = item.event
        attributes = {"reason": item.reason.split(":", 1)[0], "detail": item.reason[:500],
                      "event_name": event.event_name, "event_id": event.event_id,
                      "attempts": str(item.attempts), "dead_lettered_at": str(int(now))}
        try:
            self._publish_dead(encode([replace(item.queued, event=event)]), attributes)
        except PublishFailed:
            self.idempotency.release(item.key, now, item.attempts)
            raise
        self.idempotency.mark_failed(item.key, now, item.attempts, item.reason[:500])
        log.warning("dead-lettered", component="process", event_name=event.event_name,
                    event_id=event.event_id, reason=attributes["reason"],
                    attempts=item.attempts)

    def _publish_dead(self, data: bytes, attributes: dict[str, str]) -> None:
        if self.dead_letter is None:
            log.error("no dead-letter topic configured; event recorded as failed only",
                      component="process", reason=attributes.get("reason"))
            return
        self.dead_letter.publish(data, attributes)
