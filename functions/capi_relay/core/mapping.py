"""Turns one incoming event (sGTM GA4 model, dataLayer push, or native CAPI) into a CapiEvent.

Pure: time and new ids are arguments, nothing here does I/O. A bad value drops that field
(named in ``dropped``); only a rule Meta would reject the whole event for rejects it (named in
``reasons``). Messages name fields, never values.
"""

from __future__ import annotations

import itertools
import json
import math
import re
import unicodedata

# collections.abc, not typing: isinstance() against typing.Mapping goes through typing's alias
# machinery, several times slower for the same answer, and the mapper checks on every event.
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import cached_property, lru_cache
from types import MappingProxyType
from typing import Any, Callable
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit, urlunsplit

from capi_relay.core import aliases, recognizer
from capi_relay.core.meta_rules import event_time_problem
from capi_relay.core.model import (
    HASHED_KEYS,
    NEVER_HASHED_KEYS,
    ActionSource,
    CapiEvent,
    UserData,
    assemble,
)
from capi_relay.core.normalize import normalize_country, prepare, prepare_text

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

#: Platform event names, compared in compact form (lowercase, letters and digits only), after
#: the exact ``event_names`` table (which EVENT_NAME_MAP overrides). Elevar's ``dl_<ga4 name>``
#: pushes are read as the GA4 name (docs.getelevar.com, "Data layer events"); Shopify's
#: standard Web Pixels events (shopify.dev/docs/api/web-pixels-api/standard-events); UA
#: enhanced ecommerce and GTM4WP event names.
PLATFORM_EVENT_NAMES: Mapping[str, str] = MappingProxyType({
    # Shopify Web Pixels standard events
    "pageviewed": "PageView", "productviewed": "ViewContent",
    "productaddedtocart": "AddToCart", "checkoutstarted": "InitiateCheckout",
    "paymentinfosubmitted": "AddPaymentInfo", "checkoutcompleted": "Purchase",
    "searchsubmitted": "Search",
    # Elevar: dl_subscribe is an email/SMS sign-up, which Meta's standard events call a Lead
    # ("a submission of information ... with the understanding that they may be contacted");
    # Meta's Subscribe is the start of a paid subscription.
    "dlsubscribe": "Lead", "dlsignup": "CompleteRegistration", "dlsearchresults": "Search",
    "dluserdata": "PageView",  # Elevar pushes it once per page, before the page's other events
    # UA enhanced ecommerce / GTM4WP (gtm4wp.*EEC) / Magento
    "addtocart": "AddToCart", "productdetail": "ViewContent", "detail": "ViewContent",
    "productview": "ViewContent", "checkout": "InitiateCheckout", "transaction": "Purchase",
    "ordercompleted": "Purchase", "gtm4wpordercompletedeec": "Purchase",
    "gtm4wpaddproducttocarteec": "AddToCart", "gtm4wpchangedetailvieweec": "ViewContent",
    "gtm4wpcheckoutstepeec": "InitiateCheckout",
    # Segment / RudderStack e-commerce spec names ("Order Completed", "Product Added", ...)
    "productadded": "AddToCart", "productsearched": "Search", "productssearched": "Search",
    "paymentinfoentered": "AddPaymentInfo", "signedup": "CompleteRegistration",
    "productaddedtowishlist": "AddToWishlist",
})
#: a push with no event name is named by the enhanced-ecommerce action it carries
#: the totals of an order object (Shopify and WooCommerce REST orders)
_ORDER_TOTALS = ("total_price", "current_total_price", "total")
_ECOMMERCE_ACTIONS = (("purchase", "Purchase"), ("checkout", "InitiateCheckout"),
                      ("add", "AddToCart"), ("detail", "ViewContent"))

#: consent signals carried along for the consent decision, never sent to Meta.
CONSENT_FIELDS = ("x-ga-gcs", "x-ga-gcd", "gcs", "gcd", "consent_state", "consent")

_CONSENT_SET = frozenset(CONSENT_FIELDS)

_NUMERIC_CUSTOM = ("value", "predicted_ltv")
#: item field -> (Meta contents field, rank): a lower rank wins when an item has several
#: (GA4 item_id, UA enhanced ecommerce id, Magento sku, Elevar variant_id / product_id)
_ITEM_KEYS = {
    "item_id": ("id", 0), "id": ("id", 1), "sku": ("id", 2), "variant_id": ("id", 3),
    "product_id": ("id", 4), "quantity": ("quantity", 0), "qty": ("quantity", 1),
    "price": ("item_price", 0), "item_price": ("item_price", 1),
    "item_name": ("title", 0), "title": ("title", 1), "name": ("title", 2),
    "item_brand": ("brand", 0), "brand": ("brand", 1), "vendor": ("brand", 2),
    "item_category": ("category", 0), "category": ("category", 1),
}
#: the same names in compact form, plus other platforms' spellings (Klaviyo: ProductID, SKU,
#: ProductName, Quantity, ItemPrice; WooCommerce REST: variation_id)
_ITEM_COMPACT = {
    **{recognizer.compact(k): v for k, v in _ITEM_KEYS.items()},
    "productname": ("title", 3), "variationid": ("id", 3), "itemprice": ("item_price", 1),
}
_ITEM_KEYS_COMPACT: dict[str, tuple[str, int] | None] = {}
_USER_DATA_KEYS = HASHED_KEYS + NEVER_HASHED_KEYS
_USER_DATA_KEYSET = frozenset(_USER_DATA_KEYS)
_HASHED_KEYSET = frozenset(HASHED_KEYS)
#: "user_data.<key>" per key, built once rather than per dropped value
_DROPPED_NAMES = {key: f"user_data.{key}" for key in _USER_DATA_KEYS}
_ACTION_SOURCES = {source.value: source for source in ActionSource}
_ACTION_SOURCE_REASON = "action_source: must be one of " + ", ".join(a.value for a in ActionSource)
_CUSTOM_FIELDS = ("value", "currency", "order_id", "search_string", "status", "predicted_ltv",
                  "delivery_category", "customer_segmentation", "content_type", "content_name",
                  "content_category")
