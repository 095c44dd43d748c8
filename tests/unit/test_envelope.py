"""The Pub/Sub envelope: one serialization per event, sizes measured in bytes as sent."""

import json

import pytest

from capi_relay.core.envelope import QueuedEvent, decode, encode, messages
from capi_relay.core.model import ActionSource, CapiEvent, UserData, canonical_json


def queued(i, city=""):
    return QueuedEvent(CapiEvent("Lead", 1_732_450_000, f"e{i}", ActionSource.SYSTEM_GENERATED,
                                 UserData(external_id=("a" * 64,)),
                                 custom_data={"note": city} if city else {}),
                       client_id=f"c{i}", consent={"x-ga-gcs": "G111"})


def test_encode_is_the_canonical_json_of_the_envelope():
    events = [queued(1), queued(2, "Zürich")]
    assert encode(events) == canonical_json(
        {"v": 1, "events": [e.to_json() for e in events]}).encode()
    assert decode(encode(events)) == events
    assert decode(encode([])) == []


def test_messages_respect_the_event_limit_and_keep_order():
    out = messages([queued(i) for i in range(25)], max_events=10)
    assert [count for _, count in out] == [10, 10, 5]
    assert [q.event.event_id for data, _ in out for q in decode(data)] == [
        f"e{i}" for i in range(25)]


@pytest.mark.parametrize("city", ["", "Zürich – Genève ✓"])
def test_messages_measure_bytes_not_characters(city):
    events = [queued(i, city * 20) for i in range(40)]
    one = len(encode(events[:1]))
    limit = one * 5  # room for a handful of events, counted in encoded bytes
    out = messages(events, max_bytes=limit)
    assert all(len(data) <= limit for data, _ in out)
    assert sum(count for _, count in out) == 40
    assert [json.loads(data)["v"] for data, _ in out] == [1] * len(out)
    # packed tightly: adding the next event would have crossed the limit
    for (data, _), (nxt, _) in zip(out, out[1:], strict=False):
        assert len(data) + len(encode(decode(nxt)[:1])) - len(encode([])) + 1 > limit


def test_an_event_larger_than_the_limit_still_travels_alone():
    out = messages([queued(1, "x" * 5000), queued(2)], max_bytes=1000)
    assert [count for _, count in out] == [1, 1]
