"""The benchmark workload: the sample events cycled to N unique events, and the same events for
Meta's SDK.

Every generated event gets its own event_id and, where the sample carries them, its own email,
phone, last name and customer id: no person's key is seen twice, so none of them can be served
from a memo (``normalize.prepare`` keeps one per instance). What real traffic does repeat repeats
here as it does there: a browser (its IP and ``_fbp``) sends SESSION_EVENTS events of a kind
before another takes over, and user agents, first names, cities, states, postal codes and
countries are shared across people. The mix is round-robin over five sources (GA4 purchase with
user_data, dataLayer purchase, lead, page view, and the 50-event batch one event at a time), so
three events in five carry contact keys: more hashing per event than typical web traffic, which
is the part the SDK is also good at.

The SDK side is given what a correct SDK integration would pass: raw contact keys (the SDK
normalizes and hashes them itself), phones with their country calling code and country/state
as codes (the SDK maps neither names nor national numbers), and the event and custom fields
our mapper found (the SDK does not read GA4 or dataLayer shapes). Those inputs are prepared
outside the timed loop; what is timed is building the SDK objects and ``Event.normalize()``.
"""

from __future__ import annotations

import copy
import hashlib
import json
import sys
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

ROOT = Path(__file__).resolve().parent.parent
for _path in (ROOT / "functions", ROOT / "tests"):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from sdk_side import sdk_event  # noqa: E402,F401  (re-exported: the SDK's timed path)

from capi_relay.core.mapping import to_capi_event  # noqa: E402
from samples import NOW, load_event  # noqa: E402

SOURCES = ("ga4_purchase", "datalayer_purchase", "lead", "page_view", "batch")

#: SDK CustomData keyword arguments; other custom_data keys go to custom_properties
_SDK_CUSTOM_KEYS = frozenset({
    "value", "currency", "content_name", "content_category", "content_ids", "content_type",
    "order_id", "predicted_ltv", "num_items", "status", "search_string",
})
_SDK_CONTENT_KEYS = {"id": "product_id", "quantity": "quantity", "item_price": "item_price",
                     "title": "title", "brand": "brand", "category": "category"}
#: never-hashed user_data keys both sides pass through; SDK UserData takes the same names
_SDK_PASS_THROUGH = ("client_ip_address", "client_user_agent", "fbc", "fbp")


@dataclass(frozen=True)
class Workload:
    """N raw events for our mapper and, index for index, the same events for the SDK."""

    raws: list[dict[str, Any]]
    sdk_specs: list[dict[str, Any]]

    def __len__(self) -> int:
        return len(self.raws)

    def head(self, n: int) -> "Workload":
        return Workload(self.raws[:n], self.sdk_specs[:n])


# --- per-source personalization: a unique event, and the SDK's contact keys for it ---------

#: events of one kind a browser sends in a row (its IP and _fbp repeat across them): a short
#: visit; real sessions of a shop's visitors send several page views, item views and cart events
SESSION_EVENTS = 5