#: compact name -> Meta name: GA4 names, Meta's own names in any spelling ("add_to_cart",
#: "AddToCart", "addToCart"), then platform names
_NAME_INDEX: dict[str, str] = {
    **{recognizer.compact(k): v for k, v in EVENT_NAMES.items()},
    **{recognizer.compact(v): v for v in EVENT_NAMES.values()}, **PLATFORM_EVENT_NAMES}
_PERSON_KEYS = frozenset(HASHED_KEYS)
#: the keys of a postal address with its name: taken from one address only
_ADDRESS_KEYS = frozenset({"fn", "ln", "ct", "st", "zp", "country"})
#: customer ids that mean "no account" (WooCommerce's guest customer id is 0)
_GUEST_IDS = (0, "0", 0.0)
_REQUEST_SOURCES = (("client_ip_address", "ip", "request.ip"),
                    ("client_user_agent", "user_agent", "request.user_agent"),
                    ("fbp", "fbp", "request.cookie._fbp"), ("fbc", "fbc", "request.cookie._fbc"))
_CD_PREFIX = "x-fb-cd-"
#: raw top-level key -> it is an x-fb-cd-* key. Sites send the same key names on every event,
#: so most events are told "none here" by one C-level pass over their keys; bounded, since key
#: names come from the internet (past the limit, unseen keys take the loop every time).
_CD_KEYS: dict[Any, bool] = {}
_KEY_CACHE_LIMIT = 4096
_UNSEEN_KEY = itertools.repeat(True)  # dict.get's default for each key, for map()
_CUSTOM_SET = frozenset(_CUSTOM_FIELDS)


@dataclass(frozen=True)
class RequestContext:
    """What the HTTP request knows about the browser, used where an event lacks it."""

    ip: str | None = None
    user_agent: str | None = None
    fbp: str | None = None
    fbc: str | None = None


