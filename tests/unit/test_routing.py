"""core.routing: which pixels an event goes to, and PIXELS as configured, with plain values."""

import json

import pytest

from capi_relay.config import Settings
from capi_relay.core.auth import AuthPolicy, decide, parse_keys
from capi_relay.core.envelope import QueuedEvent, decode, encode
from capi_relay.core.errors import ConfigurationError
from capi_relay.core.model import ActionSource, CapiEvent
from capi_relay.core.routing import (
    EVERY_EVENT,
    Pixel,
    Route,
    describe,
    page_host,
    parse_pixels,
    pixels_for,
    with_main,
)

BRAND_A = Pixel("111", Route(hosts=("shop-a.example", "*.shop-a.example")))
BRAND_B = Pixel("222", Route(hosts=("shop-b.example",)))
PURCHASES = Pixel("333", Route(event_names=frozenset({"Purchase"}),
                               source_keys=frozenset({"shop-sgtm"})))
ALL = Pixel("444")
PIXELS = (BRAND_A, BRAND_B, PURCHASES, ALL)


def ids(event_name="PageView", url=None, source=None, pixels=PIXELS):
    return [p.id for p in pixels_for(pixels, event_name=event_name, url=url, source=source)]


@pytest.mark.parametrize("event_name, url, source, expected", [
    ("PageView", "https://shop-a.example/cart", None, ["111", "444"]),
    ("PageView", "https://www.shop-a.example/", None, ["111", "444"]),     # a subdomain
    ("PageView", "https://SHOP-A.example.:443/x", None, ["111", "444"]),   # case, dot, port
    ("PageView", "https://notshop-a.example/", None, ["444"]),            # not a subdomain
    ("PageView", "https://shop-a.example.evil.test/", None, ["444"]),
    ("PageView", "https://www.shop-b.example/", None, ["444"]),           # exact host only
    ("PageView", "https://shop-b.example/", None, ["222", "444"]),
    ("PageView", None, None, ["444"]),                                    # no page: no host rule
    ("PageView", "not a url", None, ["444"]),
    ("Purchase", None, "shop-sgtm", ["333", "444"]),                      # both criteria hold
    ("Purchase", None, "backend", ["444"]),                               # another key's name
    ("Purchase", None, None, ["444"]),                                    # keyless source
    ("Lead", None, "shop-sgtm", ["444"]),                                 # another event
    ("purchase", None, "shop-sgtm", ["444"]),                             # Meta names: exact
    ("Purchase", "https://shop-b.example/thanks", "shop-sgtm", ["222", "333", "444"]),
])
def test_an_event_goes_to_every_pixel_whose_route_it_matches(event_name, url, source, expected):
    assert ids(event_name, url, source) == expected


def test_an_event_may_match_no_pixel():
    assert ids("Lead", "https://elsewhere.example/", "backend",
               pixels=(BRAND_A, BRAND_B, PURCHASES)) == []
    assert EVERY_EVENT.takes_all and not BRAND_A.route.takes_all


def test_page_host():
    assert page_host("https://Shop.Example.com:8443/a?b#c") == "shop.example.com"
    assert page_host("https://bücher.example/") == "xn--bcher-kva.example"
    assert page_host(None) is None and page_host("") is None and page_host("/relative") is None
    assert page_host("http://[::1]:80/") == "::1"


def test_the_main_pixel_takes_every_event_unless_listed_with_a_route():
    main = Pixel("999", test_event_code="TESTMAIN")
    assert with_main(main, (BRAND_B,)) == (main, BRAND_B)
    listed = Pixel("999", Route(hosts=("shop-a.example",)), token_secret="projects/p/secrets/a/"
                   "versions/latest")
    routed = with_main(main, (BRAND_B, listed))
    assert [p.id for p in routed] == ["222", "999"]
    assert routed[1].route == listed.route and routed[1].token_secret == listed.token_secret
    assert routed[1].test_event_code == "TESTMAIN"  # kept unless PIXELS gives its own
    own_code = Pixel("999", test_event_code="TESTOWN")
    assert with_main(main, (own_code,))[0].test_event_code == "TESTOWN"


