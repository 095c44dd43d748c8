"""The consent decision for every combination of signals and policy."""

import itertools

import pytest

from capi_relay.core.consent import Action, decide, read_signals


@pytest.mark.parametrize("gcs,action", [
    ("G100", Action.DROP), ("G101", Action.DROP), ("G110", Action.SEND), ("G111", Action.SEND),
])
def test_preview_gcs_cases(gcs, action):
    assert decide({"x-ga-gcs": gcs}).action is action


def test_consent_state_denied_dropped():
    fields = {"consent_state": {"ad_storage": False, "ad_user_data": True}}
    decision = decide(fields)
    assert decision.action is Action.DROP and decision.reason == "denied:ad_storage"


STATES = [True, False, None]


@pytest.mark.parametrize("ad_storage,ad_user_data,ad_personalization,policy,missing",
                         list(itertools.product(STATES, STATES, STATES,
                                                ["strict", "strip_user_data"],
                                                ["send", "drop"])))
def test_every_combination(ad_storage, ad_user_data, ad_personalization, policy, missing):
    consent = {k: ("granted" if v else "denied") for k, v in (
        ("ad_storage", ad_storage), ("ad_user_data", ad_user_data),
        ("ad_personalization", ad_personalization)) if v is not None}
    decision = decide({"consent": consent} if consent else {}, policy=policy, missing=missing)
    if ad_storage is False or ad_user_data is False:
        expected = Action.STRIP_USER_DATA if policy == "strip_user_data" else Action.DROP
    elif not consent:
        expected = Action.DROP if missing == "drop" else Action.SEND
    else:
        expected = Action.SEND
    assert decision.action is expected


@pytest.mark.parametrize("gcd,expected", [
    ("13r3r3r3r5l1", {"ad_storage": True, "ad_user_data": True, "ad_personalization": True}),
    ("13q3q3q2q5l1", {"ad_storage": False, "ad_user_data": False, "ad_personalization": False}),
    ("13t3t3p3v5l1", {"ad_storage": True, "ad_user_data": False, "ad_personalization": True}),
    ("11l1l1l1l5", {}),
])
def test_gcd_letters(gcd, expected):
    assert read_signals({"x-ga-gcd": gcd}) == expected


def test_stronger_signal_wins():
    fields = {"x-ga-gcs": "G100", "consent": {"ad_storage": "granted"}}
    assert decide(fields).action is Action.SEND
    fields = {"x-ga-gcs": "G111", "consent_state": {"ad_user_data": "denied"}}
    assert decide(fields).action is Action.DROP


def test_garbage_signals_are_no_signal():
    assert read_signals({"x-ga-gcs": "banana", "consent": "yes please"}) == {}
