"""Normalization and SHA-256 hashing of CAPI user_data identifiers: what goes on the wire per key.

Rules follow Meta's "Customer Information Parameters" page (URL below), checked against Meta's
Python Business SDK (facebook_business/adobjects/serverside/normalize.py) and Meta's Parameter
Builder library (github.com/facebook/capi-param-builder). Where those disagree, each rule's
docstring says which one we follow and why; we are usually stricter: a value that cannot match
is dropped (``None``) rather than hashed.
https://developers.facebook.com/docs/marketing-api/conversions-api/parameters/customer-information-parameters

Every rule applies Unicode NFC and trims first; all but external_id also lowercase. Pure code,
no I/O beyond reading installed library data. phonenumbers is imported lazily inside the
functions that need it, so importing this module stays cheap on a cold start; pycountry is not
imported at all where its ISO 3166-1 data file can be read directly (``_country_tables``).
"""

from __future__ import annotations

import datetime as _dt
import functools
import hashlib
import importlib.util
import ipaddress
import json
import os
import re
import unicodedata
from typing import Callable

from capi_relay.core import phone
from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS
from capi_relay.core.regions import COUNTRY_ALIASES, ISO_ALPHA2, STATE_CODES, STATE_NAMES

__all__ = [
    "is_parameter_builder_value",
    "is_sha256",
    "normalize",
    "normalize_country",
    "normalize_ip",
    "prepare",
    "sha256_hex",
]

_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
# Parameter Builder appends ".<appendix>" to the hash it produces: either a legacy two-letter
# language token or the 8-character base64url encoding of 6 bytes (format, language, is_new,
# major, minor, patch). Source: capi-param-builder, nodejs/src/model/Constants.js
# (SUPPORTED_PARAM_BUILDER_LANGUAGES_TOKEN, APPENDIX_LENGTH_V1/V2) and
# python/capi_param_builder/param_builder.py (_get_appendix).
_PARAM_BUILDER_RE = re.compile(r"[0-9a-fA-F]{64}\.(?:AQ|Ag|Aw|BA|BQ|Bg|[A-Za-z0-9_-]{8})")
#: either of the two: what may be sent for a hashed key (one match instead of two)
HASHED_VALUE_RE = re.compile(r"[0-9a-fA-F]{64}(?:\.(?:AQ|Ag|Aw|BA|BQ|Bg|[A-Za-z0-9_-]{8}))?")


