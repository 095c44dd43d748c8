"""Mapping of each input shape to the CAPI event Meta expects."""

import hashlib
import json

import pytest

from capi_relay.core.mapping import (
    MappingConfig,
    build_fbc,
    detect_shape,
    parse_event_time,
    to_capi_event,
)
from samples import NOW, load_event

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0"


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def ids():
    return "generated-id"


def web_event(**extra):
    base = {"event_name": "page_view", "page_location": "https://example.com/",
            "user_agent": UA, "ip_override": "203.0.113.9"}
    base.update(extra)
    return base


def mapped(raw, **kwargs):
    return to_capi_event(raw, now=NOW, new_id=ids, **kwargs)


def test_ga4_purchase_from_sgtm():
    result = mapped(load_event("ga4_purchase_sgtm.json"))
    assert result.shape == "ga4" and result.reasons == ()
    wire = result.event.to_wire()
    assert wire["event_name"] == "Purchase"
    assert wire["event_id"] == "sgtm-purchase-1001"
    assert wire["action_source"] == "website"
    assert wire["event_time"] == int(NOW)
    assert wire["event_source_url"].startswith("https://shop.example.com/checkout/thanks")
    assert wire["referrer_url"] == "https://shop.example.com/checkout"
    custom = wire["custom_data"]
    assert custom["value"] == 129.9 and custom["currency"] == "EUR"
    assert custom["order_id"] == "T-1001"
    assert custom["content_ids"] == ["SKU-1", "SKU-2"]
    assert custom["num_items"] == 3 and custom["content_type"] == "product"
    assert custom["contents"][0] == {"id": "SKU-1", "quantity": 1, "item_price": 99.9,
                                     "title": "Trail shoe", "brand": "Acme",
                                     "category": "Shoes"}
    user = wire["user_data"]
    assert user["em"] == [sha("jane.doe@example.com")]
    assert user["ph"] == [sha("491701234567")]
    assert user["fn"] == [sha("jane")] and user["ln"] == [sha("doe")]
    assert user["ct"] == [sha("berlin")] and user["zp"] == [sha("10115")]
    assert user["country"] == [sha("de")]
    assert user["external_id"] == [sha("customer-1001")]
    assert user["client_ip_address"] == "203.0.113.7"
    assert user["client_user_agent"].startswith("Mozilla/5.0")
    assert user["fbp"] == "fb.1.1732450000000.1098115397"
    assert user["fbc"] == f"fb.1.{int(NOW) * 1000}.IwAR2sGTMdemoClick"
    assert result.client_id == "1234567890.1732450000"
    assert result.consent == {"x-ga-gcs": "G111"}


def test_datalayer_purchase_posted_as_is():
    raw = load_event("datalayer_purchase_web.json")
    result = mapped(raw)
    assert result.shape == "datalayer" and result.ok
    wire = result.event.to_wire()
    assert wire["event_name"] == "Purchase"
    assert wire["event_id"] == "generated-id"
    custom = wire["custom_data"]
    assert custom["value"] == 54 and isinstance(custom["value"], int)
    assert custom["currency"] == "USD" and custom["order_id"] == "WEB-2002"
    assert custom["contents"] == [{"id": "MUG-7", "quantity": 3, "item_price": 18,
                                   "title": "Mug"}]
    user = wire["user_data"]
    assert user["em"] == [sha("john.smith@example.org")]
    assert user["ph"] == [sha("16505551234")]
    assert user["st"] == [sha("ca")] and user["zp"] == [sha("94107")]
    assert user["ct"] == [sha("sanfrancisco")] and user["country"] == [sha("us")]
    assert user["fbp"] == "fb.1.1732450001000.987654321"


def test_native_capi_event_raw_identifiers_hashed_and_hashes_kept():
    hashed = sha("a@b.com").upper()
    raw = {"event_name": "Lead", "action_source": "system_generated", "event_time": int(NOW),
           "user_data": {"em": ["A@B.com", hashed], "ph": "+1 650 555 1234"},
           "custom_data": {"lead_event_source": "crm", "value": "10"}}
    result = mapped(raw)
    assert result.shape == "capi" and result.ok
    wire = result.event.to_wire()
    assert wire["user_data"]["em"] == [sha("a@b.com")]  # the same value once
    assert wire["user_data"]["ph"] == [sha("16505551234")]
    assert wire["custom_data"] == {"lead_event_source": "crm", "value": 10}
    assert "event_source_url" not in wire


