"""Scheduled pull on the real emulators: the ingest publishes, a puller run (the `pull` entry
point's service, wired by bootstrap over Pub/Sub, Firestore and the Graph stand-in) sends what
waits in one Graph request, records it in one Firestore document, and acknowledges it."""

import uuid

import pytest

from capi_relay import bootstrap
from capi_relay.entrypoints import web
from samples import load_event

pytestmark = pytest.mark.integration


class _Post:
    method = "POST"


@pytest.fixture
def puller(stack, monkeypatch):
    """A topic with a pull subscription (the policies of infra/pubsub.tf) on the stack's
    emulators, and the env a deployed puller gets."""
    from google.cloud import pubsub_v1
    from google.protobuf import duration_pb2

    from capi_relay_dev import localstack

    run = uuid.uuid4().hex[:8]
    env = {"PUBSUB_EMULATOR_HOST": f"127.0.0.1:{stack.pubsub_port}",
           "FIRESTORE_EMULATOR_HOST": f"127.0.0.1:{stack.firestore_port}",
           "GOOGLE_CLOUD_PROJECT": localstack.PROJECT, "PUBSUB_TOPIC": f"pull-{run}",
           "DEAD_LETTER_TOPIC": localstack.DEAD_LETTER_TOPIC,
           "META_PIXEL_ID": stack.pixel_id, "META_GRAPH_URL": stack.graph_url,
           "META_ACCESS_TOKEN": stack.access_token, "PULL_SUBSCRIPTION": f"pull-{run}-sub",
           "IDEMPOTENCY_COLLECTION": f"runs_{run}"}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
    topic = publisher.topic_path(localstack.PROJECT, env["PUBSUB_TOPIC"])
    publisher.create_topic(name=topic)
    subscriber.create_subscription(request={
        "name": subscriber.subscription_path(localstack.PROJECT, env["PULL_SUBSCRIPTION"]),
        "topic": topic, "ack_deadline_seconds": 60,
        "retry_policy": {"minimum_backoff": duration_pb2.Duration(seconds=10)},
        "dead_letter_policy": {
            "dead_letter_topic": publisher.topic_path(localstack.PROJECT,
                                                      localstack.DEAD_LETTER_TOPIC),
            "max_delivery_attempts": 10}})
    bootstrap.reset()
    yield run, env
    bootstrap.reset()


def _post(run, n, prefix="e"):
    from capi_relay.app.ingest import RequestContext

    purchase, page_view = load_event("ga4_purchase_sgtm.json"), load_event("page_view.json")
    events = [{**(purchase if i % 2 else page_view), "event_id": f"{run}-{prefix}{i}"}
              for i in range(n)]
    result = bootstrap.ingest_service().ingest(
        events, RequestContext(ip="203.0.113.9", user_agent="Mozilla/5.0 (pull test)"))
    assert not result.rejected and result.accepted == n
    return sorted(e["event_id"] for e in events)


def _sent(stack, run):
    return sorted(e["event_id"] for e in stack.standin.accepted if e["event_id"].startswith(run))


def _records(env):
    from google.cloud import firestore

    db = firestore.Client(project=env["GOOGLE_CLOUD_PROJECT"])
    return [doc.to_dict() for doc in db.collection(env["IDEMPOTENCY_COLLECTION"]).stream()]


def test_a_run_sends_what_waits_in_one_request_and_one_record(stack, puller):
    run, env = puller
    ids = _post(run, 30)
    before = stack.standin.requests
    body, status, _ = web.handle_pull(_Post(), bootstrap.pull_service)
    assert status == 200, body
    assert _sent(stack, run) == ids
    assert stack.standin.requests - before == 1
    [record] = _records(env)
    assert record["state"] == "done" and len(record["keys"]) == 30 and record["failed"] == []

    # nothing waits: a run pulls nothing, sends nothing, writes nothing
    report = bootstrap.pull_service().run()
    assert report.messages == 0 and stack.standin.requests - before == 1
    assert len(_records(env)) == 1


def test_a_reposted_event_is_acknowledged_not_sent_again(stack, puller):
    run, env = puller
    _post(run, 4)
    bootstrap.pull_service().run()
    again = _post(run, 4)            # the same event ids, posted again
    fresh = _post(run, 2, prefix="f")
    report = bootstrap.pull_service().run()
    assert report.process.duplicates == 4 and report.process.sent == 2
    assert report.acked == report.messages
    assert _sent(stack, run) == sorted(again + fresh)
    assert bootstrap.pull_service().run().messages == 0   # all acknowledged
