"""The ingest's key ring: INGEST_KEYS, plus INGEST_KEYS_SECRET re-read on a miss (rotation).

A presented key that is not known triggers a re-read of the secret, so a key added to a new
secret version works without a redeploy; a ring older than ``max_age_seconds`` is re-read on its
next use, so a retired key stops working without one. Re-reads are at most one per
``reread_seconds`` per instance, so a flood of wrong keys costs Secret Manager nothing more.
"""

from __future__ import annotations

import threading

from capi_relay import log
from capi_relay.app.ports import Clock, SecretSource
from capi_relay.core.auth import AuthDecision, AuthPolicy, KeyRing, decide, parse_keys
from capi_relay.core.errors import ConfigurationError, KeysUnavailable, TransientError


class IngestKeys:
    def __init__(self, static: KeyRing, secret: SecretSource | None, clock: Clock, *,
                 reread_seconds: float = 10.0, max_age_seconds: float = 600.0):
        self.static = static
        self.secret = secret
        self.clock = clock
        self.reread_seconds = reread_seconds
        self.max_age_seconds = max_age_seconds
        self._ring: KeyRing | None = None  # from the secret, once read
        self._read_at: float | None = None
        self._lock = threading.Lock()
        self.reads = 0

    @property
    def configured(self) -> bool:
        return bool(len(self.static)) or self.secret is not None

    def lookup(self, presented: str) -> tuple[bool, frozenset[str] | None, str | None]:
        """(found, the key's event allow-list, the key's name)."""
        found = self.static.lookup(presented)
        if found[0] or self.secret is None:
            return found
        ring = self._ring
        if ring is not None and self.clock.now() - self._read_at > self.max_age_seconds:
            ring = self._reread()  # a retired key stops working within max_age_seconds
        if ring is not None:
            found = ring.lookup(presented)
            if found[0]:
                return found
        ring = self._reread()
        if ring is None:  # never read: the key may be good, say "retry" rather than "wrong"
            raise KeysUnavailable("INGEST_KEYS_SECRET could not be read yet")
        return ring.lookup(presented)

    def _reread(self) -> KeyRing | None:
        with self._lock:
            now = self.clock.now()
            if self._read_at is not None and now - self._read_at < self.reread_seconds:
                return self._ring
            self._read_at = now
            self.reads += 1
            try:
                text = self.secret.get(refresh=self._ring is not None)
                self._ring = parse_keys(text, source="INGEST_KEYS_SECRET")
            except (TransientError, ConfigurationError) as exc:  # keep the keys we had
                log.error("ingest keys not read", component="ingest",
                          error_type=type(exc).__name__, cause=str(exc))
            else:
                log.info("ingest keys read", component="ingest", count=len(self._ring))
                if self._ring.weak:
                    log.warning("ingest keys shorter than 16 characters are easy to guess",
                                component="ingest", count=self._ring.weak)
            return self._ring


class Gate:
    """Applies core.auth's decision to one request with this instance's keys and policy."""

    def __init__(self, keys: IngestKeys, allowed_origins: tuple[str, ...],
                 browser_events: frozenset[str] | None):
        self.keys = keys
        self.policy = AuthPolicy(keys.configured, allowed_origins, browser_events)

    def decide(self, *, authorization: str | None, origin: str | None, referer: str | None,
               collect_get: bool) -> AuthDecision:
        return decide(self.policy, authorization=authorization, origin=origin,
                      referer=referer, collect_get=collect_get, key_lookup=self.keys.lookup)
