"""Meta's rules for whole events: time window, batch size, enough customer information. Pure."""

from __future__ import annotations

from collections.abc import Iterable, Set

from capi_relay.core.model import ActionSource, CapiEvent, UserData

#: Meta accepts at most this many events in one request to the events edge.
MAX_EVENTS_PER_REQUEST = 1000

#: Meta's event_time window: 7 days back for web and most sources, 62 for physical stores.
MAX_AGE_SECONDS = 7 * 86400
MAX_AGE_PHYSICAL_STORE_SECONDS = 62 * 86400
#: clocks drift; an event this far ahead of the relay's clock is still accepted
FUTURE_TOLERANCE_SECONDS = 300

#: Meta's published list of customer information that is not enough on its own: an event whose
#: user_data keys are one of these sets, or a subset of one, is invalid. Best Practices -
#: Conversions API, "Baseline requirements for matching" (Graph API v13.0 and later):
#: https://developers.facebook.com/documentation/ads-commerce/conversions-api/best-practices#baseline-requirements-for-matching
#: Any other combination is accepted (user agent + fn, ip + user agent, em alone, ...).
INSUFFICIENT_CUSTOMER_INFORMATION: tuple[frozenset[str], ...] = (
    frozenset({"ct", "country", "st", "zp", "ge", "client_user_agent"}),
    frozenset({"db", "client_user_agent"}),
    frozenset({"fn", "ge"}),
    frozenset({"ln", "ge"}),
)
INSUFFICIENT_REASON = "insufficient_customer_information"


def event_time_problem(event_time: int, action_source: ActionSource, now: float) -> str | None:
    """Why Meta would refuse this event_time now, or None when it is inside the window."""
    max_age = (MAX_AGE_PHYSICAL_STORE_SECONDS if action_source is ActionSource.PHYSICAL_STORE
               else MAX_AGE_SECONDS)
    if event_time < now - max_age:
        return f"event_time: older than {max_age // 86400} days"
    if event_time > now + FUTURE_TOLERANCE_SECONDS:
        return "event_time: in the future"
    return None


def customer_information_problem(user_data: UserData | Set[str]) -> str | None:
    """Why Meta would refuse this customer information, or None when it is enough.

    Takes a UserData or the names of its keys that carry a value. Pure; the processor runs it
    after enrichment, since the profile store may add an email the event did not carry.
    """
    present = user_data if isinstance(user_data, Set) else frozenset(user_data.present_keys())
    for combination in INSUFFICIENT_CUSTOMER_INFORMATION:
        if present <= combination:
            return ("user_data: insufficient customer information (only "
                    + (", ".join(sorted(present)) or "nothing")
                    + "; add em, ph, external_id, fbp, fbc or client_ip_address)")
    return None


def match_key_counts(events: Iterable[CapiEvent]) -> dict[str, dict[str, int]]:
    """Per event name: ``events`` (how many) and, per user_data key, how many carried it.

    Key names and counts only, never a value: the processor logs this for every batch Meta
    accepts, and ``capi-relay report`` reads match quality from it.
    """
    counts: dict[str, dict[str, int]] = {}
    for event in events:
        row = counts.setdefault(event.event_name, {"events": 0})
        row["events"] += 1
        for key in event.user_data.present_keys():
            row[key] = row.get(key, 0) + 1
    return counts


def enriched_key_counts(events: Iterable[CapiEvent]) -> dict[str, dict[str, int]] | None:
    """Per event name: ``events`` enriched from a profile and, per key, how many got it; None
    when no event was. Only keys still present count (consent or redaction may have removed
    one since). Logged beside ``match_key_counts``: one line per Graph request instead of one
    per enriched event."""
    counts: dict[str, dict[str, int]] = {}
    for event in events:
        if not event.enriched:
            continue
        present = event.user_data.present_keys()
        added = [key for key in event.enriched if key in present]
        if not added:
            continue
        row = counts.setdefault(event.event_name, {"events": 0})
        row["events"] += 1
        for key in added:
            row[key] = row.get(key, 0) + 1
    return counts or None