def test_parse_pixels_reads_the_terraform_encoding():
    # what infra/functions.tf's jsonencode(local.pixels_setting) writes
    text = json.dumps([
        {"id": "11111", "token_secret": "projects/p/secrets/b/versions/latest",
         "route": {"event_names": ["Purchase"], "hosts": ["*.B.example", "b.example."]}},
        {"id": "22222", "route": {}, "test_event_code": "TEST1"},
        {"id": 33333, "route": {"source_keys": ["shop-sgtm"]}},
    ])
    a, b, c = parse_pixels(text)
    assert a == Pixel("11111", Route(frozenset({"Purchase"}), ("*.b.example", "b.example")),
                      None, "projects/p/secrets/b/versions/latest")
    assert b == Pixel("22222", EVERY_EVENT, "TEST1")
    assert c.id == "33333" and c.route.source_keys == {"shop-sgtm"}
    assert parse_pixels("") == () and parse_pixels(None) == ()
    assert describe(a) == "11111 (events=Purchase; hosts=*.b.example,b.example)"
    assert describe(b) == "22222 (every event)"
    assert parse_pixels('[{"id": "1", "route": {"hosts": ["bücher.example"]}}]')[0].route.hosts \
        == ("xn--bcher-kva.example",)


@pytest.mark.parametrize("value, message", [
    ("{oops", "PIXELS: not valid JSON"),
    ('{"id": "1"}', "PIXELS: must be a non-empty JSON list"),
    ("[]", "PIXELS: must be a non-empty JSON list"),
    ('["1"]', "PIXELS[0]: must be an object"),
    ('[{"id": "1"}, {"id": "12a"}]', "PIXELS[1].id: must be the numeric"),
    ('[{"id": "../me"}]', "PIXELS[0].id: must be the numeric"),
    ('[{"id": true}]', "PIXELS[0].id: must be the numeric"),
    ('[{"id": "1"}, {"id": "1"}]', "PIXELS[1].id: the same pixel as PIXELS[0]"),
    ('[{"id": "1", "token": "EAAsecret"}]', "PIXELS[0]: unknown field(s) token;"),
    ('[{"id": "1", "token_secret": "EAAsecret"}]', "PIXELS[0].token_secret: must be a secret"),
    ('[{"id": "1", "token_env": "lower case"}]', "PIXELS[0].token_env: must be an environment"),
    ('[{"id": "1", "token_env": "T", "token_secret": "projects/p"}]', "PIXELS[0]: token_secret"),
    ('[{"id": "1", "test_event_code": 5}]', "PIXELS[0].test_event_code: must be a string"),
    ('[{"id": "1", "route": ["Purchase"]}]', "PIXELS[0].route: must be an object"),
    ('[{"id": "1", "route": {"event_name": ["Purchase"]}}]',
     "PIXELS[0].route: unknown field(s) event_name;"),
    ('[{"id": "1", "route": {"event_names": "Purchase"}}]',
     "PIXELS[0].route.event_names: must be a list of strings"),
    ('[{"id": "1", "route": {"event_names": ["Purchase", "add to cart"]}}]',
     "PIXELS[0].route.event_names[1]: not a Meta event name"),
    ('[{"id": "1", "route": {"hosts": ["https://shop.example/"]}}]',
     "PIXELS[0].route.hosts[0]: must be a host name"),
    ('[{"id": "1", "route": {"hosts": ["shop.*.example"]}}]',
     "PIXELS[0].route.hosts[0]: must be a host name"),
    ('[{"id": "1", "route": {"source_keys": ["sgtm-key-0123456789abcdef=="]}}]',
     "PIXELS[0].route.source_keys[0]: must be a key's name"),
])
def test_malformed_pixels_are_named_never_echoed(value, message):
    with pytest.raises(ConfigurationError) as err:
        parse_pixels(value)
    assert str(err.value).startswith(message), str(err.value)
    assert "EAAsecret" not in str(err.value) and "0123456789abcdef" not in str(err.value)


