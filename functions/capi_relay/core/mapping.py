"""Turns one incoming event (sGTM GA4 model, dataLayer push, or native CAPI) into a CapiEvent.

Pure: time and new ids are arguments, nothing here does I/O. A bad value drops that field
(named in ``dropped``); only a rule Meta would reject the whole event for rejects it (named in
``reasons``). Messages name fields, never values.
"""

from __future__ import annotations

import json
import math

# collections.abc, not typing: isinstance() against typing.Mapping goes through typing's alias
# machinery, several times slower for the same answer, and the mapper checks on every event.
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from capi_relay.core import aliases
from capi_relay.core.meta_rules import _match_keys_problem, event_time_problem
from capi_relay.core.model import (
    HASHED_KEYS,
    NEVER_HASHED_KEYS,
    ActionSource,
    CapiEvent,
    UserData,
    assemble,
)
from capi_relay.core.normalize import normalize_country, prepare

#: GA4 / gtag event names -> Meta standard events. Anything else passes through unchanged.
EVENT_NAMES: Mapping[str, str] = MappingProxyType({
    "page_view": "PageView",
    "gtm.dom": "PageView",
    "gtm.js": "PageView",
    "view_item": "ViewContent",
    "add_to_cart": "AddToCart",
    "add_to_wishlist": "AddToWishlist",
    "begin_checkout": "InitiateCheckout",
    "add_payment_info": "AddPaymentInfo",
    "purchase": "Purchase",
    "search": "Search",
    "view_search_results": "Search",
    "generate_lead": "Lead",
    "sign_up": "CompleteRegistration",
    "contact": "Contact",
    "customize_product": "CustomizeProduct",
    "donate": "Donate",
    "find_location": "FindLocation",
    "schedule": "Schedule",
    "start_trial": "StartTrial",
    "submit_application": "SubmitApplication",
    "subscribe": "Subscribe",
})

#: consent signals carried along for the consent decision, never sent to Meta.
CONSENT_FIELDS = ("x-ga-gcs", "x-ga-gcd", "gcs", "gcd", "consent_state", "consent")

_NUMERIC_CUSTOM = ("value", "predicted_ltv")
_ITEM_KEYS = {  # GA4 item field -> Meta contents field
    "item_id": "id", "id": "id", "quantity": "quantity", "price": "item_price",
    "item_price": "item_price", "item_name": "title", "title": "title", "name": "title",
    "item_brand": "brand", "brand": "brand", "item_category": "category",
    "category": "category",
}
_USER_DATA_KEYS = HASHED_KEYS + NEVER_HASHED_KEYS
#: "user_data.<key>" per key, built once rather than per dropped value
_DROPPED_NAMES = {key: f"user_data.{key}" for key in _USER_DATA_KEYS}
_ACTION_SOURCES = {source.value: source for source in ActionSource}
_ACTION_SOURCE_REASON = "action_source: must be one of " + ", ".join(a.value for a in ActionSource)
_CUSTOM_FIELDS = ("value", "currency", "order_id", "search_string", "status", "predicted_ltv",
                  "delivery_category")
_CD_PREFIX = "x-fb-cd-"


@dataclass(frozen=True)
class MappingConfig:
    """Everything a deployment may change about mapping; defaults are Meta's rules."""

    user_fields: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(dict(aliases.USER_FIELDS)))
    event_fields: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType(dict(aliases.EVENT_FIELDS)))
    event_names: Mapping[str, str] = field(default_factory=lambda: EVENT_NAMES)
    default_country: str | None = None
    default_action_source: ActionSource = ActionSource.WEBSITE

    @cached_property
    def extractor(self) -> aliases.Extractor:
        """The alias tables compiled once per configuration."""
        return aliases.Extractor(self.user_fields, self.event_fields)

    @classmethod
    def from_settings(
        cls,
        *,
        field_aliases: Mapping[str, Any] | None = None,
        event_names: Mapping[str, str] | None = None,
        default_country: str | None = None,
    ) -> "MappingConfig":
        """Builds a config from operator settings; unknown alias targets raise KeyError."""
        user_extra = {k: v for k, v in (field_aliases or {}).items() if k in aliases.USER_FIELDS}
        event_extra = {k: v for k, v in (field_aliases or {}).items() if k not in user_extra}
        names = dict(EVENT_NAMES)
        names.update(event_names or {})
        country = normalize_country(default_country) if default_country else None
        return cls(
            user_fields=MappingProxyType(aliases.extend(aliases.USER_FIELDS, user_extra)),
            event_fields=MappingProxyType(aliases.extend(aliases.EVENT_FIELDS, event_extra)),
            event_names=MappingProxyType(names),
            default_country=country,
        )


DEFAULT_CONFIG = MappingConfig()