NO_REQUEST = RequestContext()


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
    #: ISO 4217, for platforms that send a value without its currency
    default_currency: str | None = None

    @cached_property
    def extractor(self) -> aliases.Extractor:
        """The alias tables compiled once per configuration."""
        return aliases.Extractor(self.user_fields, self.event_fields)

    @cached_property
    def explicit_paths(self) -> Any:
        """The user_data alias table as a trie: the recognizer skips what it reads."""
        return aliases.Extractor(self.user_fields).root

    @classmethod
    def from_settings(
        cls,
        *,
        field_aliases: Mapping[str, Any] | None = None,
        event_names: Mapping[str, str] | None = None,
        default_country: str | None = None,
        default_currency: str | None = None,
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
            default_currency=default_currency.strip().upper() if default_currency else None,
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
    #: with ``explain=True``: where each field came from, what was dropped and why, and the
    #: input keys that look personal but were not used (key paths only, never values)
    explanation: Mapping[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return self.event is not None


def detect_shape(raw: Mapping[str, Any]) -> str:
    """'capi' for native Conversions API events, 'shopify' for Web Pixels events, 'datalayer'
    for site pushes, else 'ga4'."""
    if "custom_data" in raw:
        return "capi"
    if "action_source" in raw:  # tested first: cheap, and most web events have none
        user_data = raw.get("user_data")
        if _is_map(user_data) and any(k in user_data for k in _USER_DATA_KEYS):
            return "capi"
    if "event_name" not in raw and "event" in raw:
        return "datalayer"
    if "name" in raw and isinstance(raw.get("data"), Mapping) and (
            isinstance(raw.get("context"), Mapping) or "clientId" in raw):
        return "shopify"  # shopify.dev/docs/api/web-pixels-api/standard-events
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
    cleaned = _without_personal_query(url) if type(url) is str else \
        _without_personal_query.__wrapped__(url)
    if cleaned is None:
        return url
    dropped.append(f"{field_name}.query")
    return cleaned


# Memoized: the pages of a site repeat (the same thank-you or product URL on many events), and
# parsing a query string costs more than the rest of the event's URL handling. Pure, keyed by
# the URL text, bounded. None when nothing is removed.
@lru_cache(maxsize=256)
def _without_personal_query(url: str) -> str | None:
    try:
        parts = urlsplit(url)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
    except ValueError:
        return None
    kept = [(k, v) for k, v in pairs
            if k.lower() not in PERSONAL_QUERY_KEYS and "@" not in v]
    if len(kept) == len(pairs):
        return None
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


def _bad_text(text: str) -> bool:
    """True for text that cannot go on the wire: lone surrogates (not encodable as UTF-8), NUL
    and other control characters except tab, newline and carriage return."""
    if text.isprintable():
        return False  # the usual case: one C-level scan
    for ch in text:
        if ch in "\t\n\r ":
            continue
        category = unicodedata.category(ch)
        if category in ("Cc", "Cs"):
            return True
    return False


def _all_clean(value: Any, depth: int = 0) -> bool:
    """True when ``_clean`` would change nothing: the usual case, checked without copying."""
    kind = type(value)
    if kind is str:
        return value.isprintable() or not _bad_text(value)
    if kind is dict:
        if depth > 8:
            return False
        for key, item in value.items():
            if type(key) is not str or not (key.isprintable() or not _bad_text(key)):
                return False
            kind = type(item)
            if kind is str:  # = _all_clean(item), without the call
                if not item.isprintable() and _bad_text(item):
                    return False
            elif (kind is dict or kind is list) and not _all_clean(item, depth + 1):
                return False
        return True
    if kind is list:
        if depth > 8:
            return False
        for item in value:
            kind = type(item)
            if kind is str:
                if not item.isprintable() and _bad_text(item):
                    return False
            elif (kind is dict or kind is list) and not _all_clean(item, depth + 1):
                return False
        return True
    return not isinstance(value, (Mapping, str))  # subclasses: checked the slow way


def _clean(value: Any, name: str, dropped: list[str], depth: int = 0) -> Any:
    """``value`` without the strings that cannot be sent (each dropped under its name), or
    None when nothing is left. Containers are cleaned element by element."""
    if _all_clean(value, depth):
        return value
    return _cleaned(value, name, dropped, depth)


def _cleaned(value: Any, name: str, dropped: list[str], depth: int) -> Any:
    if isinstance(value, str):
        if _bad_text(value):
            dropped.append(f"{name}: not valid text")
            return None
        return value
    if isinstance(value, Mapping):
        if depth > 8:
            dropped.append(f"{name}: nested too deep")
            return None
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or _bad_text(key):
                dropped.append(f"{name}: not valid text")
                continue
            cleaned = _cleaned(item, f"{name}.{key}", dropped, depth + 1)
            if cleaned is not None or item is None:
                out[key] = cleaned
        return out
    if isinstance(value, list):
        if depth > 8:
            dropped.append(f"{name}: nested too deep")
            return None
        out_list = []
        for item in value:
            cleaned = _cleaned(item, name, dropped, depth + 1)
            if cleaned is not None or item is None:
                out_list.append(cleaned)
        return out_list
    return value


def _is_map(value: Any) -> bool:
    """``isinstance(value, Mapping)``, with JSON's dict answered without the ABC's
    ``__instancecheck__`` (a Python-level call, ~7x the cost of the type test)."""
    return type(value) is dict or isinstance(value, Mapping)


def _priced_by_map(price: Any) -> bool:
    """``isinstance(price, Mapping)`` for an item's price, which is usually a JSON number or
    text: those are answered without the ABC's ``__instancecheck__``."""
    kind = type(price)
    if kind is float or kind is int or kind is str or price is None:
        return False
    return kind is dict or isinstance(price, Mapping)


def _shopify_id(value: Any) -> Any:
    """``gid://shopify/ProductVariant/123`` -> ``123``: catalogs hold the number."""
    if isinstance(value, str) and value.startswith("gid://"):
        return value.rsplit("/", 1)[-1]
    return value


def _flat_item(item: Mapping[str, Any]) -> Mapping[str, Any]:
    """A Shopify line item, cart line or product variant (Web Pixels API) as a plain item:
    id = the variant's id, price = its amount, title and brand from its product."""
    variant = item.get("variant") or item.get("merchandise")
    if not isinstance(variant, Mapping):
        if isinstance(item.get("price"), Mapping) and isinstance(item.get("product"), Mapping):
            variant, item = item, {}  # a ProductVariant itself (product_viewed)
        else:
            return item
    product = variant.get("product") if isinstance(variant.get("product"), Mapping) else {}
    price = variant.get("price")
    flat = {
        # the SKU, as the catalog and the Pixel's content_ids use it; the variant id without one
        "id": _shopify_id(variant.get("sku") or variant.get("id") or product.get("id")),
        "price": price.get("amount") if isinstance(price, Mapping) else price,
        "title": product.get("title") or variant.get("title") or item.get("title"),
        "brand": product.get("vendor"),
        "category": product.get("type"),
    }
    if "quantity" in item:
        flat["quantity"] = item["quantity"]
    return flat


def _item_key(key: Any) -> tuple[str, int] | None:
    """The contents field an item key names: exact first, then in compact form
    (Klaviyo's ``ProductID``, ``ItemPrice``, ``Quantity``)."""
    spec = _ITEM_KEYS.get(key)
    if spec is None and type(key) is str:
        spec = _ITEM_KEYS_COMPACT.get(key)
        if spec is None and key not in _ITEM_KEYS_COMPACT:
            if len(_ITEM_KEYS_COMPACT) < 4096:
                _ITEM_KEYS_COMPACT[key] = _ITEM_COMPACT.get(recognizer.compact(key))
            spec = _ITEM_KEYS_COMPACT.get(key)
    return spec


def _item_plan(layout: tuple[Any, ...]) -> tuple[tuple[Any, str, int | None], ...]:
    """The contents fields an item with these keys (in this order) has: (key, target, rank)
    for each key that names one, in item order. Items of one site share their keys, so the
    plan is remembered per key layout (up to _KEY_CACHE_LIMIT layouts)."""
    plan = []
    for key in layout:
        spec = _ITEM_KEYS.get(key) or _item_key(key)
        if spec is not None:
            plan.append((key, *spec))
    targets = [target for _, target, _ in plan]
    if len(set(targets)) == len(targets):
        # one key per contents field: no rank to compare (None tells _contents so)
        plan = [(key, target, None) for key, target, _ in plan]
    plan = tuple(plan)
    if len(_ITEM_PLANS) < _KEY_CACHE_LIMIT:
        _ITEM_PLANS[layout] = plan
    return plan


_ITEM_PLANS: dict[tuple[Any, ...], tuple[tuple[Any, str, int | None], ...]] = {}


def _contents(items: Any, dropped: list[str], order_lines: bool = False
              ) -> list[dict[str, Any]]:
    items = _maybe_json(items)
    if type(items) is not list and isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, list):
        dropped.append("items")
        return []
    contents = []
    for item in items:
        if not _is_map(item):
            dropped.append("items")
            continue
        price = item.get("price")  # a JSON number or text, usually: no call to tell it apart
        if "variant" in item or "merchandise" in item or (
                price is not None and type(price) is not float and type(price) is not int
                and type(price) is not str and _priced_by_map(price)):
            item = _flat_item(item)
        elif order_lines and "id" in item:
            # a REST order's line: its "id" is the line's, the product is its SKU or variant
            item = {k: v for k, v in item.items() if k != "id"}
        content: dict[str, Any] = {}
        ranks: dict[str, int] = {}
        layout = tuple(item)
        plan = _ITEM_PLANS.get(layout)
        if plan is None:
            plan = _item_plan(layout)
        for key, target, rank in plan:
            value = item[key]
            kind = type(value)
            if kind is str:
                if not value:
                    continue
            elif value is None or (kind is not int and kind is not float and value == ""):
                continue  # (a JSON number is never "": no __eq__ against str for it)
            if target == "id" and (value == 0 or value == "0"):
                continue  # WooCommerce's variation_id 0: no variation
            if rank is not None and target in content and ranks[target] <= rank:
                continue
            if target == "quantity":
                quantity = value if kind is int and 0 <= value <= _EXACT_FLOAT_INT else \
                    _as_int(value)  # _as_int's own first test, without the call
                if quantity is None or quantity < 0:
                    dropped.append("items.quantity")
                    continue
                content[target] = quantity
            elif target == "item_price":
                if kind is int and -_EXACT_FLOAT_INT < value < _EXACT_FLOAT_INT:
                    content[target] = value  # = _number_out(_as_number(value)) for such an int
                else:
                    # value - value == 0.0: a finite float, what _as_number checks first
                    price = value if kind is float and value - value == 0.0 else \
                        _as_number(value)
                    if price is None:
                        dropped.append("items.price")
                        continue
                    content[target] = _number_out(price)
            elif kind is str:
                if not value.isprintable() and _bad_text(value):
                    dropped.append(f"items.{key}: not valid text")
                    continue
                content[target] = value
            elif kind is int or kind is float:
                content[target] = str(value)
            else:
                continue  # booleans, containers
            if rank is not None:
                ranks[target] = rank
        if "id" not in content:
            dropped.append("items.item_id")  # Meta refuses a contents entry without id
            continue
        content.setdefault("quantity", 1)
        contents.append(content)
    return contents


def _custom_data(raw: Mapping[str, Any], found: aliases.Found, config: MappingConfig,
                 dropped: list[str]) -> dict[str, Any]:
    custom: dict[str, Any] = {}
    native = raw.get("custom_data")
    if native is None:  # the usual case, without an isinstance against the Mapping ABC
        pass
    elif _is_map(native):
        custom.update((k, v) for k, v in native.items() if v not in (None, ""))
    else:
        dropped.append("custom_data")

    present = found.fields()
    first = found.first
    if custom:
        for name in present:  # the event's fields, fewer than the names to look for
            if name in _CUSTOM_SET and name not in custom:
                custom[name] = first(name)
    else:  # the usual case: no custom_data object, so no name is taken yet
        for name in present:
            if name in _CUSTOM_SET:
                custom[name] = first(name)

    if any(map(_CD_KEYS.get, raw, _UNSEEN_KEY)):  # a key is x-fb-cd-* or not seen before
        for key, value in raw.items():  # sGTM's x-fb-cd-* parameters
            is_cd = isinstance(key, str) and key.startswith(_CD_PREFIX)
            if len(_CD_KEYS) < _KEY_CACHE_LIMIT:
                _CD_KEYS[key] = is_cd
            if is_cd and value not in (None, ""):
                custom.setdefault(key[len(_CD_PREFIX):], _maybe_json(value))
    props = raw.get("custom_properties")
    if props is not None and _is_map(props):
        for key, value in props.items():
            custom.setdefault(str(key), value)
    if not custom and "items" not in present:
        return {}  # page views and the like: every step below would leave it empty
    custom = _clean(custom, "custom_data", dropped)

    money = custom.get("value")
    if type(money) is dict and "amount" in money:  # Shopify's MoneyV2
        custom["value"] = money.get("amount")
        if "currency" not in custom and money.get("currencyCode"):
            custom["currency"] = money["currencyCode"]
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
        code = currency.strip() if isinstance(currency, str) else None
        if code is not None and len(code) == 3 and code.isalpha():
            custom["currency"] = code.upper()
        else:
            del custom["currency"]
            dropped.append("custom_data.currency")
    if "order_id" in custom:
        custom["order_id"] = _shopify_id(custom["order_id"])
    for name in ("order_id", "search_string", "status", "delivery_category",
                 "customer_segmentation", "content_type", "content_name", "content_category"):
        if name in custom and not isinstance(custom[name], str):
            if isinstance(custom[name], (Mapping, list)):
                del custom[name]
                dropped.append(f"custom_data.{name}")
            else:
                custom[name] = str(custom[name])

    if "items" in present and "contents" not in custom:
        custom.pop("items", None)
        items_path = config.event_fields["items"][found.order("items")]
        contents = _contents(found.first("items"), dropped,  # checks its own text
                             order_lines=items_path == "line_items")
        if contents:
            custom["contents"] = contents
            ids, count = [], 0  # = the ids' list and sum(quantities), without a generator
            for content in contents:
                ids.append(content["id"])
                count += content["quantity"]
            custom["content_ids"] = ids
            custom["num_items"] = count
            custom.setdefault("content_type", "product")
            if "value" not in custom and all("item_price" in c for c in contents):
                custom["value"] = _number_out(round(
                    sum(c["item_price"] * c["quantity"] for c in contents), 2))
    elif "contents" in custom:
        contents = custom["contents"]
        if isinstance(contents, list) and "content_ids" not in custom:
            ids = [str(c["id"]) for c in contents
                   if isinstance(c, Mapping) and c.get("id") not in (None, "")]
            if ids:
                custom["content_ids"] = ids
        if isinstance(contents, list):
            # Meta refuses a contents entry without id: such entries are left out
            kept = [c for c in contents if isinstance(c, Mapping) and c.get("id") not in (None, "")]
            if len(kept) != len(contents):
                dropped.append("custom_data.contents.id")
            if kept:
                custom["contents"] = kept
                custom.setdefault("content_ids", [str(c["id"]) for c in kept])
            else:
                del custom["contents"]
    if "content_ids" not in custom and "content_ids" in present:
        ids = found.first("content_ids")
        ids = ids if isinstance(ids, list) else [ids]
        ids = [str(i) for i in ids if type(i) in (str, int) and i != ""]
        if ids:
            custom["content_ids"] = ids
            custom.setdefault("content_type", "product")
    if "num_items" in custom:
        count = _as_int(custom["num_items"])
        if count is None:
            del custom["num_items"]
            dropped.append("custom_data.num_items")
        else:
            custom["num_items"] = count
    if "value" in custom and "currency" not in custom and config.default_currency:
        custom["currency"] = config.default_currency
    return dict(sorted(custom.items()))


def _person_sources(found: aliases.Found, hits: list[recognizer.Hit], request: RequestContext,
                    explain: bool) -> tuple[dict[str, list[Any]], dict[str, list[Any]] | None,
                                            list[recognizer.Hit]]:
    """Per Meta key, the candidate values in order; with ``explain``, beside them where each
    came from (a table path index for explicit keys, a path tuple for recognized ones); and the
    recognized values left unused.

    One person per event: explicit keys (Meta's, GA4's, FIELD_ALIASES), unprefixed customer
    keys and billing keys describe the buyer. Shipping keys may describe another person (a
    gift's recipient), so they are used only when the event has no billing data and no
    name or address of the buyer (Shopify's checkout with ``billingAddress: null``); then the
    shipping address is the buyer's. Never a billing email with a shipping city. Within the
    buyer, explicit values come first, then unprefixed ones, then billing ones.
    """
    labels: dict[str, list[Any]] | None = {} if explain else None
    if labels is None:
        values = found.all_of(_USER_DATA_KEYSET)
    else:
        values = {}
        for key in found.fields():
            if key in _USER_DATA_KEYSET:
                pairs = found.sourced(key)
                values[key] = [value for value, _ in pairs]
                labels[key] = [order for _, order in pairs]
    unused: list[recognizer.Hit] = []
    if hits:
        buyer: list[recognizer.Hit] = []
        shipping: list[recognizer.Hit] = []
        billing = False
        for hit in hits:
            role = hit[2]
            if role == recognizer.SHIPPING and hit[0] in _PERSON_KEYS:
                shipping.append(hit)
            else:
                billing = billing or role == recognizer.BUYER
                buyer.append(hit)
        if shipping:
            if billing or not _ADDRESS_KEYS.isdisjoint(values) or any(
                    h[0] in _ADDRESS_KEYS for h in buyer):
                unused = shipping
            else:
                buyer.extend(shipping)
        if billing:
            buyer.sort(key=_billing_last)
        for key, value, _, path in buyer:
            if key == "external_id" and value in _GUEST_IDS:
                continue
            known = values.get(key)
            if known is None:
                values[key] = [value]
                if labels is not None:
                    labels[key] = [path]
            elif value not in known:  # the same value twice is prepared once
                known.append(value)
                if labels is not None:
                    labels.setdefault(key, []).append(path)
    if request is not NO_REQUEST:
        for key, attribute, label in _REQUEST_SOURCES:
            value = getattr(request, attribute)
            if value:
                values.setdefault(key, []).append(value)
                if labels is not None:
                    labels.setdefault(key, []).append(label)
    return values, labels, unused


def _billing_last(hit: recognizer.Hit) -> int:
    return 1 if hit[2] == recognizer.BUYER else 0


def _user_data(sources: dict[str, list[Any]], labels: dict[str, list[Any]] | None,
               config: MappingConfig, event_time: int, url: str | None, dropped: list[str],
               used: dict[str, list[Any]] | None, landing: str | None = None,
               click: str | None = None) -> tuple[UserData, Set[str]]:
    """The event's UserData, and the names of its keys that carry a value. ``used`` collects
    the source of every value kept, when the caller explains."""
    values: dict[str, Any] = {}

    country = None
    for candidate in sources.get("country", ()):
        if isinstance(candidate, str) and len(candidate) != 64 and not _bad_text(candidate):
            country = normalize_country(candidate)
            if country:
                break
    country = country or config.default_country

    explain = used is not None and labels is not None
    # prepare's memo directly for text values (keys here are Meta's, always str)
    memo = prepare_text if country is None or type(country) is str else None
    for key, candidates in sources.items():  # only the keys the event has
        hashed = key in _HASHED_KEYSET  # every distinct value; never hashed: the first valid
        if len(candidates) == 1 and memo is not None and not explain:
            # the usual case, one text value for the key: the loop below without its
            # bookkeeping (index, dedup list, tuple of one)
            value = candidates[0]
            if type(value) is str:
                if not value.isprintable() and _bad_text(value):
                    dropped.append(f"{_DROPPED_NAMES[key]}: not valid text")
                    continue
                out = memo(key, value, country)
                if out is None:
                    dropped.append(_DROPPED_NAMES[key])
                else:
                    values[key] = (out,) if hashed else out
                continue
        prepared: list[str] = []
        index = -1  # counted by hand: an enumerate object per key costs more
        for value in candidates:
            index += 1
            kind = type(value)
            if kind is str:
                if not value.isprintable() and _bad_text(value):
                    dropped.append(f"{_DROPPED_NAMES[key]}: not valid text")
                    continue
            elif kind is not int and kind is not float:
                continue  # booleans, containers
            # the same value under two keys: prepare's memo answers the second time
            out = memo(key, value, country) if kind is str and memo is not None else \
                prepare(key, value, country=country)
            if out is None:
                dropped.append(_DROPPED_NAMES[key])
                continue
            if out in prepared:
                continue
            prepared.append(out)
            if explain:
                used.setdefault(key, []).append(labels[key][index])
            if not hashed:
                break
        if prepared:
            values[key] = tuple(prepared) if hashed else prepared[0]

    fbc = values.get("fbc")
    if fbc and fbc_click_id(fbc) is None:
        dropped.append("user_data.fbc")
        del values["fbc"]
        fbc = None
    fbclid = fbclid_from_url(url) or (landing and fbclid_from_url(landing)) or click
    if fbclid and (not fbc or fbc_click_id(fbc) != fbclid):
        values["fbc"] = build_fbc(fbclid, event_time * 1000)
        if used is not None:
            used["fbc"] = ["event_source_url.fbclid"]
    fbp = values.get("fbp")
    if fbp and not _valid_fbp(fbp):
        dropped.append("user_data.fbp")
        del values["fbp"]
    return UserData._of(values), values.keys()  # every value kept here is non-empty


def _event_name(found: aliases.Found, raw: Mapping[str, Any], config: MappingConfig
                ) -> str | None:
    """The Meta event name: the operator's and GA4's exact table first, then platform names
    compared in compact form (``dl_view_item``, ``checkout_completed``, ``addToCart``); a push
    with no name at all is named by its enhanced-ecommerce action or transaction."""
    name = _text(found.first("event_name"))
    if name is None:
        ecommerce = raw.get("ecommerce")
        if isinstance(ecommerce, Mapping):
            for action, meta_name in _ECOMMERCE_ACTIONS:
                if isinstance(ecommerce.get(action), Mapping):
                    return meta_name
        if raw.get("transactionId") not in (None, ""):
            return "Purchase"
        if isinstance(raw.get("line_items"), list) and any(
                raw.get(k) not in (None, "") for k in _ORDER_TOTALS):
            return "Purchase"  # an order as Shopify's and WooCommerce's order webhooks send it
        return None
    exact = config.event_names.get(name)
    if exact is not None:
        return exact
    key = recognizer.compact(name)
    known = _NAME_INDEX.get(key)
    if known is None and key.startswith("dl") and len(key) > 2:
        known = _NAME_INDEX.get(key[2:])  # Elevar: dl_<GA4 name>
    return known or name


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
    request: RequestContext = NO_REQUEST,
    explain: bool = False,
) -> Mapped:
    """Maps one incoming event. ``now`` is the relay's clock; ``new_id`` makes an event_id;
    ``request`` is what the HTTP request says about the browser (used where the event lacks
    it); ``explain`` fills ``Mapped.explanation``.

    Sufficiency of the customer information is not judged here: the processor judges it after
    enrichment (``meta_rules.customer_information_problem``)."""
    if not _is_map(raw):
        return Mapped(None, ("event: must be a JSON object",))
    shape = detect_shape(raw)
    found = config.extractor.extract(raw)
    hits = recognizer.recognize(raw, config.explicit_paths)
    reasons: list[str] = []
    dropped: list[str] = []

    name = _event_name(found, raw, config)
    if name is None:
        reasons.append("event_name: missing")
    elif _bad_text(name):
        reasons.append("event_name: not valid text")

    # Fields most web events lack are tested for with one probe of ``present`` before they are
    # read (found.first answers MISSING for them, at the cost of a call or two each).
    present = found.fields()
    raw_source = _text(found.first("action_source")) if "action_source" in present else None
    if raw_source:
        action_source = _ACTION_SOURCES.get(raw_source.lower())  # = ActionSource(...), cheaper
        if action_source is None:
            reasons.append(_ACTION_SOURCE_REASON)
            action_source = config.default_action_source
    else:
        action_source = config.default_action_source

    raw_time = found.first("event_time") if "event_time" in present else aliases.MISSING
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

    event_id = _text(found.first("event_id"))
    if event_id is None and shape == "shopify":
        event_id = _text(raw.get("id"))
    if event_id is not None and _bad_text(event_id):
        dropped.append("event_id: not valid text")
        event_id = None
    event_id = event_id or new_id()
    url = _text_field(found.first("event_source_url"), "event_source_url", dropped)
    url = clean_url(url, dropped, "event_source_url")
    referrer = _text_field(found.first("referrer_url"), "referrer_url", dropped)
    referrer = clean_url(referrer, dropped, "referrer_url")
    sources, labels, unused = _person_sources(found, hits, request, explain)
    used: dict[str, list[Any]] | None = {} if explain else None
    landing = _landing_page(raw)
    click = raw.get("fbclid")  # the ad click's id as a parameter of its own
    click = click if type(click) is str and click and click.isprintable() else None
    user_data, _ = _user_data(sources, labels, config, event_time, url, dropped, used,
                              landing, click)
    custom_data = _custom_data(raw, found, config, dropped)

    if action_source is ActionSource.WEBSITE:
        if not url:
            reasons.append("event_source_url: required for website events")
        if not user_data.client_user_agent:
            reasons.append("client_user_agent: required for website events")
    if name == "Purchase" and ("currency" not in custom_data or "value" not in custom_data):
        reasons.append("custom_data: Purchase needs value and currency")

    dpo, dpo_country, dpo_state = _dpo(found, reasons) if "data_processing_options" in present \
        else (None, None, None)
    opt_out = found.first("opt_out") if "opt_out" in present else None
    client_id = _text(found.first("client_id")) if "client_id" in present else None
    if client_id is not None and _bad_text(client_id):
        client_id = None
    consent = {} if _CONSENT_SET.isdisjoint(raw) else {
        k: raw[k] for k in CONSENT_FIELDS if k in raw}
    if consent:
        consent = _clean(consent, "consent", dropped)
    app_data = messaging_channel = None
    if action_source is ActionSource.APP:
        raw_app = found.first("app_data")
        if isinstance(raw_app, Mapping):
            app_data = _clean(dict(raw_app), "app_data", dropped) or None
        elif raw_app is not aliases.MISSING:
            dropped.append("app_data")
        if not app_data:
            # Meta: app events need app_data (advertiser_tracking_enabled,
            # application_tracking_enabled, extinfo); "Conversions API for App Events"
            reasons.append("app_data: required for app events")
    if action_source is ActionSource.BUSINESS_MESSAGING:
        messaging_channel = _text_field(found.first("messaging_channel"), "messaging_channel",
                                        dropped)

    dropped_names = tuple(dict.fromkeys(dropped)) if dropped else ()
    explanation = _explain(raw, config, found, used, unused, dropped_names) if explain else None
    if reasons and explanation is None:
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
        "app_data": app_data,
        "messaging_channel": messaging_channel,
    })
    if reasons:  # explaining: what would go out once the reasons are fixed, never sent
        if name is not None:
            explanation["draft"] = event.to_wire()
        return Mapped(None, tuple(dict.fromkeys(reasons)), dropped_names, shape, client_id,
                      consent, explanation)
    return assemble(Mapped, {"event": event, "reasons": (), "dropped": dropped_names,
                             "shape": shape, "client_id": client_id, "consent": consent,
                             "explanation": explanation})


