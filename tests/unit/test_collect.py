"""The GA4 collect-protocol parser on hits shaped like the ones gtag.js sends, and bad ones."""

from urllib.parse import quote

import pytest

from capi_relay.core import consent
from capi_relay.core.collect import parse_collect, parse_item
from capi_relay.core.mapping import RequestContext, to_capi_event
from samples import NOW

# What gtag.js (v2, Consent Mode v2) puts in the URL of a hit to a server_container_url:
# shared params first, then the event's. Browser hints (uaa, uab, ...) are in it as well.
SHARED = (
    "v=2&tid=G-ABC123XYZ&gtm=45je4bk0v9101234567za200&_p=1732450000123&gcs=G111"
    "&gcd=13t3t3t3t5l1&npa=0&dma=0&cid=1234567890.1732450000&ul=en-us&sr=1920x1080"
    "&uaa=x86&uab=64&uafvl=Chromium%3B130.0.0.0&uamb=0&uam=&uap=Linux&uapv=6.5.0&uaw=0"
    "&are=1&frm=0&pscdl=noapi&_s=2&sid=1732450000&sct=3&seg=1"
    "&dl=https%3A%2F%2Fshop.example.com%2Fcheckout%2Fthanks%3Ffbclid%3DIwAR2abc"
    "&dr=https%3A%2F%2Fshop.example.com%2Fcheckout&dt=Thank%20you&tfd=5321"
)
PAGE_VIEW = SHARED + "&en=page_view&_fv=1&_nsi=1&_ss=1&_ee=1&tfd=1234"
PURCHASE_LINE = (
    "en=purchase&_et=1200&ep.transaction_id=T-1001&epn.value=129.9&cu=EUR"
    "&ep.coupon=SUMMER&epn.tax=4.5&ep.event_id=evt-42"
    "&pr1=idSKU-1~nmTrail%20shoe~brAcme~caShoes~c2Trail~vaBlue~pr99.9~qt1~k0color~v0blue"
    "&pr2=idSKU-2~nmSocks~pr15~qt2"
)
UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/130.0 Safari/537.36"


#: what IngestService passes from the HTTP request beside each event
REQUEST = RequestContext(ip="203.0.113.7", user_agent=UA)


def test_page_view_from_the_url_alone():
    hits = parse_collect(PAGE_VIEW)
    assert hits.problems == ()
    (event,) = hits.events
    assert event == {
        "event_name": "page_view",
        "page_location": "https://shop.example.com/checkout/thanks?fbclid=IwAR2abc",
        "page_referrer": "https://shop.example.com/checkout",
        "page_title": "Thank you",
        "client_id": "1234567890.1732450000",
        "x-ga-measurement_id": "G-ABC123XYZ",
        "x-ga-gcs": "G111",
        "x-ga-gcd": "13t3t3t3t5l1",
        "ga_session_id": "1732450000",
        "ga_session_number": "3",
        "ga_session_engaged": "1",
        "language": "en-us",
    }
    mapped = to_capi_event(event, now=NOW, new_id=lambda: "new-id", request=REQUEST)
    assert mapped.ok, mapped.reasons
    assert mapped.event.event_name == "PageView"
    assert mapped.event.user_data.fbc.endswith(".IwAR2abc")  # from fbclid in dl
    assert mapped.client_id == "1234567890.1732450000"


def test_purchase_with_two_items_in_a_post_body():
    hits = parse_collect(SHARED, PURCHASE_LINE.encode())
    assert hits.problems == ()
    (event,) = hits.events
    assert event["event_name"] == "purchase"
    assert event["transaction_id"] == "T-1001"
    assert event["value"] == 129.9 and event["tax"] == 4.5
    assert event["currency"] == "EUR" and event["coupon"] == "SUMMER"
    assert event["engagement_time_msec"] == 1200
    assert event["items"] == [
        {"item_id": "SKU-1", "item_name": "Trail shoe", "item_brand": "Acme",
         "item_category": "Shoes", "item_category2": "Trail", "item_variant": "Blue",
         "price": 99.9, "quantity": 1, "color": "blue"},
        {"item_id": "SKU-2", "item_name": "Socks", "price": 15, "quantity": 2},
    ]
    mapped = to_capi_event(event, now=NOW, new_id=lambda: "new-id", request=REQUEST)
    assert mapped.ok, mapped.reasons
    capi = mapped.event.to_wire()
    assert capi["event_name"] == "Purchase" and capi["event_id"] == "evt-42"
    assert capi["custom_data"]["value"] == 129.9 and capi["custom_data"]["currency"] == "EUR"
    assert capi["custom_data"]["order_id"] == "T-1001"
    assert [c["id"] for c in capi["custom_data"]["contents"]] == ["SKU-1", "SKU-2"]
    assert capi["user_data"]["client_user_agent"] == UA


def test_several_events_per_body_line_params_win_over_shared():
    body = "\n".join([
        "en=view_item&pr1=idSKU-1~nmTrail%20shoe~pr99.9",
        "",  # blank lines are not events
        "en=add_to_cart&dl=https%3A%2F%2Fshop.example.com%2Fcart&epn.value=99.9&cu=EUR",
        "en=scroll&epn.percent_scrolled=90",
    ])
    hits = parse_collect(SHARED, body)
    assert [e["event_name"] for e in hits.events] == ["view_item", "add_to_cart", "scroll"]
    assert hits.events[0]["page_location"].startswith("https://shop.example.com/checkout/")
    assert hits.events[1]["page_location"] == "https://shop.example.com/cart"
    assert hits.events[2]["percent_scrolled"] == 90
    assert all(e["client_id"] == "1234567890.1732450000" for e in hits.events)


