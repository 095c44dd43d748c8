"""Parses GA4 collect-protocol hits (gtag.js ``/g/collect``) into GA4-model event dicts. Pure.

gtag.js sends one hit per request when its ``server_container_url`` points here: the URL's
query string holds the params every event shares (``v``, ``tid``, ``cid``, ``dl``, consent,
...), and a POST body may add several events, one per line, each line a query string of its
own params (``en``, ``ep.*``, ``epn.*``, ``pr1``...). A line's params win over the shared ones.

The output is the event model ``mapping.to_capi_event`` already maps (``event_name``,
``page_location``, ``client_id``, ``value``, ``items`` ...). Request data (IP, user agent, the
``_fbp``/``_fbc`` cookies) is not here: the transport adds it through ``RequestContext``.

Bad input never raises: a bad field is left out and named in ``problems``; a line that cannot
be an event (no ``en``, a protocol other than v2) is skipped and named there too.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Mapping
from urllib.parse import parse_qsl

#: protocol param -> GA4 model field, for the params copied as they are (text)
TEXT_PARAMS: Mapping[str, str] = MappingProxyType({
    "en": "event_name",
    "dl": "page_location",
    "dr": "page_referrer",
    "dt": "page_title",
    "cid": "client_id",
    "uid": "user_id",
    "cu": "currency",
    "tid": "x-ga-measurement_id",
    "gcs": "x-ga-gcs",
    "gcd": "x-ga-gcd",
    "sid": "ga_session_id",
    "sct": "ga_session_number",
    "seg": "ga_session_engaged",
    "ul": "language",
})

#: protocol param -> GA4 model field, for the params that must be whole numbers
INT_PARAMS: Mapping[str, str] = MappingProxyType({
    "_et": "engagement_time_msec",
})

#: item field code inside ``prN`` -> GA4 item field
ITEM_FIELDS: Mapping[str, str] = MappingProxyType({
    "id": "item_id", "nm": "item_name", "br": "item_brand", "ca": "item_category",
    "c2": "item_category2", "c3": "item_category3", "c4": "item_category4",
    "c5": "item_category5", "va": "item_variant", "af": "affiliation", "cp": "coupon",
    "ln": "item_list_name", "li": "item_list_id", "lp": "index", "pr": "price",
    "qt": "quantity", "ds": "discount",
})
_ITEM_NUMBERS = frozenset({"price", "discount"})
_ITEM_INTS = frozenset({"quantity", "index"})

#: event params a hit may not set through ``ep.``/``epn.``: the transport owns them
_RESERVED = frozenset({"_request"})

_ITEM_PARAM = re.compile(r"pr([1-9][0-9]{0,2})")
MAX_PARAMS_PER_LINE = 1000


@dataclass(frozen=True)
class CollectHits:
    """The events a collect request carried, and the fields that were bad (names only)."""

    events: tuple[dict[str, Any], ...]
    problems: tuple[str, ...] = ()


def parse_collect(query: str, body: str | bytes = "", *, max_events: int = 1000) -> CollectHits:
    """The GA4-model events in one collect request: URL query string plus optional body."""
    problems: list[str] = []
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    shared = _params(query, problems)
    lines = [line for line in body.splitlines() if line.strip()]
    if len(lines) > max_events:
        problems.append("body: too many events")
        lines = lines[:max_events]
    hits = [{**shared, **_params(line, problems)} for line in lines] or [shared]

    events = []
    for params in hits:
        event = to_ga4_event(params, problems)
        if event is not None:
            events.append(event)
    return CollectHits(tuple(events), tuple(dict.fromkeys(problems)))


def _params(query: str, problems: list[str]) -> dict[str, str]:
    query = query.strip().lstrip("?")
    if not query:
        return {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, max_num_fields=MAX_PARAMS_PER_LINE)
    except ValueError:
        problems.append("query: too many params")
        return {}
    return dict(pairs)


def to_ga4_event(params: Mapping[str, str], problems: list[str]) -> dict[str, Any] | None:
    """One hit's params as a GA4-model event; None (with the reason in ``problems``) if none."""
    version = params.get("v")
    if version is not None and version != "2":
        problems.append("v")
        return None
    if not (params.get("en") or "").strip():
        problems.append("en")
        return None

    event: dict[str, Any] = {}
    user_properties: dict[str, Any] = {}
    items: list[tuple[int, dict[str, Any]]] = []
    for key, value in params.items():
        if key.startswith("ep."):
            _put(event, key[3:], value)
        elif key.startswith("epn."):
            _put(event, key[4:], _number(value, key, problems))
        elif key.startswith("up."):
            _put(user_properties, key[3:], value)
        elif key.startswith("upn."):
            _put(user_properties, key[4:], _number(value, key, problems))
        elif match := _ITEM_PARAM.fullmatch(key):
            item = parse_item(value, key, problems)
            if item is not None:
                items.append((int(match.group(1)), item))

    # the protocol's own params win over an event param of the same name
    for key, target in TEXT_PARAMS.items():
        text = (params.get(key) or "").strip()
        if text:
            event[target] = text
    for key, target in INT_PARAMS.items():
        if params.get(key):
            number = _number(params[key], key, problems)
            if number is not None and number == int(number):
                event[target] = int(number)
            elif number is not None:
                problems.append(key)
    if user_properties:
        event["user_properties"] = user_properties
    if items:
        event["items"] = [item for _, item in sorted(items, key=lambda pair: pair[0])]
    return event