def _landing_page(raw: Mapping[str, Any]) -> str | None:
    """Elevar's ``marketing.landing_site``: the path and query of the session's landing page,
    where a Meta ad click's fbclid is (docs.getelevar.com data layer reference)."""
    marketing = raw.get("marketing")
    landing = marketing.get("landing_site") if type(marketing) is dict else raw.get(
        "landing_site")  # Shopify's REST order: the session's landing page
    if type(landing) is str and "fbclid=" in landing and not _bad_text(landing):
        return landing
    return None


def _text_field(value: Any, name: str, dropped: list[str]) -> str | None:
    text = _text(value)
    if text is not None and _bad_text(text):
        dropped.append(f"{name}: not valid text")
        return None
    return text


#: parts of key names (compact) that suggest personal data, beside the recognizer's own
#: vocabulary; for ``explain`` only
_PERSONAL_HINTS = ("email", "phone", "street", "address", "birth", "fullname", "surname")
_PERSONAL_NAMES = frozenset({"name", "username", "displayname", "customername", "billingname",
                             "shippingname", "contactname"})


def _explain(raw: Mapping[str, Any], config: MappingConfig, found: aliases.Found,
             used: dict[str, list[Any]] | None, unused: list[recognizer.Hit],
             dropped: tuple[str, ...]) -> dict[str, Any]:
    """Where each user_data field came from, what was dropped, and which input keys look
    personal but were not used. Paths and key names only, never values."""
    def label(key: str, source: Any) -> str:
        if isinstance(source, int):
            return config.user_fields[key][source].replace("[]", "")
        if isinstance(source, tuple):
            return recognizer.format_path(source)
        return str(source)

    fields = {f"user_data.{key}": [label(key, s) for s in sources]
              for key, sources in (used or {}).items()}
    for name in ("event_name", "event_id", "event_time", "event_source_url", "referrer_url",
                 "value", "currency", "order_id", "items"):
        order = found.order(name)
        if order is not None:
            fields[name] = [config.event_fields[name][order]]
    used_paths = {p for paths in fields.values() for p in paths}
    dropped_why = [{"field": name.split(": ")[0], "why": _why_dropped(name)} for name in dropped]
    not_used = [recognizer.format_path(h[3]) for h in unused]
    seen = {_INDEXES.sub("", p) for p in used_paths} | {_INDEXES.sub("", p) for p in not_used}
    for path in _personal_looking_paths(raw):
        if _INDEXES.sub("", path) not in seen:
            not_used.append(path)
    return {"fields": fields, "dropped": dropped_why, "not_used": sorted(set(not_used))}


