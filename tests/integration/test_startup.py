"""Ready means ready: an event posted the instant /healthz first answers 200 is delivered.

A new user starts the stack, polls /healthz until it answers 200 and posts at once. Pub/Sub drops
what is published to a topic with no subscription, so /healthz must not answer 200 before the
push subscription exists. This test starts the stack in a thread and races it exactly like that,
with the Graph stand-in's faults on: 12 batches of 25 events, each followed by a re-post of its
first event (issue 12's reproduction).
"""

import threading
import time
import uuid

import pytest
import requests

from capi_relay_dev import localstack

pytestmark = pytest.mark.integration
UA = {"User-Agent": "Mozilla/5.0 (startup race)"}


def make_event(run: str, i: int) -> dict:
    return {"event_name": "purchase", "event_id": f"{run}-{i:04d}",
            "event_time": int(time.time()), "page_location": f"https://shop.example.com/p/{i}",
            "ip_override": f"198.51.100.{i % 250 + 1}", "client_id": f"{i}.1",
            "email": f"buyer{i}@example.com", "value": 10 + i, "currency": "EUR"}


def test_events_posted_when_healthz_first_answers_200_all_arrive(tmp_path, capsys):
    from emulators import require_emulators

    require_emulators()
    port = localstack.free_port()
    url = f"http://127.0.0.1:{port}"
    stack = localstack.LocalStack(
        ingest_port=port, log_dir=tmp_path,
        standin_options={"error_rate_5xx": 0.1, "throttle_rate": 0.05, "seed": 12})
    started: list[BaseException | None] = []

    def run_stack():
        try:
            stack.start()
            started.append(None)
        except BaseException as exc:  # reported by the main thread
            started.append(exc)

    starter = threading.Thread(target=run_stack, daemon=True)
    starter.start()
    try:
        probes, first_ok = 0, None
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and first_ok is None:
            assert not (started and started[0] is not None), started
            probes += 1
            try:
                if requests.get(url + "/healthz", timeout=5).status_code == 200:
                    first_ok = time.monotonic()
            except requests.ConnectionError:
                time.sleep(0.02)
        assert first_ok is not None, "/healthz never answered 200"

        run = uuid.uuid4().hex[:6]
        wanted = set()
        for b in range(12):  # posted at once: no sleep between the first 200 and this
            batch = [make_event(run, b * 25 + j) for j in range(25)]
            wanted |= {e["event_id"] for e in batch}
            for body in ({"events": batch}, batch[0]):
                response = requests.post(url, json=body, headers=UA, timeout=30)
                assert response.status_code == 202, response.text
        posted_after = time.monotonic() - first_ok

        starter.join(timeout=180)
        assert started == [None]
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if wanted <= {e["event_id"] for e in stack.standin.accepted}:
                break
            time.sleep(0.5)
        missing = wanted - {e["event_id"] for e in stack.standin.accepted}
        assert not missing, f"{len(missing)} of {len(wanted)} events accepted at start-up lost"
        with capsys.disabled():
            print(f"\nstart-up race: {probes} /healthz probes, posted 12x26 requests within "
                  f"{posted_after:.2f}s of the first 200; delivered {len(wanted)}/{len(wanted)}")
    finally:
        starter.join(timeout=180)
        stack.stop()
