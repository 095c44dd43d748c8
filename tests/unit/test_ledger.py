"""The claim/release state machine, decided purely and applied over the in-memory backend."""

import pytest

from capi_relay.app.ledger import (
    Claim,
    DeliveryLedger,
    State,
    decide_claim,
    event_key,
)
from fakes import MemoryBackend

NOW = 1_000_000.0


def decide(record, now=NOW):
    return decide_claim(record, now=now, lease_seconds=60, ttl_seconds=3600)


@pytest.mark.parametrize("record,claim,attempts", [
    (None, Claim.SEND, 1),
    ({"state": "sent", "attempts": 1, "expire_at": NOW + 10}, Claim.ALREADY_SENT, 1),
    ({"state": "failed", "attempts": 3, "expire_at": NOW + 10}, Claim.ALREADY_FAILED, 3),
    ({"state": "in_progress", "attempts": 1, "lease_until": NOW + 5, "expire_at": NOW + 10},
     Claim.BUSY, 1),
    ({"state": "in_progress", "attempts": 1, "lease_until": NOW - 1, "expire_at": NOW + 10},
     Claim.SEND, 2),
    ({"state": "released", "attempts": 2, "lease_until": 0, "expire_at": NOW + 10},
     Claim.SEND, 3),
    ({"state": "sent", "attempts": 1, "expire_at": NOW - 1}, Claim.SEND, 1),
])
def test_decide_claim(record, claim, attempts):
    decision = decide(record)
    assert decision.claim is claim and decision.attempts == attempts
    if claim is Claim.SEND:
        assert decision.write["state"] == State.IN_PROGRESS
        assert decision.write["lease_until"] == NOW + 60
        assert decision.write["expire_at"] == NOW + 3600


def test_key_separates_pixel_name_and_id():
    assert event_key("1", "Purchase", "a") != event_key("2", "Purchase", "a")
    assert event_key("1", "Purchase", "a") != event_key("1", "Lead", "a")
    assert event_key("1", "Purchase", "a") == event_key("1", "Purchase", "a")


def test_claim_sent_then_redelivery_is_acknowledged():
    store = DeliveryLedger(MemoryBackend(), lease_seconds=60, ttl_seconds=3600)
    first = store.claim("k", NOW)
    assert first.claim is Claim.SEND
    assert store.claim("k", NOW + 1).claim is Claim.BUSY
    store.mark_sent("k", NOW + 2, first.attempts)
    assert store.claim("k", NOW + 3).claim is Claim.ALREADY_SENT


def test_release_lets_the_next_delivery_claim_with_attempts_counted():
    store = DeliveryLedger(MemoryBackend(), lease_seconds=60, ttl_seconds=3600)
    first = store.claim("k", NOW)
    store.release("k", NOW + 1, first.attempts)
    again = store.claim("k", NOW + 2)
    assert again.claim is Claim.SEND and again.attempts == 2


def test_crashed_holder_lease_expires():
    store = DeliveryLedger(MemoryBackend(), lease_seconds=60, ttl_seconds=3600)
    store.claim("k", NOW)
    assert store.claim("k", NOW + 59).claim is Claim.BUSY
    assert store.claim("k", NOW + 61).claim is Claim.SEND


def test_lost_race_on_create_is_busy_not_double_claimed():
    backend = MemoryBackend()

    class Racing(MemoryBackend):
        def get(self, key):
            return None  # both instances read "absent"

        def create(self, key, record):
            return backend.create(key, record)

    store = DeliveryLedger(Racing(), lease_seconds=60, ttl_seconds=3600)
    assert store.claim("k", NOW).claim is Claim.SEND
    assert store.claim("k", NOW).claim is Claim.BUSY