_INDEXES = re.compile(r"\[\d+\]")


_WHY = {
    "user_data.fbc": "not Meta's fb.<subdomain>.<ms>.<fbclid> format",
    "user_data.fbp": "not Meta's fb.<subdomain>.<ms>.<random> format",
    "custom_data.currency": "not a three-letter ISO 4217 code",
    "custom_data.contents.id": "a contents entry without id (Meta refuses those)",
    "items.item_id": "an item without an id (Meta refuses contents without id)",
    "items.price": "not a number", "items.quantity": "not a whole number of 0 or more",
    "items": "not a list of objects", "custom_data": "not an object", "app_data": "not an object",
}


def _why_dropped(name: str) -> str:
    """Why a dropped field was dropped, for ``explain``; names only, never values."""
    if ": " in name:
        return name.split(": ", 1)[1]
    if name in _WHY:
        return _WHY[name]
    if name.endswith(".query"):
        return "query parameters that carry personal data removed"
    if name.startswith("user_data."):
        return f"the value is not a valid {name[len('user_data.'):]} after Meta's normalization"
    if name.startswith("custom_data."):
        return "not a number" if name.rsplit(".", 1)[1] in (*_NUMERIC_CUSTOM, "num_items") \
            else "not a plain value"
    return "not a valid value"


def _personal_looking_paths(node: Any, prefix: str = "", depth: int = 0) -> list[str]:
    out: list[str] = []
    if depth > 8:
        return out
    if isinstance(node, Mapping):
        for key, value in node.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, (Mapping, list)):
                if not isinstance(key, str) or recognizer.compact(key) not in recognizer.SKIP:
                    out.extend(_personal_looking_paths(value, path, depth + 1))
            elif value not in (None, "") and isinstance(key, str):
                name = recognizer.compact(key)
                field = recognizer.classify_key(key)[0]
                if (field in _PERSON_KEYS or name in _PERSONAL_NAMES
                        or any(hint in name for hint in _PERSONAL_HINTS)):
                    out.append(path)
    elif isinstance(node, list):
        for index, value in enumerate(node[:20]):
            out.extend(_personal_looking_paths(value, f"{prefix}[{index}]", depth + 1))
    return out
