"""Classify Graph API answers into what the relay does next; pure (no I/O): tests use plain dicts.

Decide by Meta's ``code`` / ``error_subcode`` / ``is_transient``, never by HTTP status, because
Graph returns the same status (usually 400) for very different causes: a transient ``code 2`` and
a permanent ``code 100`` both come back as 400. The HTTP status only decides when the body carries
no ``error`` object (a load balancer's 502, a timeout, an empty 200).

Sources for each rule are cited row by row in ``tests/conformance/graph_errors.json``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

from capi_relay.core.errors import GraphUnavailable, Throttled, TokenProblem, TransientError


class Verdict(str, Enum):
    """What the relay should do with a Graph answer."""

    OK = "ok"                              # Meta took the batch
    TRANSIENT = "transient"                # retry soon: outage, timeout, is_transient
    THROTTLED = "throttled"                # retry after backing off: rate limits
    RETRY_MUCH_LATER = "retry_much_later"  # retry after a long pause: code 368 policy block
    TOKEN = "token"                        # hold: token expired, revoked or lacking permission
    INVALID_EVENT = "invalid_event"        # some event in the batch breaks Meta's rules: bisect
    PERMANENT = "permanent"                # retrying the same request cannot help


#: Graph codes Meta documents as "temporary issue due to downtime, wait and retry".
TRANSIENT_CODES: frozenset[int] = frozenset({1, 2, 21009})
#: Rate limits: app (4), user (17), page (32), ad account (613), app (341), BUC 80000-80014.
THROTTLING_CODES: frozenset[int] = frozenset({4, 17, 32, 341, 613}) | frozenset(range(80000, 80015))
#: "Temporarily blocked for policies violations": retrying soon only extends the block.
RETRY_MUCH_LATER_CODES: frozenset[int] = frozenset({368})
#: Token and permission codes: OAuthException 190, API session 102, missing token 104, permission
#: denied 10, API method 3, and the permission range 200-299.
TOKEN_CODES: frozenset[int] = frozenset({3, 10, 102, 104, 190}) | frozenset(range(200, 300))
#: code 100 with this subcode: "object does not exist, cannot be loaded due to missing permissions".
MISSING_PERMISSION_SUBCODE = 33
#: code 100 with a subcode in this block: an event parameter is invalid (e.g. 2804003 too old).
INVALID_EVENT_SUBCODES = range(2804000, 2805000)

MESSAGE_LIMIT = 200

def _ipv6_or_keep(match: re.Match[str]) -> str:
    text = match.group(0)
    # "23:29:14" is a clock time, not an address: require "::" or at least four colons.
    return "[ip]" if "::" in text or text.count(":") >= 4 else text


def _number_or_keep(match: re.Match[str]) -> str:
    # Nine digits or more reads as a phone number or an ID; a date (8 digits) stays.
    text = match.group(0)
    return "[number]" if sum(c.isdigit() for c in text) >= 9 else text


_REDACTIONS: tuple[tuple[re.Pattern[str], Any], ...] = (
    (re.compile(r"access_token=[^\s&\"',;]*", re.IGNORECASE), "access_token=[redacted]"),
    (re.compile(r"\bEAA[A-Za-z0-9]{20,}"), "[token]"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "[email]"),
    (re.compile(r"\b[0-9A-Fa-f]{32,}\b"), "[hex]"),
    (re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b"), "[ip]"),
    (re.compile(r"[0-9A-Fa-f]*:[0-9A-Fa-f:]*:[0-9A-Fa-f:]*"), _ipv6_or_keep),
    (re.compile(r"\+?\d[\d ()./-]{7,}\d"), _number_or_keep),
)


def sanitize_message(text: Any) -> str:
    """Meta's text minus anything that could be a token or personal data, at most 200 characters.

    Redact before truncating, so a token cut in half at the limit cannot survive in part.
    """
    if text is None:
        return ""
    out = " ".join(str(text).split())
    for pattern, replacement in _REDACTIONS:
        out = pattern.sub(replacement, out)
    if len(out) > MESSAGE_LIMIT:
        out = out[: MESSAGE_LIMIT - 1] + "…"
    return out


@dataclass(frozen=True)
class GraphOutcome:
    """One Graph answer, reduced to what the relay may keep and log."""

    verdict: Verdict
    http_status: int | None
    code: int | None
    subcode: int | None
    message: str
    fbtrace_id: str | None
    events_received: int | None
    retry_after: float | None
    error_type: str | None = None
    user_title: str | None = None

    @property
    def retryable(self) -> bool:
        return self.verdict in (
            Verdict.TRANSIENT, Verdict.THROTTLED, Verdict.RETRY_MUCH_LATER, Verdict.TOKEN,
        )

    def describe(self) -> str:
        """A one-line summary safe to log: codes, Meta's type and sanitized text, no values."""
        parts = [self.verdict.value]
        if self.http_status is not None:
            parts.append(f"http={self.http_status}")
        if self.code is not None:
            parts.append(f"code={self.code}")
        if self.subcode is not None:
            parts.append(f"subcode={self.subcode}")
        if self.error_type:
            parts.append(f"type={self.error_type}")
        if self.fbtrace_id:
            parts.append(f"fbtrace_id={self.fbtrace_id}")
        text = self.user_title or self.message
        return " ".join(parts) + (f": {text}" if text else "")

    def to_error(self) -> TransientError | None:
        """The exception from ``capi_relay.core.errors`` the processor raises for this answer,
        so Pub/Sub redelivers; None when there is nothing to retry (OK, or a permanent refusal,
        which is recorded as a ``delivery.DeadLetter`` instead).
        """
        summary = self.describe()
        if self.verdict is Verdict.TRANSIENT:
            unavailable = GraphUnavailable(summary)
            unavailable.retry_after = self.retry_after
            return unavailable
        if self.verdict in (Verdict.THROTTLED, Verdict.RETRY_MUCH_LATER):
            return Throttled(summary, retry_after=self.retry_after)
        if self.verdict is Verdict.TOKEN:
            return TokenProblem(summary)
        return None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    if not headers:
        return None
    wanted = name.lower()
    for key, value in headers.items():
        if str(key).lower() == wanted:
            return str(value)
    return None