@pytest.mark.parametrize("incoming,expected", [
    ("page_view", "PageView"), ("gtm.dom", "PageView"), ("view_item", "ViewContent"),
    ("add_to_cart", "AddToCart"), ("add_to_wishlist", "AddToWishlist"),
    ("begin_checkout", "InitiateCheckout"), ("add_payment_info", "AddPaymentInfo"),
    ("search", "Search"), ("generate_lead", "Lead"), ("sign_up", "CompleteRegistration"),
    ("contact", "Contact"), ("customize_product", "CustomizeProduct"), ("donate", "Donate"),
    ("find_location", "FindLocation"), ("schedule", "Schedule"), ("start_trial", "StartTrial"),
    ("submit_application", "SubmitApplication"), ("subscribe", "Subscribe"),
    ("newsletter_optin", "newsletter_optin"),
])
def test_event_names(incoming, expected):
    assert mapped(web_event(event_name=incoming)).event.event_name == expected


def test_event_names_overridable_and_aliases_extendable():
    config = MappingConfig.from_settings(event_names={"newsletter_optin": "Subscribe"},
                                         field_aliases={"em": ["form.mail"]})
    result = mapped(web_event(event_name="newsletter_optin", form={"mail": "x@y.io"}),
                    config=config)
    assert result.event.event_name == "Subscribe"
    assert result.event.user_data.em == (sha("x@y.io"),)


def test_unknown_alias_target_is_a_configuration_error():
    with pytest.raises(KeyError):
        MappingConfig.from_settings(field_aliases={"emial": ["x"]})


@pytest.mark.parametrize("raw,expected", [
    (1732450000, 1732450000), (1732450000123, 1732450000), ("1732450000", 1732450000),
    (1732450000123456, 1732450000), ("2024-11-24T12:06:40Z", 1732450000),
    ("2024-11-24T13:06:40+01:00", 1732450000), ("2024-11-24T12:06:40", 1732450000),
    ("yesterday", None), (True, None), (-5, None),
])
def test_event_time_formats(raw, expected):
    assert parse_event_time(raw) == expected


@pytest.mark.parametrize("change,reason_start", [
    ({"event_name": None}, "event_name: missing"),
    ({"action_source": "web"}, "action_source: must be one of"),
    ({"event_time": NOW - 8 * 86400}, "event_time: older than 7 days"),
    ({"event_time": NOW + 3600}, "event_time: in the future"),
    ({"event_time": "soon"}, "event_time: not a timestamp"),
    ({"page_location": None}, "event_source_url: required for website events"),
    ({"user_agent": None, "email": "a@b.co"}, "client_user_agent: required"),
    ({"event_name": "purchase", "value": 3}, "custom_data: Purchase needs value and currency"),
])
def test_rejections_name_the_field(change, reason_start):
    raw = {k: v for k, v in {**web_event(), **change}.items() if v is not None}
    result = mapped(raw)
    assert result.event is None
    assert any(r.startswith(reason_start) for r in result.reasons), result.reasons


def test_physical_store_events_may_be_62_days_old():
    raw = {"event_name": "Purchase", "action_source": "physical_store",
           "event_time": NOW - 30 * 86400, "email": "a@b.co", "value": 1, "currency": "USD"}
    assert mapped(raw).ok
    raw["event_time"] = NOW - 63 * 86400
    assert mapped(raw).reasons == ("event_time: older than 62 days",)


def test_invalid_value_drops_the_field_never_the_event_and_never_echoes_it():
    raw = web_event(email="not-an-email", phone="12", value="lots", currency="euros")
    result = mapped(raw)
    assert result.ok
    assert {"user_data.em", "user_data.ph", "custom_data.value",
            "custom_data.currency"} <= set(result.dropped)
    assert "not-an-email" not in repr(result)
    assert result.event.user_data.em == ()


