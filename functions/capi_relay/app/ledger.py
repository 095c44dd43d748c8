"""The delivery ledger: claim an event before sending it, settle it after, dead-letter it once.

The claim protocol lives here; a backend (Firestore, or an in-memory fake) only stores
records with two conditional writes: ``create`` (fails when the key exists) and ``replace``
(fails when the record changed since it was read). States::

    (absent) --claim--> in_progress --sent--> sent            (final: redeliveries are acked)
                             |      --fail--> failed          (final: dead-lettered once)
                             +--release--> released --claim--> in_progress (attempts + 1)
    in_progress whose lease ran out (crashed instance) may be claimed again.

Records carry ``expire_at`` for a Firestore TTL policy; since TTL deletion lags by up to a
day, an expired record is treated as absent here.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from typing import Any

from capi_relay import log
from capi_relay.app.ports import IdempotencyBackend, Publisher
from capi_relay.core.delivery import DeadLetter
from capi_relay.core.envelope import QueuedEvent, encode
from capi_relay.core.errors import PublishFailed


class State(str, Enum):
    IN_PROGRESS = "in_progress"
    SENT = "sent"
    FAILED = "failed"
    RELEASED = "released"


class Claim(str, Enum):
    """What the caller should do with the event."""

    SEND = "send"            # claimed: send it, then mark_sent / mark_failed / release
    ALREADY_SENT = "already_sent"
    ALREADY_FAILED = "already_failed"
    BUSY = "busy"            # another instance holds a live lease: retry later


@dataclass(frozen=True)
class Decision:
    claim: Claim
    write: dict[str, Any] | None = None   # the record to write when claim is SEND
    attempts: int = 0


def event_key(pixel_id: str, event_name: str, event_id: str) -> str:
    """A document id for (pixel, event_name, event_id): Meta deduplicates on the same triple."""
    raw = f"{pixel_id}\x1f{event_name}\x1f{event_id}".encode()
    return hashlib.sha256(raw).hexdigest()


def decide_claim(record: dict[str, Any] | None, *, now: float, lease_seconds: float,
                 ttl_seconds: float, replay: bool = False) -> Decision:
    """Pure: given the stored record (or None), whether and how to claim the event.

    ``replay`` is an operator's republish from the dead-letter topic: a failed event may be
    claimed again, with its attempts counted afresh.
    """
    if record is not None and record.get("expire_at", float("inf")) <= now:
        record = None
    if record is None:
        return Decision(Claim.SEND, _in_progress(1, now, lease_seconds, ttl_seconds), 1)
    state = record.get("state")
    attempts = int(record.get("attempts", 0))
    if state == State.SENT:
        return Decision(Claim.ALREADY_SENT, attempts=attempts)
    if state == State.FAILED and replay:
        return Decision(Claim.SEND, _in_progress(1, now, lease_seconds, ttl_seconds), 1)
    if state == State.FAILED:
        return Decision(Claim.ALREADY_FAILED, attempts=attempts)
    if state == State.IN_PROGRESS and record.get("lease_until", 0) > now:
        return Decision(Claim.BUSY, attempts=attempts)
    return Decision(Claim.SEND, _in_progress(attempts + 1, now, lease_seconds, ttl_seconds),
                    attempts + 1)


def _in_progress(attempts: int, now: float, lease: float, ttl: float) -> dict[str, Any]:
    return {"state": State.IN_PROGRESS.value, "attempts": attempts, "lease_until": now + lease,
            "updated_at": now, "expire_at": now + ttl}


class DeliveryLedger:
    """The claim protocol over any backend, and the dead-letter topic it records failures to.

    ``lease_seconds`` and ``ttl_seconds`` have no defaults here: they are settings
    (``CLAIM_LEASE_SECONDS``, ``IDEMPOTENCY_TTL_HOURS``), defined once in ``config``.
    """

    def __init__(self, backend: IdempotencyBackend, *, lease_seconds: float,
                 ttl_seconds: float, dead_letter: Publisher | None = None):
        self.backend = backend
        self.lease_seconds = lease_seconds
        self.ttl_seconds = ttl_seconds
        self.dead_letter_topic = dead_letter

    def claim(self, key: str, now: float, *, replay: bool = False) -> Decision:
        # Most events are new: try the conditional create first, so the happy path is one
        # write and no read.
        fresh = decide_claim(None, now=now, lease_seconds=self.lease_seconds,
                             ttl_seconds=self.ttl_seconds)
        if self.backend.create(key, fresh.write):
            return fresh
        for _ in range(3):  # lost races re-read; a third loss means someone else is busy
            found = self.backend.get(key)
            record, version = found if found else (None, None)
            decision = decide_claim(record, now=now, lease_seconds=self.lease_seconds,
                                    ttl_seconds=self.ttl_seconds, replay=replay)
            if decision.claim is not Claim.SEND:
                return decision
            ok = (self.backend.create(key, decision.write) if found is None
                  else self.backend.replace(key, decision.write, version))
            if ok:
                return decision
        return Decision(Claim.BUSY)

    def _finish(self, key: str, state: State, now: float, attempts: int,
                **extra: Any) -> None:
        # The claim holder writes the outcome unconditionally: it did the work, and if its
        # lease ran out meanwhile, the event was sent at worst twice with one event_id, which
        # Meta deduplicates. One write, no read.
        self.backend.put(key, {"state": state.value, "attempts": attempts, "updated_at": now,
                               "expire_at": now + self.ttl_seconds, "lease_until": 0, **extra})

    def mark_sent(self, key: str, now: float, attempts: int, fbtrace_id: str | None = None) -> None:
        self._finish(key, State.SENT, now, attempts, fbtrace_id=fbtrace_id)

    def mark_failed(self, key: str, now: float, attempts: int, letter: DeadLetter) -> None:
        self._finish(key, State.FAILED, now, attempts, reason=letter.reason.value,
                     code=letter.code, subcode=letter.subcode, detail=letter.detail)

    def release(self, key: str, now: float, attempts: int) -> None:
        """Gives the claim back after a transient failure; the attempt still counts."""
        self._finish(key, State.RELEASED, now, attempts)


    def dead_letter(self, key: str, queued: QueuedEvent, now: float, attempts: int,
                    letter: DeadLetter, *, pixel_id: str | None = None) -> None:
        """Publishes the event to the dead-letter topic, then records it failed: once.

        When the topic does not take it, the claim is given back and PublishFailed raised, so
        the event is redelivered rather than lost.
        """
        event = queued.event
        attributes = {**letter.attributes(), "event_name": event.event_name,
                      "event_id": event.event_id, "attempts": str(attempts),
                      "dead_lettered_at": str(int(now))}
        if pixel_id:
            attributes["pixel_id"] = pixel_id
        try:
            self.publish_dead(encode([queued]), attributes)
        except PublishFailed:
            self.release(key, now, attempts)
            raise
        self.mark_failed(key, now, attempts, letter)
        log.warning("dead-lettered", component="process", event_name=event.event_name,
                    event_id=event.event_id, reason=letter.reason.value, code=letter.code,
                    subcode=letter.subcode, attempts=attempts, pixel_id=pixel_id)

    def publish_dead(self, data: bytes, attributes: dict[str, str]) -> None:
        """Publishes a message as is (an undecodable one has no event and no key)."""
        if self.dead_letter_topic is None:
            log.error("no dead-letter topic configured; event recorded as failed only",
                      component="process", reason=attributes.get("reason"))
            return
        self.dead_letter_topic.publish(data, attributes)
