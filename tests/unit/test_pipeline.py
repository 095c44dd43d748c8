"""The decision pipeline with plain values: the steps' order and what each decides."""

from dataclasses import replace

import pytest

from capi_relay.core import pipeline
from capi_relay.core.consent import Action
from capi_relay.core.delivery import DeadReason
from capi_relay.core.envelope import QueuedEvent
from capi_relay.core.model import ActionSource, CapiEvent, UserData
from capi_relay.core.normalize import sha256_hex
from capi_relay.core.regional import RegionalRules

NOW = 1_732_450_000.0
EM = sha256_hex("jane@example.com")
DE = sha256_hex("de")


def event(**user_data):
    return CapiEvent("Purchase", int(NOW), "e1", ActionSource.WEBSITE,
                     UserData(**{"client_user_agent": "UA/1", "client_ip_address": "203.0.113.1",
                                 **user_data}))


def item(consent=None, **user_data):
    return QueuedEvent(event(**user_data), "555.666", consent or {})


class Spy:
    def __init__(self, fill=None):
        self.calls = 0
        self.fill = fill or {}

    def __call__(self, queued, now):
        self.calls += 1
        return replace(queued.event, user_data=queued.event.user_data.with_values(**self.fill))


def test_granted_event_passes_every_step_unchanged():
    decision = pipeline.decide(item({"x-ga-gcs": "G111"}, em=(EM,)), NOW)
    assert decision.send and decision.consent.action is Action.SEND
    assert decision.event == event(em=(EM,)) and decision.removed == {}


@pytest.mark.parametrize("consent", [{"x-ga-gcs": "G100"}, {"x-ga-gcd": "13p3p3p3p5"},
                                     {"consent_state": {"ad_storage": False}},
                                     {"consent_state": {"ad_user_data": "denied"}}])
def test_denied_consent_withholds_before_any_enrichment(consent):
    spy = Spy()
    decision = pipeline.decide(item(consent, em=(EM,)), NOW, enrich=spy)
    assert decision.event is None and not decision.send and spy.calls == 0


def test_regional_rules_read_the_country_before_consent_strips_it():
    rules = pipeline.Policy(consent_policy="strip_user_data",
                            regional=RegionalRules.from_settings(("de",), {"de": ["fbp"]}))
    decision = pipeline.decide(item({"x-ga-gcs": "G100"}, em=(EM,), country=(DE,),
                                    fbp="fb.1.2.3"), NOW, rules, enrich=Spy())
    assert decision.ldu and decision.event.data_processing_options == ("LDU",)
    assert decision.removed == {"regional": ("fbp",), "consent": ("em", "country")}
    assert decision.event.user_data.present_keys() == ("client_ip_address", "client_user_agent")
    assert decision.send


def test_the_guard_runs_after_enrichment_and_without_any_enricher():
    raw = "jane@example.com"
    with_port = pipeline.decide(item(), NOW, enrich=Spy({"em": (raw, EM)}))
    assert with_port.event.user_data.em == (EM,) and with_port.removed == {"guard": ("em",)}
    without = pipeline.decide(item(ph=("+4915112345678",), external_id=("x" * 64,)), NOW)
    assert without.event.user_data.ph == () and without.removed == {"guard": ("ph", "external_id")}


def test_sufficiency_is_judged_after_enrichment():
    thin = QueuedEvent(replace(event(), user_data=UserData(client_user_agent="UA/1")), "555.666")
    alone = pipeline.decide(thin, NOW)
    assert alone.dead.reason is DeadReason.INSUFFICIENT_CUSTOMER_INFORMATION
    assert "user_data" in alone.dead.message and not alone.send
    enriched = pipeline.decide(thin, NOW, enrich=Spy({"em": (EM,)}))
    assert enriched.send and enriched.dead is None


def test_too_old_is_dead_lettered_and_costs_no_enrichment():
    spy = Spy()
    decision = pipeline.decide(item(em=(EM,)), NOW + 8 * 86400, enrich=spy)
    assert decision.dead.reason is DeadReason.TOO_OLD and spy.calls == 0


def test_user_data_edits_without_round_trips():
    user_data = UserData(em=(EM,), fbp="fb.1.2.3", client_user_agent="UA/1")
    assert user_data.without(("ph", "fn")) is user_data
    assert user_data.without(("em", "fbp")) == UserData(client_user_agent="UA/1")
    assert user_data.with_values(ph=(EM,)).ph == (EM,)
    with pytest.raises(TypeError):
        user_data.with_values(email=(EM,))