def parse_item(value: str, field_name: str, problems: list[str]) -> dict[str, Any] | None:
    """One ``prN`` value as a GA4 item, or None (named in ``problems``) if it has no id or name.

    gtag.js writes each field as a two-letter code glued to its value, fields joined by ``~``
    (``idSKU-1~nmTrail shoe~pr99.9~qt1``); some hand-built hits put a ``~`` between code and
    value as well (``id~SKU-1~nm~Trail shoe``): both are read. Custom item params come as
    ``k0name~v0value``.
    """
    item: dict[str, Any] = {}
    custom_names: dict[str, str] = {}
    custom_values: dict[str, str] = {}
    for code, text in _item_fields(value):
        if code[0] in "kv" and code[1].isdigit():
            (custom_names if code[0] == "k" else custom_values)[code[1]] = text
            continue
        target = ITEM_FIELDS.get(code)
        if target is None or not text:
            continue
        if target in _ITEM_NUMBERS or target in _ITEM_INTS:
            number = _number(text, f"{field_name}.{code}", problems)
            if number is None:
                continue
            if target in _ITEM_INTS:
                if number != int(number):
                    problems.append(f"{field_name}.{code}")
                    continue
                number = int(number)
            item[target] = number
        else:
            item[target] = text
    for index, name in custom_names.items():
        if name and index in custom_values and name not in item:
            item[name] = custom_values[index]
    if "item_id" not in item and "item_name" not in item:
        problems.append(field_name)
        return None
    return item


def _is_code(token: str) -> bool:
    return token in ITEM_FIELDS or (len(token) == 2 and token[0] in "kv" and token[1].isdigit())


def _item_fields(value: str) -> list[tuple[str, str]]:
    tokens = value.split("~")
    if len(tokens) % 2 == 0 and all(_is_code(t) for t in tokens[::2]):
        return list(zip(tokens[::2], tokens[1::2], strict=True))
    return [(t[:2], t[2:]) for t in tokens if len(t) >= 2]


def _put(target: dict[str, Any], name: str, value: Any) -> None:
    if name and value is not None and name not in _RESERVED:
        target[name] = value


def _number(text: str, field_name: str, problems: list[str]) -> int | float | None:
    try:
        number = float(text.strip())
    except ValueError:
        problems.append(field_name)
        return None
    if not math.isfinite(number):
        problems.append(field_name)
        return None
    return int(number) if number == int(number) and abs(number) < 2**53 else number