def test_consent_denied_hit_carries_gcs_and_the_consent_rule_drops_it():
    hit = PAGE_VIEW.replace("gcs=G111", "gcs=G100").replace("gcd=13t3t3t3t5l1",
                                                            "gcd=13p3p3p2p5l1")
    (event,) = parse_collect(hit).events
    assert event["x-ga-gcs"] == "G100" and event["x-ga-gcd"] == "13p3p3p2p5l1"
    mapped = to_capi_event(event, now=NOW, new_id=lambda: "id", request=REQUEST)
    assert mapped.consent == {"x-ga-gcs": "G100", "x-ga-gcd": "13p3p3p2p5l1"}
    decision = consent.decide(mapped.consent)
    assert decision.action is consent.Action.DROP
    assert decision.reason == "denied:ad_storage,ad_user_data"
    gcs_only = parse_collect(hit.replace("&gcd=13p3p3p2p5l1", "")).events[0]
    assert consent.decide({"x-ga-gcs": gcs_only["x-ga-gcs"]}).action is consent.Action.DROP


def test_user_properties_and_user_id():
    hits = parse_collect(PAGE_VIEW + "&uid=customer-1001&up.plan=gold&upn.orders=7")
    (event,) = hits.events
    assert event["user_id"] == "customer-1001"
    assert event["user_properties"] == {"plan": "gold", "orders": 7}
    mapped = to_capi_event(event, now=NOW, new_id=lambda: "id", request=REQUEST)
    assert mapped.event.user_data.external_id  # user_id is a match key (hashed)


@pytest.mark.parametrize("value,expected", [
    # gtag.js glues each code to its value
    ("idSKU~nmName~pr9.99~qt2~brBrand~caCat",
     {"item_id": "SKU", "item_name": "Name", "price": 9.99, "quantity": 2,
      "item_brand": "Brand", "item_category": "Cat"}),
    # the spelling: code and value as separate ~ fields
    ("id~SKU~nm~Name~pr~9.99~qt~2~br~Brand~ca~Cat",
     {"item_id": "SKU", "item_name": "Name", "price": 9.99, "quantity": 2,
      "item_brand": "Brand", "item_category": "Cat"}),
    ("nmGift card~pr25", {"item_name": "Gift card", "price": 25}),
    ("idA~afStore~cpX~ds1.5~lp3~lnRelated~liL1",
     {"item_id": "A", "affiliation": "Store", "coupon": "X", "discount": 1.5, "index": 3,
      "item_list_name": "Related", "item_list_id": "L1"}),
])
def test_item_spellings(value, expected):
    problems = []
    assert parse_item(value, "pr1", problems) == expected
    assert problems == []


@pytest.mark.parametrize("query,body,problems,count", [
    ("v=2&cid=1.2", "", ("en",), 0),                                   # no event name
    ("v=1&t=pageview&tid=UA-1-1", "", ("v",), 0),                      # Universal Analytics
    ("v=2&en=purchase&epn.value=12%2C5&cu=EUR", "", ("epn.value",), 1),
    ("v=2&en=purchase&epn.value=NaN", "", ("epn.value",), 1),
    ("v=2&en=x&pr1=qt2~pr3", "", ("pr1",), 1),                         # item without id/name
    ("v=2&en=x&pr1=idA~qtmany~prfree", "", ("pr1.qt", "pr1.pr"), 1),
    ("v=2&en=x&pr1=idA~qt1.5", "", ("pr1.qt",), 1),
    ("v=2&en=x&_et=soon", "", ("_et",), 1),
    ("v=2&en=x&upn.age=old", "", ("upn.age",), 1),
    ("v=2", "en=a\nv=9&en=b\ncid=3", ("v", "en"), 1),
    ("%%%&&&==&en=x", "", (), 1),
    ("", "\x00\xff garbage \n", ("en",), 0),
])
def test_bad_input_names_the_field_and_never_raises(query, body, problems, count):
    hits = parse_collect(query, body)
    assert hits.problems == problems
    assert len(hits.events) == count


def test_bad_numbers_leave_the_field_out():
    (event,) = parse_collect("v=2&en=purchase&epn.value=abc&cu=EUR&pr1=idA~prfree~qt1").events
    assert "value" not in event
    assert event["items"] == [{"item_id": "A", "quantity": 1}]


def test_problems_name_fields_never_values():
    secret = "jane.doe@example.com"
    hits = parse_collect(f"v=2&en=x&epn.value={quote(secret)}&pr1=qt1~nm&_et={quote(secret)}")
    assert hits.problems == ("epn.value", "pr1", "_et")
    assert not any("jane" in p for p in hits.problems)


def test_the_transport_owns_request_fields_and_limits_are_kept():
    (event,) = parse_collect("v=2&en=x&ep._request=spoofed").events
    assert "_request" not in event
    many = "\n".join(f"en=e{i}" for i in range(1005))
    hits = parse_collect("v=2", many, max_events=1000)
    assert len(hits.events) == 1000 and hits.problems == ("body: too many events",)


def test_items_keep_their_index_order():
    (event,) = parse_collect("v=2&en=x&pr10=idJ&pr2=idB&pr1=idA").events
    assert [i["item_id"] for i in event["items"]] == ["A", "B", "J"]
