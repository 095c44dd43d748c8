"""The decision pipeline: every step an event goes through before Meta, in order, in one place.

    1. map       recognize the shape, map to a CAPI event, normalize and hash  ``admit``
    2. consent   gcs / gcd / consent_state / consent under CONSENT_POLICY:    ``decide``
                 send, strip user data, or withhold (CONSENT_MISSING when silent)
    3. enrich    fill missing match keys from profiles: a port, optional, only for an event
                 sent with its user data and inside Meta's time window
    4. regional  Limited Data Use and per-country redaction (LDU_REGIONS, REDACT_FIELDS);
                 decided on the country before consent strips it
    5. strip     consent's strip_user_data applied
    6. guard     hashed keys carry SHA-256 (or Parameter Builder) values only
    7. Meta      event_time window, then enough customer information to match

Ingest runs step 1 and publishes; the processor runs 2-7 (3 over Firestore), then claims and
sends; ``capi-relay preview`` runs 1-7 (3 over a profiles file) with the same settings, so what
it prints is what the relay would send. Pure, apart from what the enrichment port does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Mapping

from capi_relay.core import consent as consent_rules
from capi_relay.core import regional
from capi_relay.core.consent import Action, ConsentDecision
from capi_relay.core.delivery import DeadLetter, DeadReason
from capi_relay.core.envelope import QueuedEvent
from capi_relay.core.mapping import (
    DEFAULT_CONFIG,
    NO_REQUEST,
    Mapped,
    MappingConfig,
    RequestContext,
    to_capi_event,
)
from capi_relay.core.meta_rules import customer_information_problem, event_time_problem
from capi_relay.core.model import HASHED_KEYS, CapiEvent, UserData
from capi_relay.core.profiles import is_hashed
from capi_relay.core.regional import RegionalRules

#: the enrichment port: the event with missing match keys filled in (or as it was)
Enrich = Callable[[QueuedEvent, float], CapiEvent]


@dataclass(frozen=True)
class Policy:
    """The deployment's rules for deciding, built from the settings by ``bootstrap``."""

    mapping: MappingConfig = DEFAULT_CONFIG
    consent_policy: str = "strict"    # CONSENT_POLICY: strict | strip_user_data
    consent_missing: str = "send"     # CONSENT_MISSING: send | drop
    regional: RegionalRules = field(default_factory=RegionalRules)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Decision:
    """What the relay does with one queued event.

    ``event`` is what would go to Meta (or to the dead-letter topic when ``dead`` is set);
    None when consent withholds it. ``removed`` names the user_data fields each step took out
    (``consent``, ``regional``, ``guard``): names only, never values.
    """

    consent: ConsentDecision
    event: CapiEvent | None = None
    dead: DeadLetter | None = None
    removed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    ldu: bool = False

    @property
    def send(self) -> bool:
        return self.event is not None and self.dead is None


# -- step 1 -----------------------------------------------------------------------------------

def admit(raw: Any, *, now: float, new_id: Callable[[], str], policy: Policy = DEFAULT_POLICY,
          request: RequestContext = NO_REQUEST, explain: bool = False) -> Mapped:
    """Step 1: the incoming event mapped (rejected with reasons, or ready for the queue);
    ``request`` is what the HTTP request says about the browser, used where the event lacks it.
    """
    return to_capi_event(raw, now=now, new_id=new_id, config=policy.mapping, request=request,
                         explain=explain)


def queued(mapped: Mapped) -> QueuedEvent:
    """What ingest publishes for an admitted event."""
    return QueuedEvent(mapped.event, mapped.client_id, mapped.consent, mapped.dropped)


# -- steps 2-7 --------------------------------------------------------------------------------

def enrichable(item: QueuedEvent, now: float, policy: Policy = DEFAULT_POLICY) -> bool:
    """Whether ``decide`` asks the enrichment port about this event. Profiles are read (and
    written back) only for an event that will be sent with its user data: not when consent
    drops or strips it, not when it is dead-lettered as too old."""
    consent = consent_rules.decide(item.consent, policy=policy.consent_policy,
                                   missing=policy.consent_missing)
    return consent.action is Action.SEND and event_time_problem(
        item.event.event_time, item.event.action_source, now) is None


def decide(item: QueuedEvent, now: float, policy: Policy = DEFAULT_POLICY,
           enrich: Enrich | None = None) -> Decision:
    """Steps 2-7 for one queued event; ``enrich`` is step 3's port (None: no profiles)."""
    consent = consent_rules.decide(item.consent, policy=policy.consent_policy,
                                   missing=policy.consent_missing)
    if consent.action is Action.DROP:
        return Decision(consent)
    event = item.event
    too_old = event_time_problem(event.event_time, event.action_source, now)
    if enrich is not None and consent.action is Action.SEND and too_old is None:
        event = enrich(item, now)
    removed: dict[str, tuple[str, ...]] = {}

    rules = policy.regional.decide(event) if not policy.regional.empty \
        else regional.RegionalDecision()
    event = regional.apply(event, rules)
    if rules.redact:
        removed["regional"] = rules.redact

    if consent.action is Action.STRIP_USER_DATA:
        user_data, gone = _removing(event.user_data, consent_rules.STRIPPED_KEYS)
        if gone:
            event = replace(event, user_data=user_data)
            removed["consent"] = gone

    user_data, bad = guard_hashed(event.user_data)
    if bad:
        event = replace(event, user_data=user_data)
        removed["guard"] = bad

    if too_old:
        dead = DeadLetter(DeadReason.TOO_OLD, message=too_old)
    else:
        problem = customer_information_problem(event.user_data)
        dead = DeadLetter(DeadReason.INSUFFICIENT_CUSTOMER_INFORMATION, message=problem) \
            if problem else None
    return Decision(consent, event, dead, removed, rules.ldu)


def guard_hashed(user_data: UserData) -> tuple[UserData, tuple[str, ...]]:
    """Step 6: ``user_data`` without hashed-key values that are not hashes, and those keys.

    The last check before sending: ingest hashes, profiles hold hashes, yet a value from an old
    or hand-made message must still never reach Meta in clear.
    """
    values = user_data.__dict__  # the fields, read without a getattr per key
    changes: dict[str, tuple[str, ...]] = {}
    for key in HASHED_KEYS:
        found = values[key]
        if found and not all(is_hashed(v) for v in found):
            changes[key] = tuple(v for v in found if is_hashed(v))
    if not changes:
        return user_data, ()
    return user_data.with_values(**changes), tuple(changes)


def _removing(user_data: UserData, keys: tuple[str, ...]) -> tuple[UserData, tuple[str, ...]]:
    gone = tuple(k for k in keys if getattr(user_data, k))
    return (user_data.without(gone), gone) if gone else (user_data, ())
