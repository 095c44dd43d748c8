"""Regional rules, pure: LDU by country/state and per-country redaction, matched on hashes."""

import pytest

from capi_relay.core.errors import ConfigurationError
from capi_relay.core.mapping import to_capi_event
from capi_relay.core.model import CapiEvent
from capi_relay.core.normalize import sha256_hex
from capi_relay.core.regional import (
    EU_MEMBER_STATES,
    RegionalDecision,
    RegionalRules,
    apply,
)
from samples import NOW, load_event


def mapped(name="datalayer_purchase_web.json", **extra) -> CapiEvent:
    raw = {**load_event(name), **extra}
    result = to_capi_event(raw, now=NOW, new_id=lambda: "id-1")
    assert result.ok, result.reasons
    return result.event


def rules(ldu=(), redact=None):
    return RegionalRules.from_settings(ldu, redact or {})


# The datalayer sample is a purchase from San Francisco, California (billing_state "California",
# billing_country "United States"); the sGTM sample is from Berlin (country "DE", no state).
@pytest.mark.parametrize("regions,ldu", [
    (("us-ca",), True),
    (("US-CA", "us-co"), True),
    (("us-california",), True),   # the state's name normalizes to the same code
    (("us",), True),              # the whole country
    (("us-co",), False),
    (("ca",), False),             # Canada, not California
    (("de",), False),
    ((), False),
])
def test_ldu_regions_match_the_hashed_location(regions, ldu):
    event = mapped()
    assert rules(regions).decide(event).ldu is ldu
    wire = apply(event, rules(regions).decide(event)).to_wire()
    if ldu:
        assert wire["data_processing_options"] == ["LDU"]
        assert wire["data_processing_options_country"] == 0
        assert wire["data_processing_options_state"] == 0
    else:
        assert "data_processing_options" not in wire


def test_event_that_already_says_ldu_keeps_its_own_codes():
    event = mapped(data_processing_options=["LDU"], data_processing_options_country=1,
                   data_processing_options_state=1000)
    out = apply(event, rules(("us-ca",)).decide(event)).to_wire()
    assert (out["data_processing_options"], out["data_processing_options_country"],
            out["data_processing_options_state"]) == (["LDU"], 1, 1000)


def test_ldu_passes_through_from_events_without_any_rule():
    event = mapped("page_view.json", data_processing_options=["LDU"],
                   data_processing_options_country=0, data_processing_options_state=0)
    assert apply(event, rules().decide(event)).data_processing_options == ("LDU",)


def test_configured_region_overrides_an_explicit_empty_list():
    event = mapped(data_processing_options=[])
    assert apply(event, rules(("us-ca",)).decide(event)).data_processing_options == ("LDU",)


def test_state_rule_applies_when_the_country_is_unknown_but_not_to_another_country():
    no_country = mapped(billing_country=None, billing_state="CA")
    assert not no_country.user_data.country and no_country.user_data.st
    assert rules(("us-ca",)).decide(no_country).ldu
    elsewhere = mapped(billing_country="Italy", billing_state="CA")  # Cagliari's code
    assert not rules(("us-ca",)).decide(elsewhere).ldu


def test_event_without_location_is_left_alone():
    event = mapped("page_view.json")
    assert rules(("us",), {"eu": ["client_ip_address"]}).decide(event) == RegionalDecision()


def test_eu_redaction_removes_fields_for_member_states_only():
    german = mapped("ga4_purchase_sgtm.json")
    redacting = rules(redact={"eu": ["client_ip_address", "ph"]})
    decision = redacting.decide(german)
    assert decision == RegionalDecision(False, ("client_ip_address", "ph"))
    sent = apply(german, decision).to_wire()["user_data"]
    assert "client_ip_address" not in sent and "ph" not in sent
    assert {"em", "client_user_agent", "fbp"} <= set(sent)
    american = mapped()
    assert redacting.decide(american) == RegionalDecision()


def test_redaction_by_single_country_and_groups():
    assert len(EU_MEMBER_STATES) == 27
    by_country = rules(redact={"de": ["client_ip_address"], "fr": ["em"]})
    assert by_country.decide(mapped("ga4_purchase_sgtm.json")).redact == ("client_ip_address",)
    eea = rules(redact={"eea": ["em"]})
    norwegian = mapped("ga4_purchase_sgtm.json", user_data={
        **load_event("ga4_purchase_sgtm.json")["user_data"],
        "address": {"country": "NO", "city": "Oslo"}})
    assert eea.decide(norwegian).redact == ("em",)
    assert rules(redact={"eu": ["em"]}).decide(norwegian).redact == ()


def test_fields_absent_from_the_event_are_not_reported_as_redacted():
    event = mapped("ga4_purchase_sgtm.json")
    assert rules(redact={"de": ["madid", "em"]}).decide(event).redact == ("em",)


def test_rules_hold_hashes_only():
    built = rules(("us-ca",), {"de": ["client_ip_address"]})
    assert built.ldu[0].country == sha256_hex("us") and built.ldu[0].state == sha256_hex("ca")
    assert set(built.redact) == {sha256_hex("de")}


@pytest.mark.parametrize("ldu,redact,named", [
    (("xx",), {}, "'xx'"),
    (("us-zz",), {}, "'us-zz'"),
    ((), {"europe": ["em"]}, "'europe'"),
    ((), {"de": ["email"]}, "email"),
    ((), {"de": "client_ip_address"}, "'de'"),
])
def test_bad_configuration_is_refused_naming_the_entry(ldu, redact, named):
    with pytest.raises(ConfigurationError) as err:
        RegionalRules.from_settings(ldu, redact)
    assert named in str(err.value)
