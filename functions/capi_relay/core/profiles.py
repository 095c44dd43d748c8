"""Profiles: the Firestore document model, the fill-only-missing decision, CRM rows for import.

Pure: no I/O. The adapter (``adapters.firestore.FirestoreProfileStore``) only reads and writes
the documents this module names and shapes.

One collection (``PROFILES_COLLECTION``, default ``profiles``) holds two kinds of document, so
that everything one event may need comes back from ONE batched read (``get_all``):

- ``xid_<sha256>``: a user's profile, keyed by the event's hashed external_id. Fields:
  ``external_id`` (the hash), ``keys`` (hashed match key -> list of SHA-256 values),
  ``updated_at`` (epoch seconds), ``source`` ("import" or "event").
- ``link_cid_<sha256(client_id)>`` / ``link_fbp_<sha256(fbp)>``: a browser seen identified.
  Holds a denormalized copy of the profile (``external_id``, ``keys``) and ``expire_at`` (a
  timestamp, so a Firestore TTL policy deletes it), so an anonymous event is enriched from the
  link alone, without a second read for the profile.

Every stored value is a SHA-256 hash (or Meta Parameter Builder output): no raw identifier is a
document id or a field. The copy in a link can lag behind its profile after an import; the next
identified event from that browser refreshes it, and links expire.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from capi_relay.core.model import HASHED_KEYS, UserData
from capi_relay.core.normalize import (
    HASHED_VALUE_RE,
    is_sha256,
    normalize_country,
    prepare,
    sha256_hex,
)

PROFILE_PREFIX = "xid_"
#: link kinds, in lookup order: the GA4 client id first, then Meta's _fbp cookie
LINK_PREFIXES: Mapping[str, str] = {"client_id": "link_cid_", "fbp": "link_fbp_"}
#: how long a browser stays linked to a user after it was last seen identified
LINK_TTL_SECONDS = 30 * 86400
#: a link is rewritten (its TTL pushed back) once less than this share of its TTL is left
LINK_REFRESH_SHARE = 0.5
#: values kept per key: the newest first (Meta accepts several values per key)
MAX_VALUES_PER_KEY = 3
#: profile documents read per event (an event rarely carries more than one external_id)
MAX_EXTERNAL_IDS = 2
#: the match keys a profile holds; external_id is the profile's identity, not one of its keys
PROFILE_KEYS: tuple[str, ...] = tuple(k for k in HASHED_KEYS if k != "external_id")


def is_hashed(value: object) -> bool:
    """True for what may be stored or sent for a hashed key: SHA-256 hex or Parameter Builder."""
    return isinstance(value, str) and HASHED_VALUE_RE.fullmatch(value) is not None


def hash_base(value: str) -> str:
    """The lowercase 64-hex SHA-256 inside a hashed value (drops a Parameter Builder appendix)."""
    return value.split(".", 1)[0].lower()


def _clean(value: str) -> str:
    return value.lower() if is_sha256(value) else value


def profile_doc_id(external_id: str) -> str | None:
    """``xid_<sha256>`` for a hashed external_id; None for anything that is not a hash."""
    return PROFILE_PREFIX + hash_base(external_id) if is_hashed(external_id) else None


def link_doc_id(kind: str, value: str) -> str:
    """``link_cid_<sha256>`` / ``link_fbp_<sha256>``: the raw browser id never names a doc."""
    return LINK_PREFIXES[kind] + sha256_hex(value)


# --- the document model -----------------------------------------------------------------------

@dataclass(frozen=True, repr=False)
class Profile:
    """A user's hashed match keys, from a profile document or a link's copy of it."""

    external_id: str
    keys: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    expire_at: float | None = None  # links only
    updated_at: float | None = None

    def live(self, now: float) -> bool:
        """False for a link past its expire_at (Firestore TTL deletes it, but not at once)."""
        return self.expire_at is None or self.expire_at > now

    def to_doc(self, *, source: str | None = None) -> dict[str, Any]:
        doc: dict[str, Any] = {"external_id": self.external_id,
                               "keys": {k: list(v) for k, v in self.keys.items() if v}}
        if self.updated_at is not None:
            doc["updated_at"] = self.updated_at
        if self.expire_at is not None:
            doc["expire_at"] = self.expire_at
        if source:
            doc["source"] = source
        return doc

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any] | None) -> "Profile | None":
        """The profile in a stored document; only hashed values of known keys are kept."""
        if not isinstance(doc, Mapping):
            return None
        external_id = doc.get("external_id")
        if not is_hashed(external_id):
            return None
        raw_keys = doc.get("keys")
        keys: dict[str, tuple[str, ...]] = {}
        if isinstance(raw_keys, Mapping):
            for key in PROFILE_KEYS:
                values = raw_keys.get(key)
                if isinstance(values, str):
                    values = [values]
                if isinstance(values, list):
                    kept = tuple(dict.fromkeys(_clean(v) for v in values if is_hashed(v)))
                    if kept:
                        keys[key] = kept[:MAX_VALUES_PER_KEY]
        expire_at = doc.get("expire_at")
        updated_at = doc.get("updated_at")
        return cls(_clean(external_id), keys,
                   float(expire_at) if isinstance(expire_at, (int, float)) else None,
                   float(updated_at) if isinstance(updated_at, (int, float)) else None)

    def __repr__(self) -> str:  # names only
        return f"Profile(keys={sorted(self.keys)}, link={self.expire_at is not None})"


@dataclass(frozen=True)
class Write:
    """One document to write: ``merge`` keeps the fields (and ``keys`` entries) not written."""

    doc_id: str
    data: Mapping[str, Any]
    merge: bool = False


# --- the lookup and the fill-only-missing decision --------------------------------------------

@dataclass(frozen=True)
class Lookup:
    """The documents one event may need: all of them come back from one batched read."""

    profile_ids: tuple[str, ...] = ()
    link_ids: Mapping[str, str] = field(default_factory=dict)  # kind -> doc id, lookup order

    @property
    def doc_ids(self) -> tuple[str, ...]:
        return self.profile_ids + tuple(self.link_ids.values())


def lookup_for(user_data: UserData, client_id: str | None) -> Lookup:
    """Profile docs by the event's external_id(s), link docs by its client_id and fbp."""
    profile_ids = tuple(dict.fromkeys(
        i for i in (profile_doc_id(x) for x in user_data.external_id) if i))[:MAX_EXTERNAL_IDS]
    links: dict[str, str] = {}
    if client_id and client_id.strip():
        links["client_id"] = link_doc_id("client_id", client_id.strip())
    if user_data.fbp:
        links["fbp"] = link_doc_id("fbp", user_data.fbp)
    return Lookup(profile_ids, links)


