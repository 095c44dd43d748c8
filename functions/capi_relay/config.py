"""Settings from environment variables, with errors that name the variable."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Mapping

from capi_relay.core.auth import KeyRing, parse_event_names, parse_keys
from capi_relay.core.errors import ConfigurationError
from capi_relay.core.routing import Pixel, parse_pixels, with_main

#: The Graph API version the relay is written and tested against: the newest Marketing API
#: version (Meta's Marketing API version history: v27.0, released 2026-11-04). Marketing API
#: versions expire about a year after release (v25.0: 2026-02-18 to 2027-02-23), so a new
#: deployment takes the newest one.
DEFAULT_API_VERSION = "v27.0"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"


class Scope(Enum):
    FUNCTION = "function"  # read by a deployed function; infra/ sets it
    LOCAL = "local"        # local runs and tests only; never deployed
    OPERATOR = "operator"  # read by the `capi-relay` operator command only


@dataclass(frozen=True)
class Setting:
    """One environment variable: its one definition, from which the parsing below, the README's
    configuration table and infra/'s variables are checked (tests/infra/test_settings.py)."""

    name: str
    kind: str  # text, number, integer, bool, list, json, choice, keys, event_names, pixels
    default: str | None  # as the variable's text; None: no default
    description: str
    readers: tuple[str, ...] = ("ingest", "process")  # which functions (or tool) read it
    scope: Scope = Scope.FUNCTION
    required: bool = False
    choices: tuple[str, ...] = ()
    #: the infra/ variable that sets it; None when infra/ derives it from its own resources
    terraform: str | None = None


_I, _P, _B = ("ingest",), ("process",), ("ingest", "process")

