"""Ingest -> Pub/Sub push -> processor -> Graph stand-in, on the real emulators."""

import hashlib
import json
import time
import uuid

import pytest
import requests

from capi_relay_dev import localstack
from samples import load_event
from waiting import wait_for

pytestmark = pytest.mark.integration
UA = {"User-Agent": "Mozilla/5.0 (integration)"}



def received(stack, event_ids):
    by_id = {}
    for event in stack.standin.accepted:
        if event.get("event_id") in event_ids:
            by_id.setdefault(event["event_id"], []).append(event)
    return by_id


def test_event_posted_to_ingest_reaches_graph_through_push(stack):
    event = load_event("ga4_purchase_sgtm.json")
    event["event_id"] = f"it-{uuid.uuid4()}"
    response = requests.post(stack.ingest_url, json=event, headers=UA, timeout=30)
    assert response.status_code == 202, response.text
    got = wait_for(lambda: received(stack, {event["event_id"]}))
    sent = got[event["event_id"]][0]
    assert sent["event_name"] == "Purchase"
    assert sent["user_data"]["em"] == [hashlib.sha256(b"jane.doe@example.com").hexdigest()]
    assert sent["custom_data"]["content_ids"] == ["SKU-1", "SKU-2"]


def test_batch_with_bad_neighbour_good_ones_delivered_in_one_request(stack):
    batch = load_event("batch_50.json")["events"]
    run = uuid.uuid4().hex[:8]
    for event in batch:
        event["event_id"] = f"{run}-{event['event_id']}"
    batch[7].pop("page_location")  # a website event without its URL: rejected at ingest
    before = stack.standin.requests
    response = requests.post(stack.ingest_url, json={"events": batch}, headers=UA, timeout=30)
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 49
    assert body["rejected"] == [{"index": 7, "errors": [
        "event_source_url: required for website events"]}]
    wanted = {e["event_id"] for i, e in enumerate(batch) if i != 7}
    got = wait_for(lambda: (lambda r: r if len(r) == 49 else None)(received(stack, wanted)))
    assert all(len(copies) == 1 for copies in got.values())
    assert stack.standin.requests - before == 1


def test_idempotency_record_in_firestore_says_sent(stack, monkeypatch):
    from google.cloud import firestore

    from capi_relay.app.ledger import event_key

    event = load_event("page_view.json")
    event["event_id"] = f"fs-{uuid.uuid4()}"
    assert requests.post(stack.ingest_url, json=event, headers=UA, timeout=30).status_code == 202
    wait_for(lambda: received(stack, {event["event_id"]}))
    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{stack.firestore_port}")
    db = firestore.Client(project=localstack.PROJECT)
    doc = db.collection("capi_relay_idempotency").document(
        event_key(stack.pixel_id, "PageView", event["event_id"]))
    snapshot = wait_for(lambda: (lambda s: s if s.to_dict().get("state") == "sent" else None)(
        doc.get()), timeout=10)
    record = snapshot.to_dict()
    assert record["attempts"] == 1 and record["expire_at"].timestamp() > time.time() + 47 * 3600


def test_reposting_the_same_event_is_not_sent_twice(stack):
    event = load_event("lead.json")
    event["event_id"] = f"dup-{uuid.uuid4()}"
    for _ in range(3):
        assert requests.post(stack.ingest_url, json=event, headers=UA,
                             timeout=30).status_code == 202
    wait_for(lambda: received(stack, {event["event_id"]}))
    time.sleep(3)  # give any second copy the time to arrive
    assert len(received(stack, {event["event_id"]})[event["event_id"]]) == 1


def test_healthz_ready_once_the_topic_has_its_subscription(stack):
    response = requests.get(stack.ingest_url + "/healthz", timeout=30)
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_bad_json_is_400_not_500(stack):
    response = requests.post(stack.ingest_url, data=b"{oops", headers=UA, timeout=30)
    assert response.status_code == 400 and response.json()["error"] == "body: not valid JSON"
    assert json.loads(requests.put(stack.ingest_url, timeout=30).text)["error"]
