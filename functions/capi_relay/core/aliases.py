"""Where each CAPI field is found in the shapes sites and sGTM send: one declarative table.

These are the explicit keys (Meta's own, sGTM's ``x-fb-*``, GA4's ``user_data``) and the
platform event models' paths; site-style names (``customer_email``, ``billingAddress.city``)
are found by ``recognizer``.

Paths are dotted; ``[]`` walks every element of a list (``user_data.address[].city``), and a
dict found where a list was expected counts as a one-element list. Every non-empty value from
every path is collected, in table order, so an email in ``email`` and another in
``billing_email`` both reach Meta. A deployment extends the table from configuration
(``FIELD_ALIASES`` JSON: ``{"em": ["my_email_field"]}``); extra paths are appended, never
replace these.
"""

from __future__ import annotations

from collections.abc import KeysView, Mapping, Sequence
from functools import lru_cache
from typing import Any

#: user_data fields (Meta keys) -> paths. Raw and already-hashed values mix freely: the
#: normalizer passes a SHA-256 hex through and hashes anything else.
USER_FIELDS: dict[str, tuple[str, ...]] = {
    "em": (
        "user_data.em", "user_data.email_address", "user_data.sha256_email_address",
        "user_data.email", "x-fb-ud-em", "em",
    ),
    "ph": (
        "user_data.ph", "user_data.phone_number", "user_data.sha256_phone_number",
        "user_data.phone", "x-fb-ud-ph", "ph",
    ),
    "fn": (
        "user_data.fn", "user_data.address[].first_name", "user_data.address[].sha256_first_name",
        "x-fb-ud-fn", "fn",
    ),
    "ln": (
        "user_data.ln", "user_data.address[].last_name", "user_data.address[].sha256_last_name",
        "x-fb-ud-ln", "ln",
    ),
    "ge": ("user_data.ge", "x-fb-ud-ge", "ge"),
    "db": ("user_data.db", "x-fb-ud-db", "db"),
    "ct": (
        "user_data.ct", "user_data.address[].city", "user_data.address[].sha256_city",
        "x-fb-ud-ct", "ct",
    ),
    "st": (
        "user_data.st", "user_data.address[].region", "user_data.address[].sha256_region",
        "x-fb-ud-st", "st",
    ),
    "zp": (
        "user_data.zp", "user_data.address[].postal_code",
        "user_data.address[].sha256_postal_code", "x-fb-ud-zp", "zp",
    ),
    "country": (
        "user_data.country", "user_data.address[].country", "user_data.address[].sha256_country",
        "x-fb-ud-country",
    ),
    "external_id": (
        "user_data.external_id", "x-fb-ud-external_id", "external_id", "user_id", "userId",
    ),
    "client_ip_address": (
        "user_data.client_ip_address", "ip_override", "client_ip_address",
        "x-fb-ud-client_ip_address", "context.ip",
    ),
    "client_user_agent": (
        "user_data.client_user_agent", "user_agent", "client_user_agent",
        "context.navigator.userAgent",
    ),
    "fbp": ("user_data.fbp", "x-fb-ck-fbp", "_fbp", "fbp"),
    "fbc": ("user_data.fbc", "x-fb-ck-fbc", "_fbc", "fbc"),
    "subscription_id": ("user_data.subscription_id", "subscription_id"),
    "fb_login_id": ("user_data.fb_login_id", "fb_login_id"),
    "lead_id": ("user_data.lead_id", "lead_id"),
    "anon_id": ("user_data.anon_id", "anon_id"),
    "madid": ("user_data.madid", "madid"),
    "page_id": ("user_data.page_id", "page_id"),
    "page_scoped_user_id": ("user_data.page_scoped_user_id", "page_scoped_user_id"),
    "ctwa_clid": ("user_data.ctwa_clid", "ctwa_clid"),
    "ig_account_id": ("user_data.ig_account_id", "ig_account_id"),
    "ig_sid": ("user_data.ig_sid", "ig_sid"),
    "whatsapp_business_account_id": ("user_data.whatsapp_business_account_id",
                                     "whatsapp_business_account_id"),
}

