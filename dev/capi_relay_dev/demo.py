"""`make demo`: the whole relay locally, the sample events through it, a summary, teardown."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from capi_relay_dev.localstack import LocalStack

EVENTS_DIR = Path(__file__).resolve().parents[2] / "tests" / "events"
SAMPLES = ["ga4_purchase_sgtm.json", "datalayer_purchase_web.json", "lead.json",
           "page_view.json", "batch_50.json"]
PULL_PERIOD = 2.0
HASHED = {"em", "ph", "fn", "ln", "ge", "db", "ct", "st", "zp", "country", "external_id"}


def post(url: str, body: bytes) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": "capi-relay-demo/1.0"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def main() -> int:
    real = bool(os.environ.get("META_TEST_EVENT_CODE") and os.environ.get("META_ACCESS_TOKEN")
                and os.environ.get("META_PIXEL_ID"))
    options = {}
    if real:
        options = {"graph_url": os.environ.get("META_GRAPH_URL", "https://graph.facebook.com"),
                   "pixel_id": os.environ["META_PIXEL_ID"],
                   "access_token": os.environ["META_ACCESS_TOKEN"]}
    log_dir = Path(tempfile.mkdtemp(prefix="capi-relay-demo-"))
    print(f"Starting the local stack (emulators, ingest, the scheduled puller as deployed by "
          f"default, {'Meta for real' if real else 'Graph stand-in'}); logs in {log_dir}")
    started = time.monotonic()
    # delivery as deployed by default: a puller run sends what waits (every minute in
    # production, every PULL_PERIOD seconds here)
    with LocalStack(log_dir=log_dir, delivery="scheduled_pull", pull_period=PULL_PERIOD,
                    **options) as stack:
        print(f"Ingest listening on {stack.ingest_url} "
              f"(stack up in {time.monotonic() - started:.1f}s)")
        expected: list[str] = []
        for name in SAMPLES:
            status, body = post(stack.ingest_url, (EVENTS_DIR / name).read_bytes())
            print(f"  POST {name:32s} -> {status} accepted={body.get('accepted')} "
                  f"rejected={len(body.get('rejected', []))}")
            if status != 202:
                print(f"demo: {name} was not accepted: {body}", file=sys.stderr)
                return 1
            expected.extend(body.get("event_ids", []))
        if real:
            print("Sent to Meta with your test event code: check Events Manager > Test events.")
            time.sleep(10)
            return 0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            received = {e["event_id"]: e for e in stack.standin.accepted}
            if all(event_id in received for event_id in expected):
                break
            time.sleep(0.3)
        else:
            missing = [e for e in expected if e not in received]
            print(f"demo: {len(missing)} event(s) never reached the Graph stand-in",
                  file=sys.stderr)
            return 1
        print(f"\nThe Graph stand-in received {len(expected)} events in "
              f"{stack.standin.requests} request(s):")
        print(f"  {'event_name':22s} {'event_id':22s} match keys (* = SHA-256 hashed)")
        for event_id in expected[:6]:
            event = received[event_id]
            keys = [k + ("*" if k in HASHED else "") for k in event["user_data"]]
            print(f"  {event['event_name']:22s} {event_id[:22]:22s} {' '.join(keys)}")
        rest = expected[6:]
        if rest:
            names = sorted({received[e]["event_name"] for e in rest})
            print(f"  ... and {len(rest)} more ({', '.join(names)})")
        print("\ndemo: OK, every event delivered once; stack stopped.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