def retry_after_from_headers(headers: Mapping[str, str] | None) -> float | None:
    """Seconds to wait as the server says: ``Retry-After`` or Meta's usage headers.

    Meta reports ``estimated_time_to_regain_access`` in minutes inside ``X-Business-Use-Case-Usage``
    (a JSON object of lists) and, for some endpoints, ``X-Ad-Account-Usage``.
    """
    hints: list[float] = []
    retry_after = _header(headers, "Retry-After")
    if retry_after is not None:
        try:
            seconds = float(retry_after)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            hints.append(seconds)
    for name in ("X-Business-Use-Case-Usage", "X-Ad-Account-Usage"):
        raw = _header(headers, name)
        if not raw:
            continue
        try:
            usage = json.loads(raw)
        except ValueError:
            continue
        hints.extend(60.0 * minutes for minutes in _regain_minutes(usage))
    hints = [h for h in hints if h > 0]
    return max(hints) if hints else None


def _regain_minutes(node: Any) -> list[float]:
    found: list[float] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "estimated_time_to_regain_access" and isinstance(value, (int, float)) \
                    and not isinstance(value, bool):
                found.append(float(value))
            else:
                found.extend(_regain_minutes(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_regain_minutes(item))
    return found


def _verdict_for_error(code: int | None, subcode: int | None, is_transient: bool,
                       http_status: int | None) -> Verdict:
    if code in THROTTLING_CODES:
        return Verdict.THROTTLED
    if code in RETRY_MUCH_LATER_CODES:
        return Verdict.RETRY_MUCH_LATER
    if code in TRANSIENT_CODES or is_transient:
        return Verdict.TRANSIENT
    if code in TOKEN_CODES or (code == 100 and subcode == MISSING_PERMISSION_SUBCODE):
        return Verdict.TOKEN
    if code == 100 and subcode in INVALID_EVENT_SUBCODES:
        return Verdict.INVALID_EVENT
    # An unknown code: a 4xx is Meta refusing the request; anything else is not known to be final.
    if http_status is not None and 400 <= http_status < 500:
        return Verdict.PERMANENT
    if http_status is not None and 200 <= http_status < 300:
        return Verdict.PERMANENT
    return Verdict.TRANSIENT


def _verdict_without_error(http_status: int | None, events_received: int | None) -> Verdict:
    if http_status is None:
        return Verdict.TRANSIENT
    if 200 <= http_status < 300:
        # A 2xx that does not say how many events Meta took is not a confirmed delivery; a retry
        # is safe because Meta deduplicates on event_id + event_name.
        return Verdict.OK if events_received is not None else Verdict.TRANSIENT
    if http_status == 429:
        return Verdict.THROTTLED
    if http_status == 408 or http_status >= 500:
        return Verdict.TRANSIENT
    return Verdict.PERMANENT


def classify(http_status: int | None, body: dict | None, *, transport_error: bool = False,
             headers: Mapping[str, str] | None = None) -> GraphOutcome:
    """Reduce one Graph answer (or the lack of one) to a :class:`GraphOutcome`.

    ``body`` is the decoded JSON (None when absent or not JSON); ``headers`` are optional and only
    used for retry hints.
    """
    if transport_error:
        return GraphOutcome(Verdict.TRANSIENT, None, None, None, "transport error: no answer",
                            None, None, None)

    hint = retry_after_from_headers(headers)
    body = body if isinstance(body, dict) else None
    error = body.get("error") if body is not None else None
    fbtrace_id = body.get("fbtrace_id") if body is not None else None

    if not isinstance(error, dict):
        events_received = _as_int(body.get("events_received")) if body is not None else None
        verdict = _verdict_without_error(http_status, events_received)
        message = "" if verdict is Verdict.OK else f"http {http_status} without a Graph error"
        return GraphOutcome(
            verdict, http_status, None, None, message,
            str(fbtrace_id) if fbtrace_id else None,
            events_received if verdict is Verdict.OK else None,
            hint if verdict in (Verdict.TRANSIENT, Verdict.THROTTLED) else None,
        )

    code = _as_int(error.get("code"))
    subcode = _as_int(error.get("error_subcode"))
    is_transient = error.get("is_transient") is True
    verdict = _verdict_for_error(code, subcode, is_transient, http_status)
    fbtrace_id = error.get("fbtrace_id") or fbtrace_id
    error_type = error.get("type")
    user_title = error.get("error_user_title")
    return GraphOutcome(
        verdict=verdict,
        http_status=http_status,
        code=code,
        subcode=subcode,
        message=sanitize_message(error.get("message")),
        fbtrace_id=str(fbtrace_id) if fbtrace_id else None,
        events_received=None,
        retry_after=hint if verdict in (
            Verdict.TRANSIENT, Verdict.THROTTLED, Verdict.RETRY_MUCH_LATER) else None,
        error_type=sanitize_message(error_type) if error_type else None,
        user_title=sanitize_message(user_title) if user_title else None,
    )


@dataclass(frozen=True)
class BackoffPolicy:
    base: float   # seconds before the first retry (attempt 0)
    cap: float    # never wait longer than this, unless the server asks to


#: Throttling: Meta blocks a throttled caller for a minute (Marketing API) up to minutes (BUC).
#: Code 368 is a policy block: hours, not seconds. Token problems wait for an operator.
BACKOFF: Mapping[Verdict, BackoffPolicy] = {
    Verdict.TRANSIENT: BackoffPolicy(base=1.0, cap=60.0),
    Verdict.THROTTLED: BackoffPolicy(base=30.0, cap=900.0),
    Verdict.TOKEN: BackoffPolicy(base=60.0, cap=3600.0),
    Verdict.RETRY_MUCH_LATER: BackoffPolicy(base=1800.0, cap=21600.0),
}
#: A server hint above this is treated as this: one day.
MAX_HINT_SECONDS = 86400.0


def backoff_seconds(verdict: Verdict, attempt: int, *, jitter: float,
                    retry_after: float | None = None) -> float:
    """Seconds to wait before retry number ``attempt`` (0 = first retry); pure and deterministic.

    Exponential from the verdict's base, capped; ``jitter`` in [0, 1] (pass ``random.random()``)
    spreads the wait over [half, all] of that ("equal jitter"), so a fleet does not retry in step.
    A server hint (``retry_after``) is a floor.
    """
    if verdict not in BACKOFF:
        raise ValueError(f"verdict {verdict.value} is not retried")
    if attempt < 0:
        raise ValueError("attempt must be >= 0")
    if not 0.0 <= jitter <= 1.0:
        raise ValueError("jitter must be within [0, 1]")
    policy = BACKOFF[verdict]
    ceiling = min(policy.cap, policy.base * (2.0 ** min(attempt, 32)))
    wait = ceiling * (0.5 + 0.5 * jitter)
    if retry_after is not None and retry_after > 0:
        wait = max(wait, min(retry_after, MAX_HINT_SECONDS))
    return wait
