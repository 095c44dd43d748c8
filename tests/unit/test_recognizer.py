"""The recognizer finds identifiers by key name wherever sites put them; one person per event."""

import hashlib
import json

import pytest

from capi_relay.core.mapping import MappingConfig, RequestContext, to_capi_event
from capi_relay.core.recognizer import classify_key, recognize
from capi_relay.entrypoints.web import parse_events
from samples import NOW

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/132.0"
URL = "https://shop.example.com/thanks"


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


def mapped(raw, **kwargs):
    kwargs.setdefault("request", RequestContext(user_agent=UA, ip="203.0.113.9"))
    return to_capi_event({"page_location": URL, **raw}, now=NOW, new_id=lambda: "id", **kwargs)


@pytest.mark.parametrize("key,field,role", [
    ("email", "em", None), ("customer_email", "em", None), ("customerBillingEmail", "em", "buyer"),
    ("visitorEmailHash", "em", None), ("sha256_email_address", "em", None),
    ("billing_phone", "ph", "buyer"), ("phone_number", "ph", None), ("firstName", "fn", None),
    ("customer_last_name", "ln", None), ("shippingCity", "ct", "shipping"),
    ("provinceCode", "st", None), ("customer_province_code", "st", None),
    ("postcode", "zp", None), ("customer_zip", "zp", None), ("countryCode", "country", None),
    ("customer_id", "external_id", None), ("visitorId", "external_id", None),
    ("userId", "external_id", None), ("userAgent", "client_user_agent", None),
    ("_fbp", "fbp", None), ("client_id", None, None), ("order_id", None, None),
    ("customer_type", None, None), ("id", None, None),
])
def test_key_names_by_vocabulary(key, field, role):
    found, found_role, _ = classify_key(key)
    assert (found, found_role) == (field, role)


def test_seed_document_customer_push_maps_every_key():
    raw = {"event": "purchase", "ecommerce": {"transaction_id": "T1", "value": 10,
                                              "currency": "USD"},
           "user_data": {"customer_email": "Jane@Example.com", "customer_first_name": "Jane",
                         "customer_last_name": "Doe", "customer_phone": 2175550123,
                         "customer_city": "Springfield", "customer_state": "Illinois",
                         "customer_zip": 62701, "customer_country": "United States",
                         "user_id": "u-1"}}
    user = mapped(raw).event.user_data
    assert user.em == (sha("jane@example.com"),)
    assert user.fn == (sha("jane"),) and user.ln == (sha("doe"),)
    assert user.ph == (sha("12175550123"),)
    assert user.ct == (sha("springfield"),) and user.st == (sha("il"),)
    assert user.zp == (sha("62701"),) and user.country == (sha("us"),)
    assert user.external_id == (sha("u-1"),)


def test_seed_document_billing_push_maps_every_key():
    raw = {"event": "purchase", "ecommerce": {"value": 1, "currency": "EUR"},
           "user_data": {"billing_email": "erika@example.org", "billing_phone": "030 1234567",
                         "billing_first_name": "Erika", "billing_last_name": "Mustermann",
                         "billing_city": "Berlin", "billing_state": "BE",
                         "billing_postcode": "10115", "billing_country": "Deutschland"}}
    user = mapped(raw).event.user_data
    assert user.em == (sha("erika@example.org"),) and user.ph == (sha("49301234567"),)
    assert user.fn == (sha("erika"),) and user.ln == (sha("mustermann"),)
    assert user.ct == (sha("berlin"),) and user.st == (sha("be"),)
    assert user.zp == (sha("10115"),) and user.country == (sha("de"),)


def test_billing_and_shipping_people_are_never_mixed():
    raw = {"event": "purchase", "value": 1, "currency": "USD",
           "billing": {"email": "payer@example.com"},
           "shipping": {"first_name": "Gift", "city": "Austin", "country": "US"}}
    result = mapped(raw, explain=True)
    user = result.event.user_data
    assert user.em == (sha("payer@example.com"),)
    assert user.fn == () and user.ct == () and user.country == ()
    assert "shipping.city" in result.explanation["not_used"]


