"""The two services the entry points call: ingest (validate, hash, publish) and process (send).

Raise means retry, return means ack: ``process`` raises a TransientError when any event in
the message still needs another try; everything else is recorded and acknowledged.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from . import consent as consent_rules
from . import log
from .envelope import QueuedEvent, chunks, decode, encode
from .errors import InvalidEvent, PublishFailed, RelayError, TokenProblem, TransientError
from .graph_errors import GraphOutcome, Verdict, backoff_seconds
from .idempotency import Claim, Idempotency, event_key
from .mapping import DEFAULT_CONFIG, MappingConfig, event_time_problem, to_capi_event
from .model import CapiEvent, UserData
from .ports import CapiClient, Clock, Publisher, SecretSource

MAX_EVENTS_PER_REQUEST = 1000


@dataclass(frozen=True)
class RequestContext:
    """What the HTTP request knows about the browser, used where an event lacks it."""

    ip: str | None = None
    user_agent: str | None = None
    fbp: str | None = None
    fbc: str | None = None

    def as_fields(self) -> dict[str, str]:
        return {k: v for k, v in (("ip", self.ip), ("user_agent", self.user_agent),
                                  ("fbp", self.fbp), ("fbc", self.fbc)) if v}


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    event_ids: list[str]


class IngestService:
    def __init__(self, publisher: Publisher, clock: Clock, new_id: Callable[[], str],
                 mapping: MappingConfig = DEFAULT_CONFIG):
        self.publisher = publisher
        self.clock = clock
        self.new_id = new_id
        self.mapping = mapping

    def ingest(self, events: list[Any], request: RequestContext) -> IngestResult:
        """Maps every event, publishes the good ones, and says what happened to each."""
        now = self.clock.now()
        context = request.as_fields()
        good: list[QueuedEvent] = []
        rejected: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for index, raw in enumerate(events):
            if isinstance(raw, dict) and context:
                raw = {**raw, "_request": context}
            try:
                mapped = to_capi_event(raw, now=now, new_id=self.new_id, config=self.mapping)
            except Exception as exc:  # a mapping bug costs this event only, never its batch
                log.error("event could not be mapped", component="ingest",
                          error_type=type(exc).__name__)
                rejected.append({"index": index, "errors": ["event: could not be read"]})
                continue
            if mapped.dropped:
                dropped.append({"index": index, "fields": list(mapped.dropped)})
            if mapped.event is None:
                rejected.append({"index": index, "errors": list(mapped.reasons)})
                continue
            good.append(QueuedEvent(mapped.event, mapped.client_id, mapped.consent,
                                    mapped.dropped))
        for chunk in chunks(good, max_events=MAX_EVENTS_PER_REQUEST):
            self.publisher.publish(encode(chunk), {"count": str(len(chunk)),
                                                   "source": "ingest"})
        log.info("ingested", component="ingest", accepted=len(good), rejected=len(rejected),
                 dropped_fields=sorted({f for d in dropped for f in d["fields"]}) or None)
        return IngestResult(len(good), rejected, dropped, [q.event.event_id for q in good])


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


class Coalescer:
    """Joins the sends of concurrent ``process`` calls into shared Graph requests.

    Group commit: the first caller to arrive leads; it waits up to ``window`` seconds (less if
    1000 events gather), then sends everything that joined in as few requests as Meta's limit
    allows. Each caller then settles its own events, so every message is still acknowledged on
    its own outcome. A window of 0 sends at once.
    """

    def __init__(self, window: float, max_events: int = MAX_EVENTS_PER_REQUEST):
        self.window = window
        self.max_events = max_events
        self._cond = threading.Condition()
        self._open: _Batch | None = None

    def run(self, items: list["_Item"], deliver: Callable[[list["_Item"]], None]) -> None:
        if self.window <= 0:
            deliver(items)
            return
        with self._cond:
            batch = self._open
            leader = batch is None
            if leader:
                batch = self._open = _Batch()
            batch.items.extend(items)
            self._cond.notify_all()
        if not leader:
            batch.done.wait()
        else:
            deadline = time.monotonic() + self.window
            with self._cond:
                while len(batch.items) < self.max_events:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._open = None  # later callers start the next batch
            try:
                deliver(batch.items)
            except BaseException as exc:
                batch.error = exc
                raise
            finally:
                batch.done.set()
        if batch.error is not None and not leader:
            raise batch.error


@dataclass
class _Batch:
    items: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None


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
                     events_received=outcome.events_received, fbtrace_id=outcome.fbtrace_id)
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
