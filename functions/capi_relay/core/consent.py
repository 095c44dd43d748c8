"""Consent: read the signals an event carries and decide what may be sent. Pure.

Signals, strongest first: an explicit ``consent`` object, sGTM's ``consent_state``, Consent
Mode v2's ``gcd`` (``x-ga-gcd``), GA4's ``gcs`` (``x-ga-gcs``, ``G1<ad_storage><analytics>``).
The relay reads three purposes: ad_storage, ad_user_data, ad_personalization.

Policy (``CONSENT_POLICY``): ``strict`` drops an event when ad_storage or ad_user_data is
denied; ``strip_user_data`` sends it without the identifiers that consent covers (contact
keys, external_id, fbp, fbc), keeping IP and user agent, which Meta needs for any website event.
With no signal at all, ``CONSENT_MISSING`` decides (``send`` by default, or ``drop``).
ad_personalization alone does not stop an event: it governs ad personalization, which the
advertiser controls in Meta's ad settings, not whether a conversion is measured.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from typing import Any, Mapping

PURPOSES = ("ad_storage", "ad_user_data", "ad_personalization")

#: Consent Mode v2 gcd letters: granted ones (by default or by update)
_GCD_GRANTED = frozenset("tnrv")
_GCD_DENIED = frozenset("pqmu")


class Action(str, Enum):
    SEND = "send"
    STRIP_USER_DATA = "strip_user_data"
    DROP = "drop"


@dataclass(frozen=True)
class ConsentDecision:
    action: Action
    reason: str


def _flag(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in ("granted", "true", "yes", "1", "y"):
            return True
        if text in ("denied", "false", "no", "0", "n"):
            return False
    return None


def _from_object(obj: Any) -> dict[str, bool]:
    if not isinstance(obj, Mapping):
        return {}
    out = {}
    for purpose in PURPOSES:
        flag = _flag(obj.get(purpose))
        if flag is not None:
            out[purpose] = flag
    return out


def _from_gcd(gcd: Any) -> dict[str, bool]:
    if not isinstance(gcd, str):
        return {}
    letters = re.findall(r"[a-z]", gcd.strip().lower())
    out = {}
    # letter order: ad_storage, analytics_storage, ad_user_data, ad_personalization
    for purpose, position in (("ad_storage", 0), ("ad_user_data", 2), ("ad_personalization", 3)):
        if position < len(letters):
            letter = letters[position]
            if letter in _GCD_GRANTED:
                out[purpose] = True
            elif letter in _GCD_DENIED:
                out[purpose] = False
    return out


def _from_gcs(gcs: Any) -> dict[str, bool]:
    if not isinstance(gcs, str):
        return {}
    match = re.fullmatch(r"G1([01])([01])", gcs.strip())
    return {"ad_storage": match.group(1) == "1"} if match else {}


def read_signals(fields: Mapping[str, Any]) -> dict[str, bool]:
    """Merged purposes -> granted, from the consent fields an event carried."""
    merged: dict[str, bool] = {}
    sources = (
        _from_gcs(fields.get("x-ga-gcs", fields.get("gcs"))),
        _from_gcd(fields.get("x-ga-gcd", fields.get("gcd"))),
        _from_object(fields.get("consent_state")),
        _from_object(fields.get("consent")),
    )
    for source in sources:  # weakest first, so stronger sources overwrite
        merged.update(source)
    return merged


def decide(fields: Mapping[str, Any], *, policy: str = "strict",
           missing: str = "send") -> ConsentDecision:
    """What to do with an event given its consent fields and the deployment's policy."""
    signals = read_signals(fields)
    denied = [p for p in ("ad_storage", "ad_user_data") if signals.get(p) is False]
    if denied:
        reason = "denied:" + ",".join(denied)
        if policy == "strip_user_data":
            return ConsentDecision(Action.STRIP_USER_DATA, reason)
        return ConsentDecision(Action.DROP, reason)
    if not signals:
        if missing == "drop":
            return ConsentDecision(Action.DROP, "no_signal")
        return ConsentDecision(Action.SEND, "no_signal")
    return ConsentDecision(Action.SEND, "granted")


#: what strip_user_data removes: everything consent covers, keeping what any web event needs
STRIPPED_KEYS = ("em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country",
                 "external_id", "fbp", "fbc")