def test_shipping_is_the_buyer_when_nothing_else_names_anybody_but_a_contact_email():
    raw = {"name": "checkout_completed", "clientId": "c", "context": {},
           "data": {"checkout": {"email": "a@example.com", "billingAddress": None,
                                 "currencyCode": "CAD", "totalPrice": {"amount": 5},
                                 "shippingAddress": {"city": "Montréal", "zip": "H2X 1Y4",
                                                     "countryCode": "CA"}}}}
    user = mapped(raw).event.user_data
    assert user.ct == (sha("montréal"),) and user.zp == (sha("h2x1y4"),)
    assert user.country == (sha("ca"),) and user.em == (sha("a@example.com"),)


def test_explicit_keys_come_first_and_aliases_still_extend():
    config = MappingConfig.from_settings(field_aliases={"em": ["form.contact.mail"]})
    raw = {"event_name": "lead", "form": {"contact": {"mail": "form@example.com"}},
           "user_data": {"em": "first@example.com"}, "customer": {"email": "c@example.com"}}
    user = mapped(raw, config=config).event.user_data
    assert user.em == (sha("first@example.com"), sha("form@example.com"), sha("c@example.com"))


def test_nulls_guest_ids_items_and_shops_are_not_people():
    raw = {"event": "purchase", "value": 1, "currency": "USD", "email": None,
           "orderData": {"customer": {"id": 0, "billing": {"email": ""}}},
           "shop": {"email": "shop@example.com", "city": "Paris"},
           "items": [{"item_id": "A", "email": "x@example.com"}],
           "context": {"navigator": {"userAgent": UA}, "document": {"email": "d@example.com"}}}
    user = mapped(raw).event.user_data
    assert user.em == () and user.external_id == () and user.ct == ()


def test_recognize_reports_paths_and_roles():
    hits = recognize({"orderData": {"customer": {"id": 7, "billing": {"email": "a@b.co"},
                                                 "shipping": {"city": "X"}}}})
    assert ("external_id", 7, None, ("orderData", "customer", "id")) in hits
    assert ("em", "a@b.co", "buyer", ("orderData", "customer", "billing", "email")) in hits
    assert ("ct", "X", "shipping", ("orderData", "customer", "shipping", "city")) in hits


def test_request_context_is_an_argument_and_the_event_wins():
    raw = {"event_name": "page_view", "user_agent": "Event-UA/1", "_fbp": "fb.1.1.1"}
    request = RequestContext(ip="198.51.100.4", user_agent="Request-UA/1", fbp="fb.1.2.2",
                             fbc="fb.1.3.AbC")
    user = mapped(raw, request=request).event.user_data
    assert user.client_user_agent == "Event-UA/1" and user.fbp == "fb.1.1.1"
    assert user.client_ip_address == "198.51.100.4" and user.fbc == "fb.1.3.AbC"
    # a key named like the old injected one is no privileged channel
    spoof = mapped({"event_name": "page_view", "_request": {"ip": "10.0.0.1"}},
                   request=RequestContext(user_agent=UA))
    assert spoof.event.user_data.client_ip_address != "198.51.100.4"


@pytest.mark.parametrize("name,expected", [
    ("dl_purchase", "Purchase"), ("dl_view_item", "ViewContent"), ("dl_add_to_cart", "AddToCart"),
    ("dl_begin_checkout", "InitiateCheckout"), ("dl_subscribe", "Lead"),
    ("dl_sign_up", "CompleteRegistration"), ("checkout_completed", "Purchase"),
    ("product_viewed", "ViewContent"), ("product_added_to_cart", "AddToCart"),
    ("checkout_started", "InitiateCheckout"), ("payment_info_submitted", "AddPaymentInfo"),
    ("search_submitted", "Search"), ("page_viewed", "PageView"),
    ("gtm4wp.orderCompletedEEC", "Purchase"), ("addToCart", "AddToCart"),
    ("my_custom_event", "my_custom_event"),
])
def test_platform_event_names(name, expected):
    raw = {"event": name, "email": "a@b.co", "value": 1, "currency": "USD"}
    assert mapped(raw).event.event_name == expected


