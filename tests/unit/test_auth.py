"""core.auth: the source-authentication decision with plain values (issue 12's contract)."""

import pytest

from capi_relay.core.auth import (
    AuthPolicy,
    Source,
    bearer_token,
    decide,
    parse_event_names,
    parse_keys,
    referer_origin,
)
from capi_relay.core.errors import ConfigurationError

KEY = "k" * 20
SHOP = "https://shop.example.com"
RING = parse_keys(f"{KEY}\nlimited-key-0123456789:Purchase|Lead\n# a comment\n", source="S")
POLICY = AuthPolicy(True, (SHOP,), frozenset({"PageView"}))


def verdict(policy=POLICY, *, authorization=None, origin=None, referer=None, collect_get=False):
    return decide(policy, authorization=authorization, origin=origin, referer=referer,
                  collect_get=collect_get, key_lookup=RING.lookup)


@pytest.mark.parametrize("kwargs, status, source", [
    ({"authorization": f"Bearer {KEY}"}, 0, Source.KEY),
    ({"authorization": f"bearer {KEY}", "origin": "https://evil.example"}, 0, Source.KEY),
    ({}, 401, None),                                               # no key, no origin
    ({"authorization": "Bearer wrong-key-0123456789"}, 401, None),  # wrong key
    ({"authorization": "Bearer wrong-key-0123456789", "origin": SHOP}, 401, None),
    ({"authorization": f"Basic {KEY}"}, 401, None),                 # not Bearer: wrong key
    ({"origin": "https://evil.example"}, 403, None),                # origin not listed
    ({"origin": "null"}, 403, None),
    ({"origin": SHOP}, 0, Source.BROWSER),
    ({"origin": "HTTPS://SHOP.EXAMPLE.COM"}, 0, Source.BROWSER),    # origins compare lowercased
    ({"referer": f"{SHOP}/cart"}, 401, None),                       # Referer only for collect GET
    ({"referer": f"{SHOP}/cart", "collect_get": True}, 0, Source.BROWSER),
    ({"referer": "https://evil.example/", "collect_get": True}, 403, None),
    ({"referer": "not a url", "collect_get": True}, 401, None),
])
def test_contract(kwargs, status, source):
    got = verdict(**kwargs)
    assert (got.status, got.source) == (status, source)
    assert got.accepted == (status == 0)


def test_allow_lists():
    assert verdict(authorization=f"Bearer {KEY}").allowed_events is None
    limited = verdict(authorization="Bearer limited-key-0123456789")
    assert limited.allowed_events == {"Purchase", "Lead"}
    assert verdict(origin=SHOP).allowed_events == {"PageView"}


def test_no_keys_configured_is_open_to_anyone():
    open_policy = AuthPolicy(False, ())
    for kwargs in ({}, {"authorization": "Bearer anything-at-all-here"},
                   {"origin": "https://evil.example"}):
        got = verdict(open_policy, **kwargs)
        assert got.accepted and got.source is Source.OPEN


def test_star_origin_accepts_any_browser_origin():
    assert verdict(AuthPolicy(True, ("*",)), origin="https://any.example").accepted


def test_parsing_errors_name_the_position_never_the_key():
    for text, message in ((f"{KEY},sp ace", "S: key 2"), (f"{KEY}:", "S: key 1: events"),
                          (f"{KEY}:Purchase|bad name", "S: key 1: events")):
        with pytest.raises(ConfigurationError) as raised:
            parse_keys(text, source="S")
        assert message in str(raised.value) and KEY not in str(raised.value)
    assert parse_keys("", source="S").lookup(KEY) == (False, None, None)
    short = parse_keys(f"short,{KEY}", source="S")
    assert short.weak == 1 and short.lookup("short") == (True, None, None)
    assert repr(RING) == "KeyRing(2 keys)" and KEY not in repr(RING)
    assert parse_event_names(" PageView , Lead ", source="B") == {"PageView", "Lead"}
    assert parse_event_names("", source="B") is None
    with pytest.raises(ConfigurationError, match="B: entry 2"):
        parse_event_names("PageView,not ok", source="B")


def test_header_helpers():
    assert bearer_token(None) is None and bearer_token("  ") is None
    assert bearer_token("Bearer  abc ") == "abc" and bearer_token("Token abc") == ""
    assert referer_origin("https://user@Shop.example.com:8443/a?b") == "https://shop.example.com:8443"
    assert referer_origin("ftp://x/") is None and referer_origin(None) is None