#: event-level fields -> paths; the first non-empty value wins.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "event_name": ("event_name", "event", "name"),
    "event_id": ("event_id", "eventID", "eventId", "x-fb-event_id", "gtm.uniqueEventId_str",
                 "messageId", "$event_id"),
    "event_time": ("event_time", "timestamp", "x-fb-event_time", "timestamp_micros",
                   "created_at", "date_created_gmt", "date_created"),
    "event_source_url": ("event_source_url", "page_location", "page_url", "url",
                         "context.document.location.href", "pageUrl", "page.url",
                         "context.page.url", "properties.url", "order_status_url"),
    "referrer_url": ("referrer_url", "page_referrer", "context.document.referrer", "referrer",
                     "document_referrer", "pageReferrer", "context.page.referrer"),
    "action_source": ("action_source", "x-fb-action_source"),
    "messaging_channel": ("messaging_channel",),
    "app_data": ("app_data",),
    "opt_out": ("opt_out",),
    "data_processing_options": ("data_processing_options",),
    "data_processing_options_country": ("data_processing_options_country",),
    "data_processing_options_state": ("data_processing_options_state",),
    "client_id": ("client_id", "cid", "clientId"),
    "value": ("custom_data.value", "value", "ecommerce.value", "x-fb-cd-value",
              "ecommerce.purchase.actionField.revenue", "transactionTotal",
              "data.checkout.totalPrice.amount", "orderData.totals.total",
              "data.cartLine.cost.totalAmount.amount", "data.productVariant.price.amount",
              "revenue", "order_total", "orderTotal", "total_value", "totalValue",
              "properties.value", "properties.revenue", "properties.total", "cart_total",
              "$value", "total_price", "current_total_price", "total"),
    "currency": ("custom_data.currency", "currency", "ecommerce.currency", "x-fb-cd-currency",
                 "ecommerce.currencyCode", "currencyCode", "currency_code",
                 "data.checkout.currencyCode", "data.checkout.totalPrice.currencyCode",
                 "orderData.totals.currency", "transactionCurrency",
                 "data.cartLine.cost.totalAmount.currencyCode",
                 "data.productVariant.price.currencyCode", "properties.currency"),
    "order_id": (
        "custom_data.order_id", "transaction_id", "ecommerce.transaction_id", "order_id",
        "x-fb-cd-order_id", "ecommerce.purchase.actionField.id", "transactionId",
        "data.checkout.order.id", "orderData.attributes.order_number", "order_number",
        "orderId", "orderNumber", "properties.order_id", "properties.orderId",
        "OrderId", "number",
    ),
    "search_string": ("custom_data.search_string", "search_term", "x-fb-cd-search_string",
                      "data.searchResult.query", "searchTerm", "search_string",
                      "properties.query"),
    "status": ("custom_data.status", "status", "x-fb-cd-status"),
    "predicted_ltv": ("custom_data.predicted_ltv", "predicted_ltv", "x-fb-cd-predicted_ltv"),
    "delivery_category": (
        "custom_data.delivery_category", "delivery_category", "x-fb-cd-delivery_category",
    ),
    "customer_segmentation": ("custom_data.customer_segmentation", "customer_segmentation"),
    "items": ("items", "ecommerce.items", "custom_data.items", "ecommerce.purchase.products",
              "ecommerce.detail.products", "ecommerce.add.products",
              "ecommerce.checkout.products", "ecommerce.remove.products", "transactionProducts",
              "data.checkout.lineItems", "data.cartLine", "data.productVariant",
              "orderData.items", "products", "properties.products", "contents", "line_items",
              "Items"),
    # Meta Pixel parameters forwarded as they were given to fbq()
    "content_ids": ("content_ids",),
    "content_type": ("content_type",),
    "content_name": ("content_name",),
    "content_category": ("content_category",),
}

MISSING = object()


@lru_cache(maxsize=None)
def _steps(path: str) -> tuple[tuple[str, bool], ...]:
    """A path split once: (key, fans out over a list) per segment."""
    return tuple((part[:-2], True) if part.endswith("[]") else (part, False)
                 for part in path.split("."))


def _is_map(node: Any) -> bool:
    return type(node) is dict or isinstance(node, Mapping)


def walk(data: Any, path: str) -> list[Any]:
    """Every non-empty value found at a dotted path; ``[]`` fans out over list elements."""
    return _walk_steps(data, _steps(path))