def test_event_name_map_still_overrides_platform_names():
    config = MappingConfig.from_settings(event_names={"dl_subscribe": "Subscribe"})
    assert mapped({"event": "dl_subscribe"}, config=config).event.event_name == "Subscribe"


def test_ua_enhanced_ecommerce_purchase_without_event_key():
    raw = {"ecommerce": {"currencyCode": "EUR", "purchase": {
        "actionField": {"id": "T12345", "revenue": "35.43"},
        "products": [{"id": "12345", "price": "15.25", "quantity": 1},
                     {"name": "no id", "price": "1"}]}}}
    result = mapped(raw)
    custom = result.event.custom_data
    assert result.event.event_name == "Purchase"
    assert custom["value"] == 35.43 and custom["currency"] == "EUR"
    assert custom["order_id"] == "T12345" and custom["content_ids"] == ["12345"]
    assert all("id" in c for c in custom["contents"]) and "items.item_id" in result.dropped


def test_native_contents_without_id_are_left_out():
    raw = {"event_name": "ViewContent", "action_source": "system_generated", "email": "a@b.co",
           "custom_data": {"contents": [{"id": "A", "quantity": 1}, {"quantity": 2}]}}
    result = to_capi_event(raw, now=NOW, new_id=lambda: "x")
    assert result.event.custom_data["contents"] == [{"id": "A", "quantity": 1}]
    assert result.event.custom_data["content_ids"] == ["A"]


def test_ga4_measurement_protocol_body_is_one_event_per_entry():
    body = {"client_id": "123.456", "user_id": "u-9", "timestamp_micros": int(NOW * 1e6),
            "user_data": {"sha256_email_address": [sha("a@b.co")]},
            "events": [{"name": "begin_checkout", "params": {"value": 3, "currency": "EUR",
                                                             "page_location": URL}},
                       {"name": "purchase", "params": {"transaction_id": "T9", "value": 3,
                                                       "currency": "EUR",
                                                       "page_location": URL}}]}
    events, problem = parse_events(json.dumps(body).encode())
    assert problem is None and len(events) == 2
    names = []
    for event in events:
        result = mapped(event)
        assert result.ok, result.reasons
        assert result.event.user_data.em == (sha("a@b.co"),)
        assert result.event.user_data.external_id == (sha("u-9"),)
        assert result.client_id == "123.456"
        names.append(result.event.event_name)
    assert names == ["InitiateCheckout", "Purchase"]


def test_the_relays_own_batch_envelope_is_not_a_measurement_protocol_body():
    body = {"events": [{"event_name": "page_view", "name": "x"}, {"event": "purchase"}]}
    events, problem = parse_events(json.dumps(body).encode())
    assert problem is None and events == body["events"]


def test_default_currency_completes_a_purchase_that_omits_it():
    raw = {"event": "purchase", "value": "12.50", "email": "a@b.co"}
    assert not mapped(raw).ok
    config = MappingConfig.from_settings(default_currency="eur")
    assert mapped(raw, config=config).event.custom_data["currency"] == "EUR"


@pytest.mark.parametrize("bad", ["a\ud800@example.com", "a\x00b@example.com", "jo\x07e"])
def test_one_bad_value_drops_that_field_only(bad):
    raw = {"event": "purchase", "value": 1, "currency": "USD", "email": bad,
           "phone": "+1 650 555 1234", "custom_data": {"note": bad, "value": 1}}
    result = mapped(raw)
    assert result.ok, result.reasons
    assert result.event.user_data.em == () and result.event.user_data.ph
    assert "note" not in result.event.custom_data
    assert any(d.startswith("user_data.em") for d in result.dropped)
    assert bad not in repr(result)
    json.dumps(result.event.to_wire(), ensure_ascii=False).encode("utf-8")  # encodable


