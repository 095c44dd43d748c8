"""Delivery outcomes as types: what became of one event, and why it was dead-lettered. Pure.

A processed event ends in one ``Outcome``. A dead-lettered one carries a ``DeadLetter`` record
(reason, Graph code, subcode, sanitized message), written to the ledger and to the dead-letter
message's attributes as separate fields, never joined into a string to be split again. A held
one carries a ``Hold`` saying why it goes back to Pub/Sub.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from capi_relay.core.graph_outcome import GraphOutcome, Verdict

#: Pub/Sub attribute values are limited in size; a detail longer than this is cut.
DETAIL_LIMIT = 500


class Outcome(str, Enum):
    """What became of one event in one ``process`` call."""

    PENDING = "pending"    # still to be sent
    SENT = "sent"          # Meta took it
    DEAD = "dead"          # dead-lettered (once): see its DeadLetter
    HELD = "held"          # given back to Pub/Sub for another try: see its Hold
    SKIPPED = "skipped"    # already sent or already dead-lettered by an earlier delivery
    WITHHELD = "withheld"  # consent forbids sending it: acknowledged, nothing recorded


class DeadReason(str, Enum):
    """Why an event was dead-lettered; the ``reason`` attribute ``capi-relay replay`` filters on."""

    UNDECODABLE = "undecodable"              # the Pub/Sub message is not a capi-relay envelope
    TOO_OLD = "too_old"                      # outside Meta's event_time window
    INSUFFICIENT_CUSTOMER_INFORMATION = "insufficient_customer_information"  # even after profiles
    RETRIES_EXHAUSTED = "retries_exhausted"  # MAX_DELIVERY_ATTEMPTS transient failures
    REJECTED = "rejected"                    # Meta refused the event (code/subcode kept)


class Hold(str, Enum):
    """Why an event is given back for another try (its claim released, or left to another)."""

    TOKEN = "token"              # Meta rejected the token: the operator's to fix; no attempt used
    THROTTLED = "throttled"      # a rate limit, or a policy block (code 368)
    UNAVAILABLE = "unavailable"  # Graph outage, timeout, transient code
    BUSY = "busy"                # another instance holds a live claim on it
    INTERRUPTED = "interrupted"  # the delivery raised (e.g. the dead-letter topic is down)

    @classmethod
    def for_verdict(cls, verdict: Verdict) -> "Hold":
        if verdict is Verdict.TOKEN:
            return cls.TOKEN
        if verdict in (Verdict.THROTTLED, Verdict.RETRY_MUCH_LATER):
            return cls.THROTTLED
        return cls.UNAVAILABLE


@dataclass(frozen=True)
class DeadLetter:
    """Why one event was dead-lettered: a reason, and Meta's code/subcode/message when Meta said.

    ``message`` is Graph's text after ``graph_outcome.sanitize_message`` or the relay's own
    (which names fields, never values).
    """

    reason: DeadReason
    code: int | None = None
    subcode: int | None = None
    message: str = ""

    @classmethod
    def rejected(cls, outcome: GraphOutcome) -> "DeadLetter":
        return cls(DeadReason.REJECTED, outcome.code, outcome.subcode, outcome.message)

    @property
    def detail(self) -> str:
        """One line for people (``code/subcode: message``); programs read the fields."""
        codes = "/".join(str(c) for c in (self.code, self.subcode) if c is not None)
        text = ": ".join(p for p in (codes, self.message) if p)
        return text[:DETAIL_LIMIT]

    def attributes(self) -> dict[str, str]:
        """The dead-letter message's attributes for this record (strings, as Pub/Sub wants)."""
        out = {"reason": self.reason.value}
        if self.code is not None:
            out["code"] = str(self.code)
        if self.subcode is not None:
            out["subcode"] = str(self.subcode)
        if self.detail:
            out["detail"] = self.detail
        return out