SETTINGS: tuple[Setting, ...] = (
    Setting("GOOGLE_CLOUD_PROJECT", "text", None, "project of the topic and Firestore",
            _B, required=True, terraform="project_id"),
    Setting("PUBSUB_TOPIC", "text", None,
            "events topic id (ingest publishes, processor is fed from it)", _B, required=True),
    Setting("DEAD_LETTER_TOPIC", "text", None,
            "topic that receives events that cannot succeed, with `reason` attributes", _P),
    Setting("META_PIXEL_ID", "text", None, "the dataset / Pixel id events are sent to", _B,
            required=True, terraform="meta_pixel_id"),
    Setting("META_API_VERSION", "text", DEFAULT_API_VERSION, "Graph API version", _P,
            terraform="meta_api_version"),
    Setting("META_GRAPH_URL", "text", DEFAULT_GRAPH_URL,
            "Graph base URL (the local stand-in in `make dev`)", _P, terraform="meta_graph_url"),
    Setting("META_TOKEN_SECRET", "text", None,
            "Secret Manager version holding the access token, "
            "`projects/P/secrets/S/versions/latest`", _P, terraform="meta_token_secret_id"),
    Setting("META_ACCESS_TOKEN", "text", None,
            "the token itself, overriding the secret; for local runs only", _P,
            scope=Scope.LOCAL),
    Setting("META_TEST_EVENT_CODE", "text", None,
            "sends to Events Manager's Test events instead of live", _P,
            terraform="meta_test_event_code"),
    Setting("PIXELS", "pixels", None,
            "JSON list: more pixels, each `{\"id\", \"token_secret\", \"test_event_code\", "
            "\"route\": {\"event_names\", \"hosts\", \"source_keys\"}}`; an event goes to each "
            "pixel whose route it matches, and to `META_PIXEL_ID`'s unless listed here with a "
            "route (see [Several pixels](#several-pixels))", _P, terraform="pixels"),
    Setting("META_TIMEOUT_SECONDS", "number", "10", "Graph request timeout", _P,
            terraform="meta_timeout_seconds"),
    Setting("ALLOWED_ORIGINS", "list", None,
            "comma-separated browser origins allowed to post (CORS, with credentials; and, when "
            "keys are configured, the only keyless sources accepted); `*` allows any origin "
            "without credentials", _I, terraform="allowed_origins"),
    Setting("INGEST_KEYS", "keys", None,
            "comma-separated source keys (`key`, `key:Purchase|Lead`, `name@key`) accepted as "
            "`Authorization: Bearer <key>`; local runs and tests", _I, scope=Scope.LOCAL),
    Setting("INGEST_KEYS_SECRET", "text", None,
            "Secret Manager version holding the source keys, one per line (same syntax); "
            "re-read when an unknown key arrives, so rotation needs no redeploy", _I,
            terraform="ingest_keys_required"),
    Setting("BROWSER_EVENTS", "event_names", None,
            "comma-separated Meta event names keyless (browser) sources may send, e.g. "
            "`PageView,ViewContent,AddToCart`; none: any", _I, terraform="browser_events"),
    Setting("DEFAULT_COUNTRY", "text", None,
            "alpha-2 country used to complete phone numbers that lack a country code", _I,
            terraform="default_country"),
    Setting("DEFAULT_CURRENCY", "text", None,
            "ISO 4217 code used for a value sent without a currency", _I,
            terraform="default_currency"),
    Setting("FIELD_ALIASES", "json", "{}",
            "JSON: extra source paths per field, e.g. `{\"em\": [\"form.mail\"]}`", _I,
            terraform="field_aliases"),
    Setting("EVENT_NAME_MAP", "json", "{}",
            "JSON: extra or overriding event-name mappings, e.g. "
            "`{\"newsletter_optin\": \"Subscribe\"}`", _I, terraform="event_name_map"),
    Setting("CONSENT_POLICY", "choice", "strict",
            "`strict`: ad consent denied → not sent; `strip_user_data`: sent without "
            "consent-covered identifiers", _P, choices=("strict", "strip_user_data"),
            terraform="consent_policy"),
    Setting("CONSENT_MISSING", "choice", "send", "no consent signal at all: `send` or `drop`",
            _P, choices=("send", "drop"), terraform="consent_missing"),
    Setting("LDU_REGIONS", "list", None,
            "comma-separated `country` or `country-state` codes that get Limited Data Use, "
            "e.g. `us-ca,us-co`", _P, terraform="ldu_regions"),
    Setting("REDACT_FIELDS", "json", "{}",
            "JSON: user_data keys dropped per country, e.g. "
            "`{\"eu\": [\"client_ip_address\"]}`", _P, terraform="redact_fields"),
    Setting("PROFILES_COLLECTION", "text", "profiles",
            "Firestore collection of user profiles used for enrichment", _P,
            terraform="profiles_collection"),
    Setting("PROFILE_WRITEBACK", "bool", "true",
            "remember hashed identifiers of identified events for later anonymous ones", _P,
            terraform="profile_writeback"),
    Setting("IDEMPOTENCY_COLLECTION", "text", "capi_relay_idempotency",
            "Firestore collection of delivery records (TTL on `expire_at`)", _P,
            terraform="idempotency_collection"),
    Setting("IDEMPOTENCY_TTL_HOURS", "number", "48",
            "how long a delivery record is kept (Meta deduplicates for 48 h)", _P,
            terraform="idempotency_ttl_hours"),
    Setting("CLAIM_LEASE_SECONDS", "number", "120",
            "how long a claim blocks other instances before a crashed holder is presumed dead",
            _P, terraform="claim_lease_seconds"),
    Setting("BATCH_WINDOW_MS", "number", "50",
            "at most how long the processor gathers events from concurrent deliveries into one "
            "Graph request; a lone delivery never waits (0: never share)", _P,
            terraform="batch_window_ms"),
    Setting("MAX_DELIVERY_ATTEMPTS", "integer", "8",
            "after this many tries an event is dead-lettered as `retries_exhausted`", _P,
            terraform="max_delivery_attempts"),
    Setting("PULL_SUBSCRIPTION", "text", None,
            "the pull subscription the scheduled puller (`pull` entry point) delivers from; "
            "infra sets it when `delivery = \"scheduled_pull\"`", _P),
    Setting("DEAD_LETTER_SUBSCRIPTION", "text", "capi-events-dead-letter-sub",
            "where dead-lettered events wait", ("capi-relay replay",), scope=Scope.OPERATOR),
    Setting("INGEST_PORT", "integer", "8080", "where the ingest listens", ("make dev",),
            scope=Scope.LOCAL),
    Setting("DELIVERY", "choice", "push",
            "how `make dev` feeds its processor: `push`, or `scheduled_pull` as deployed by "
            "default (infra's `delivery`)", ("make dev",), scope=Scope.LOCAL,
            choices=("push", "scheduled_pull")),
    Setting("PULL_PERIOD_SECONDS", "number", "5",
            "with `DELIVERY=scheduled_pull`, seconds between `make dev`'s puller runs "
            "(Cloud Scheduler's once a minute when deployed)", ("make dev",), scope=Scope.LOCAL),
)
BY_NAME = {s.name: s for s in SETTINGS}


