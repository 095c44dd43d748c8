"""Privacy by construction, on the running local stack: known personal values go in, and none of
them comes out raw in the Pub/Sub messages, the Firestore documents, or anything the stack logged.
"""

import json
import uuid

import pytest
import requests

from capi_relay.core.envelope import decode
from capi_relay.core.errors import InvalidEvent
from capi_relay.core.normalize import prepare
from capi_relay_dev import localstack
from waiting import wait_for

pytestmark = pytest.mark.integration

EMAIL = "Zephyrine.Quill@Privacy-Test.example"
PHONE = "+44 20 7946 0958"
PERSON = {
    "user_id": "privacy-user-9c41",
    "user_data": {
        "email_address": EMAIL,
        "phone_number": PHONE,
        "address": {"first_name": "Zephyrine", "last_name": "Quillfeather",
                    "city": "Wolverhampton", "postal_code": "WV1 1AA", "country": "GB"},
    },
    "birthday": "1987-03-21",
}
#: every spelling of the personal values that must never appear: as given and as normalized
RAW = [EMAIL, EMAIL.lower(), "Zephyrine", "zephyrine", "Quillfeather", "quillfeather",
       "Wolverhampton", "wolverhampton", "WV1 1AA", "wv11aa", PHONE, "442079460958",
       "2079460958", "privacy-user-9c41", "1987-03-21", "19870321"]
UA = {"User-Agent": "Mozilla/5.0 (privacy test)"}



def leaks(text: str) -> list[str]:
    return [raw for raw in RAW if raw in text]


@pytest.fixture
def tap(stack):
    """A pull subscription of our own on the events topic, made before anything is posted."""
    subscriber = stack.subscriber_client
    path = subscriber.subscription_path(localstack.PROJECT, f"privacy-{uuid.uuid4().hex[:8]}")
    subscriber.create_subscription(name=path, topic=stack.publisher_client.topic_path(
        localstack.PROJECT, localstack.TOPIC), ack_deadline_seconds=60)
    yield path
    subscriber.delete_subscription(subscription=path)


def pulled(stack, path, event_ids):
    """The envelopes on our subscription that carry our events, as raw bytes."""
    out = []
    while True:
        response = stack.subscriber_client.pull(
            request={"subscription": path, "max_messages": 100}, timeout=10)
        if not response.received_messages:
            return out
        for received in response.received_messages:
            data = received.message.data
            try:
                events = decode(data)
            except InvalidEvent:
                continue
            if {q.event.event_id for q in events} & event_ids:
                out.append(data + json.dumps(dict(received.message.attributes)).encode())
        stack.subscriber_client.acknowledge(request={"subscription": path, "ack_ids": [
            r.ack_id for r in response.received_messages]})


def test_personal_values_never_leave_ingest_raw(stack, tap, monkeypatch):
    run = uuid.uuid4().hex[:8]
    client_id = f"{run}.1732450000"
    identified = {"event_name": "sign_up", "event_id": f"priv-{run}-1",
                  "page_location": "https://shop.example.com/welcome", "client_id": client_id,
                  **PERSON}
    anonymous = {"event_name": "page_view", "event_id": f"priv-{run}-2",
                 "page_location": "https://shop.example.com/", "client_id": client_id,
                 "ip_override": "198.51.100.77"}
    ids = {identified["event_id"], anonymous["event_id"]}

    def received(event_id):
        return next((e for e in stack.standin.accepted if e.get("event_id") == event_id), None)

    assert requests.post(stack.ingest_url, json=identified, headers=UA,
                         timeout=30).status_code == 202
    first = wait_for(lambda: received(identified["event_id"]))
    # the processor wrote the identified user back; the same browser's page view is enriched
    assert requests.post(stack.ingest_url, json=anonymous, headers=UA,
                         timeout=30).status_code == 202
    second = wait_for(lambda: received(anonymous["event_id"]))
    assert first["user_data"]["em"] == [prepare("em", EMAIL)]
    assert first["user_data"]["db"] == [prepare("db", "1987-03-21")]
    for key in ("em", "ph", "fn", "ln", "ct", "zp", "country", "external_id", "db"):
        assert second["user_data"][key] == first["user_data"][key], key

    sent = json.dumps([first, second])
    assert leaks(sent) == []

    messages = pulled(stack, tap, ids)
    assert len(messages) == 2
    assert leaks(b"".join(messages).decode()) == []

    from google.cloud import firestore

    monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{stack.firestore_port}")
    db = firestore.Client(project=localstack.PROJECT)
    documents = [(doc.id, doc.to_dict()) for collection in db.collections()
                 for doc in collection.stream()]
    assert any(doc_id.startswith("link_cid_") for doc_id, _ in documents)
    assert leaks(json.dumps(documents, default=str)) == []
    assert client_id not in json.dumps(documents, default=str)  # links are named by its hash

    logged = "".join(path.read_text(errors="replace") for path in stack.log_dir.iterdir()
                     if path.is_file())
    assert identified["event_id"] in logged  # the logs did see these events
    assert leaks(logged) == []
    assert stack.access_token not in logged
