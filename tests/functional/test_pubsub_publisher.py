"""The Pub/Sub publisher's group commit, over a stand-in for the Publish RPC: each publish
returns its own message id only once the call that carried it answered, a failed call fails
every message it carried (and only those), and a call never exceeds Pub/Sub's limits."""

import threading

import pytest

from capi_relay.adapters import pubsub
from capi_relay.adapters.pubsub import PubSubPublisher
from capi_relay.core.errors import PublishFailed


class StandIn(PubSubPublisher):
    """The publisher with its RPC replaced: records each call's messages, answers one id per
    message, fails the calls it is told to, and holds calls while ``gate`` is closed."""

    def __init__(self, fail_when=lambda messages: False, **kwargs):
        super().__init__("proj-x", "capi-events", **kwargs)
        self.calls: list[list] = []
        self.fail_when = fail_when
        self.gate = threading.Event()
        self.gate.set()
        self.in_call = threading.Event()
        self._client = object()  # never used: no real client is built

    def _publish_rpc(self, messages):
        self.calls.append(list(messages))
        self.in_call.set()
        self.gate.wait(10)
        if self.fail_when(messages):
            raise ConnectionError("stand-in refused the call")
        return [m.data.decode() + "-id" for m in messages]


def publish_all(publisher, datas, attributes=None):
    """Publishes each datum from its own thread; {datum: message id or the exception}."""
    results: dict[bytes, object] = {}

    def one(data):
        try:
            results[data] = publisher.publish(data, attributes or {"count": "1"})
        except PublishFailed as exc:
            results[data] = exc

    threads = [threading.Thread(target=one, args=(d,)) for d in datas]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    return results


def test_each_publish_returns_its_own_id_and_the_topic_gets_data_and_attributes():
    publisher = StandIn()
    assert publisher.publish(b"m0", {"count": "3", "source": "ingest"}) == "m0-id"
    [[message]] = publisher.calls
    assert message.data == b"m0" and dict(message.attributes) == {"count": "3",
                                                                   "source": "ingest"}
    assert publisher.topic_path == "projects/proj-x/topics/capi-events"


def test_messages_waiting_during_a_call_share_the_next_one():
    publisher = StandIn()
    publisher.gate.clear()  # the first call is held: the others queue behind it
    first = threading.Thread(target=publisher.publish, args=(b"first", {"count": "1"}))
    first.start()
    assert publisher.in_call.wait(10)
    datas = [f"m{i}".encode() for i in range(20)]
    waiting = threading.Thread(target=lambda: results.update(publish_all(publisher, datas)))
    results: dict = {}
    waiting.start()
    while publisher._queue.qsize() < len(datas):  # all twenty queued behind the held call
        threading.Event().wait(0.01)
    publisher.gate.set()
    first.join(10)
    waiting.join(20)
    assert results == {d: d.decode() + "-id" for d in datas}
    assert [len(call) for call in publisher.calls] == [1, 20]


def test_a_failed_call_fails_each_message_it_carried_and_the_next_call_still_goes(mocker):
    publisher = StandIn(fail_when=lambda messages: any(m.data == b"bad" for m in messages))
    with pytest.raises(PublishFailed, match="failed: ConnectionError") as err:
        publisher.publish(b"bad", {"count": "1"})
    assert "bad" not in str(err.value).replace("projects/proj-x", "")
    assert publisher.publish(b"good", {"count": "1"}) == "good-id"


def test_no_call_exceeds_the_message_or_byte_limit(monkeypatch):
    monkeypatch.setattr(pubsub, "MAX_BATCH_MESSAGES", 4)
    monkeypatch.setattr(pubsub, "MAX_BATCH_BYTES", 25)
    publisher = StandIn()
    publisher.gate.clear()
    first = threading.Thread(target=publisher.publish, args=(b"hold", {}))
    first.start()
    assert publisher.in_call.wait(10)
    datas = [f"m{i:02d}".encode() for i in range(9)] + [b"x" * 20]
    results: dict = {}
    waiting = threading.Thread(target=lambda: results.update(publish_all(publisher, datas)))
    waiting.start()
    while publisher._queue.qsize() < len(datas):
        threading.Event().wait(0.01)
    publisher.gate.set()
    first.join(10)
    waiting.join(20)
    assert results == {d: d.decode() + "-id" for d in datas}
    later = publisher.calls[1:]
    assert sorted(m.data for call in later for m in call) == sorted(datas)
    for call in later:  # each message's size: its data and attributes ("count": "1")
        assert len(call) <= 4 and sum(len(m.data) + 6 for m in call) <= 25 or len(call) == 1


def test_a_call_that_does_not_answer_in_time_fails_the_publish():
    publisher = StandIn(timeout=0.2)
    publisher.gate.clear()
    with pytest.raises(PublishFailed, match="failed: TimeoutError"):
        publisher.publish(b"slow", {"count": "1"})
    publisher.gate.set()


def test_a_client_that_cannot_be_built_fails_the_publish(mocker):
    mocker.patch("google.cloud.pubsub_v1.PublisherClient", side_effect=ValueError("no creds"))
    publisher = PubSubPublisher("proj-x", "capi-events")
    with pytest.raises(PublishFailed, match="failed: ValueError"):
        publisher.publish(b"m", {"count": "1"})