def test_fbc_cookie_kept_when_it_holds_the_same_click():
    cookie = "fb.1.1700000000000.AbC123"
    url = "https://example.com/?fbclid=AbC123"
    result = mapped(web_event(page_location=url, **{"x-fb-ck-fbc": cookie}))
    assert result.event.user_data.fbc == cookie


def test_fbc_rebuilt_when_fbclid_differs_case_sensitively():
    cookie = "fb.1.1700000000000.abc123"
    url = "https://example.com/?utm_source=fb&fbclid=AbC123"
    result = mapped(web_event(page_location=url, _fbc=cookie))
    assert result.event.user_data.fbc == build_fbc("AbC123", int(NOW) * 1000)
    assert result.event.user_data.fbc == f"fb.1.{int(NOW) * 1000}.AbC123"


def test_malformed_fbc_and_fbp_dropped():
    result = mapped(web_event(_fbc="not-a-cookie", _fbp="fb.x"))
    assert result.ok and result.event.user_data.fbc is None
    assert {"user_data.fbc", "user_data.fbp"} <= set(result.dropped)


def test_client_ip_first_of_list_port_stripped():
    result = mapped(web_event(ip_override="198.51.100.4:5555, 10.0.0.1"))
    assert result.event.user_data.client_ip_address == "198.51.100.4"


def test_multiple_addresses_and_emails_all_reach_meta():
    raw = web_event(email="one@example.com", billing_email="two@example.com",
                    user_data={"address": [{"city": "Paris"}, {"city": "Lyon"}]})
    user = mapped(raw).event.user_data
    assert user.em == (sha("one@example.com"), sha("two@example.com"))
    assert user.ct == (sha("paris"), sha("lyon"))


def test_x_fb_cd_and_custom_properties_merged_numbers_as_numbers():
    raw = web_event(**{"x-fb-cd-content_name": "Shoe", "x-fb-cd-predicted_ltv": "120.5",
                       "custom_properties": {"plan": "pro"}})
    custom = mapped(raw).event.custom_data
    assert custom == {"content_name": "Shoe", "predicted_ltv": 120.5, "plan": "pro"}


def test_x_fb_cd_read_on_every_event_whatever_keys_came_before():
    # the mapper remembers which key names are x-fb-cd-*: a known key set without one, then
    # the same keys plus one, then that event again, then a non-text key beside one
    plain = web_event()
    assert mapped(plain).event.custom_data == mapped(plain).event.custom_data == {}
    with_cd = web_event(**{"x-fb-cd-content_name": "Shoe"})
    for _ in range(2):
        assert mapped(with_cd).event.custom_data == {"content_name": "Shoe"}
    odd = web_event(**{"x-fb-cd-status": "gold"})
    odd[7] = "seven"
    for _ in range(2):
        assert mapped(odd).event.custom_data == {"status": "gold"}


def test_purchase_value_derived_from_items_when_missing():
    raw = web_event(event_name="purchase", currency="usd",
                    items=[{"item_id": "A", "price": "2.50", "quantity": 2},
                           {"item_id": "B", "price": 1}])
    custom = mapped(raw).event.custom_data
    assert custom["value"] == 6 and custom["currency"] == "USD" and custom["num_items"] == 3


def test_data_processing_options_passed_through():
    raw = web_event(data_processing_options=["LDU"], data_processing_options_country=1,
                    data_processing_options_state=1000)
    wire = mapped(raw).event.to_wire()
    assert wire["data_processing_options"] == ["LDU"]
    assert wire["data_processing_options_country"] == 1
    assert wire["data_processing_options_state"] == 1000


def test_shapes_detected():
    assert detect_shape({"event": "purchase"}) == "datalayer"
    assert detect_shape({"event_name": "purchase"}) == "ga4"
    assert detect_shape({"event_name": "Purchase", "custom_data": {}}) == "capi"


def test_not_an_object_rejected():
    assert mapped(["x"]).reasons == ("event: must be a JSON object",)


# --- speed tricks keep the answers -----------------------------------------------------------