def test_invalid_utf8_bytes_in_a_body_cost_one_field():
    body = (b'{"event_name":"purchase","page_location":"' + URL.encode() +
            b'","value":1,"currency":"USD","email":"a\xff@b.co","phone":"+16505551234"}')
    events, problem = parse_events(body)
    assert problem is None
    result = mapped(events[0])
    assert result.ok and result.event.user_data.em == () and result.event.user_data.ph


def test_app_and_messaging_events_keep_what_meta_needs_for_them():
    app = {"event_name": "Purchase", "action_source": "app", "value": 1, "currency": "USD",
           "user_data": {"madid": "38400000-8cf0-11bd-b23e-10b96e40000d"},
           "app_data": {"advertiser_tracking_enabled": True,
                        "application_tracking_enabled": True,
                        "extinfo": ["a2", "com.example", "1.0", "1.0", "17.0", "iPhone",
                                    "en_US", "UTC", "", "390", "844", "3", "6", "128", "64",
                                    "UTC"]}}
    wire = to_capi_event(app, now=NOW, new_id=lambda: "x").event.to_wire()
    assert wire["app_data"]["advertiser_tracking_enabled"] is True
    assert len(wire["app_data"]["extinfo"]) == 16
    assert wire["user_data"]["madid"] == "38400000-8cf0-11bd-b23e-10b96e40000d"
    without = {k: v for k, v in app.items() if k != "app_data"}
    assert to_capi_event(without, now=NOW, new_id=lambda: "x").reasons == (
        "app_data: required for app events",)
    chat = {"event_name": "LeadSubmitted", "action_source": "business_messaging",
            "messaging_channel": "messenger",
            "user_data": {"page_id": "1234", "page_scoped_user_id": "5678"}}
    wire = to_capi_event(chat, now=NOW, new_id=lambda: "x").event.to_wire()
    assert wire["messaging_channel"] == "messenger"
    assert wire["user_data"] == {"page_id": "1234", "page_scoped_user_id": "5678"}


def test_referrer_opt_out_and_customer_segmentation_pass_through():
    raw = {"event": "purchase", "value": 1, "currency": "USD", "email": "a@b.co",
           "page_referrer": "https://google.com/", "opt_out": True,
           "customer_segmentation": "new_customer_to_business"}
    wire = mapped(raw).event.to_wire()
    assert wire["referrer_url"] == "https://google.com/" and wire["opt_out"] is True
    assert wire["custom_data"]["customer_segmentation"] == "new_customer_to_business"


def test_explain_names_sources_drops_and_unused_personal_keys_never_values():
    raw = {"event": "purchase", "value": 1, "currency": "USD",
           "user_data": {"customer_email": "jane@example.com", "customer_phone": "12"},
           "address_line_1": "1 Main St", "street": "1 Main St"}
    result = mapped(raw, explain=True)
    explanation = result.explanation
    assert explanation["fields"]["user_data.em"] == ["user_data.customer_email"]
    assert explanation["fields"]["user_data.client_user_agent"] == ["request.user_agent"]
    why = "the value is not a valid ph after Meta's normalization"
    assert {"field": "user_data.ph", "why": why} in explanation["dropped"]
    assert {"address_line_1", "street"} <= set(explanation["not_used"])
    text = json.dumps(explanation)
    assert "jane" not in text.lower() and "Main" not in text


def test_us_zip_plus_four_without_dash_keeps_five_digits_when_the_event_says_us():
    raw = {"event_name": "lead", "customer": {"zip": 940251234, "country": "United States",
                                              "email": "a@b.co"}}
    assert mapped(raw).event.user_data.zp == (sha("94025"),)


