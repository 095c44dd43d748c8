"""Where each CAPI field is found in the shapes sites and sGTM send: one declarative table.

Paths are dotted; ``[]`` walks every element of a list (``user_data.address[].city``), and a
dict found where a list was expected counts as a one-element list. Every non-empty value from
every path is collected, in table order, so an email in ``email`` and another in
``billing_email`` both reach Meta. A deployment extends the table from configuration
(``FIELD_ALIASES`` JSON: ``{"em": ["my_email_field"]}``); extra paths are appended, never
replace these.
"""

from __future__ import annotations

from typing import Any, Iterator, Mapping

#: user_data fields (Meta keys) -> paths. Raw and already-hashed values mix freely: the
#: normalizer passes a SHA-256 hex through and hashes anything else.
USER_FIELDS: dict[str, tuple[str, ...]] = {
    "em": (
        "user_data.em", "user_data.email_address", "user_data.sha256_email_address",
        "user_data.email", "x-fb-ud-em", "email", "email_address", "customer_email",
        "billing_email", "user_email", "ecommerce.customer.email", "customer.email",
    ),
    "ph": (
        "user_data.ph", "user_data.phone_number", "user_data.sha256_phone_number",
        "user_data.phone", "x-fb-ud-ph", "phone", "phone_number", "customer_phone",
        "billing_phone", "user_phone", "customer.phone",
    ),
    "fn": (
        "user_data.fn", "user_data.address[].first_name", "user_data.address[].sha256_first_name",
        "x-fb-ud-fn", "first_name", "firstname", "customer_first_name", "billing_first_name",
        "customer.first_name",
    ),
    "ln": (
        "user_data.ln", "user_data.address[].last_name", "user_data.address[].sha256_last_name",
        "x-fb-ud-ln", "last_name", "lastname", "customer_last_name", "billing_last_name",
        "customer.last_name",
    ),
    "ge": ("user_data.ge", "x-fb-ud-ge", "gender", "customer_gender"),
    "db": ("user_data.db", "x-fb-ud-db", "birthday", "date_of_birth", "birth_date",
           "customer_birthday"),
    "ct": (
        "user_data.ct", "user_data.address[].city", "user_data.address[].sha256_city",
        "x-fb-ud-ct", "city", "customer_city", "billing_city",
    ),
    "st": (
        "user_data.st", "user_data.address[].region", "user_data.address[].sha256_region",
        "x-fb-ud-st", "state", "region", "customer_state", "billing_state",
    ),
    "zp": (
        "user_data.zp", "user_data.address[].postal_code",
        "user_data.address[].sha256_postal_code", "x-fb-ud-zp", "zip", "postal_code",
        "customer_zip", "customer_postcode", "billing_postcode", "billing_zip",
    ),
    "country": (
        "user_data.country", "user_data.address[].country", "user_data.address[].sha256_country",
        "x-fb-ud-country", "country", "customer_country", "billing_country",
    ),
    "external_id": (
        "user_data.external_id", "x-fb-ud-external_id", "user_id", "external_id",
        "customer_id", "userId",
    ),
    "client_ip_address": (
        "user_data.client_ip_address", "ip_override", "client_ip_address",
        "x-fb-ud-client_ip_address", "_request.ip",
    ),
    "client_user_agent": (
        "user_data.client_user_agent", "user_agent", "client_user_agent", "_request.user_agent",
    ),
    "fbp": ("user_data.fbp", "x-fb-ck-fbp", "_fbp", "fbp", "_request.fbp"),
    "fbc": ("user_data.fbc", "x-fb-ck-fbc", "_fbc", "fbc", "_request.fbc"),
    "subscription_id": ("user_data.subscription_id",),
    "fb_login_id": ("user_data.fb_login_id",),
    "lead_id": ("user_data.lead_id", "lead_id"),
    "anon_id": ("user_data.anon_id",),
    "madid": ("user_data.madid",),
    "page_id": ("user_data.page_id",),
    "page_scoped_user_id": ("user_data.page_scoped_user_id",),
    "ctwa_clid": ("user_data.ctwa_clid",),
    "ig_account_id": ("user_data.ig_account_id",),
    "ig_sid": ("user_data.ig_sid",),
}

#: event-level fields -> paths; the first non-empty value wins.
EVENT_FIELDS: dict[str, tuple[str, ...]] = {
    "event_name": ("event_name", "event"),
    "event_id": ("event_id", "eventID", "eventId", "x-fb-event_id", "gtm.uniqueEventId_str"),
    "event_time": ("event_time", "timestamp", "x-fb-event_time"),
    "event_source_url": ("event_source_url", "page_location", "page_url", "url"),
    "referrer_url": ("referrer_url", "page_referrer"),
    "action_source": ("action_source", "x-fb-action_source"),
    "opt_out": ("opt_out",),
    "data_processing_options": ("data_processing_options",),
    "data_processing_options_country": ("data_processing_options_country",),
    "data_processing_options_state": ("data_processing_options_state",),
    "client_id": ("client_id", "cid"),
    "value": ("custom_data.value", "value", "ecommerce.value", "x-fb-cd-value"),
    "currency": ("custom_data.currency", "currency", "ecommerce.currency", "x-fb-cd-currency"),
    "order_id": (
        "custom_data.order_id", "transaction_id", "ecommerce.transaction_id", "order_id",
        "x-fb-cd-order_id",
    ),
    "search_string": ("custom_data.search_string", "search_term", "x-fb-cd-search_string"),
    "status": ("custom_data.status", "status", "x-fb-cd-status"),
    "predicted_ltv": ("custom_data.predicted_ltv", "predicted_ltv", "x-fb-cd-predicted_ltv"),
    "delivery_category": (
        "custom_data.delivery_category", "delivery_category", "x-fb-cd-delivery_category",
    ),
    "items": ("items", "ecommerce.items", "custom_data.items"),
}

MISSING = object()


def walk(data: Any, path: str) -> Iterator[Any]:
    """Every non-empty value found at a dotted path; ``[]`` fans out over list elements."""
    nodes: list[Any] = [data]
    for part in path.split("."):
        fan_out = part.endswith("[]")
        key = part[:-2] if fan_out else part
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, Mapping) and key in node:
                value = node[key]
                if fan_out:
                    found.extend(value if isinstance(value, list) else [value])
                else:
                    found.append(value)
        nodes = found
        if not nodes:
            return
    for node in nodes:
        if node not in (None, "", [], {}):
            yield node


def first(data: Any, paths: tuple[str, ...]) -> Any:
    """The first non-empty value along the paths, or MISSING."""
    for path in paths:
        for value in walk(data, path):
            return value
    return MISSING


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