@dataclass(frozen=True)
class Match:
    profile: Profile
    matched_by: str  # "profile", "client_id" or "fbp"


def choose(lookup: Lookup, docs: Mapping[str, Mapping[str, Any]], user_data: UserData,
           now: float) -> Match | None:
    """The profile to enrich from: the user's own, else a live link of this browser.

    An identified event only takes a link that points at the same user: a shared browser must
    not lend one person's keys to another.
    """
    for doc_id in lookup.profile_ids:
        profile = Profile.from_doc(docs.get(doc_id))
        if profile is not None:
            return Match(profile, "profile")
    own = {hash_base(x) for x in user_data.external_id if is_hashed(x)}
    for kind, doc_id in lookup.link_ids.items():
        profile = Profile.from_doc(docs.get(doc_id))
        if profile is None or not profile.live(now):
            continue
        if own and hash_base(profile.external_id) not in own:
            continue
        return Match(profile, kind)
    return None


def missing_keys(user_data: UserData, profile: Profile) -> dict[str, tuple[str, ...]]:
    """What the profile adds: only keys the event lacks; the event's own values always win."""
    out: dict[str, tuple[str, ...]] = {}
    for key in HASHED_KEYS:
        if getattr(user_data, key):
            continue
        values = (profile.external_id,) if key == "external_id" else profile.keys.get(key, ())
        if values:
            out[key] = tuple(values)
    return out


