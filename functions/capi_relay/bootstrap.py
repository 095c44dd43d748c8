"""The composition root: builds real adapters lazily, once per instance, never at import time.

Tests call ``use(...)`` to wire fakes instead.
"""

from __future__ import annotations

import threading
import uuid
from typing import Any

from capi_relay import log
from capi_relay.app.coalescer import Coalescer
from capi_relay.app.enrichment import Enricher
from capi_relay.app.health import Readiness
from capi_relay.app.ingest import IngestService
from capi_relay.app.keys import Gate, IngestKeys
from capi_relay.app.ledger import DeliveryLedger
from capi_relay.app.process import DeliveryPolicy, ProcessService
from capi_relay.app.pull import PullService
from capi_relay.app.sender import GraphSender, SenderConfig
from capi_relay.config import Settings
from capi_relay.core import pipeline
from capi_relay.core.mapping import MappingConfig
from capi_relay.core.regional import RegionalRules

_lock = threading.RLock()  # builders call each other
_built: dict[str, Any] = {}


def use(**parts: Any) -> None:
    """Replaces built parts (``settings``, ``ingest``, ``process``, ``readiness``, ...); tests
    only."""
    with _lock:
        _built.clear()
        _built.update(parts)


def reset() -> None:
    with _lock:
        _built.clear()


def _once(name: str, build):
    with _lock:
        if name not in _built:
            _built[name] = build()
        return _built[name]


def settings() -> Settings:
    return _once("settings", Settings.from_env)


def mapping_config() -> MappingConfig:
    return _once("mapping", lambda: mapping_from(settings()))


def mapping_from(s: Settings) -> MappingConfig:
    return MappingConfig.from_settings(field_aliases=s.field_aliases, event_names=s.event_names,
                                       default_country=s.default_country,
                                       default_currency=s.default_currency)


def rules_from(s: Settings) -> pipeline.Policy:
    """The pipeline's rules from the settings: the processor and ``capi-relay preview`` both
    build them here, so preview decides exactly as the relay does."""
    return pipeline.Policy(
        mapping=mapping_from(s), consent_policy=s.consent_policy,
        consent_missing=s.consent_missing,
        regional=RegionalRules.from_settings(s.ldu_regions, s.redact))


def build_enricher(s: Settings) -> Enricher:
    """The enrichment port over Firestore profiles (the client is created on first use),
    remembered per instance for a session (``profile_cache``)."""
    from capi_relay.adapters.firestore import FirestoreProfileStore
    from capi_relay.app.profile_cache import ProfileCache

    store = ProfileCache(FirestoreProfileStore(s.project, s.profiles_collection))
    return Enricher(store, writeback=s.profile_writeback)


def publisher():
    def build():
        from capi_relay.adapters.pubsub import PubSubPublisher

        s = settings()
        return PubSubPublisher(s.project, s.topic)
    return _once("publisher", build)


def readiness() -> Readiness:
    def build() -> Readiness:
        from capi_relay.adapters.clock import SystemClock
        return Readiness(publisher(), SystemClock())
    return _once("readiness", build)


def gate() -> Gate:
    """Source authentication for the ingest; warns once when the endpoint is open."""
    def build() -> Gate:
        from capi_relay.adapters.clock import SystemClock

        s = settings()
        secret = None
        if s.ingest_keys_secret:
            from capi_relay.adapters.secrets import SecretManagerSource

            secret = SecretManagerSource(s.ingest_keys_secret)
        built = Gate(IngestKeys(s.ingest_keys, secret, SystemClock()), s.allowed_origins,
                     s.browser_events)
        if s.ingest_keys.weak:
            log.warning("ingest keys shorter than 16 characters are easy to guess",
                        component="ingest", count=s.ingest_keys.weak)
        if not built.keys.configured:
            log.warning("ingest endpoint is open: no INGEST_KEYS or INGEST_KEYS_SECRET "
                        "configured, anyone may post events", component="ingest")
        return built
    return _once("gate", build)


