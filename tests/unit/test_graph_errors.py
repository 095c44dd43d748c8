"""graph_errors: the classification table, message sanitizing, retry hints and backoff."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from capi_relay.core.delivery import DeadLetter, DeadReason
from capi_relay.core.errors import (
    GraphUnavailable,
    Throttled,
    TokenProblem,
)
from capi_relay.core.graph_outcome import (
    BACKOFF,
    MESSAGE_LIMIT,
    GraphOutcome,
    Verdict,
    backoff_seconds,
    classify,
    retry_after_from_headers,
    sanitize_message,
)

TABLE = json.loads(
    (Path(__file__).parents[1] / "conformance" / "graph_errors.json").read_text(encoding="utf-8")
)
ROWS = TABLE["rows"]


@pytest.mark.parametrize("row", ROWS, ids=[row["id"] for row in ROWS])
def test_classification_table(row):
    outcome = classify(row["status"], row["body"],
                       transport_error=row.get("transport_error", False),
                       headers=row.get("headers"))
    assert outcome.verdict is Verdict(row["verdict"])
    assert outcome.http_status == (None if row.get("transport_error") else row["status"])
    if "retry_after" in row:
        assert outcome.retry_after == pytest.approx(row["retry_after"])


def test_every_row_cites_a_source_and_the_table_covers_every_verdict():
    assert all(row["source"].startswith(("http", "policy:", "observed")) for row in ROWS)
    assert len({row["id"] for row in ROWS}) == len(ROWS)
    assert {row["verdict"] for row in ROWS} == {v.value for v in Verdict}


def test_ok_keeps_the_count_and_trace():
    outcome = classify(200, {"events_received": 3, "messages": [], "fbtrace_id": "Atrace"})
    assert outcome.verdict is Verdict.OK
    assert (outcome.events_received, outcome.fbtrace_id) == (3, "Atrace")
    assert outcome.code is None and outcome.message == ""


def test_error_fields_are_kept_and_values_are_not():
    token = "EAABsbCS1iHgBAKZBZCZCZCZCabc123xyz"
    message = (f"Invalid parameter for jane.doe@example.com with access_token={token}&x=1, "
               f"em {'a' * 64}, ip 203.0.113.9, phone +1 (650) 555-1234, raw {token}")
    outcome = classify(400, {"error": {
        "message": message, "type": "OAuthException", "code": 100, "error_subcode": 2804003,
        "error_user_title": "Event Timestamp Too Old",
        "error_user_msg": "The event for jane.doe@example.com is too old", "fbtrace_id": "Atr"}})
    assert outcome.verdict is Verdict.INVALID_EVENT
    assert (outcome.code, outcome.subcode, outcome.fbtrace_id) == (100, 2804003, "Atr")
    assert outcome.error_type == "OAuthException"
    assert outcome.user_title == "Event Timestamp Too Old"
    everything = repr(outcome) + outcome.describe()
    for secret in (token, "jane.doe@example.com", "a" * 64, "203.0.113.9", "555-1234"):
        assert secret not in everything
    assert outcome.message.startswith("Invalid parameter for [email] with access_token=[redacted]")


def test_sanitize_truncates_after_redacting():
    long = "x " * 300 + "access_token=" + "T" * 50
    cleaned = sanitize_message(long)
    assert len(cleaned) <= MESSAGE_LIMIT
    assert "TTTT" not in sanitize_message("y" * 190 + " access_token=" + "T" * 50)
    assert sanitize_message(None) == ""
    # A clock time and a date are not addresses or phone numbers.
    assert sanitize_message("expired on 23-Sep-23 23:29:14 PDT, 2024-01-02") == \
        "expired on 23-Sep-23 23:29:14 PDT, 2024-01-02"
    assert sanitize_message("from 2001:db8::1") == "from [ip]"


def test_retry_hints_from_headers():
    buc = {"123": [{"type": "ads_management", "estimated_time_to_regain_access": 2},
                   {"type": "custom_audience", "estimated_time_to_regain_access": 7}]}
    assert retry_after_from_headers({"x-business-use-case-usage": json.dumps(buc)}) == 420.0
    assert retry_after_from_headers({"Retry-After": "15"}) == 15.0
    assert retry_after_from_headers({"Retry-After": "soon"}) is None
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": "not json"}) is None
    assert retry_after_from_headers({"X-Business-Use-Case-Usage": json.dumps(
        {"1": [{"estimated_time_to_regain_access": 0}]})}) is None
    assert retry_after_from_headers(None) is None
    # A hint never turns a permanent answer into a wait.
    assert classify(400, {"error": {"code": 100}}, headers={"Retry-After": "5"}).retry_after is None


@pytest.mark.parametrize("outcome, expected", [
    (classify(None, None, transport_error=True), GraphUnavailable),
    (classify(400, {"error": {"code": 17}}, headers={"Retry-After": "9"}), Throttled),
    (classify(400, {"error": {"code": 368}}), Throttled),
    (classify(400, {"error": {"code": 190, "error_subcode": 463}}), TokenProblem),
    # permanent refusals are no exception: the processor records them as a DeadLetter
    (classify(400, {"error": {"code": 100, "error_subcode": 2804003}}), type(None)),
    (classify(400, {"error": {"code": 100, "error_subcode": 2804050}}), type(None)),
    (classify(400, {"error": {"code": 506}}), type(None)),
])
def test_outcomes_map_onto_the_exception_tree(outcome, expected):
    error = outcome.to_error()
    assert type(error) is expected
    assert outcome.retryable is (expected in (GraphUnavailable, Throttled, TokenProblem))
    if isinstance(error, Throttled) and outcome.code == 17:
        assert error.retry_after == 9.0


def test_a_refusal_becomes_a_typed_dead_letter_record():
    outcome = classify(400, {"error": {"code": 100, "error_subcode": 2804003,
                                       "message": "Invalid parameter"}})
    letter = DeadLetter.rejected(outcome)
    assert (letter.reason, letter.code, letter.subcode) == (DeadReason.REJECTED, 100, 2804003)
    assert letter.attributes() == {"reason": "rejected", "code": "100", "subcode": "2804003",
                                   "detail": "100/2804003: " + outcome.message}


def test_ok_is_no_error():
    assert classify(200, {"events_received": 1}).to_error() is None


def test_outcome_is_frozen():
    outcome = classify(200, {"events_received": 1})
    with pytest.raises(AttributeError):
        outcome.verdict = Verdict.PERMANENT  # type: ignore[misc]
    assert isinstance(outcome, GraphOutcome)


# --- backoff -------------------------------------------------------------------------------------

@pytest.mark.parametrize("verdict", list(BACKOFF))
def test_backoff_grows_then_caps(verdict):
    waits = [backoff_seconds(verdict, attempt, jitter=1.0) for attempt in range(40)]
    assert waits[0] == BACKOFF[verdict].base
    assert waits[1] == 2 * waits[0]
    assert all(a <= b for a, b in zip(waits, waits[1:], strict=False))
    assert max(waits) == BACKOFF[verdict].cap
    assert backoff_seconds(verdict, 10_000, jitter=1.0) == BACKOFF[verdict].cap


def test_backoff_jitter_spreads_between_half_and_full_and_is_deterministic():
    full = backoff_seconds(Verdict.TRANSIENT, 3, jitter=1.0)
    assert backoff_seconds(Verdict.TRANSIENT, 3, jitter=0.0) == full / 2
    assert backoff_seconds(Verdict.TRANSIENT, 3, jitter=0.5) == pytest.approx(full * 0.75)
    assert backoff_seconds(Verdict.TRANSIENT, 3, jitter=0.3) == \
        backoff_seconds(Verdict.TRANSIENT, 3, jitter=0.3)


def test_retry_much_later_is_much_longer_than_throttling():
    for attempt in range(6):
        assert backoff_seconds(Verdict.RETRY_MUCH_LATER, attempt, jitter=0.0) >= \
            10 * backoff_seconds(Verdict.THROTTLED, attempt, jitter=1.0) / 2
    assert backoff_seconds(Verdict.RETRY_MUCH_LATER, 0, jitter=0.0) >= 900
    assert backoff_seconds(Verdict.THROTTLED, 0, jitter=0.0) > \
        backoff_seconds(Verdict.TRANSIENT, 0, jitter=1.0)


def test_server_hint_is_a_floor():
    assert backoff_seconds(Verdict.THROTTLED, 0, jitter=0.0, retry_after=600) == 600
    assert backoff_seconds(Verdict.THROTTLED, 0, jitter=1.0, retry_after=1) == 30
    assert backoff_seconds(Verdict.TRANSIENT, 0, jitter=0.0, retry_after=10 ** 9) == 86400


@pytest.mark.parametrize("verdict", [Verdict.OK, Verdict.INVALID_EVENT, Verdict.PERMANENT])
def test_backoff_refuses_verdicts_that_are_not_retried(verdict):
    with pytest.raises(ValueError):
        backoff_seconds(verdict, 0, jitter=0.5)


@pytest.mark.parametrize("attempt, jitter", [(-1, 0.5), (0, -0.1), (0, 1.5)])
def test_backoff_rejects_bad_input(attempt, jitter):
    with pytest.raises(ValueError):
        backoff_seconds(Verdict.TRANSIENT, attempt, jitter=jitter)
