"""Who may post: the source-authentication decision, pure (keys, origins, headers in; verdict out).

Contract (issue 12):
- A server source (sGTM, a backend) sends ``Authorization: Bearer <key>``.
- When keys are configured, a request without a valid key is accepted only as a browser: its
  ``Origin`` (or, for ``/g/collect`` GETs without one, the ``Referer``'s origin) must be in
  ``ALLOWED_ORIGINS``. No key and no origin -> 401; a wrong key -> 401; an origin not listed -> 403.
- Without any key configured every request is accepted (open endpoint; the relay warns at start).
- Keyless (browser) requests may send only the Meta event names in ``BROWSER_EVENTS`` when it is
  set; a key may carry its own allow-list.

Key syntax, one entry per line (a secret version) or per comma (``INGEST_KEYS``)::

    s3cr3t-key-for-backend                    # any event
    s3cr3t-key-for-sgtm:Purchase|Lead         # only these Meta event names
    shop-sgtm@s3cr3t-key-for-sgtm:Purchase    # named: events carry "shop-sgtm", never the key

A key's name (before ``@``; letters, digits, ``-._``, '@' is no key character) is a label, not
a secret: the ingest puts it on each event it queues, so ``PIXELS`` routes can pick events by
source (``route.source_keys``), and logs may show it. Two keys may share a name (rotation).

Keys are kept as SHA-256 digests; a lookup compares the digest of what was presented with every
stored digest using ``hmac.compare_digest``, without stopping at a match, so its timing does not
depend on which key matched or how much of a real key a guess shares (a few keys: microseconds).
No key is ever logged or echoed; ``KeyRing``'s repr shows only how many keys it holds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from enum import Enum
from typing import Mapping
from urllib.parse import urlsplit

from capi_relay.core.errors import ConfigurationError
from capi_relay.core.routing import KEY_NAME

#: a key is token68 (RFC 7235 section 2.1) characters, without ':' or '|', which the entry
#: syntax uses
_KEY = re.compile(r"[A-Za-z0-9\-._~+/=]+")
#: shorter keys work, but the relay warns: a guess must stay out of reach of a rate limit
STRONG_KEY_LENGTH = 16
_EVENT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8")).digest()


@dataclass(frozen=True)
class KeyEntry:
    """What a configured key stands for: its event allow-list (None: any) and its name."""

    allowed: frozenset[str] | None = None
    name: str | None = None


@dataclass(frozen=True)
class KeyRing:
    """Configured keys, by digest, each with its allow-list and name."""

    by_digest: Mapping[bytes, KeyEntry] = field(default_factory=dict, repr=False)
    #: how many keys are shorter than STRONG_KEY_LENGTH (the relay warns, naming no key)
    weak: int = 0

    def __len__(self) -> int:
        return len(self.by_digest)

    def __repr__(self) -> str:
        return f"KeyRing({len(self.by_digest)} keys)"

    def lookup(self, presented: str) -> tuple[bool, frozenset[str] | None, str | None]:
        """(found, its allow-list, its name)."""
        digest = _digest(presented)
        found, entry = False, NO_ENTRY
        for stored, candidate in self.by_digest.items():  # all of them, no early exit
            if hmac.compare_digest(stored, digest):
                found, entry = True, candidate
        return found, entry.allowed, entry.name


NO_ENTRY = KeyEntry()


def parse_keys(text: str | None, *, source: str) -> KeyRing:
    """Keys from a secret (one per line) or INGEST_KEYS (commas); '#' starts a comment line.

    Errors name ``source`` and the entry's position, never the key.
    """
    entries: dict[bytes, KeyEntry] = {}
    weak = 0
    if not text:
        return KeyRing(entries)
    raw = [part for line in text.splitlines() if not line.lstrip().startswith("#")
           for part in line.split(",")]
    position = 0
    for entry in raw:
        entry = entry.strip()
        if not entry:
            continue
        position += 1
        key, _, names = entry.partition(":")
        label, at, key = key.strip().rpartition("@")
        label, key = (label.strip() or None), key.strip()
        if at and (label is None or not KEY_NAME.fullmatch(label)):
            raise ConfigurationError(
                f"{source}: key {position}: the name before '@' may hold only letters, digits "
                "and -._ (at most 64)")
        if not _KEY.fullmatch(key):
            raise ConfigurationError(
                f"{source}: key {position} may hold only letters, digits and -._~+/=")
        allowed: frozenset[str] | None = None
        if _:
            listed = [n.strip() for n in names.split("|") if n.strip()]
            if not listed or not all(_EVENT_NAME.fullmatch(n) for n in listed):
                raise ConfigurationError(
                    f"{source}: key {position}: events after ':' must be Meta event names "
                    "separated by '|', e.g. Purchase|Lead")
            allowed = frozenset(listed)
        entries[_digest(key)] = KeyEntry(allowed, label)
        weak += len(key) < STRONG_KEY_LENGTH
    return KeyRing(entries, weak)


def parse_event_names(text: str | None, *, source: str) -> frozenset[str] | None:
    """A comma-separated list of Meta event names (BROWSER_EVENTS); None when unset."""
    if not text or not text.strip():
        return None
    names = [n.strip() for n in text.split(",") if n.strip()]
    bad = [i + 1 for i, n in enumerate(names) if not _EVENT_NAME.fullmatch(n)]
    if bad:
        raise ConfigurationError(f"{source}: entry {bad[0]} is not a Meta event name")
    return frozenset(names)


class Source(Enum):
    OPEN = "open"        # no key configured: anyone
    KEY = "key"          # a valid Bearer key
    BROWSER = "browser"  # keyless, from an allowed origin


@dataclass(frozen=True)
class AuthDecision:
    """``status`` 0 means accepted; otherwise the HTTP status to answer and why."""

    status: int
    reason: str
    source: Source | None = None
    allowed_events: frozenset[str] | None = None
    #: the key's name (``name@key``), carried on the events for routing; never the key
    key_name: str | None = None

    @property
    def accepted(self) -> bool:
        return self.status == 0


@dataclass(frozen=True)
class AuthPolicy:
    keys_configured: bool
    allowed_origins: tuple[str, ...] = ()
    browser_events: frozenset[str] | None = None


def bearer_token(authorization: str | None) -> str | None:
    """The credentials of an ``Authorization: Bearer ...`` header; '' when another scheme or
    an empty one is sent (a wrong key), None when there is no header."""
    if authorization is None or not authorization.strip():
        return None
    scheme, _, credentials = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":  # RFC 7235: the scheme is case-insensitive
        return ""
    return credentials.strip()


def referer_origin(referer: str | None) -> str | None:
    """scheme://host[:port] of a Referer, or None."""
    if not referer:
        return None
    try:
        parts = urlsplit(referer.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}".lower()