def _descend(nodes: list[Any], key: str, fan_out: bool) -> list[Any]:
    """One path segment: the values under ``key`` in each mapping node."""
    found: list[Any] = []
    for node in nodes:
        if _is_map(node) and key in node:
            value = node[key]
            if fan_out:
                found.extend(value if isinstance(value, list) else [value])
            else:
                found.append(value)
    return found


def _walk_steps(data: Any, steps: tuple[tuple[str, bool], ...]) -> list[Any]:
    nodes: list[Any] = [data]
    for key, fan_out in steps:
        nodes = _descend(nodes, key, fan_out)
        if not nodes:
            return []
    return [node for node in nodes if node not in _EMPTY]


_EMPTY: tuple[Any, ...] = (None, "", [], {})


class Found:
    """What one event holds for each field: values per matching path, in table order."""

    __slots__ = ("_hits",)

    def __init__(self, hits: dict[str, list[tuple[int, Sequence[Any]]]]):
        self._hits = hits  # field -> (path order, non-empty values) per matching path, sorted

    def __contains__(self, field: str) -> bool:
        """True when some path of ``field`` holds a non-empty value."""
        return field in self._hits

    def fields(self) -> KeysView[str]:
        """The fields with a value: ``field in found.fields()`` is a plain dictionary probe,
        cheaper than ``field in found`` in a loop over many fields."""
        return self._hits.keys()

    def first(self, field: str) -> Any:
        """The first non-empty value along the field's paths, or MISSING."""
        hits = self._hits.get(field)
        return hits[0][1][0] if hits else MISSING

    def sourced(self, field: str) -> list[tuple[Any, int]]:
        """Like ``all``, each value with the index of the table path it was found at."""
        out: list[tuple[Any, int]] = []
        for order, values in self._hits.get(field, ()):
            for value in values:
                if isinstance(value, list):
                    out.extend((v, order) for v in value)
                else:
                    out.append((value, order))
        return out

    def order(self, field: str) -> int | None:
        """The index of the table path the first value came from, or None."""
        hits = self._hits.get(field)
        return hits[0][0] if hits else None

    def all_of(self, fields: "frozenset[str]") -> dict[str, list[Any]]:
        """``{field: self.all(field)}`` for each field of ``fields`` that has a value, in the
        order the fields were found: one call for every user_data key of an event."""
        out: dict[str, list[Any]] = {}
        for field, hits in self._hits.items():
            if field in fields:
                if len(hits) == 1:  # the usual case, as in ``all``
                    values = hits[0][1]
                    if len(values) == 1 and not isinstance(values[0], list):
                        out[field] = [values[0]]
                        continue
                out[field] = self.all(field)
        return out

    def all(self, field: str) -> list[Any]:
        """Every non-empty value along all the field's paths; list values are flattened."""
        hits = self._hits.get(field, ())
        if len(hits) == 1:  # the usual case: one path, one value that is not a list
            values = hits[0][1]
            if len(values) == 1 and not isinstance(values[0], list):
                return [values[0]]
        out: list[Any] = []
        for _, values in hits:
            for value in values:
                if isinstance(value, list):
                    out.extend(value)
                else:
                    out.append(value)
        return out


class _Node:
    """One step of the compiled alias table: a trie over path segments.

    ``ends`` are the (field, order) pairs whose path ends here; ``children`` maps the next key
    to its branches, one per fan-out flag (``a.b`` and ``a[].b`` may both exist). After
    ``seal``, a key whose only branch ends paths without going deeper or fanning out (the
    common one-segment alias, "email") moves to ``leaves`` (key -> ends), read with one
    dictionary probe and no recursion; ``inner`` keeps the other keys.

    ``plain_skips`` belongs to ``recognizer``: the keys whose plain values it has found it
    never reports in a mapping at this node, remembered there as it meets them.
    """

    __slots__ = ("ends", "children", "leaves", "inner", "plain_skips")

    def __init__(self) -> None:
        self.ends: list[tuple[str, int]] = []
        self.children: dict[str, list[tuple[bool, _Node]]] = {}
        self.leaves: dict[str, tuple[tuple[str, int], ...]] = {}
        self.inner: dict[str, list[tuple[bool, _Node]]] = {}
        self.plain_skips: set[Any] = set()

    def child(self, key: str, fan_out: bool) -> "_Node":
        branches = self.children.setdefault(key, [])
        for flag, node in branches:
            if flag == fan_out:
                return node
        node = _Node()
        branches.append((fan_out, node))
        return node

    def seal(self) -> None:
        for key, branches in self.children.items():
            for _, node in branches:
                node.seal()
            (fan_out, node), *more = branches
            if not more and not fan_out and not node.children:
                self.leaves[key] = tuple(node.ends)
            else:
                self.inner[key] = branches


