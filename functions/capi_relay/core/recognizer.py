"""Finds match keys wherever a site puts them, by key-name vocabulary: one pass over the event.

The alias table (``aliases.USER_FIELDS`` plus ``FIELD_ALIASES``) names exact paths; this module
finds the rest by what the keys are called. A key name is compared in a compact form (lowercase,
letters and digits only: ``customerBillingEmail``, ``customer_billing_email`` and
``CUSTOMER-BILLING-EMAIL`` are all ``customerbillingemail``), after peeling role prefixes
(``customer``, ``user``, ``visitor``, ``billing``, ``shipping``, ``sha256``, ...) and hash
suffixes (``EmailHash``). Containers are descended by name: person and address objects
(``customer``, ``user_data``, ``user_properties``, ``billingAddress``, ``address`` as object or
list, ``ecommerce.purchase.customer``, ``data.checkout``, ``orderData.customer``, ...) are read;
item lists, page and device context, shop and merchant objects are not.

Each value found carries a role, ``buyer`` or ``shipping``, from its key prefix or from the
nearest container that names one (``shipping_city``, ``shippingAddress.city``,
``orderData.customer.shipping.city``). ``billing`` and unprefixed customer keys are the buyer:
the one who pays is the account holder in every platform we read. The mapper's rule (one person
per event) then decides which role's values it sends; see ``mapping._person_sources``.

Browser identifiers (user agent, IP, ``_fbp``/``_fbc`` cookies) are taken whatever the role.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: compact key name -> Meta user_data key. Site spellings only: Meta's own short keys (em, ph,
#: fn, ...) are explicit and read by the alias table, never guessed from a name.
_BASE: dict[str, str] = {}
for _key, _names in {
    "em": ("email", "emailaddress", "mail", "emailaddr", "mailaddress"),
    "ph": ("phone", "phonenumber", "telephone", "tel", "mobile", "mobilephone", "cellphone",
           "mobilenumber", "phoneno", "telephonenumber", "cell"),
    "fn": ("firstname", "fname", "givenname", "forename"),
    "ln": ("lastname", "lname", "surname", "familyname"),
    "ge": ("gender", "sex"),
    "db": ("birthday", "dateofbirth", "birthdate", "dob"),
    "ct": ("city", "town", "locality"),
    # not "county": in the US a county is not a state
    "st": ("state", "region", "province", "provincecode", "statecode", "regioncode",
           "stateorprovince"),
    "zp": ("zip", "zipcode", "postalcode", "postcode", "postal", "plz"),
    "country": ("country", "countrycode", "countryid", "countryiso", "countryname"),
    "external_id": ("externalid",),
    "client_user_agent": ("useragent", "clientuseragent"),
    "client_ip_address": ("ip", "ipaddress", "clientipaddress", "clientip", "ipoverride",
                          "browserip"),
    "fbp": ("fbp",),
    "fbc": ("fbc",),
}.items():
    for _name in _names:
        _BASE[_name.lower()] = _key

BUYER = "buyer"
SHIPPING = "shipping"

#: prefixes peeled off a key name, with the role they give (None keeps the container's role);
#: longest first so "shippingaddress" is not read as "shipping" + "address"
_PREFIXES: tuple[tuple[str, str | None, bool], ...] = tuple(sorted((
    # (prefix, role, names a person: a bare "id" after it is that person's id)
    ("customer", None, True), ("user", None, True), ("visitor", None, True),
    ("buyer", None, True), ("member", None, True), ("account", None, True),
    ("contact", None, True), ("client", None, False), ("billing", BUYER, True),
    ("shipping", SHIPPING, True), ("delivery", SHIPPING, True), ("sha256", None, False),
    ("hashed", None, False), ("default", None, False), ("address", None, False),
    ("primary", None, False), ("home", None, False), ("personal", None, False),
    ("your", None, False),  # Contact Form 7: your-email, your-name
), key=lambda p: -len(p[0])))
_SUFFIXES = ("sha256", "hashed", "hash")

#: container names (compact) never read: items and products are not the customer, context and
#: page describe the browser, shops and merchants are the seller
SKIP = frozenset({
    "items", "item", "products", "product", "lineitems", "lineitem", "lines", "contents",
    "transactionproducts", "productvariant", "variant", "merchandise", "cartline", "impressions",
    "promotions", "promoview", "promoclick", "gtm", "page", "device", "app",
    "appdata", "consent", "consentstate", "shop", "store", "merchant", "seller", "vendor",
    "company", "localization", "discountapplications", "discounts", "customdata",
    "customproperties", "navigator", "document", "window", "location", "screen", "settings",
    "shippingline", "selecteddeliveryoptions", "transactions",
})
#: containers that describe one person: a bare "id" inside is that person's id
_PERSON = frozenset({
    "customer", "user", "userdata", "userproperties", "visitor", "buyer", "member", "account",
    "contact", "buyeridentity", "customerdata", "customerinfo", "userinfo", "profile",
    "billing", "billingaddress", "billinginfo", "billingdetails", "shipping",
    "shippingaddress", "shippinginfo", "shippingdetails", "address", "addresses",
    "homeaddress", "defaultaddress",
})

_MAX_DEPTH = 6
_MAX_LIST = 10
_CACHE_LIMIT = 4096


def compact(key: str) -> str:
    """A key name without case or separators: ``customer_First-Name`` -> ``customerfirstname``."""
    return "".join(ch for ch in key.lower() if ch.isalnum())


def _classify(name: str) -> tuple[str | None, str | None, bool]:
    """(Meta key or None, role or None, a person prefix was seen) for a compact key name."""
    if name in _BASE:
        return _BASE[name], None, False
    role: str | None = None
    person = False
    rest = name
    for suffix in _SUFFIXES:
        if rest.endswith(suffix) and len(rest) > len(suffix):
            rest = rest[: -len(suffix)]
            break
    changed = True
    while changed and rest:
        if rest in _BASE:
            return _BASE[rest], role, person
        changed = False
        for prefix, prefix_role, names_person in _PREFIXES:
            if rest.startswith(prefix) and len(rest) > len(prefix):
                rest = rest[len(prefix):]
                role = prefix_role or role
                person = person or names_person
                changed = True
                break
    if rest in _BASE:
        return _BASE[rest], role, person
    if rest == "id" and person:
        return "external_id", role, True
    digits = rest.rstrip("0123456789")  # phone2, email_1: a second one of the same
    if digits != rest and digits in _BASE:
        return _BASE[digits], role, person
    return None, role, person


_KEY_CACHE: dict[str, tuple[str | None, str | None, bool]] = {}
_CONTAINER_CACHE: dict[str, tuple[bool, str | None, bool]] = {}


def classify_key(key: str) -> tuple[str | None, str | None, bool]:
    """Cached ``_classify`` of a raw key (bounded: key names come from the internet)."""
    hit = _KEY_CACHE.get(key)
    if hit is None:
        if len(_KEY_CACHE) >= _CACHE_LIMIT:
            _KEY_CACHE.clear()
        hit = _KEY_CACHE[key] = _classify(compact(key)) if len(key) <= 64 else (None, None, False)
    return hit


def _container(key: str) -> tuple[bool, str | None, bool]:
    """(read it, role it gives, it is one person) for a container key."""
    hit = _CONTAINER_CACHE.get(key)
    if hit is None:
        if len(_CONTAINER_CACHE) >= _CACHE_LIMIT:
            _CONTAINER_CACHE.clear()
        name = compact(key) if len(key) <= 64 else ""
        role = None
        if "shipping" in name or "delivery" in name:
            role = SHIPPING
        elif "billing" in name:
            role = BUYER
        hit = (bool(name) and name not in SKIP, role, name in _PERSON)
        _CONTAINER_CACHE[key] = hit
    return hit


#: one value found: (Meta key, value, role or None, path as a tuple of keys and list indexes)
Hit = tuple[str, Any, "str | None", tuple]


def recognize(event: Mapping[str, Any], explicit: Any = None) -> list[Hit]:
    """Every match-key value the vocabulary recognizes in ``event``, in document order.

    ``explicit`` is the alias table's compiled trie (``aliases.Extractor.root``): values at
    paths it reads already are not reported again.
    """
    hits: list[Hit] = []
    _walk(event, (), None, False, 0, hits, explicit)
    return hits


def _explicit_child(trie: Any, key: str, fan_out: bool) -> Any:
    """The alias trie below ``key`` for a dict (``fan_out`` False) or a list's elements."""
    branches = trie.inner.get(key)
    if branches is None:
        return None
    for flag, node in branches:
        if flag == fan_out:
            return node
    return branches[0][1] if not fan_out else None


