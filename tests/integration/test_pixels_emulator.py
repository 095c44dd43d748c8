"""Several pixels end to end (issue 14): ingest -> Pub/Sub push -> processor -> the Graph stand-in
with three pixels, on the real emulators. One pixel's rejected token holds its copies alone; once
it is fixed, Pub/Sub's redelivery sends those and nothing twice."""

import hashlib
import json
import uuid

import pytest
import requests

from capi_relay_dev import localstack
from samples import load_event
from waiting import wait_for

pytestmark = pytest.mark.integration

MAIN = "1234567890"      # META_PIXEL_ID: every event
PURCHASES = "2222222222"  # its own token and test event code: purchases only
SGTM_ONLY = "3333333333"  # what the key named shop-sgtm sends
SGTM_KEY = "sgtm-key-" + "0123456789abcdef"
BACKEND_KEY = "backend-key-" + "fedcba9876543210"
UA = {"User-Agent": "Mozilla/5.0 (integration)"}


@pytest.fixture(scope="module")
def pixels_stack(tmp_path_factory):
    from emulators import require_emulators

    require_emulators()
    extra = [{"id": PURCHASES, "token": "purchases-token", "test_event_code": "TEST4711",
              "route": {"event_names": ["Purchase"]}},
             {"id": SGTM_ONLY, "token": "sgtm-pixel-token",
              "route": {"source_keys": ["shop-sgtm"]}}]
    with localstack.LocalStack(log_dir=tmp_path_factory.mktemp("pixels-logs"),
                               extra_pixels=extra,
                               extra_env={"INGEST_KEYS": f"shop-sgtm@{SGTM_KEY},{BACKEND_KEY}",
                                          "BATCH_WINDOW_MS": "0"}) as stack:
        yield stack


def post(stack, events, key):
    response = requests.post(stack.ingest_url, json={"events": events}, timeout=30,
                             headers={**UA, "Authorization": f"Bearer {key}"})
    assert response.status_code == 202, response.text
    assert response.json()["accepted"] == len(events)


def run_events(run, n=2):
    purchase, page_view = load_event("ga4_purchase_sgtm.json"), load_event("page_view.json")
    out = []
    for i in range(n):
        out.append({**purchase, "event_id": f"{run}-purchase-{i}"})
        out.append({**page_view, "event_id": f"{run}-view-{i}"})
    return out


def process_logs(stack):
    lines = stack.processor.log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [json.loads(line) for line in lines if line.startswith("{")]


def ids_at(stack, pixel, run):
    return sorted(e["event_id"] for e in stack.standin.accepted_by_pixel().get(pixel, [])
                  if e["event_id"].startswith(run))


def test_each_event_reaches_the_pixels_its_routes_name(pixels_stack):
    stack, run = pixels_stack, uuid.uuid4().hex[:8]
    post(stack, run_events(run, 1), SGTM_KEY)
    post(stack, run_events(run + "b", 1), BACKEND_KEY)
    everything = sorted([f"{run}-purchase-0", f"{run}-view-0", f"{run}b-purchase-0",
                         f"{run}b-view-0"])
    wait_for(lambda: ids_at(stack, MAIN, run) == everything, what="the main pixel's events")
    wait_for(lambda: ids_at(stack, PURCHASES, run) == [f"{run}-purchase-0",
                                                       f"{run}b-purchase-0"],
             what="the purchases pixel's events")
    assert ids_at(stack, SGTM_ONLY, run) == [f"{run}-purchase-0", f"{run}-view-0"]
    by_pixel = stack.standin.accepted_by_pixel()
    purchases = [e for e in by_pixel[PURCHASES] if e["event_id"].startswith(run)]
    assert {e.get("test_event_code") for e in purchases} == {"TEST4711"}
    assert all("test_event_code" not in e for e in by_pixel[MAIN])
    # the same hashed event goes to each pixel
    email = hashlib.sha256(b"jane.doe@example.com").hexdigest()
    assert all(e["user_data"]["em"] == [email] for e in purchases)


def test_a_pixel_whose_token_is_rejected_waits_while_the_others_deliver(pixels_stack):
    stack, run = pixels_stack, uuid.uuid4().hex[:8]
    assert not [r for r in process_logs(stack) if r.get("cause") == "token"]
    stack.standin.set_pixel_token(PURCHASES, "a-token-the-relay-does-not-have")
    try:
        events = run_events(run, 3)
        post(stack, events, BACKEND_KEY)
        everything = sorted(e["event_id"] for e in events)
        wait_for(lambda: ids_at(stack, MAIN, run) == everything, what="the main pixel")
        # the purchases pixel's edge refused the token (code 190): its copies are held
        held = wait_for(lambda: [r for r in process_logs(stack)
                                 if r.get("cause") == "token"], timeout=30,
                        what="the processor holding the purchases pixel's copies")
        assert {r["pixel_id"] for r in held} == {PURCHASES}
        assert ids_at(stack, PURCHASES, run) == []
    finally:
        stack.standin.set_pixel_token(PURCHASES, "purchases-token")  # the operator fixes it
    purchases = sorted(e["event_id"] for e in events if "purchase" in e["event_id"])
    wait_for(lambda: ids_at(stack, PURCHASES, run) == purchases, timeout=90,
             what="Pub/Sub's redelivery to the purchases pixel")
    # nothing was sent twice to any pixel: the main pixel's copies were not resent
    assert ids_at(stack, MAIN, run) == everything
    assert stack.standin.duplicates == 0