def test_segment_style_track_call():
    # segment.com/docs/connections/spec/ecommerce/v2 ("Order Completed") and spec/common
    # (context.traits, context.userAgent, context.ip, context.page)
    raw = {"type": "track", "event": "Order Completed", "userId": "u-77", "messageId": "m-1",
           "context": {"traits": {"email": "s@example.com", "address": {
               "city": "Oakland", "state": "CA", "postalCode": "94607", "country": "USA"}},
               "userAgent": UA, "ip": "198.51.100.7", "page": {"url": URL}},
           "properties": {"order_id": "O-1", "total": 27.5, "currency": "USD",
                          "products": [{"product_id": "P-1", "sku": "SKU-1", "price": 27.5,
                                        "quantity": 1}]}}
    result = to_capi_event(raw, now=NOW, new_id=lambda: "x")
    assert result.ok, result.reasons
    event = result.event
    assert (event.event_name, event.event_id) == ("Purchase", "m-1")
    assert event.event_source_url == URL and event.user_data.client_ip_address == "198.51.100.7"
    assert set(event.user_data.present_keys()) >= {"em", "ct", "st", "zp", "country",
                                                   "external_id", "client_user_agent"}
    assert event.custom_data["order_id"] == "O-1" and event.custom_data["value"] == 27.5
    assert event.custom_data["content_ids"] == ["SKU-1"]


def test_form_fields_as_name_value_pairs():
    raw = {"event": "generate_lead", "form": {"fields": [
        {"name": "your-email", "value": "f@example.com"}, {"name": "Phone", "value": 4915112345678},
        {"name": "message", "value": "hello"}]}}
    user = mapped(raw).event.user_data
    assert user.em == (sha("f@example.com"),) and user.ph == (sha("4915112345678"),)


def test_pixel_parameters_forwarded_as_given_to_fbq():
    raw = {"event": "ViewContent", "content_ids": ["A", 7], "content_type": "product",
           "value": 3, "currency": "eur", "email": "a@b.co"}
    custom = mapped(raw).event.custom_data
    assert custom["content_ids"] == ["A", "7"] and custom["content_type"] == "product"


def test_shopify_global_ids_become_the_numbers_catalogs_hold():
    raw = {"name": "checkout_completed", "id": "sh-1", "clientId": "c", "context": {},
           "data": {"checkout": {"email": "a@b.co", "currencyCode": "USD",
                                 "totalPrice": {"amount": 5},
                                 "order": {"id": "gid://shopify/OrderIdentity/123"},
                                 "lineItems": [{"quantity": 2, "variant": {
                                     "id": "gid://shopify/ProductVariant/456", "sku": None,
                                     "price": {"amount": 2.5}}}]}}}
    event = mapped(raw).event
    assert event.event_id == "sh-1" and event.custom_data["order_id"] == "123"
    assert event.custom_data["contents"] == [{"id": "456", "item_price": 2.5, "quantity": 2}]


def test_elevar_landing_site_fbclid_becomes_fbc():
    raw = {"event": "dl_view_item", "marketing": {"landing_site": "/p?fbclid=Click1"}}
    assert mapped(raw).event.user_data.fbc == f"fb.1.{int(NOW) * 1000}.Click1"


SHOPIFY_ORDER = {  # Shopify Admin REST "Order" resource, as the orders/create webhook posts it
    "id": 450789469, "order_number": 1001, "email": "bob.norman@example.com",
    "phone": "+15555550123", "created_at": "2024-11-24T07:06:40-05:00", "currency": "USD",
    "total_price": "598.94", "browser_ip": "216.191.105.146",
    "landing_site": "/?fbclid=IwAR0click", "referring_site": "http://www.facebook.com/",
    "order_status_url": "https://shop.example.com/548380009/orders/b1946ac92492d2347c6235b4d2611184/authenticate?key=x",
    "client_details": {"browser_ip": "216.191.105.146", "user_agent": UA},
    "customer": {"id": 207119551, "email": "bob.norman@example.com", "first_name": "Bob",
                 "last_name": "Norman", "default_address": {"city": "Ottawa"}},
    "billing_address": {"first_name": "Bob", "last_name": "Norman", "city": "Drayton Valley",
                        "province": "Alberta", "province_code": "AB", "zip": "T0E 0M0",
                        "country": "Canada", "country_code": "CA", "phone": "555-625-1199"},
    "shipping_address": {"first_name": "Steve", "last_name": "Shipper", "city": "Elsewhere"},
    "line_items": [{"id": 466157049, "product_id": 632910392, "variant_id": 39072856,
                    "sku": "IPOD2008GREEN", "title": "IPod Nano - 8gb", "quantity": 1,
                    "price": "199.00"}],
}