def fill(user_data: UserData, keys: Mapping[str, tuple[str, ...]]) -> UserData:
    """``user_data`` with ``keys`` added (the keys come from ``missing_keys``)."""
    return user_data.with_values(**{key: tuple(values) for key, values in keys.items()
                                    if not getattr(user_data, key)})


# --- write-back --------------------------------------------------------------------------------

def _own_keys(user_data: UserData) -> dict[str, tuple[str, ...]]:
    out = {}
    for key in PROFILE_KEYS:
        values = tuple(dict.fromkeys(_clean(v) for v in getattr(user_data, key) if is_hashed(v)))
        if values:
            out[key] = values
    return out


def _union(newest: Mapping[str, tuple[str, ...]],
           older: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    out = {}
    for key in PROFILE_KEYS:
        values = tuple(dict.fromkeys(tuple(newest.get(key, ())) + tuple(older.get(key, ()))))
        if values:
            out[key] = values[:MAX_VALUES_PER_KEY]
    return out


def remember(user_data: UserData, lookup: Lookup, docs: Mapping[str, Mapping[str, Any]],
             now: float, *, ttl_seconds: float = LINK_TTL_SECONDS) -> tuple[Write, ...]:
    """What an identified event teaches: its keys for its user, its browser linked to them.

    ``user_data`` is the event's own (before enrichment); ``docs`` is what the lookup read, so
    the decision needs no second read. Keys merge newest first (the event's values, then the
    stored ones), at most MAX_VALUES_PER_KEY each. Nothing is written when nothing changed, so
    a returning identified visitor costs no write until a link is due for a refresh.
    """
    identity = next((_clean(x) for x in user_data.external_id if is_hashed(x)), None)
    if identity is None:
        return ()
    profile_id = profile_doc_id(identity)
    stored = Profile.from_doc(docs.get(profile_id))
    keys = _union(_own_keys(user_data), stored.keys if stored else {})
    writes: list[Write] = []
    if (stored is None and keys) or (stored is not None and dict(stored.keys) != keys):
        writes.append(Write(profile_id, Profile(identity, keys, updated_at=now).to_doc(
            source="event"), merge=True))
    for doc_id in lookup.link_ids.values():
        link = Profile.from_doc(docs.get(doc_id))
        fresh = (link is not None and link.external_id == identity and dict(link.keys) == keys
                 and link.expire_at is not None
                 and link.expire_at - now > ttl_seconds * LINK_REFRESH_SHARE)
        if not fresh:
            writes.append(Write(doc_id, Profile(identity, keys, expire_at=now + ttl_seconds,
                                                updated_at=now).to_doc()))
    return tuple(writes)


# --- CRM rows for ``capi-relay profiles import`` ---------------------------------------------

#: CRM column -> match key. Headers are compared after ``header_key`` (lowercase, runs of
#: non-alphanumerics as "_"), so "E-Mail", "e_mail" and "E Mail" are the same column.
CRM_HEADERS: Mapping[str, str] = {
    **dict.fromkeys(("user_id", "userid", "external_id", "externalid", "customer_id",
                     "customerid", "customer_number", "customer_no", "crm_id", "contact_id",
                     "member_id", "account_id", "uid", "id"), "external_id"),
    **dict.fromkeys(("email", "e_mail", "email_address", "emailaddress", "e_mail_address",
                     "mail", "em"), "em"),
    **dict.fromkeys(("phone", "phone_number", "phonenumber", "telephone", "tel", "mobile",
                     "mobile_phone", "mobile_number", "cell", "cell_phone", "cellphone", "ph"),
                    "ph"),
    **dict.fromkeys(("first_name", "firstname", "given_name", "givenname", "forename", "first",
                     "fn"), "fn"),
    **dict.fromkeys(("last_name", "lastname", "surname", "family_name", "familyname", "last",
                     "ln"), "ln"),
    **dict.fromkeys(("city", "town", "locality", "ct"), "ct"),
    **dict.fromkeys(("state", "province", "region", "state_province", "st"), "st"),
    **dict.fromkeys(("zip", "zip_code", "zipcode", "postal_code", "postalcode", "postcode",
                     "post_code", "plz", "zp"), "zp"),
    **dict.fromkeys(("country", "country_code", "countrycode"), "country"),
    **dict.fromkeys(("birth_date", "birthdate", "date_of_birth", "dateofbirth", "dob",
                     "birthday", "db"), "db"),
    **dict.fromkeys(("gender", "sex", "ge"), "ge"),
}

_HEADER_RE = re.compile(r"[^0-9a-z]+")


def header_key(name: object) -> str | None:
    """The match key a CRM column holds, or None for a column the import ignores."""
    if not isinstance(name, str):
        return None
    return CRM_HEADERS.get(_HEADER_RE.sub("_", name.strip().lower()).strip("_"))


@dataclass(frozen=True)
class CrmRow:
    """One CRM row, prepared: a profile, or the reasons it has none. Names, never values."""

    row: int
    profile: Profile | None
    errors: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()  # columns whose value could not be used


def _blank(value: object) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def prepare_row(values: Mapping[str, Any], *, row: int,
                default_country: str | None = None) -> CrmRow:
    """Normalizes and hashes one CRM row with ``normalize.prepare``, as ingest would."""
    columns: dict[str, list[tuple[str, Any]]] = {}
    for name, value in values.items():
        key = header_key(name)
        if key is not None and not _blank(value):
            columns.setdefault(key, []).append((str(name), value))
    dropped: list[str] = []

    country = None
    for _name, value in columns.get("country", ()):
        country = normalize_country(value)
        if country:
            break
    country = country or (normalize_country(default_country) if default_country else None)

    external_id = None
    for name, value in columns.get("external_id", ()):
        external_id = prepare("external_id", value)
        if external_id:
            break
        dropped.append(name)
    if external_id is None:
        return CrmRow(row, None, ("user_id: missing",), tuple(dropped))

    keys: dict[str, tuple[str, ...]] = {}
    for key in PROFILE_KEYS:
        prepared: list[str] = []
        for name, value in columns.get(key, ()):
            out = prepare(key, value, country=country)
            if out is None:
                dropped.append(name)
            elif out not in prepared:
                prepared.append(out)
        if prepared:
            keys[key] = tuple(prepared[:MAX_VALUES_PER_KEY])
    if not keys:
        return CrmRow(row, None, ("row: no usable match key besides the user id",),
                      tuple(dropped))
    return CrmRow(row, Profile(external_id, keys), (), tuple(dict.fromkeys(dropped)))


@dataclass(frozen=True)
class ImportPlan:
    writes: tuple[Write, ...]
    rows: int
    rejected: tuple[CrmRow, ...]
    dropped: tuple[CrmRow, ...]


def plan_import(rows: Iterable[CrmRow], now: float) -> ImportPlan:
    """One merge write per user; a user on several rows gets their keys, later rows first."""
    by_id: dict[str, Profile] = {}
    count = 0
    rejected, dropped = [], []
    for prepared in rows:
        count += 1
        if prepared.dropped:
            dropped.append(prepared)
        if prepared.profile is None:
            rejected.append(prepared)
            continue
        doc_id = profile_doc_id(prepared.profile.external_id)
        earlier = by_id.get(doc_id)
        keys = dict(earlier.keys) if earlier else {}
        keys.update(prepared.profile.keys)
        by_id[doc_id] = Profile(prepared.profile.external_id, keys, updated_at=now)
    writes = tuple(Write(doc_id, profile.to_doc(source="import"), merge=True)
                   for doc_id, profile in by_id.items())
    return ImportPlan(writes, count, tuple(rejected), tuple(dropped))