def _scalar(value: Any) -> bool:
    return (type(value) is str and value != "") or (
        isinstance(value, (int, float)) and not isinstance(value, bool))


#: the keys whose plain (text or number) values never give a hit, in any mapping outside the
#: alias table's paths: no Meta key, not a name to split, not an "id" (bounded, as _KEY_CACHE)
_PLAIN_SKIPS: set[Any] = set()


def _skip_plain(skips: set[Any], key: str) -> None:
    """Remembers that ``_walk`` passes over ``key``'s plain values (one probe, next time)."""
    if len(skips) < _CACHE_LIMIT:
        skips.add(key)


def _walk(node: Mapping[str, Any], path: tuple, role: str | None, person: bool, depth: int,
          hits: list[Hit], trie: Any) -> None:
    cache = _KEY_CACHE
    # Most keys of an event hold plain values that name no match key (event_name, page_location,
    # client_id, ...) or that the alias table reads: the verdict depends on the key (and the
    # trie) alone, so after the first time it is one set probe.
    skips = _PLAIN_SKIPS if trie is None else trie.plain_skips
    for key, value in node.items():
        kind = type(value)
        if kind is str or kind is int or kind is float:
            if key in skips or (kind is str and not value):
                continue
            if type(key) is not str:
                continue
            found = cache.get(key)
            if found is None:
                found = classify_key(key)
            field = found[0]
            if field is None:
                if person and key.lower() == "id":
                    field = "external_id"
                elif kind is str and (key in _FULL_NAMES or (person and key in _PERSON_NAMES)):
                    _split_name(value, found[1] or role, path + (key,), hits)
                    continue
                else:
                    if key.lower() != "id" and key not in _FULL_NAMES and key not in _PERSON_NAMES:
                        _skip_plain(skips, key)  # skipped whatever the value and the container
                    continue
            if trie is not None and key in trie.leaves:
                _skip_plain(skips, key)  # the alias table reads this one, below this trie node
                continue
            hits.append((field, value, found[1] or role, path + (key,)))
            continue
        if value is None or kind is bool or type(key) is not str:
            continue
        if not (kind is dict or kind is list or isinstance(value, (Mapping, list))):
            continue
        field, key_role, _ = cache.get(key) or classify_key(key)
        if field is not None and isinstance(value, list):
            if trie is not None and key in trie.leaves:
                continue
            # a list of plain values under a match key: {"emails": [...]}, {"email": [...]}
            for element in value[:_MAX_LIST]:
                if _scalar(element):
                    hits.append((field, element, key_role or role, path + (key,)))
            continue
        if field is not None and isinstance(value, Mapping) and _scalar(value.get("value")):
            # GA4 user properties: {"email": {"value": ...}}
            if not (trie is not None and key in trie.leaves):
                hits.append((field, value["value"], key_role or role, path + (key, "value")))
            continue
        if field in ("country", "st") and isinstance(value, Mapping):
            # {"country": {"isoCode": "US"}}, {"region": {"code": "CA", "name": ...}}
            for sub in ("isoCode", "code", "iso_code", "name"):
                if _scalar(value.get(sub)):
                    hits.append((field, value[sub], key_role or role, path + (key, sub)))
                    break
            continue
        if depth >= _MAX_DEPTH:
            continue
        read, container_role, is_person = _CONTAINER_CACHE.get(key) or _container(key)
        if not read:
            continue
        inner_role = container_role or role
        inner_person = is_person or (person and container_role is not None)
        if isinstance(value, list):
            inner_trie = _explicit_child(trie, key, True) if trie is not None else None
            for index, element in enumerate(value[:_MAX_LIST]):
                if isinstance(element, Mapping):
                    if "value" in element and _named_value(element, path + (key, index),
                                                           inner_role, hits):
                        continue
                    _walk(element, path + (key, index), inner_role, inner_person,
                          depth + 1, hits, inner_trie)
        else:
            inner_trie = _explicit_child(trie, key, False) if trie is not None else None
            _walk(value, path + (key,), inner_role, inner_person, depth + 1, hits, inner_trie)


