"""`make dev` with DELIVERY=scheduled_pull: the processor runs the `pull` entry point under
functions-framework, started by a local stand-in for Cloud Scheduler; events posted over HTTP
reach the Graph stand-in batched, once each, also across a processor crash."""

import uuid

import pytest
import requests

from capi_relay_dev import localstack
from samples import load_event
from waiting import wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def pull_stack(tmp_path_factory):
    from emulators import require_emulators

    require_emulators()
    with localstack.LocalStack(log_dir=tmp_path_factory.mktemp("pull-logs"),
                               delivery="scheduled_pull", pull_period=1.0) as stack:
        yield stack


def post(stack, run, n, start=0):
    page_view = load_event("page_view.json")
    events = [{**page_view, "event_id": f"{run}-{i}"} for i in range(start, start + n)]
    response = requests.post(stack.ingest_url, json={"events": events}, timeout=30,
                             headers={"User-Agent": "Mozilla/5.0 (pull stack)"})
    assert response.status_code == 202, response.text
    return [e["event_id"] for e in events]


def sent(stack, run):
    return sorted(e["event_id"] for e in stack.standin.accepted if e["event_id"].startswith(run))


def test_posted_events_are_sent_by_the_scheduled_puller_once_each(pull_stack):
    stack, run = pull_stack, uuid.uuid4().hex[:8]
    ids = []
    for i in range(5):   # five requests between two runs: their events share a Graph request
        ids += post(stack, run, 20, start=20 * i)
    wait_for(lambda: sent(stack, run) == sorted(ids), what="all 100 events at the stand-in")
    post(stack, run, 20)  # the first 20 again: acknowledged, not resent
    assert stack.run_puller() == 200
    assert sent(stack, run) == sorted(ids)


def test_a_killed_processor_loses_nothing_and_sends_nothing_twice(pull_stack):
    stack, run = pull_stack, uuid.uuid4().hex[:8]
    stack.processor.kill()
    ids = post(stack, run, 30)       # published while no processor runs
    stack.restart_processor()
    wait_for(lambda: sent(stack, run) == sorted(ids), what="the 30 events after the restart")
    assert stack.run_puller() == 200
    assert sent(stack, run) == sorted(ids)