def _random_event(rng, paths):
    """A nested event holding values at random alias paths: lists of mappings where a path
    fans out (and now and then a single mapping instead), empty values and junk around."""
    values = ["x", "", " ", 0, 1.5, None, [], {}, ["a", ["b"], ""], {"k": "v"}, True, "é"]
    event = {}
    for path in rng.sample(paths, rng.randint(1, 14)):
        node = event
        steps = path.split(".")
        for step in steps[:-1]:
            key = step.removesuffix("[]")
            if step.endswith("[]"):
                child = node.get(key)
                if not isinstance(child, list):
                    child = [{} for _ in range(rng.randint(1, 3))] + rng.choice([[], ["junk"]])
                    node[key] = child if rng.random() < 0.8 else child[0]
                    if not isinstance(node[key], list):
                        child = [node[key]]
                node = rng.choice([c for c in child if isinstance(c, dict)] or [{}])
            else:
                child = node.get(key)
                node = child if isinstance(child, dict) else node.setdefault(key, {})
                if not isinstance(node, dict):
                    break
        else:
            node[steps[-1].removesuffix("[]")] = rng.choice(values)
    return event


def test_compiled_extractor_finds_what_walking_each_path_finds():
    import random

    from capi_relay.core import aliases

    extra = {"em": ("user_data.em", "form.mail", "form[].mail", "form"),  # repeats, overlaps
             "ct": ("user_data.address.city", "user_data.address[].city.name")}
    tables = (aliases.extend(aliases.USER_FIELDS, extra), aliases.EVENT_FIELDS)
    extractor = aliases.Extractor(*tables)
    paths = sorted({p for table in tables for ps in table.values() for p in ps})
    rng = random.Random(20261124)
    for _ in range(1500):
        event = _random_event(rng, paths)
        found = extractor.extract(event)
        for table in tables:
            for field_name, field_paths in table.items():
                walked = [aliases.walk(event, path) for path in field_paths]
                flat = [v for values in walked for value in values
                        for v in (value if isinstance(value, list) else [value])]
                assert found.all(field_name) == flat, (field_name, event)
                first = next((values[0] for values in walked if values), aliases.MISSING)
                assert found.first(field_name) is first, (field_name, event)
                assert (field_name in found) == (first is not aliases.MISSING)
                assert (field_name in found) == (field_name in found.fields())


def test_fast_constructors_build_equal_instances():
    from capi_relay.core.model import ActionSource, CapiEvent, UserData, assemble

    values = {"em": (sha("a@b.co"),), "fbp": "fb.1.2.3", "client_user_agent": UA}
    quick = UserData._of(values)
    assert quick == UserData(**values) and hash(quick) == hash(UserData(**values))
    assert list(vars(quick)) == list(vars(UserData(**values)))
    assert quick.present_keys() == ("em", "client_user_agent", "fbp")
    assert repr(quick) == repr(UserData(**values))
    with pytest.raises(AttributeError):
        quick.em = ()  # still frozen
    fields = {"event_name": "Lead", "event_time": 1, "event_id": "e",
              "action_source": ActionSource.WEBSITE, "user_data": quick, "custom_data": {},
              "event_source_url": None, "referrer_url": None, "opt_out": None,
              "data_processing_options": None, "data_processing_options_country": None,
              "data_processing_options_state": None}
    event = assemble(CapiEvent, dict(fields))
    assert event == CapiEvent(**fields) and event.to_wire() == CapiEvent(**fields).to_wire()


def test_personal_data_in_page_urls_is_removed_other_parameters_kept():
    url = ("https://shop.example.com/thanks?order=7&email=jane%40example.com&utm_source=fb"
           "&ref=jane@example.com&fbclid=AbC")
    result = mapped(web_event(page_location=url,
                              page_referrer="https://shop.example.com/?Phone=123"))
    wire = result.event.to_wire()
    assert wire["event_source_url"] == \
        "https://shop.example.com/thanks?order=7&utm_source=fb&fbclid=AbC"
    assert wire["referrer_url"] == "https://shop.example.com/"
    assert "jane" not in json.dumps(wire)
    assert {"event_source_url.query", "referrer_url.query"} <= set(result.dropped)
    assert result.event.user_data.fbc.endswith(".AbC")


def test_urls_without_personal_parameters_are_untouched():
    url = "https://shop.example.com/p?id=1&b=%20x"
    assert mapped(web_event(page_location=url)).event.event_source_url == url