#: a person's whole name: split into fn (first word) and ln (last word) when it has two or more
_FULL_NAMES = frozenset({"full_name", "fullName", "fullname", "FullName", "customer_name",
                         "customerName", "billing_name", "billingName", "shipping_name",
                         "shippingName", "contact_name", "contactName", "your-name"})
#: the same inside an object that is one person (customer.name, billing_address.name)
_PERSON_NAMES = frozenset({"name", "Name"})


def _split_name(text: str, role: str | None, path: tuple, hits: list[Hit]) -> None:
    words = text.split()
    if len(words) >= 2 and len(text) <= 200:
        hits.append(("fn", words[0], role, path))
        hits.append(("ln", words[-1], role, path))


_NAME_KEYS = ("name", "key", "field", "label", "id")


def _named_value(element: Mapping[str, Any], path: tuple, role: str | None,
                 hits: list[Hit]) -> bool:
    """A form field as a name/value pair (``fields: [{"name": "email", "value": ...}]``, as
    form plugins and webhooks send them): a hit under the pair's name. True when it was one."""
    value = element.get("value")
    if not _scalar(value) or len(element) > 6:
        return False
    for name_key in _NAME_KEYS:
        name = element.get(name_key)
        if type(name) is str and name:
            field, key_role, _ = classify_key(name)
            if field is not None:
                hits.append((field, value, key_role or role, path + ("value",)))
                return True
    return False


def format_path(path: tuple) -> str:
    """``("data", "checkout", "billingAddress", "city")`` -> ``data.checkout.billingAddress.city``;
    list indexes as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out
