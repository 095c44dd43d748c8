"""The process entry point through functions-framework: Pub/Sub push in, ack or retry out."""

import base64
from pathlib import Path

import pytest
from functions_framework import create_app

from capi_relay import bootstrap
from capi_relay.core.envelope import QueuedEvent, encode
from capi_relay.core.mapping import to_capi_event
from fakes import FakeClock, FakePublisher, ScriptedGraph, make_processor
from samples import NOW, load_event

MAIN = str(Path(__file__).resolve().parents[2] / "functions" / "main.py")


def push(data: bytes, attributes=None):
    return {"message": {"data": base64.b64encode(data).decode(), "messageId": "1",
                        "attributes": attributes or {}},
            "subscription": "projects/p/subscriptions/s"}


@pytest.fixture
def wired():
    graph = ScriptedGraph()
    service = make_processor(graph, clock=FakeClock(NOW), dead_letter=FakePublisher())
    bootstrap.use(process=service)
    client = create_app(target="process", source=MAIN,
                        signature_type="cloudevent").test_client()
    return client, graph


def message():
    mapped = to_capi_event(load_event("page_view.json"), now=NOW, new_id=lambda: "x")
    return encode([QueuedEvent(mapped.event)])


def test_push_delivery_sends_and_acks(wired):
    client, graph = wired
    response = client.post("/", json=push(message()))
    assert response.status_code == 200
    assert graph.sent_ids == ["pv-4004"]


def test_transient_failure_is_a_non_2xx_so_pubsub_redelivers(wired):
    client, graph = wired
    graph.answer = lambda events, token: (500, {})
    assert client.post("/", json=push(message())).status_code >= 500
    graph.answer = lambda events, token: (200, {"events_received": len(events)})
    assert client.post("/", json=push(message())).status_code == 200
    assert graph.sent_ids[-1] == "pv-4004"


def test_healthcheck_messages_acked_without_work(wired):
    client, graph = wired
    assert client.post("/", json=push(b"{}", {"kind": "healthcheck"})).status_code == 200
    assert graph.calls == []