def test_shopify_rest_order_webhook_is_a_purchase_of_the_buyer():
    result = to_capi_event(SHOPIFY_ORDER, now=1732450000 + 3600, new_id=lambda: "x")
    assert result.ok, result.reasons
    event = result.event
    assert event.event_name == "Purchase" and event.event_time == 1732449999 + 1
    assert event.custom_data["value"] == 598.94 and event.custom_data["currency"] == "USD"
    assert event.custom_data["order_id"] == "1001"
    assert event.custom_data["content_ids"] == ["IPOD2008GREEN"]
    user = event.user_data
    assert user.client_ip_address == "216.191.105.146" and user.client_user_agent == UA
    assert user.fn == (sha("bob"),) and user.st == (sha("ab"),) and user.country == (sha("ca"),)
    assert user.external_id == (sha("207119551"),)
    assert sha("steve") not in user.fn  # the shipping person is not the buyer
    assert user.fbc and user.fbc.endswith(".IwAR0click")


def test_woocommerce_rest_order_webhook():
    # WooCommerce REST API v3 "Order properties" (woocommerce.github.io/woocommerce-rest-api-docs)
    order = {"id": 727, "number": "727", "status": "processing", "currency": "EUR",
             "total": "29.35", "customer_id": 0, "date_created_gmt": "2024-11-24T12:00:00",
             "customer_ip_address": "198.51.100.23", "customer_user_agent": UA,
             "billing": {"first_name": "John", "last_name": "Doe", "city": "Wien",
                         "postcode": "1010", "country": "AT", "email": "john.doe@example.com",
                         "phone": "+43 1 234567"},
             "shipping": {"first_name": "Jane", "city": "Graz"},
             "line_items": [{"id": 315, "name": "Woo Single #1", "product_id": 93,
                             "variation_id": 0, "quantity": 2, "sku": "", "price": 6}]}
    result = to_capi_event({**order, "page_location": URL}, now=1732450000 + 60,
                           new_id=lambda: "x")
    assert result.ok, result.reasons
    event = result.event
    assert event.event_name == "Purchase" and event.custom_data["order_id"] == "727"
    assert event.custom_data["value"] == 29.35 and event.custom_data["content_ids"] == ["93"]
    user = event.user_data
    assert user.em == (sha("john.doe@example.com"),) and user.ct == (sha("wien"),)
    assert user.external_id == () and user.client_ip_address == "198.51.100.23"


def test_klaviyo_special_properties_and_items():
    raw = {"event": "Placed Order", "$email": "k@example.com", "$first_name": "Kay",
           "$phone_number": "+14155550100", "$zip": "94107", "$value": 40, "currency": "USD",
           "$event_id": "k-1", "OrderId": "K1",
           "Items": [{"ProductID": "1111", "SKU": "WINNIEPOOH", "ProductName": "Winnie",
                      "Quantity": 2, "ItemPrice": 20}]}
    event = mapped(raw).event
    assert event.event_id == "k-1" and event.custom_data["order_id"] == "K1"
    assert event.custom_data["contents"] == [
        {"id": "WINNIEPOOH", "quantity": 2, "item_price": 20, "title": "Winnie"}]
    assert {"em", "fn", "ph", "zp"} <= set(event.user_data.present_keys())


def test_meta_advanced_matching_keys_at_the_top_level():
    raw = {"event": "Lead", "em": "a@example.com", "fn": "Ann", "ct": "Paris", "zp": "75001"}
    assert {"em", "fn", "ct", "zp"} <= set(mapped(raw).event.user_data.present_keys())