def test_expired_record_treated_as_absent_even_before_ttl_deletion():
    store = DeliveryLedger(MemoryBackend(), lease_seconds=60, ttl_seconds=100)
    first = store.claim("k", NOW)
    store.mark_sent("k", NOW, first.attempts)
    assert store.claim("k", NOW + 50).claim is Claim.ALREADY_SENT
    assert store.claim("k", NOW + 101).claim is Claim.SEND


def test_replay_reclaims_a_failed_event_with_fresh_attempts():
    failed = {"state": "failed", "attempts": 8, "expire_at": NOW + 10}
    assert decide(failed).claim is Claim.ALREADY_FAILED
    decision = decide_claim(failed, now=NOW, lease_seconds=60, ttl_seconds=3600, replay=True)
    assert decision.claim is Claim.SEND and decision.attempts == 1
    sent = {"state": "sent", "attempts": 1, "expire_at": NOW + 10}
    assert decide_claim(sent, now=NOW, lease_seconds=60, ttl_seconds=3600,
                        replay=True).claim is Claim.ALREADY_SENT


def test_happy_path_is_one_create_and_one_put_no_reads():
    calls = []

    class Counting(MemoryBackend):
        def get(self, key):
            calls.append("get")
            return super().get(key)

        def create(self, key, record):
            calls.append("create")
            return super().create(key, record)

        def put(self, key, record):
            calls.append("put")
            super().put(key, record)

    store = DeliveryLedger(Counting(), lease_seconds=60, ttl_seconds=3600)
    decision = store.claim("k", NOW)
    store.mark_sent("k", NOW + 1, decision.attempts)
    assert calls == ["create", "put"]


# -- dead-lettering: publish once, record the typed reason ------------------------------------

def _queued(event_id="e1"):
    from capi_relay.core.envelope import QueuedEvent
    from capi_relay.core.model import ActionSource, CapiEvent

    return QueuedEvent(CapiEvent("Lead", int(NOW), event_id, ActionSource.SYSTEM_GENERATED))


def test_dead_letter_publishes_the_record_as_fields_and_records_failed():
    from capi_relay.core.delivery import DeadLetter, DeadReason
    from capi_relay.core.envelope import decode
    from fakes import FakePublisher

    topic = FakePublisher()
    backend = MemoryBackend()
    ledger = DeliveryLedger(backend, lease_seconds=60, ttl_seconds=3600, dead_letter=topic)
    key = event_key("px", "Lead", "e1")
    assert ledger.claim(key, NOW).claim is Claim.SEND
    letter = DeadLetter(DeadReason.REJECTED, 100, 2804050, "Invalid parameter")
    ledger.dead_letter(key, _queued(), NOW, 1, letter)
    (data, attributes), = topic.messages
    assert decode(data)[0].event.event_id == "e1"
    assert {k: attributes[k] for k in ("reason", "code", "subcode", "detail", "event_id")} == {
        "reason": "rejected", "code": "100", "subcode": "2804050",
        "detail": "100/2804050: Invalid parameter", "event_id": "e1"}
    record = backend.get(key)[0]
    assert (record["state"], record["reason"], record["code"], record["subcode"]) == (
        "failed", "rejected", 100, 2804050)
    assert ledger.claim(key, NOW + 1).claim is Claim.ALREADY_FAILED  # once


def test_dead_letter_topic_down_gives_the_claim_back_and_raises():
    from capi_relay.core.delivery import DeadLetter, DeadReason
    from capi_relay.core.errors import PublishFailed
    from fakes import FakePublisher

    ledger = DeliveryLedger(MemoryBackend(), lease_seconds=60, ttl_seconds=3600,
                            dead_letter=FakePublisher(fail=True))
    key = event_key("px", "Lead", "e1")
    ledger.claim(key, NOW)
    with pytest.raises(PublishFailed):
        ledger.dead_letter(key, _queued(), NOW, 1, DeadLetter(DeadReason.TOO_OLD))
    again = ledger.claim(key, NOW + 1)  # released, not failed, not busy
    assert (again.claim, again.attempts) == (Claim.SEND, 2)