class Extractor:
    """An alias table compiled once into a trie over path segments, so reading an event costs
    a dictionary probe per key the event has, and paths that share a prefix
    (``user_data.*``) read that prefix once, instead of one walk per path in the table."""

    def __init__(self, *tables: Mapping[str, tuple[str, ...]]):
        self._root = _Node()
        for table in tables:
            for field_name, paths in table.items():
                for order, path in enumerate(paths):
                    node = self._root
                    for key, fan_out in _steps(path):
                        node = node.child(key, fan_out)
                    node.ends.append((field_name, order))
        self._root.seal()

    @property
    def root(self) -> _Node:
        """The compiled trie (``leaves``: one-segment keys; ``inner``: key -> branches)."""
        return self._root

    def extract(self, data: Any) -> Found:
        if not _is_map(data):
            return Found({})
        ordered: dict[str, list[tuple[int, Sequence[Any]]]] = {}
        several: list[list[tuple[int, Sequence[Any]]]] = []  # the fields found at 2+ paths
        _collect_map(data, self._root, ordered, several)
        for found in several:
            found.sort(key=_by_order)
        return Found(ordered)


def _by_order(hit: tuple[int, Sequence[Any]]) -> int:
    return hit[0]


def _collect_map(node: Any, trie: _Node, ordered: dict[str, list[tuple[int, Sequence[Any]]]],
                 several: list[list[tuple[int, Sequence[Any]]]]) -> None:
    """``_collect`` below a single mapping: probes only the keys it has (the common case).
    ``several`` collects each field's hit list once, when it gets its second hit."""
    leaves, inner = trie.leaves, trie.inner
    for key in node:
        ends = leaves.get(key)
        if ends is not None:
            value = node[key]
            # = ``value not in _EMPTY``, with the usual non-empty text decided by one test
            if (value != "") if type(value) is str else (value not in _EMPTY):
                for field_name, order in ends:
                    hits = ordered.get(field_name)
                    if hits is None:
                        ordered[field_name] = [(order, (value,))]
                    else:
                        hits.append((order, (value,)))
                        if len(hits) == 2:
                            several.append(hits)
            continue
        branches = inner.get(key)
        if branches is None:
            continue
        value = node[key]
        for fan_out, child in branches:
            if fan_out:
                _collect(value if isinstance(value, list) else [value], child, ordered,
                         several)
            else:
                _collect([value], child, ordered, several)


def _collect(nodes: list[Any], trie: _Node, ordered: dict[str, list[tuple[int, Sequence[Any]]]],
             several: list[list[tuple[int, Sequence[Any]]]]) -> None:
    """Records what every path through ``trie`` finds under ``nodes``; the same values, in the
    same order, as ``_walk_steps`` gives for each path."""
    if trie.ends:
        values = [node for node in nodes if node not in _EMPTY]
        if values:
            for field_name, order in trie.ends:
                hits = ordered.get(field_name)
                if hits is None:
                    ordered[field_name] = [(order, values)]
                else:
                    hits.append((order, values))
                    if len(hits) == 2:
                        several.append(hits)
    if not trie.children:
        return
    if len(nodes) == 1 and _is_map(nodes[0]):
        _collect_map(nodes[0], trie, ordered, several)
        return
    for key, branches in trie.children.items():
        for fan_out, child in branches:
            found = _descend(nodes, key, fan_out)
            if found:
                _collect(found, child, ordered, several)


def extend(base: Mapping[str, tuple[str, ...]],
           extra: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """A copy of ``base`` with configured paths appended (unknown fields are an error)."""
    merged = dict(base)
    for field_name, paths in extra.items():
        if field_name not in merged:
            raise KeyError(field_name)
        if isinstance(paths, str):
            paths = [paths]
        merged[field_name] = tuple(merged[field_name]) + tuple(str(p) for p in paths)
    return merged
