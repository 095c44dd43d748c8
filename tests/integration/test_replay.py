"""Dead-letter, then `capi-relay replay` it once the cause is fixed, on the emulators."""

import io
import json
import time
import uuid

import pytest
import requests

from capi_relay_dev import localstack
from capi_relay_ops.replay import ReplayFilter, replay
from waiting import wait_for

pytestmark = pytest.mark.integration



def test_rejected_event_dead_lettered_then_replayed_after_the_fix(stack):
    subscriber, publisher = stack.subscriber_client, stack.publisher_client
    dead_sub = subscriber.subscription_path(localstack.PROJECT,
                                            localstack.DEAD_LETTER_SUBSCRIPTION)
    topic = publisher.topic_path(localstack.PROJECT, localstack.TOPIC)
    event_id = f"replay-{uuid.uuid4()}"
    event = {"event_name": "purchase", "event_id": event_id, "value": 5, "currency": "USD",
             "page_location": "https://shop.example.com/thanks", "ip_override": "203.0.113.5",
             "custom_properties": {"x_replay_me": True}}
    stack.standin.set_faults(reject_marker="x_replay_me")
    try:
        response = requests.post(stack.ingest_url, json=event, timeout=30,
                                 headers={"User-Agent": "Mozilla/5.0 (replay)"})
        assert response.status_code == 202

        def dead_lettered():
            out = io.StringIO()
            replay(subscriber, publisher, subscription=dead_sub, topic=topic,
                   chosen=ReplayFilter(("rejected",)), now=time.time(), dry_run=True,
                   limit=100, out=out)
            return any(json.loads(line)["event_id"] == event_id
                       for line in out.getvalue().splitlines())
        wait_for(dead_lettered)
    finally:
        stack.standin.set_faults(reject_marker=None)

    assert not any(e["event_id"] == event_id for e in stack.standin.accepted)
    out = io.StringIO()
    summary = replay(subscriber, publisher, subscription=dead_sub, topic=topic,
                     chosen=ReplayFilter(("rejected",), max_age_seconds=3600),
                     now=time.time(), dry_run=False, limit=100, out=out)
    assert summary["replayed"] >= 1
    wait_for(lambda: any(e["event_id"] == event_id for e in stack.standin.accepted))
    time.sleep(2)
    assert sum(e["event_id"] == event_id for e in stack.standin.accepted) == 1


def test_filter_by_reason_and_age():
    chosen = ReplayFilter(("too_old",), max_age_seconds=3600)
    assert chosen.chooses({"reason": "too_old", "dead_lettered_at": "1000"}, now=1500)
    assert not chosen.chooses({"reason": "rejected", "dead_lettered_at": "1000"}, now=1500)
    assert not chosen.chooses({"reason": "too_old", "dead_lettered_at": "1000"}, now=9000)
    assert not chosen.chooses({"reason": "too_old"}, now=9000)
    assert ReplayFilter().chooses({}, now=0)
