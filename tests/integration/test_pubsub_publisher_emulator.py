"""The Pub/Sub publisher against the emulator: messages published at once from many threads
(the ingest's request threads) each come back with the id Pub/Sub gave it, and the topic holds
exactly those messages, data and attributes intact."""

import os
import threading

import pytest

from capi_relay_dev import localstack

pytestmark = pytest.mark.integration


@pytest.fixture
def emulator(monkeypatch):
    from emulators import require_emulators

    require_emulators()
    port = localstack.free_port()
    process = localstack.start_emulator("pubsub", port, None)
    monkeypatch.setenv("PUBSUB_EMULATOR_HOST", f"127.0.0.1:{port}")
    try:
        yield
    finally:
        process.stop()


def test_concurrent_publishes_each_arrive_once_with_their_ids(emulator):
    from google.cloud import pubsub_v1

    from capi_relay.adapters.pubsub import PubSubPublisher

    project, topic = "capi-relay-local", "publisher-test"
    admin, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic_path = admin.topic_path(project, topic)
    subscription = subscriber.subscription_path(project, "publisher-test-sub")
    admin.create_topic(name=topic_path)
    subscriber.create_subscription(name=subscription, topic=topic_path)
    assert os.environ["PUBSUB_EMULATOR_HOST"]

    publisher = PubSubPublisher(project, topic)
    ids: dict[bytes, str] = {}

    def one(i: int) -> None:
        data = f'{{"n":{i}}}'.encode()
        ids[data] = publisher.publish(data, {"count": str(i % 3 + 1), "source": "ingest"})

    threads = [threading.Thread(target=one, args=(i,)) for i in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert len(ids) == 60 and len(set(ids.values())) == 60

    received: dict[bytes, tuple[str, dict]] = {}
    while len(received) < 60:
        response = subscriber.pull(request={"subscription": subscription,
                                            "max_messages": 100}, timeout=30)
        assert response.received_messages, "the topic holds fewer messages than published"
        for got in response.received_messages:
            received[got.message.data] = (got.message.message_id,
                                          dict(got.message.attributes))
        subscriber.acknowledge(request={"subscription": subscription, "ack_ids": [
            got.ack_id for got in response.received_messages]})
    assert {data: message_id for data, (message_id, _) in received.items()} == ids
    for data, (_, attributes) in received.items():
        n = int(data.decode()[5:-1])
        assert attributes == {"count": str(n % 3 + 1), "source": "ingest"}
