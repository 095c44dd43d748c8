"""Settings from environment variables, with errors that name the variable."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping

from capi_relay.core.errors import ConfigurationError

#: The Graph API version the relay is written and tested against: the newest Marketing API
#: version (Meta's Marketing API version history: v27.0, released 2026-11-04). Marketing API
#: versions expire about a year after release (v25.0: 2026-02-18 to 2027-02-23), so a new
#: deployment takes the newest one.
DEFAULT_API_VERSION = "v27.0"
DEFAULT_GRAPH_URL = "https://graph.facebook.com"


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
    idempotency_collection: str = "capi_relay_idempotency"
    idempotency_ttl_hours: float = 48.0
    lease_seconds: float = 120.0
    max_attempts: int = 8
    profiles_collection: str = "profiles"
    field_aliases: Mapping[str, Any] = field(default_factory=dict)
    event_names: Mapping[str, str] = field(default_factory=dict)
    graph_timeout: float = 10.0
    consent_policy: str = "strict"
    consent_missing: str = "send"
    ldu_regions: tuple[str, ...] = ()
    redact: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    profile_writeback: bool = True
    batch_window_ms: float = 50.0

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, *,
                 need: tuple[str, ...] = ()) -> "Settings":
        """Reads settings; ``need`` names the extras a function requires (e.g. 'token')."""
        env = os.environ if env is None else env

        def get(name: str, default: str | None = None) -> str | None:
            value = env.get(name, "").strip()
            return value or default

        missing = [n for n in ("GOOGLE_CLOUD_PROJECT", "PUBSUB_TOPIC", "META_PIXEL_ID")
                   if not get(n)]
        if "token" in need and not (get("META_ACCESS_TOKEN") or get("META_TOKEN_SECRET")):
            missing.append("META_TOKEN_SECRET (or META_ACCESS_TOKEN for local runs)")
        if missing:
            raise ConfigurationError("missing environment variable(s): " + ", ".join(missing))

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

        def as_number(name: str, default: float) -> float:
            text = get(name)
            if text is None:
                return default
            try:
                return float(text)
            except ValueError:
                raise ConfigurationError(f"{name}: must be a number") from None

        def choice(name: str, default: str, allowed: tuple[str, ...]) -> str:
            value = (get(name) or default).lower()
            if value not in allowed:
                raise ConfigurationError(f"{name}: must be one of {', '.join(allowed)}")
            return value

        secret = get("META_TOKEN_SECRET")
        if secret and not secret.startswith("projects/"):
            raise ConfigurationError(
                "META_TOKEN_SECRET: must be a secret version resource name "
                "(projects/P/secrets/S/versions/V)")
        redact = {str(k).lower(): (v,) if isinstance(v, str) else tuple(v)
                  for k, v in as_json("REDACT_FIELDS").items()}
        return cls(
            project=get("GOOGLE_CLOUD_PROJECT"),
            topic=get("PUBSUB_TOPIC"),
            pixel_id=get("META_PIXEL_ID"),
            dead_letter_topic=get("DEAD_LETTER_TOPIC"),
            api_version=get("META_API_VERSION", DEFAULT_API_VERSION),
            graph_url=get("META_GRAPH_URL", DEFAULT_GRAPH_URL).rstrip("/"),
            token_secret=secret,
            access_token=get("META_ACCESS_TOKEN"),
            test_event_code=get("META_TEST_EVENT_CODE"),
            allowed_origins=tuple(o.strip() for o in (get("ALLOWED_ORIGINS") or "").split(",")
                                  if o.strip()),
            default_country=get("DEFAULT_COUNTRY"),
            idempotency_collection=get("IDEMPOTENCY_COLLECTION", "capi_relay_idempotency"),
            idempotency_ttl_hours=as_number("IDEMPOTENCY_TTL_HOURS", 48.0),
            lease_seconds=as_number("CLAIM_LEASE_SECONDS", 120.0),
            max_attempts=int(as_number("MAX_DELIVERY_ATTEMPTS", 8)),
            profiles_collection=get("PROFILES_COLLECTION", "profiles"),
            field_aliases=as_json("FIELD_ALIASES"),
            event_names=as_json("EVENT_NAME_MAP"),
            graph_timeout=as_number("META_TIMEOUT_SECONDS", 10.0),
            consent_policy=choice("CONSENT_POLICY", "strict", ("strict", "strip_user_data")),
            consent_missing=choice("CONSENT_MISSING", "send", ("send", "drop")),
            ldu_regions=tuple(r.strip().lower() for r in (get("LDU_REGIONS") or "").split(",")
                              if r.strip()),
            redact=redact,
            profile_writeback=(get("PROFILE_WRITEBACK", "true").lower() != "false"),
            batch_window_ms=as_number("BATCH_WINDOW_MS", 50.0),
        )