BASE = {"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": "999"}


def test_settings_without_pixels_keep_the_one_pixel():
    s = Settings.from_env({**BASE, "META_TEST_EVENT_CODE": "TEST1", "META_ACCESS_TOKEN": "t"},
                          need=("token",))
    assert s.pixels == () and s.delivery_pixels() == (Pixel("999", test_event_code="TEST1"),)


def test_settings_with_pixels():
    pixels = json.dumps([{"id": "222", "token_env": "TOKEN_B", "route": {"hosts": ["b.example"]}},
                         {"id": "333", "token_secret": "projects/p/secrets/c/versions/latest"}])
    s = Settings.from_env({**BASE, "PIXELS": pixels, "TOKEN_B": " EAAb ",
                           "META_TOKEN_SECRET": "projects/p/secrets/m/versions/latest"},
                          need=("token",))
    assert [p.id for p in s.delivery_pixels()] == ["999", "222", "333"]
    assert s.pixel_tokens == {"222": "EAAb"} and "EAAb" not in repr(s)
    with pytest.raises(ConfigurationError, match=r"PIXELS\[0\].token_env: TOKEN_B is not set"):
        Settings.from_env({**BASE, "PIXELS": pixels,
                           "META_TOKEN_SECRET": "projects/p/secrets/m/versions/latest"},
                          need=("token",))
    assert Settings.from_env({**BASE, "PIXELS": pixels}).pixel_tokens == {}  # preview: no token
    # every pixel has its own token, the main one included: no deployment token needed
    own = json.dumps([{"id": "999", "token_env": "TOKEN_A"}, {"id": "222", "token_env": "TOKEN_B"}])
    s = Settings.from_env({**BASE, "PIXELS": own, "TOKEN_A": "a", "TOKEN_B": "b"},
                          need=("token",))
    assert [p.id for p in s.delivery_pixels()] == ["999", "222"]
    # a pixel without its own token needs the deployment's
    with pytest.raises(ConfigurationError, match="META_TOKEN_SECRET"):
        Settings.from_env({**BASE, "PIXELS": pixels, "TOKEN_B": "b"}, need=("token",))


def test_a_named_key_gives_its_name_never_the_key():
    key = "sgtm-key-0123456789abcdef"
    ring = parse_keys(f"shop-sgtm@{key}:Purchase|Lead, backend.v2@other-key-0123456789, "
                      "plain-key-0123456789abcdef", source="S")
    policy = AuthPolicy(True)

    def verdict(presented):
        return decide(policy, authorization=f"Bearer {presented}", origin=None, referer=None,
                      collect_get=False, key_lookup=ring.lookup)
    named = verdict(key)
    assert named.accepted and named.key_name == "shop-sgtm"
    assert named.allowed_events == {"Purchase", "Lead"}
    assert verdict("other-key-0123456789").key_name == "backend.v2"
    assert verdict("plain-key-0123456789abcdef").key_name is None
    assert not verdict(f"shop-sgtm@{key}").accepted  # the name is no part of the key
    # base64 keys end in '=': no '=' separator, so they stay keys
    assert parse_keys("dGVzdGtleXRlc3RrZXk=", source="S").lookup("dGVzdGtleXRlc3RrZXk=")[0]
    for text in (f"@{key}", f"bad name@{key}", f"a@b@{key}"):
        with pytest.raises(ConfigurationError) as err:
            parse_keys(text, source="S")
        assert "S: key 1: the name" in str(err.value) and key not in str(err.value)


def test_the_key_name_travels_in_the_envelope():
    event = CapiEvent("Purchase", 1, "e1", ActionSource.WEBSITE)
    named, plain = QueuedEvent(event, source="shop-sgtm"), QueuedEvent(event)
    assert [q.source for q in decode(encode([named, plain]))] == ["shop-sgtm", None]
    assert "source" not in plain.to_json()  # messages without names are as before
    forged = encode([QueuedEvent(event, source="x y")])  # only a name is read back as one
    assert decode(forged)[0].source is None
