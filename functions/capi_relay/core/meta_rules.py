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

#: match keys that identify a person or a browser on their own. Meta rejects events whose
#: user_data holds only coarse keys (location, gender, birth date, names alone); see
#: best-practices "baseline requirements for matching" (Graph API v13.0 and later).
STRONG_KEYS = frozenset({
    "em", "ph", "external_id", "fbc", "fbp", "subscription_id", "fb_login_id", "lead_id",
    "anon_id", "madid", "page_scoped_user_id", "ctwa_clid", "ig_account_id", "ig_sid",
})


def event_time_problem(event_time: int, action_source: ActionSource, now: float) -> str | None:
    """Why Meta would refuse this event_time now, or None when it is inside the window."""
    max_age = (MAX_AGE_PHYSICAL_STORE_SECONDS if action_source is ActionSource.PHYSICAL_STORE
               else MAX_AGE_SECONDS)
    if event_time < now - max_age:
        return f"event_time: older than {max_age // 86400} days"
    if event_time > now + FUTURE_TOLERANCE_SECONDS:
        return "event_time: in the future"
    return None


def match_keys_problem(user_data: UserData) -> str | None:
    """Why Meta would find these match keys insufficient, or None when they suffice."""
    return _match_keys_problem(set(user_data.present_keys()))


_LOCATION_KEYS = frozenset({"ct", "st", "zp", "db"})
#: The reason an event is rejected for; monitoring counts it (ingest logs it by this name).
INSUFFICIENT_KEYS = ("user_data: insufficient customer information (add em, ph, external_id, "
                      "fbp, fbc, or client_ip_address with client_user_agent)")


def _match_keys_problem(present: Set[str]) -> str | None:
    if not present.isdisjoint(STRONG_KEYS):
        return None
    if "client_ip_address" in present and "client_user_agent" in present:
        return None
    if "fn" in present and "ln" in present and not present.isdisjoint(_LOCATION_KEYS):
        return None
    return INSUFFICIENT_KEYS


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
