"""Consent cases test_consent.py does not cover: the sample events end to end, unprefixed keys.

Each sample is mapped as ingest maps it; the consent fields it carries travel on the queue
(``Mapped.consent``) and ``decide`` reads them in the processor.
"""

import pytest

from capi_relay.core.consent import Action, decide
from capi_relay.core.mapping import to_capi_event
from samples import NOW, load_event


def consent_of(name, **extra):
    mapped = to_capi_event({**load_event(name), **extra}, now=NOW, new_id=lambda: "x")
    assert mapped.ok, mapped.reasons
    return mapped.consent


@pytest.mark.parametrize("sample,missing,action,reason", [
    # x-ga-gcs "G111": ad_storage granted (GA4 gcs: G1<ad_storage><analytics_storage>)
    ("ga4_purchase_sgtm.json", "drop", Action.SEND, "granted"),
    # x-ga-gcd "13r3r3r3r5l1": every purpose granted by update ("r")
    ("lead.json", "drop", Action.SEND, "granted"),
    # no consent field at all: CONSENT_MISSING decides
    ("page_view.json", "send", Action.SEND, "no_signal"),
    ("page_view.json", "drop", Action.DROP, "no_signal"),
])
def test_sample_events(sample, missing, action, reason):
    decision = decide(consent_of(sample), missing=missing)
    assert (decision.action, decision.reason) == (action, reason)


def test_unprefixed_gcs_and_gcd_are_read_too():
    assert decide({"gcs": "G100"}).action is Action.DROP
    assert decide({"gcd": "13q3q3q2q5l1"}).reason == "denied:ad_storage,ad_user_data"


def test_gcd_denying_ad_user_data_outweighs_gcs_granting_ad_storage():
    fields = consent_of("ga4_purchase_sgtm.json", **{"x-ga-gcd": "13t3t3p3v5l1"})
    assert fields == {"x-ga-gcs": "G111", "x-ga-gcd": "13t3t3p3v5l1"}
    decision = decide(fields)
    assert (decision.action, decision.reason) == (Action.DROP, "denied:ad_user_data")
    assert decide(fields, policy="strip_user_data").action is Action.STRIP_USER_DATA


def test_ad_personalization_denied_alone_still_sends_even_when_missing_means_drop():
    fields = {"consent": {"ad_storage": "granted", "ad_user_data": "granted",
                          "ad_personalization": "denied"}}
    assert decide(fields, missing="drop").action is Action.SEND