def decide(policy: AuthPolicy, *, authorization: str | None, origin: str | None,
           referer: str | None, collect_get: bool, key_lookup) -> AuthDecision:
    """The verdict for one request. ``key_lookup(presented) -> (found, allowed_events,
    key_name)``."""
    token = bearer_token(authorization)
    if token is not None and policy.keys_configured:
        found, allowed, name = key_lookup(token) if token else (False, None, None)
        if not found:
            return AuthDecision(401, "key: not valid")
        return AuthDecision(0, "key", Source.KEY, allowed, name)
    if not policy.keys_configured:
        return AuthDecision(0, "open", Source.OPEN, policy.browser_events)
    browser_origin = origin.strip().lower() if origin and origin.strip() else None
    if browser_origin is None and collect_get:
        browser_origin = referer_origin(referer)
    if browser_origin is None:
        return AuthDecision(401, "key: missing (send Authorization: Bearer <key>)")
    listed = {o.lower() for o in policy.allowed_origins}
    if browser_origin not in listed and "*" not in listed:
        return AuthDecision(403, "origin: not in ALLOWED_ORIGINS")
    return AuthDecision(0, "browser", Source.BROWSER, policy.browser_events)


def event_allowed(decision: AuthDecision, event_name: str) -> bool:
    return decision.allowed_events is None or event_name in decision.allowed_events