def default(name: str) -> str | None:
    return BY_NAME[name].default


def _number(name: str) -> float:
    return float(default(name))


@dataclass(frozen=True)
class Settings:
    project: str
    topic: str
    pixel_id: str
    dead_letter_topic: str | None = None
    api_version: str = DEFAULT_API_VERSION
    graph_url: str = DEFAULT_GRAPH_URL
    token_secret: str | None = None
    access_token: str | None = field(default=None, repr=False)
    test_event_code: str | None = None
    allowed_origins: tuple[str, ...] = ()
    default_country: str | None = None
    idempotency_collection: str = default("IDEMPOTENCY_COLLECTION")
    idempotency_ttl_hours: float = _number("IDEMPOTENCY_TTL_HOURS")
    lease_seconds: float = _number("CLAIM_LEASE_SECONDS")
    max_attempts: int = int(_number("MAX_DELIVERY_ATTEMPTS"))
    profiles_collection: str = default("PROFILES_COLLECTION")
    field_aliases: Mapping[str, Any] = field(default_factory=dict)
    event_names: Mapping[str, str] = field(default_factory=dict)
    graph_timeout: float = _number("META_TIMEOUT_SECONDS")
    consent_policy: str = default("CONSENT_POLICY")
    consent_missing: str = default("CONSENT_MISSING")
    ldu_regions: tuple[str, ...] = ()
    redact: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    profile_writeback: bool = default("PROFILE_WRITEBACK") == "true"
    batch_window_ms: float = _number("BATCH_WINDOW_MS")
    default_currency: str | None = None
    ingest_keys: KeyRing = field(default_factory=KeyRing, repr=False)
    ingest_keys_secret: str | None = None
    browser_events: frozenset[str] | None = None
    #: PIXELS as listed (empty when unset); ``delivery_pixels`` adds META_PIXEL_ID's
    pixels: tuple[Pixel, ...] = ()
    pull_subscription: str | None = None
    #: a puller run stops pulling after this long (below Cloud Scheduler's 60 s period)
    pull_budget_seconds: float = 45.0
    #: tokens of PIXELS entries with ``token_env`` (local runs), by pixel id
    pixel_tokens: Mapping[str, str] = field(default_factory=dict, repr=False)

    def delivery_pixels(self) -> tuple[Pixel, ...]:
        """Every pixel the processor sends to, in order, META_PIXEL_ID's with its route."""
        main = Pixel(self.pixel_id, test_event_code=self.test_event_code)
        return with_main(main, self.pixels)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 need: tuple[str, ...] = ()) -> "Settings":
        """Reads settings; ``need`` names the extras a function requires (e.g. 'token')."""
        env = os.environ if env is None else env

        def get(name: str, fallback: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or fallback or BY_NAME[name].default

        missing = [n for n in ("GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC", "META_PIXEL_ID")
                   if not get(n)]
        pixels = parse_pixels(get("PIXELS"), source="PIXELS")
        if "token" in need and not (get("META_ACCESS_TOKEN") or get("META_TOKEN_SECRET")) and \
                any(not (p.token_secret or p.token_env)
                    for p in with_main(Pixel(get("META_PIXEL_ID") or ""), pixels)):
            # a pixel without its own token uses the deployment's
            missing.append("META_TOKEN_SECRET (or META_ACCESS_TOKEN for local runs)")
        if "pull" in need and not get("PULL_SUBSCRIPTION"):
            missing.append("PULL_SUBSCRIPTION")
        if missing:
            raise ConfigurationError("missing environment variable(s): " + ", ".join(missing))
        pixel_tokens = {}
        for index, pixel in enumerate(pixels):
            if pixel.token_env:
                token = env.get(pixel.token_env, "").strip()
                if token:
                    pixel_tokens[pixel.id] = token
                elif "token" in need:  # the processor; preview and ingest need no token
                    raise ConfigurationError(
                        f"PIXELS[{index}].token_env: {pixel.token_env} is not set")

        def as_json(name: str) -> Any:
            text = get(name)
            if not text:
                return {}
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ConfigurationError(f"{name}: not valid JSON ({exc.msg})") from None
            if not isinstance(value, dict):
                raise ConfigurationError(f"{name}: must be a JSON object")
            return value

        def as_number(name: str) -> float:
            text = get(name)
            try:
                return float(text)
            except ValueError:
                raise ConfigurationError(f"{name}: must be a number") from None

        def choice(name: str) -> str:
            value, allowed = get(name).lower(), BY_NAME[name].choices
            if value not in allowed:
                raise ConfigurationError(f"{name}: must be one of {', '.join(allowed)}")
            return value

        secret = get("META_TOKEN_SECRET")
        if secret and not secret.startswith("projects/"):
            raise ConfigurationError(
                "META_TOKEN_SECRET: must be a secret version resource name "
                "(projects/P/secrets/S/versions/V)")
        keys_secret = get("INGEST_KEYS_SECRET")
        if keys_secret and not keys_secret.startswith("projects/"):
            raise ConfigurationError(
                "INGEST_KEYS_SECRET: must be a secret version resource name "
                "(projects/P/secrets/S/versions/V)")
        currency = get("DEFAULT_CURRENCY")
        if currency is not None:
            currency = currency.upper()
            if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
                raise ConfigurationError("DEFAULT_CURRENCY: must be an ISO 4217 code, e.g. EUR")
        redact = {str(k).lower(): (v,) if isinstance(v, str) else tuple(v)
                  for k, v in as_json("REDACT_FIELDS").items()}
        return cls(
            project=get("GOOGLE_CLOUD_PROJECT"),
            topic=get("PUBSUB_TOPIC"),
            pixel_id=get("META_PIXEL_ID"),
            dead_letter_topic=get("DEAD_LETTER_TOPIC"),
            api_version=get("META_API_VERSION"),
            graph_url=get("META_GRAPH_URL").rstrip("/"),
            token_secret=secret,
            access_token=get("META_ACCESS_TOKEN"),
            test_event_code=get("META_TEST_EVENT_CODE"),
            allowed_origins=tuple(o.strip() for o in (get("ALLOWED_ORIGINS") or "").split(",")
                                  if o.strip()),
            default_country=get("DEFAULT_COUNTRY"),
            idempotency_collection=get("IDEMPOTENCY_COLLECTION"),
            idempotency_ttl_hours=as_number("IDEMPOTENCY_TTL_HOURS"),
            lease_seconds=as_number("CLAIM_LEASE_SECONDS"),
            max_attempts=int(as_number("MAX_DELIVERY_ATTEMPTS")),
            profiles_collection=get("PROFILES_COLLECTION"),
            field_aliases=as_json("FIELD_ALIASES"),
            event_names=as_json("EVENT_NAME_MAP"),
            graph_timeout=as_number("META_TIMEOUT_SECONDS"),
            consent_policy=choice("CONSENT_POLICY"),
            consent_missing=choice("CONSENT_MISSING"),
            ldu_regions=tuple(r.strip().lower() for r in (get("LDU_REGIONS") or "").split(",")
                              if r.strip()),
            redact=redact,
            profile_writeback=(get("PROFILE_WRITEBACK").lower() != "false"),
            batch_window_ms=as_number("BATCH_WINDOW_MS"),
            default_currency=currency,
            ingest_keys=parse_keys(get("INGEST_KEYS"), source="INGEST_KEYS"),
            ingest_keys_secret=keys_secret,
            browser_events=parse_event_names(get("BROWSER_EVENTS"), source="BROWSER_EVENTS"),
            pixels=pixels,
            pixel_tokens=pixel_tokens,
            pull_subscription=get("PULL_SUBSCRIPTION"),
        )
