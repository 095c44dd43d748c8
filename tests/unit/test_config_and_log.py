"""Settings errors name the variable; logs keep only allow-listed keys."""

import io
import json

import pytest

from capi_relay import log
from capi_relay.config import Settings
from capi_relay.core.errors import ConfigurationError

BASE = {"GOOGLE_CLOUD_PROJECT": "p", "PUBSUB_TOPIC": "t", "META_PIXEL_ID": "1"}


def test_missing_variables_are_named():
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({"PUBSUB_TOPIC": "t"})
    assert "GOOGLE_CLOUD_PROJECT" in str(err.value) and "META_PIXEL_ID" in str(err.value)
    with pytest.raises(ConfigurationError, match="META_TOKEN_SECRET"):
        Settings.from_env(BASE, need=("token",))


@pytest.mark.parametrize("name,value,message", [
    ("FIELD_ALIASES", "{oops", "FIELD_ALIASES: not valid JSON"),
    ("FIELD_ALIASES", "[1]", "FIELD_ALIASES: must be a JSON object"),
    ("META_TOKEN_SECRET", "my-token-value", "META_TOKEN_SECRET: must be a secret version"),
    ("CONSENT_POLICY", "lax", "CONSENT_POLICY: must be one of"),
    ("IDEMPOTENCY_TTL_HOURS", "two", "IDEMPOTENCY_TTL_HOURS: must be a number"),
    ("DEFAULT_CURRENCY", "euros", "DEFAULT_CURRENCY: must be an ISO 4217 code"),
])
def test_malformed_values_named_never_echoed(name, value, message):
    with pytest.raises(ConfigurationError) as err:
        Settings.from_env({**BASE, name: value})
    assert str(err.value).startswith(message) and value not in str(err.value)


def test_defaults_and_lists():
    s = Settings.from_env({**BASE, "ALLOWED_ORIGINS": "https://a.example, https://b.example",
                           "META_GRAPH_URL": "http://127.0.0.1:9/"})
    assert s.allowed_origins == ("https://a.example", "https://b.example")
    assert s.graph_url == "http://127.0.0.1:9" and s.api_version.startswith("v")
    assert s.idempotency_ttl_hours == 48.0
    assert s.default_currency is None
    assert Settings.from_env({**BASE, "DEFAULT_CURRENCY": " eur "}).default_currency == "EUR"


def test_token_never_in_settings_repr():
    s = Settings.from_env({**BASE, "META_ACCESS_TOKEN": "EAAsecret"})
    assert "EAAsecret" not in repr(s)


def test_log_keeps_only_safe_keys_as_one_json_line():
    stream = io.StringIO()
    log.set_stream(stream)
    try:
        log.info("sent", event_id="e1", em="someone@example.com", access_token="EAAx",
                 email="x@y.z", count=3)
    finally:
        log.set_stream(None)
    record = json.loads(stream.getvalue())
    assert record["severity"] == "INFO" and record["message"] == "sent"
    assert record["event_id"] == "e1" and record["count"] == 3
    assert not {"em", "access_token", "email"} & set(record)