def test_more_spellings_and_shapes():
    raw = {"event": "lead", "phone2": "+1 650 555 0100", "ip": "198.51.100.77",
           "user_properties": {"email": {"value": "gp@example.com"}},
           "fbclid": "ClickX", "county": "Cook", "totalPrice": None,
           "value": {"amount": "12.5", "currencyCode": "CAD"}}
    event = mapped(raw, request=RequestContext(user_agent=UA)).event
    user = event.user_data
    assert user.ph == (sha("16505550100"),) and user.em == (sha("gp@example.com"),)
    assert user.client_ip_address == "198.51.100.77" and user.st == ()
    assert user.fbc == f"fb.1.{int(NOW) * 1000}.ClickX"
    assert event.custom_data["value"] == 12.5 and event.custom_data["currency"] == "CAD"


def test_explain_lists_unused_personal_keys_only():
    raw = {"event": "purchase", "value": 1, "currency": "USD", "event_name_hint": "x",
           "user_data": {"address": [{"first_name": "A", "street": "1 Main St"}]},
           "items": [{"item_id": "A", "item_name": "Shoe"}], "customer": {"nickname": "Annie"}}
    explanation = mapped(raw, explain=True).explanation
    assert explanation["fields"]["user_data.fn"] == ["user_data.address.first_name"]
    assert explanation["not_used"] == ["user_data.address[0].street"]


def test_a_whole_name_gives_first_and_last_name_when_nothing_else_does():
    raw = {"event": "lead", "email": "x@example.com", "customer": {"name": "Mary Ann Smith"},
           "full_name": "Solo"}
    user = mapped(raw).event.user_data
    assert user.fn == (sha("mary"),) and user.ln == (sha("smith"),)
    shop = mapped({"name": "checkout_completed", "clientId": "c", "context": {},
                   "data": {"checkout": {"email": "x@example.com", "currencyCode": "USD",
                                         "totalPrice": {"amount": 1}}}}).event.user_data
    assert shop.fn == () and shop.ln == ()  # a Shopify event's "name" is the event's


def test_a_refused_event_is_never_sent_but_explain_shows_its_draft():
    raw = {"event": "purchase", "email": "a@example.com", "value": 3}  # no currency
    plain = mapped(raw)
    explained = mapped(raw, explain=True)
    assert plain.event is None and explained.event is None
    assert plain.reasons == explained.reasons == (
        "custom_data: Purchase needs value and currency",)
    assert explained.explanation["draft"]["custom_data"] == {"value": 3}
    assert "draft" not in (mapped({**raw, "currency": "EUR"}, explain=True).explanation or {})


def test_keys_passed_over_once_are_passed_over_only_where_that_holds():
    """recognize remembers the keys whose plain values it never reports (per alias trie node,
    and outside the alias table): a second event with the same keys must give what a fresh
    reading gives. "email" is read by the alias table under user_data, not at the top or under
    customer; "id" and "name" count inside a person's object only."""
    from capi_relay.core import recognizer

    config = MappingConfig()
    event = {"event_name": "x", "email": "top@example.com", "id": "7", "name": "Ann Lee",
             "user_data": {"email": "alias@example.com", "id": "9"},
             "cart": {"id": "cart-1", "name": "Summer sale", "note": "n"},
             "customer": {"email": "c@example.com", "id": "c-1", "name": "Bo Ek", "tier": "g"}}
    expected = [("em", "top@example.com", None, ("email",)),
                ("external_id", "9", None, ("user_data", "id")),
                ("em", "c@example.com", None, ("customer", "email")),
                ("external_id", "c-1", None, ("customer", "id")),
                ("fn", "Bo", None, ("customer", "name")), ("ln", "Ek", None, ("customer", "name"))]
    for _ in range(3):  # the first reading fills the skip sets, the next ones use them
        assert recognize(event, config.explicit_paths) == expected
    assert "email" in config.explicit_paths.inner["user_data"][0][1].plain_skips
    assert {"event_name", "tier", "note"} <= recognizer._PLAIN_SKIPS | \
        config.explicit_paths.plain_skips
    assert "id" not in recognizer._PLAIN_SKIPS and "name" not in recognizer._PLAIN_SKIPS