def _browser(raw: dict[str, Any], i: int, ip_key: str | None, fbp_key: str | None
             ) -> dict[str, Any]:
    """Gives event ``i`` the IP and _fbp of its browser: one browser per SESSION_EVENTS events of
    a source, none shared between sources. Returns them as the SDK's UserData arguments."""
    browser = (i // (len(SOURCES) * SESSION_EVENTS)) * len(SOURCES) + i % len(SOURCES)
    out: dict[str, Any] = {}
    if ip_key:  # 198.18.0.0/15: the range set aside for benchmarks (RFC 2544)
        raw[ip_key] = out["client_ip_address"] = \
            f"198.{18 + (browser >> 16) % 2}.{(browser >> 8) % 256}.{browser % 256}"
    if fbp_key:
        raw[fbp_key] = out["fbp"] = f"fb.1.1732450000000.{1_000_000_000 + browser}"
    return out


def _letters(i: int) -> str:
    """``i`` in base 26 as lowercase letters: a unique, name-like suffix."""
    out = ""
    while True:
        i, digit = divmod(i, 26)
        out = chr(97 + digit) + out
        if not i:
            return out


def _ga4(raw: dict[str, Any], i: int) -> dict[str, Any]:
    raw["event_id"] = f"sgtm-purchase-{i}"
    raw["user_id"] = f"customer-{i}"
    user = raw["user_data"]
    user["email_address"] = f"Jane.Doe{i}@Example.com"
    user["phone_number"] = f"+49 170 {i % 10_000_000:07d}"
    address = user["address"]
    address["last_name"] = f"Doe{_letters(i)}"
    return {
        "emails": [user["email_address"]], "phones": [user["phone_number"]],
        "first_names": [address["first_name"]], "last_names": [address["last_name"]],
        "cities": [address["city"]], "zip_codes": [address["postal_code"]],
        "country_codes": [address["country"]], "external_ids": [raw["user_id"]],
        **_browser(raw, i, "ip_override", "x-fb-ck-fbp"),
    }


def _datalayer(raw: dict[str, Any], i: int) -> dict[str, Any]:
    raw["customer_email"] = f" John.Smith{i}@Example.org "
    raw["customer_phone"] = f"(650) {200 + (i // 10_000) % 800:03d}-{i % 10_000:04d}"
    return {
        "emails": [raw["customer_email"]], "phones": ["+1 " + raw["customer_phone"]],
        "first_names": [raw["customer_first_name"]], "cities": [raw["billing_city"]],
        "states": ["CA"], "zip_codes": [raw["billing_postcode"]], "country_codes": ["US"],
        **_browser(raw, i, None, "_fbp"),
    }


def _lead(raw: dict[str, Any], i: int) -> dict[str, Any]:
    raw["event_id"] = f"lead-{i}"
    raw["email"] = f"lead{i}@example.net"
    raw["phone"] = f"020 7{(i // 10_000) % 1000:03d} {i % 10_000:04d}"
    return {"emails": [raw["email"]], "phones": ["+44 " + raw["phone"][1:]],
            "country_codes": [raw["country"]], **_browser(raw, i, "ip_override", None)}


def _no_contact_keys(raw: dict[str, Any], i: int) -> dict[str, Any]:
    raw["event_id"] = f"{raw['event_id']}-{i}"
    return _browser(raw, i, "ip_override", "x-fb-ck-fbp")


_PERSONALIZE: dict[str, Callable[[dict[str, Any], int], dict[str, Any]]] = {
    "ga4_purchase": _ga4, "datalayer_purchase": _datalayer, "lead": _lead,
    "page_view": _no_contact_keys, "batch": _no_contact_keys,
}


def _templates() -> dict[str, list[dict[str, Any]]]:
    return {
        "ga4_purchase": [load_event("ga4_purchase_sgtm.json")],
        "datalayer_purchase": [load_event("datalayer_purchase_web.json")],
        "lead": [load_event("lead.json")],
        "page_view": [load_event("page_view.json")],
        "batch": load_event("batch_50.json")["events"],
    }


def _sdk_template(raw: dict[str, Any]) -> dict[str, Any]:
    """The SDK's non-contact inputs for one sample: what our mapper found in it (done once)."""
    mapped = to_capi_event(raw, now=NOW, new_id=lambda: "template")
    if mapped.event is None:
        raise ValueError(f"sample does not map: {mapped.reasons}")
    wire = mapped.event.to_wire()
    custom: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    for key, value in wire.get("custom_data", {}).items():
        if key == "contents":
            custom["contents"] = [{_SDK_CONTENT_KEYS[k]: v for k, v in c.items()
                                   if k in _SDK_CONTENT_KEYS} for c in value]
        elif key in _SDK_CUSTOM_KEYS:
            custom[key] = value
        else:
            extra[key] = value
    if extra:
        custom["custom_properties"] = extra
    return {
        "event": {k: wire[k] for k in ("event_name", "event_time", "event_source_url",
                                       "referrer_url") if k in wire},
        "action_source": wire["action_source"],
        "pass_through": {k: wire["user_data"][k] for k in _SDK_PASS_THROUGH
                         if k in wire["user_data"]},
        "custom": custom,
    }


def make_workload(n: int) -> Workload:
    """``n`` unique events, cycling the samples round-robin over SOURCES."""
    from facebook_business.adobjects.serverside.action_source import ActionSource

    templates = _templates()
    sdk_templates = {source: [_sdk_template(t) for t in items]
                     for source, items in templates.items()}
    raws: list[dict[str, Any]] = []
    specs: list[dict[str, Any]] = []
    for i in range(n):
        source = SOURCES[i % len(SOURCES)]
        index = (i // len(SOURCES)) % len(templates[source])
        raw = copy.deepcopy(templates[source][index])
        contact = _PERSONALIZE[source](raw, i)
        template = sdk_templates[source][index]
        spec = dict(template["event"])
        spec["event_id"] = raw.get("event_id") or f"evt-{i}"
        spec["action_source"] = ActionSource(template["action_source"])
        spec["user"] = {**template["pass_through"], **contact}
        spec["custom"] = template["custom"]
        raws.append(raw)
        specs.append(spec)
    return Workload(raws, specs)


# --- the two timed paths ------------------------------------------------------------------

def new_event_id() -> str:
    """What production uses for events without an id (bootstrap.ingest_service)."""
    return str(uuid.uuid4())


def ours_event(raw: dict[str, Any], now: float = NOW,
               new_id: Callable[[], str] = new_event_id) -> dict[str, Any]:
    """Our whole path for one event: map, normalize, hash, wire dict."""
    mapped = to_capi_event(raw, now=now, new_id=new_id)
    if mapped.event is None:
        raise ValueError(f"benchmark event rejected: {mapped.reasons}")
    return mapped.event.to_wire()


#: SDK UserData list arguments -> the CAPI keys they fill
_FLOOR_HASHED = {"emails": "em", "phones": "ph", "first_names": "fn", "last_names": "ln",
                 "cities": "ct", "states": "st", "zip_codes": "zp", "country_codes": "country",
                 "external_ids": "external_id"}
_PHONE_MARKS = str.maketrans("", "", "+ ()-./")  # what the workload's phones carry besides digits


def floor_event(spec: dict[str, Any]) -> dict[str, Any]:
    """The least any CPython mapper must do for this event: no shape detection, no aliases, no
    validation, no rules. The fields come already found (the SDK's inputs); each contact value
    is trimmed and lowercased (phones: digits kept), then hashed; the wire dict is built.

    Its speed against the SDK's bounds what a pure-Python mapper could reach on this workload.
    """
    sha256 = hashlib.sha256
    user: dict[str, Any] = {}
    for name, value in spec["user"].items():
        key = _FLOOR_HASHED.get(name)
        if key is None:
            user[name] = value
        elif key == "ph":
            user[key] = [sha256(v.translate(_PHONE_MARKS).encode()).hexdigest() for v in value]
        else:
            user[key] = [sha256(v.strip().lower().encode()).hexdigest() for v in value]
    wire = {"event_name": spec["event_name"], "event_time": spec["event_time"],
            "event_id": spec["event_id"], "action_source": spec["action_source"].value,
            "user_data": user, "custom_data": dict(spec["custom"])}
    for key in ("event_source_url", "referrer_url"):
        if spec.get(key):
            wire[key] = spec[key]
    return wire


def contact_hashes(wire: dict[str, Any], keys: tuple[str, ...] = ("em", "ph")) -> dict:
    """The hashed values of ``keys`` in a wire/normalized event, as sets (the SDK dedups via
    ``set``, so its order is arbitrary)."""
    user = wire.get("user_data", {})
    return {k: set(user[k]) for k in keys if user.get(k)}


def describe(workload: Workload) -> str:
    """One line on what the workload holds, for the report header."""
    with_contact = sum(1 for s in workload.sdk_specs if "emails" in s["user"])
    size = sum(len(json.dumps(r)) for r in workload.raws[: len(SOURCES) * 10]) / (
        min(len(workload), len(SOURCES) * 10) or 1)
    return (f"{len(workload)} events, round-robin over {', '.join(SOURCES)}; "
            f"{with_contact} with unique em+ph; a browser sends {SESSION_EVENTS} events of a "
            f"kind; ~{size:.0f} bytes of JSON per event")