def sha256_hex(text: str) -> str:
    """Lowercase hex SHA-256 of the UTF-8 bytes of ``text``."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_sha256(value: str) -> bool:
    """True when ``value`` is exactly 64 hex digits, in any case."""
    return isinstance(value, str) and _SHA256_RE.fullmatch(value) is not None


def is_parameter_builder_value(value: str) -> bool:
    """True for Meta Parameter Builder output: ``<64 hex sha256>.<appendix>``.

    The appendix is a legacy language token (``AQ Ag Aw BA BQ Bg``) or an 8-character
    base64url string. Meta's docs: "If you are using the parameter builder library, the format
    will contain an additional appendix at the end of each param." Parameter Builder also
    accepts an MD5 base; we do not (Meta's CAPI docs ask for SHA-256).
    """
    return isinstance(value, str) and _PARAM_BUILDER_RE.fullmatch(value) is not None


# --- shared text helpers ----------------------------------------------------------------------

def _as_text(value: object) -> str | None:
    """The value as NFC text, trimmed; None for None, booleans, containers and blanks."""
    if type(value) is str:  # the usual case first; ASCII text is already NFC
        text = value.strip() if value.isascii() else unicodedata.normalize("NFC", value).strip()
        return text or None
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value
    elif isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            return None
        text = str(int(value)) if value.is_integer() else str(value)
    else:
        return None
    text = unicodedata.normalize("NFC", text).strip()
    return text or None


def _lower(value: object) -> str | None:
    text = _as_text(value)
    return text.lower() if text else None


def _strip_categories(text: str, drop: tuple[str, ...]) -> str:
    """Removes characters whose Unicode category starts with one of ``drop``."""
    return "".join(ch for ch in text if not unicodedata.category(ch).startswith(drop))


#: every ASCII character that is not a letter or a digit: in ASCII these are exactly the ones
#: of categories P*, S*, Z* and Cc (tests/unit/test_normalize.py checks all 128)
_ASCII_NOT_ALNUM = {code: None for code in range(128) if not chr(code).isalnum()}
_ASCII_NOT_ALPHA = {code: None for code in range(128) if not chr(code).isalpha()}


def _strip_punctuation(text: str) -> str:
    """``_strip_categories(text, ("P", "S", "Z", "Cc"))``: punctuation, symbols, separators
    and control characters removed. ASCII text (most names, states and postal codes) takes one
    ``str.translate`` instead of a category lookup per character."""
    if text.isascii():
        return text.translate(_ASCII_NOT_ALNUM)
    return _strip_categories(text, ("P", "S", "Z", "Cc"))


def _compact_key(text: str) -> str:
    """Lookup key for name tables: lowercase, no accents, letters only ("Québec" -> "quebec")."""
    if text.isascii():  # NFKD leaves ASCII as it is, and no ASCII character is combining
        return text.lower().translate(_ASCII_NOT_ALPHA)
    decomposed = unicodedata.normalize("NFKD", text.lower())
    return "".join(ch for ch in decomposed if ch.isalpha() and not unicodedata.combining(ch))


def _alpha2(country: str | None) -> str | None:
    """The ``country`` keyword as a lowercase alpha-2 code, or None."""
    if not country:
        return None
    code = country.strip().lower()
    if len(code) == 2 and code in ISO_ALPHA2:
        return code
    return normalize_country(country)


# --- per-key rules ----------------------------------------------------------------------------

def _normalize_email(value: object) -> str | None:
    """em: trim, lowercase, keep only a plausible address.

    Meta: "Trim any leading and trailing spaces. Convert all characters to lowercase."
    Stricter than Meta's docs: the value must have one "@", a non-empty local part without two
    consecutive dots, a domain with a dot between non-empty labels, and no whitespace. Looser
    than Meta's SDK regex (ASCII-only ``[a-z0-9_.+-]+@[a-z0-9-]+\\.[a-z0-9-.]+``):
    internationalized addresses are kept. Gmail dots and "+tags" are kept: Meta's rule does
    not strip them.
    """
    text = _as_text(value)
    return _email_text(text, None) if text else None


# The ``_*_text`` rules take what ``_as_text`` made of the value (trimmed NFC text, not empty),
# so ``_prepare``, which has that text already, does not make it twice; ``country`` is unused
# where the rule has none.

def _email_text(text: str, country: str | None) -> str | None:
    text = text.lower()
    # split() breaks on exactly the characters isspace() matches; the text is trimmed, so it
    # has whitespace inside iff it splits in more than one part.
    if len(text.split()) != 1 or text.count("@") != 1:
        return None
    local, domain = text.split("@")
    labels = domain.split(".")
    if not local or len(labels) < 2 or "" in labels:
        return None
    if ".." in local:  # RFC 5322 dot-atom: no two dots in a row (outside quotes, unsupported)
        return None
    return text


def _normalize_phone(value: object, country: str | None) -> str | None:
    """ph: E.164 digits without "+"; the rule lives in ``phone``."""
    text = _as_text(value)
    return _phone_text(text, country) if text else None


def _phone_text(text: str, country: str | None) -> str | None:
    # an international number needs no country: it is not even looked at
    return phone.normalize_phone(text, None if text.startswith(("+", "00")) else
                                 _alpha2(country))


def _normalize_name(value: object) -> str | None:
    """fn, ln: lowercase, no punctuation, symbols or whitespace; other letters and digits kept.

    Meta: "Using Roman alphabet a-z characters is recommended. Lowercase only with no
    punctuation. If using special characters, the text must be encoded in UTF-8 format."
    Meta's examples keep non-Latin letters ("정") and accents ("Valéry" -> "valéry"), so we do
    not transliterate. Removed: Unicode punctuation (P*), symbols (S*), separators (Z*) and
    control characters (Cc), e.g. "Mary-Ann O'Neil" -> "maryannoneil".
    """
    text = _as_text(value)
    return _name_text(text, None) if text else None


def _name_text(text: str, country: str | None) -> str | None:
    return _strip_punctuation(text.lower()) or None


def _normalize_city(value: object) -> str | None:
    """ct: lowercase letters only ("New York" -> "newyork", "St. Louis" -> "stlouis").

    Meta: "Lowercase with any spaces removed ... no punctuation, no special characters".
    Letters of any script and their combining marks are kept; digits are removed, as Meta's
    SDK does (``[0-9.\\s\\-()]``), so "Paris 15" -> "paris". Meta's Parameter Builder drops every
    non-Latin character instead; we keep them, as for names.
    """
    text = _as_text(value)
    return _city_text(text, None) if text else None


def _city_text(text: str, country: str | None) -> str | None:
    text = text.lower()
    if text.isascii():  # letters are the only ASCII characters of categories L and M
        return text.translate(_ASCII_NOT_ALPHA) or None
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LM") or None


def _normalize_state(value: object, country: str | None) -> str | None:
    """st: two-letter code for US states and Canadian provinces, compact text elsewhere.

    Meta: "Use the 2-character ANSI abbreviation code in lowercase. Normalize states outside
    the U.S. in lowercase with no punctuation, no special characters, and no white space."
    - Full US/Canadian names (English; French for Canada) map to their code:
      "California" -> "ca", "new york" -> "ny", "Québec" -> "qc"; "N.Y." -> "ny".
    - With country "us" or "ca", anything that is not a name or code of that country is
      dropped ("Ontario" with country "us" is dropped).
    - Otherwise (another or unknown country) the value is lowercased with punctuation, symbols
      and whitespace removed ("Île-de-France" -> "îledefrance"). Meta's Parameter Builder
      truncates every state to two letters; we do not (it would invent codes outside the US).
    """
    text = _lower(value)
    if not text:
        return None
    code = _alpha2(country)
    compact = _strip_punctuation(text)
    if not compact:
        return None
    key = _compact_key(compact)
    if code in STATE_NAMES:
        countries: tuple[str, ...] = (code,)
    elif code is None:
        countries = tuple(STATE_NAMES)
    else:
        return compact
    for candidate in countries:
        if key in STATE_NAMES[candidate]:
            return STATE_NAMES[candidate][key]
        if compact in STATE_CODES[candidate]:
            return compact
    return None if code else compact


_ZIP_RE = re.compile(r"(\d{5})(?:-?\d{4})?")
_ZIP_PLUS4_DASH_RE = re.compile(r"(\d{5})-\d{4}")


def _normalize_zip(value: object, country: str | None) -> str | None:
    """zp: lowercase, no whitespace or punctuation; US codes cut to five digits.

    Meta: "Use lowercase with no white space and no dash. Use only the first 5 digits for U.S.
    zip codes." Our rule:
    - country "us": "94025", "94025-1234" and "940251234" -> "94025"; anything else is dropped.
    - country unknown: a ZIP+4 with its dash ("94025-1234") -> "94025"; else as for others.
    - any other country: lowercase with whitespace and punctuation removed
      ("SW1A 1AA" -> "sw1a1aa", "00-950" -> "00950").
    Meta's SDK instead keeps only the part before the first "-" for every country, which would
    turn a Polish "00-950" into "00"; we apply the cut to US codes only.
    """
    text = _as_text(value)
    return _zip_text(text, country) if text else None


def _zip_text(text: str, country: str | None) -> str | None:
    text = text.lower()
    code = _alpha2(country)
    squeezed = "".join(text.split())
    if code == "us":
        match = _ZIP_RE.fullmatch(squeezed)
        return match.group(1) if match else None
    if code is None:
        match = _ZIP_PLUS4_DASH_RE.fullmatch(squeezed)
        if match:
            return match.group(1)
    return _strip_punctuation(squeezed) or None


_FEMALE = frozenset({
    "f", "female", "woman", "w", "women", "girl", "frau", "weiblich", "femme", "feminin",
    "mujer", "femenino", "feminino", "mulher", "donna", "femmina", "vrouw", "kobieta",
})
_MALE = frozenset({
    "m", "male", "man", "men", "boy", "herr", "mann", "mannlich", "homme", "masculin", "hombre",
    "masculino", "homem", "uomo", "maschio", "mezczyzna",
})


def _normalize_gender(value: object) -> str | None:
    """ge: "f" or "m".

    Meta: "Use these values: f for female and m for male." Accepted (any case, accents
    ignored): f, female, woman, w, frau, weiblich, femme, mujer, ... and m, male, man, herr,
    homme, hombre, ... Anything else (including "other", "x", titles) is dropped.
    """
    text = _lower(value)
    if not text:
        return None
    key = _compact_key(text)
    if key in _FEMALE:
        return "f"
    if key in _MALE:
        return "m"
    return None


_DATE_YMD_RE = re.compile(r"(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})")
_DATE_ISO_TIME_RE = re.compile(r"(\d{4})-(\d{2})-(\d{2})[T ]\S.*")
_DATE_COMPACT_RE = re.compile(r"(\d{4})(\d{2})(\d{2})")
_DATE_DOTTED_RE = re.compile(r"(\d{1,2})\.(\d{1,2})\.(\d{4})")
_DATE_SLASHED_RE = re.compile(r"(\d{1,2})[/-](\d{1,2})[/-](\d{4})")


def _ymd(year: int, month: int, day: int) -> str | None:
    if not 1900 <= year <= 2100:
        return None
    try:
        return _dt.date(year, month, day).strftime("%Y%m%d")
    except ValueError:
        return None


def _normalize_birth_date(value: object) -> str | None:
    """db: YYYYMMDD for a real calendar date with a year from 1900 to 2100.

    Meta: "We accept the YYYYMMDD format ... Year: Use the YYYY format from 1900 to current
    year. Month: 01 to 12. Date: 01 to 31." Accepted inputs: ``datetime.date``/``datetime``;
    "1990-05-17", "1990/05/17", "1990.05.17"; "19900517"; ISO datetimes
    ("1990-05-17T00:00:00Z", the date part is taken as written, no time-zone shift);
    "17.05.1990" (day first); "05/17/1990" or "17/05/1990" (and with "-"): month first when
    both parts are <= 12 (US reading), day first when the first part is > 12. Two-digit years
    are dropped. The upper bound is 2100 instead of "current year" so the result does not
    depend on the clock.
    """
    if isinstance(value, _dt.date):
        return _ymd(value.year, value.month, value.day)
    text = _as_text(value)
    if not text:
        return None
    for pattern in (_DATE_YMD_RE, _DATE_ISO_TIME_RE, _DATE_COMPACT_RE):
        match = pattern.fullmatch(text)
        if match:
            year, month, day = (int(g) for g in match.groups())
            return _ymd(year, month, day)
    match = _DATE_DOTTED_RE.fullmatch(text)
    if match:
        day, month, year = (int(g) for g in match.groups())
        return _ymd(year, month, day)
    match = _DATE_SLASHED_RE.fullmatch(text)
    if match:
        first, second, year = (int(g) for g in match.groups())
        if first > 12:
            return _ymd(year, second, first)
        return _ymd(year, first, second)
    return None


def _normalize_external_id(value: object) -> str | None:
    """external_id: NFC and trim only; case and inner characters are kept.

    Meta's docs give no normalization for external_id ("Hashing recommended"; "You must be
    consistent across channels": https://developers.facebook.com/docs/marketing-api/
    conversions-api/parameters/external-id). Meta's Python SDK sends it as given, neither
    normalized nor hashed (user_data.py ``normalize``: ``__dedup_list(self.external_ids)``).
    Meta's Parameter Builder lowercases it and removes all whitespace
    (StringUtils::getNormalizedExternalID). We keep the advertiser's ID as it is, because an ID
    may be case-sensitive and the same raw ID must hash the same on every channel.
    """
    return _as_text(value)


@functools.lru_cache(maxsize=1024)
def _country_from_text(text: str) -> str | None:
    code = text.lower()
    if len(code) == 2 and code in ISO_ALPHA2:
        return code
    key = _compact_key(text)
    if not key or any(ch.isdigit() for ch in text):
        return None
    if len(key) == 2 and key in ISO_ALPHA2:  # "U.S." -> "us"
        return key
    if key in COUNTRY_ALIASES:
        return COUNTRY_ALIASES[key]
    tables = _country_tables()
    if tables is None:  # pycountry's database file not where pycountry keeps it: ask pycountry
        return _pycountry_lookup(key, text)
    by_alpha_3, by_value = tables
    if len(key) == 3:
        found = by_alpha_3.get(key)
        if found is not None:
            return found
    # Exact match on codes, names, official and common names: no fuzzy search, which would
    # turn typos into wrong countries.
    return by_value.get(text.lower())


def _pycountry_lookup(key: str, text: str) -> str | None:
    """What ``_country_tables`` answers, asked of pycountry itself (its import costs ~55-80 ms:
    it reads its own version through importlib.metadata, which loads the email package)."""
    import pycountry

    try:
        if len(key) == 3:
            found = pycountry.countries.get(alpha_3=key.upper())
            if found is not None:
                return found.alpha_2.lower()
        return pycountry.countries.lookup(text).alpha_2.lower()
    except LookupError:
        return None


@functools.lru_cache(maxsize=1)
def _country_tables() -> tuple[dict[str, str], dict[str, str]] | None:
    """pycountry's country lookups as two dicts, read from pycountry's own ISO 3166-1 database
    file without importing pycountry (a cold start's first country name paid for that import,
    ~10% of building 20,000 events in a fresh process): (lowercase alpha-3 -> alpha-2, lowercase
    value of any field -> alpha-2). Built as ``pycountry.db.Database`` indexes the file: one
    index per field, in the order fields first appear, the last record winning within an index;
    ``countries.lookup`` tries the indexes in that order, so the first index holding a value
    answers. tests/unit/test_normalize.py checks both against pycountry for every record.
    None when the file is not found (then pycountry is asked)."""
    spec = importlib.util.find_spec("pycountry")  # finds the package without running it
    folders = spec.submodule_search_locations if spec is not None else None
    if not folders:
        return None
    try:
        with open(os.path.join(list(folders)[0], "databases", "iso3166-1.json"),
                  encoding="utf-8") as file:
            records = json.load(file)["3166-1"]
    except (OSError, ValueError, KeyError):
        return None
    indexes: dict[str, dict[str, str]] = {}
    for record in records:
        alpha_2 = record["alpha_2"].lower()
        for field_name, value in record.items():
            indexes.setdefault(field_name, {})[value.lower()] = alpha_2
    by_value: dict[str, str] = {}
    for index in indexes.values():
        for value, alpha_2 in index.items():
            by_value.setdefault(value, alpha_2)
    return indexes.get("alpha_3", {}), by_value


def normalize_country(value: object) -> str | None:
    """ISO 3166-1 alpha-2, lowercase ("us"), from alpha-2, alpha-3 or an English name, any case.

    Meta: "Use the lowercase, 2-letter country codes in ISO 3166-1 alpha-2." Alpha-2 codes
    and the aliases in ``regions.COUNTRY_ALIASES`` ("UK" -> "gb", "USA", "Russia",
    "South Korea", "Czech Republic", ...) are resolved from our tables; alpha-3 codes and
    other names by pycountry's exact lookup (over its data file, ``_country_tables``). None
    when unknown. Results are cached.
    """
    text = _as_text(value)
    if not text:
        return None
    return _country_from_text(text)


#: an IPv4 address already in canonical form (0-255 per octet, ASCII digits, no leading zero):
#: ``ipaddress`` would parse it and print the same text back, ten times slower
_IPV4_RE = re.compile(r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
                      r"(?:\.(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])){3}")


def normalize_ip(value: object) -> str | None:
    """client_ip_address: one valid IPv4/IPv6 address, canonical text, or None.

    Takes the first entry of a comma-separated list (X-Forwarded-For), strips a port
    ("1.2.3.4:567", "[2001:db8::1]:443") and an IPv6 zone ("%eth0"), validates with
    ``ipaddress``. IPv6 comes back compressed and lowercase; an IPv4-mapped IPv6 address
    ("::ffff:1.2.3.4") comes back as the IPv4 address. Private and loopback addresses are
    kept: whether to send them is the caller's decision.
    """
    text = _as_text(value)
    if not text:
        return None
    host = text.split(",", 1)[0].strip()
    if host.startswith("["):
        end = host.find("]")
        rest = host[end + 1:] if end > 0 else None
        if rest is None or (rest and not (rest[0] == ":" and rest[1:].isdigit())):
            return None
        host = host[1:end]
    elif host.count(":") == 1:
        host, port = host.split(":")
        if not port.isdigit():
            return None
    host = host.split("%", 1)[0]
    if _IPV4_RE.fullmatch(host):
        return host  # what str(ip_address(host)) gives: decimal octets, no leading zeros
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


_HASHED = frozenset(HASHED_KEYS)
_NEVER_HASHED = frozenset(NEVER_HASHED_KEYS)

_RULES: dict[str, Callable[[object, str | None], str | None]] = {
    "em": lambda value, country: _normalize_email(value),
    "ph": _normalize_phone,
    "fn": lambda value, country: _normalize_name(value),
    "ln": lambda value, country: _normalize_name(value),
    "ge": lambda value, country: _normalize_gender(value),
    "db": lambda value, country: _normalize_birth_date(value),
    "ct": lambda value, country: _normalize_city(value),
    "st": _normalize_state,
    "zp": _normalize_zip,
    "country": lambda value, country: normalize_country(value),
    "external_id": lambda value, country: _normalize_external_id(value),
}


#: the rules ``_prepare`` calls with the value's text (the keys that are most often new: a
#: person's own); the other keys go through ``_RULES``
_TEXT_RULES: dict[str, Callable[[str, str | None], str | None]] = {
    "em": _email_text,
    "ph": _phone_text,
    "fn": _name_text,
    "ln": _name_text,
    "ct": _city_text,
    "zp": _zip_text,
    "external_id": lambda text, country: text,  # = _normalize_external_id
}


def normalize(key: str, value: object, *, country: str | None = None) -> str | None:
    """Plaintext ``value`` normalized per Meta's rule for ``key`` (one of HASHED_KEYS).

    None when the value is empty or cannot be a valid ``key``. ``country`` (alpha-2, any case)
    lets "ph" add a missing calling code and selects the US/other rules of "st" and "zp".
    Raises KeyError for a key that is not hashed.
    """
    if key not in _HASHED:
        raise KeyError(key)
    return _RULES[key](value, country)


#: Entries of the ``prepare`` memo. Real traffic repeats values (countries, cities, names, user
#: agents, IPs, a user's email on each event of a session); frequent ones stay in an LRU of this
#: size, while a stream of one-off values cycles through it. Small on purpose: memory stays
#: flat (a few hundred KB) and only values seen again soon are served from it.
PREPARE_CACHE_SIZE = 1024


def prepare(key: str, value: object, *, country: str | None = None) -> str | None:
    """Exactly what goes on the wire for ``user_data[key]``, or None to leave the key out.

    - Hashed keys: a SHA-256 hex value (any case) is passed through lowercased; a Parameter
      Builder value (``<sha256>.<appendix>``) is passed through unchanged; anything else is
      normalized and hashed, or dropped when normalization gives None.
    - "client_ip_address": ``normalize_ip``; other never-hashed keys (user agent, fbc, fbp,
      ...): the trimmed text, never hashed.
    - Any other key: KeyError.
    """
    # Memoized for plain str values only: the result is a pure function of (key, value,
    # country). Exact type checks keep unhashable values (lists, dicts) and values that hash
    # alike but normalize differently (1, 1.0, True; str subclasses) out of the cache.
    if type(value) is str and type(key) is str and (country is None or type(country) is str):
        return _prepare_cached(key, value, country)
    return _prepare(key, value, country)


def _prepare(key: str, value: object, country: str | None) -> str | None:
    if key in _HASHED:
        text = _as_text(value)
        if text is not None:
            # length gates: the regexes only match 64 characters, or 64 + "." + 2 or 8
            if len(text) == 64 and is_sha256(text):
                return text.lower()
            if len(text) in (67, 73) and is_parameter_builder_value(text):
                return text
            rule = _TEXT_RULES.get(key)
            if rule is not None:  # = _RULES[key](value, country), without a second _as_text
                normalized = rule(text, country)
                return sha256_hex(normalized) if normalized is not None else None
        normalized = _RULES[key](value, country)  # = normalize(), the key is known to be valid
        return sha256_hex(normalized) if normalized is not None else None
    if key == "client_ip_address":
        return normalize_ip(value)
    if key in _NEVER_HASHED:
        return _as_text(value)
    raise KeyError(key)


_prepare_cached = functools.lru_cache(maxsize=PREPARE_CACHE_SIZE)(_prepare)

#: ``prepare`` for a caller that has checked the memo's conditions itself (``key`` and ``value``
#: exactly ``str``, ``country`` exactly ``str`` or None): the memo, without a call in between
prepare_text = _prepare_cached