@dataclass(frozen=True)
class Mapped:
    """The result of mapping one incoming event: an event, or the reasons it has none."""

    event: CapiEvent | None
    reasons: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    shape: str = "ga4"
    client_id: str | None = None
    consent: Mapping[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.event is not None


def detect_shape(raw: Mapping[str, Any]) -> str:
    """'capi' for native Conversions API events, 'datalayer' for site pushes, else 'ga4'."""
    if "custom_data" in raw:
        return "capi"
    if "action_source" in raw:  # tested first: cheap, and most web events have none
        user_data = raw.get("user_data")
        if isinstance(user_data, Mapping) and any(k in user_data for k in _USER_DATA_KEYS):
            return "capi"
    if "event_name" not in raw and "event" in raw:
        return "datalayer"
    return "ga4"


def parse_event_time(value: Any) -> int | None:
    """Seconds since the epoch from seconds, milliseconds, microseconds or ISO-8601."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        try:
            value = float(text)
        except ValueError:
            try:
                parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                return None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=timezone.utc)
            return int(parsed.timestamp())
    if not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        return None
    if value >= 1e14:  # microseconds (GA4 timestamp_micros)
        value /= 1_000_000
    elif value >= 1e11:  # milliseconds (JavaScript Date.now())
        value /= 1000
    return int(value)


def fbc_click_id(fbc: str) -> str | None:
    """The click id inside an ``fb.<subdomain>.<ms>.<fbclid>`` value, or None if malformed."""
    parts = fbc.split(".")
    if len(parts) < 4 or parts[0] != "fb" or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return parts[3] or None


def build_fbc(fbclid: str, event_time_ms: int) -> str:
    """Meta's fbc format: version 'fb', subdomain index 1, creation time in ms, the fbclid."""
    return f"fb.1.{event_time_ms}.{fbclid}"


def _valid_fbp(fbp: str) -> bool:
    parts = fbp.split(".")
    return len(parts) >= 4 and parts[0] == "fb" and parts[1].isdigit() and parts[2].isdigit()


#: query parameters some sites put personal data in; removed before a URL leaves the relay
PERSONAL_QUERY_KEYS = frozenset({
    "email", "e-mail", "mail", "email_address", "phone", "tel", "telephone", "mobile",
    "first_name", "firstname", "last_name", "lastname", "name", "fullname", "full_name",
    "address", "street", "zip", "postcode", "postal_code", "dob", "birthday", "birthdate",
})


def clean_url(url: str | None, dropped: list[str], field_name: str) -> str | None:
    """The URL without query parameters that carry personal data (by name, or an email)."""
    if not url or "?" not in url:
        return url  # the common case costs one substring test
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return url
    kept = [(k, v) for k, v in pairs
            if k.lower() not in PERSONAL_QUERY_KEYS and "@" not in v]
    if len(kept) == len(pairs):
        return url
    dropped.append(f"{field_name}.query")
    return urlunsplit(parts._replace(query=urlencode(kept)))


def fbclid_from_url(url: str | None) -> str | None:
    if not url or "fbclid=" not in url:
        return None
    return _fbclid_in(url) if type(url) is str else _fbclid_in.__wrapped__(url)


# Memoized: every event of a page view carries the same landing URL, and parsing its query
# string costs more than the rest of the fbc logic. Pure, keyed by the URL text, bounded.
@lru_cache(maxsize=256)
def _fbclid_in(url: str) -> str | None:
    try:
        values = parse_qs(urlsplit(url).query).get("fbclid")
    except ValueError:
        return None
    return values[0] if values and values[0] else None


_EXACT_FLOAT_INT = 2**53  # every int up to this size converts to float and back unchanged


def _as_number(value: Any) -> float | None:
    if type(value) is float:  # the usual JSON number first
        return value if math.isfinite(value) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            return None
        return number if math.isfinite(number) else None
    return None


def _as_int(value: Any) -> int | None:
    if type(value) is int and -_EXACT_FLOAT_INT <= value <= _EXACT_FLOAT_INT:
        return value  # what the float round trip below gives for an int it holds exactly
    number = _as_number(value)
    if number is None or number != int(number):
        return None
    return int(number)


def _number_out(number: float) -> int | float:
    """Whole numbers as ints, so 2 goes on the wire as 2, not 2.0."""
    return int(number) if number == int(number) and abs(number) < 2**53 else number


def _maybe_json(value: Any) -> Any:
    if isinstance(value, str) and value[:1] in "[{":
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _contents(items: Any, dropped: list[str]) -> list[dict[str, Any]]:
    items = _maybe_json(items)
    if isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        dropped.append("items")
        return []
    contents = []
    for item in items:
        if not isinstance(item, Mapping):
            dropped.append("items")
            continue
        content: dict[str, Any] = {}
        for key, value in item.items():
            target = _ITEM_KEYS.get(key)
            if target is None or target in content or value in (None, ""):
                continue
            if target == "quantity":
                quantity = _as_int(value)
                if quantity is None or quantity < 0:
                    dropped.append("items.quantity")
                    continue
                content[target] = quantity
            elif target == "item_price":
                price = _as_number(value)
                if price is None:
                    dropped.append("items.price")
                    continue
                content[target] = _number_out(price)
            else:
                content[target] = str(value)
        if "id" not in content:
            dropped.append("items.item_id")
            continue
        content.setdefault("quantity", 1)
        contents.append(content)
    return contents


def _custom_data(raw: Mapping[str, Any], found: aliases.Found,
                 dropped: list[str]) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    native = raw.get("custom_data")
    if isinstance(native, Mapping):
        custom.update((k, v) for k, v in native.items() if v not in (None, ""))
    elif native is not None:
        dropped.append("custom_data")

    present = found.fields()
    for name in _CUSTOM_FIELDS:
        if name in present:
            custom[name] = found.first(name)

    for key, value in raw.items():  # sGTM's x-fb-cd-* parameters
        if isinstance(key, str) and key.startswith(_CD_PREFIX) and value not in (None, ""):
            custom.setdefault(key[len(_CD_PREFIX):], _maybe_json(value))
    props = raw.get("custom_properties")
    if isinstance(props, Mapping):
        for key, value in props.items():
            custom.setdefault(str(key), value)
    if not custom and "items" not in present:
        return {}  # page views and the like: every step below would leave it empty

    for name in _NUMERIC_CUSTOM:
        if name in custom:
            number = _as_number(custom[name])
            if number is None:
                del custom[name]
                dropped.append(f"custom_data.{name}")
            else:
                custom[name] = _number_out(number)
    if "currency" in custom:
        currency = custom["currency"]
        if isinstance(currency, str) and len(currency.strip()) == 3 and currency.strip().isalpha():
            custom["currency"] = currency.strip().upper()
        else:
            del custom["currency"]
            dropped.append("custom_data.currency")
    for name in ("order_id", "search_string", "status", "delivery_category"):
        if name in custom and not isinstance(custom[name], str):
            custom[name] = str(custom[name])

    if "items" in present and "contents" not in custom:
        custom.pop("items", None)
        contents = _contents(found.first("items"), dropped)
        if contents:
            custom["contents"] = contents
            custom["content_ids"] = [c["id"] for c in contents]
            custom["num_items"] = sum(c["quantity"] for c in contents)
            custom.setdefault("content_type", "product")
            if "value" not in custom and all("item_price" in c for c in contents):
                custom["value"] = _number_out(round(
                    sum(c["item_price"] * c["quantity"] for c in contents), 2))
    elif "contents" in custom and "content_ids" not in custom:
        contents = custom["contents"]
        if isinstance(contents, list):
            ids = [str(c["id"]) for c in contents if isinstance(c, Mapping) and "id" in c]
            if ids:
                custom["content_ids"] = ids
    if "num_items" in custom:
        count = _as_int(custom["num_items"])
        if count is None:
            del custom["num_items"]
            dropped.append("custom_data.num_items")
        else:
            custom["num_items"] = count
    return dict(sorted(custom.items()))


def _user_data(found: aliases.Found, config: MappingConfig, event_time: int, url: str | None,
               dropped: list[str]) -> tuple[UserData, Set[str]]:
    """The event's UserData, and the names of its keys that carry a value."""
    values: dict[str, Any] = {}
    present = found.fields()

    country = None
    if "country" in present:
        for candidate in found.all("country"):
            if isinstance(candidate, str) and len(candidate) != 64:
                country = normalize_country(candidate)
                if country:
                    break
    country = country or config.default_country

    # Only the keys the event has: a membership test is cheaper than an empty ``all()``.
    for key in HASHED_KEYS:
        if key not in present:
            continue
        prepared: list[str] = []
        for value in found.all(key):
            out = prepare(key, value, country=country)
            if out is None:
                dropped.append(_DROPPED_NAMES[key])
            elif out not in prepared:
                prepared.append(out)
        if prepared:
            values[key] = tuple(prepared)

    for key in NEVER_HASHED_KEYS:
        if key not in present:
            continue
        for value in found.all(key):
            out = prepare(key, value, country=country)
            if out is None:
                dropped.append(_DROPPED_NAMES[key])
                continue
            values[key] = out
            break

    fbc = values.get("fbc")
    if fbc and fbc_click_id(fbc) is None:
        dropped.append("user_data.fbc")
        del values["fbc"]
        fbc = None
    fbclid = fbclid_from_url(url)
    if fbclid and (not fbc or fbc_click_id(fbc) != fbclid):
        values["fbc"] = build_fbc(fbclid, event_time * 1000)
    fbp = values.get("fbp")
    if fbp and not _valid_fbp(fbp):
        dropped.append("user_data.fbp")
        del values["fbp"]
    return UserData._of(values), values.keys()  # every value kept here is non-empty


def _text(value: Any) -> str | None:
    if type(value) is str:  # the usual case, without the generic checks below
        return value.strip() or None
    if value is aliases.MISSING or value is None:
        return None
    if isinstance(value, (str, int)) and not isinstance(value, bool):
        text = str(value).strip()
        return text or None
    return None


def _dpo(found: aliases.Found, reasons: list[str]):
    options = found.first("data_processing_options")
    if options is aliases.MISSING:
        return None, None, None
    if isinstance(options, str):
        options = [options] if options else []
    if not isinstance(options, list) or not all(isinstance(o, str) for o in options):
        reasons.append("data_processing_options: must be a list like [\"LDU\"] or []")
        return None, None, None
    country = state = None
    raw_country = found.first("data_processing_options_country")
    raw_state = found.first("data_processing_options_state")
    if raw_country is not aliases.MISSING:
        country = _as_int(raw_country)
        if country is None:
            reasons.append("data_processing_options_country: must be an integer")
    if raw_state is not aliases.MISSING:
        state = _as_int(raw_state)
        if state is None:
            reasons.append("data_processing_options_state: must be an integer")
    return tuple(options), country, state


def to_capi_event(
    raw: Any,
    *,
    now: float,
    new_id: Callable[[], str],
    config: MappingConfig = DEFAULT_CONFIG,
) -> Mapped:
    """Maps one incoming event. ``now`` is the relay's clock; ``new_id`` makes an event_id."""
    if not isinstance(raw, Mapping):
        return Mapped(None, ("event: must be a JSON object",))
    shape = detect_shape(raw)
    found = config.extractor.extract(raw)
    reasons: list[str] = []
    dropped: list[str] = []

    name = _text(found.first("event_name"))
    if name is None:
        reasons.append("event_name: missing")
    else:
        name = config.event_names.get(name, name)

    raw_source = _text(found.first("action_source"))
    if raw_source:
        action_source = _ACTION_SOURCES.get(raw_source.lower())  # = ActionSource(...), cheaper
        if action_source is None:
            reasons.append(_ACTION_SOURCE_REASON)
            action_source = config.default_action_source
    else:
        action_source = config.default_action_source

    raw_time = found.first("event_time")
    if raw_time is aliases.MISSING:
        event_time = int(now)
    else:
        parsed = parse_event_time(raw_time)
        if parsed is None:
            reasons.append("event_time: not a timestamp in seconds, milliseconds or ISO-8601")
            event_time = int(now)
        else:
            event_time = parsed
            problem = event_time_problem(event_time, action_source, now)
            if problem:
                reasons.append(problem)

    event_id = _text(found.first("event_id")) or new_id()
    url = clean_url(_text(found.first("event_source_url")), dropped, "event_source_url")
    referrer = clean_url(_text(found.first("referrer_url")), dropped, "referrer_url")
    user_data, present = _user_data(found, config, event_time, url, dropped)
    custom_data = _custom_data(raw, found, dropped)

    if action_source is ActionSource.WEBSITE:
        if not url:
            reasons.append("event_source_url: required for website events")
        if not user_data.client_user_agent:
            reasons.append("client_user_agent: required for website events")
    if name == "Purchase" and ("currency" not in custom_data or "value" not in custom_data):
        reasons.append("custom_data: Purchase needs value and currency")
    problem = _match_keys_problem(present)
    if problem:
        reasons.append(problem)

    dpo, dpo_country, dpo_state = _dpo(found, reasons)
    opt_out = found.first("opt_out")
    client_id = _text(found.first("client_id"))
    consent = {k: raw[k] for k in CONSENT_FIELDS if k in raw}

    dropped_names = tuple(dict.fromkeys(dropped)) if dropped else ()
    if reasons:
        return Mapped(None, tuple(dict.fromkeys(reasons)), dropped_names, shape, client_id,
                      consent)
    # assemble() = the dataclass constructors with every field given, without their per-field
    # frozen-dataclass setattr cost; keys in field order.
    event = assemble(CapiEvent, {
        "event_name": name,
        "event_time": event_time,
        "event_id": event_id,
        "action_source": action_source,
        "user_data": user_data,
        "custom_data": custom_data,
        "event_source_url": url,
        "referrer_url": referrer,
        "opt_out": opt_out if isinstance(opt_out, bool) else None,
        "data_processing_options": dpo,
        "data_processing_options_country": dpo_country,
        "data_processing_options_state": dpo_state,
    })
    return assemble(Mapped, {"event": event, "reasons": (), "dropped": dropped_names,
                             "shape": shape, "client_id": client_id, "consent": consent})