def ingest_service() -> IngestService:
    def build() -> IngestService:
        from capi_relay.adapters.clock import SystemClock

        return IngestService(publisher(), SystemClock(), lambda: str(uuid.uuid4()),
                             mapping_config())
    return _once("ingest", build)


def token_source(s: Settings):
    """Where the processor reads Meta's token: META_ACCESS_TOKEN (local runs) or the secret
    version META_TOKEN_SECRET names. ``capi-relay doctor`` reads it the same way."""
    from capi_relay.adapters.secrets import SecretManagerSource, StaticSecret

    return StaticSecret(s.access_token) if s.access_token else \
        SecretManagerSource(s.token_secret)


def pixel_token_source(s: Settings, pixel):
    """Where one pixel's own token is read (PIXELS ``token_secret`` / ``token_env``); None
    when it uses the deployment's (``token_source``). A pixel with its own source re-reads
    and holds for a rejected token alone."""
    from capi_relay.adapters.secrets import SecretManagerSource, StaticSecret

    if pixel.token_env:
        return StaticSecret(s.pixel_tokens[pixel.id])
    if pixel.token_secret:
        return SecretManagerSource(pixel.token_secret)
    return None


def _processor(s: Settings, ledger: DeliveryLedger, window_ms: float) -> ProcessService:
    """The process service over real adapters, recording to ``ledger``: each pixel with its
    own Graph client, token source and test event code."""
    from capi_relay.adapters.clock import SystemClock
    from capi_relay.adapters.graph import GraphCapiClient

    shared: list = []  # the deployment's token source, built once if a pixel uses it

    def default_token():
        if not shared:
            shared.append(token_source(s))
        return shared[0]

    pixels = []
    for pixel in s.delivery_pixels():
        client = GraphCapiClient(s.graph_url, s.api_version, pixel.id, timeout=s.graph_timeout)
        secrets = pixel_token_source(s, pixel) or default_token()
        config = SenderConfig(test_event_code=pixel.test_event_code, pixel_id=pixel.id)
        pixels.append((pixel, GraphSender(client, secrets, config)))
    return ProcessService(
        ledger=ledger,
        pixels=pixels,
        clock=SystemClock(),
        policy=DeliveryPolicy(pixel_id=s.pixel_id, max_attempts=s.max_attempts),
        rules=rules_from(s),
        enrich=build_enricher(s),
        coalescer=Coalescer(window_ms / 1000),
    )


def _dead_letter(s: Settings):
    from capi_relay.adapters.pubsub import PubSubPublisher

    return PubSubPublisher(s.project, s.dead_letter_topic) if s.dead_letter_topic else None


def process_service() -> ProcessService:
    """The push processor: each event claimed and settled in its own ledger document."""
    def build() -> ProcessService:
        from capi_relay.adapters.firestore import FirestoreIdempotencyBackend

        s = Settings.from_env(need=("token",))
        ledger = DeliveryLedger(
            FirestoreIdempotencyBackend(s.project, s.idempotency_collection),
            lease_seconds=s.lease_seconds, ttl_seconds=s.idempotency_ttl_hours * 3600,
            dead_letter=_dead_letter(s))
        return _processor(s, ledger, s.batch_window_ms)
    return _once("process", build)


def pull_service() -> PullService:
    """The scheduled puller: what waits on PULL_SUBSCRIPTION, one ledger record per run."""
    def build() -> PullService:
        from capi_relay.adapters.clock import SystemClock
        from capi_relay.adapters.firestore import FirestoreRunStore
        from capi_relay.adapters.pubsub import PubSubSubscription
        from capi_relay.app.run_ledger import RunLedger

        s = Settings.from_env(need=("token", "pull"))
        ledger = RunLedger(FirestoreRunStore(s.project, s.idempotency_collection),
                           lease_seconds=s.lease_seconds,
                           ttl_seconds=s.idempotency_ttl_hours * 3600,
                           dead_letter=_dead_letter(s))
        return PullService(_processor(s, ledger, 0), ledger,
                           PubSubSubscription(s.project, s.pull_subscription), SystemClock(),
                           budget_seconds=s.pull_budget_seconds)
    return _once("pull", build)
