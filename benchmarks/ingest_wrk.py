"""Ingest requests per second under wrk, against a bare functions-framework endpoint.

Both run under functions-framework's own server on loopback, one after the other, with the
same wrk settings and the same one-event JSON body (a page view, as the web tag posts it):

* **bare**: ``bare_function.py`` reads the body and parses it with ``json.loads``; 202.
* **ours**: ``functions/main.py``'s ingest with the Pub/Sub emulator: every event mapped,
  published, and the publish awaited before the 202.

After our run the events topic's subscription is drained and counted: every 202 must be a
message Pub/Sub holds. Needs wrk, gcloud and java (the emulator); without them the row is
skipped with the reason.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "dev"))

BODY = {"event_name": "page_view", "event_id": "wrk-1",
        "page_location": "https://shop.example.com/products/trail-shoe",
        "page_referrer": "https://www.google.com/", "client_id": "555.666",
        "x-fb-ck-fbp": "fb.1.1732450002000.5550001",
        "user_agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/130.0 Safari/537.36"}
#: wrk's Lua: POST the body
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = [[%s]]
"""


def missing_tools() -> str | None:
    absent = [tool for tool in ("wrk", "gcloud", "java") if not shutil.which(tool)]
    return f"needs {', '.join(absent)} (apt-get install wrk; the gcloud SDK with the " \
           f"Pub/Sub emulator)" if absent else None


def run_wrk(url: str, script: Path, *, seconds: int, connections: int,
            threads: int = 1) -> tuple[float, int, int]:
    """(requests per second, requests, answers that were not 2xx/3xx) of one wrk run."""
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                           "-s", str(script), url], capture_output=True, text=True, check=True)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    return rate, total, int(errors.group(1)) if errors else 0


def _serve(source: Path, target: str, port: int, env: dict[str, str]):
    from capi_relay_dev import localstack

    argv = [sys.executable, "-m", "functions_framework", f"--target={target}",
            f"--source={source}", "--signature-type=http", "--host=127.0.0.1", f"--port={port}"]
    proc = localstack.start(target, argv, env, None)
    try:
        localstack.wait_http(f"http://127.0.0.1:{port}/healthz", 60, proc.popen)
    except Exception:
        proc.stop()
        raise
    return proc


def _drain(subscription: str) -> int:
    from google.cloud import pubsub_v1

    subscriber = pubsub_v1.SubscriberClient()
    count, idle = 0, 0
    while idle < 3:
        response = subscriber.pull(request={"subscription": subscription,
                                            "max_messages": 1000}, timeout=10)
        got = response.received_messages
        if not got:
            idle += 1
            continue
        idle = 0
        count += sum(int(m.message.attributes.get("count", "1")) for m in got
                     if m.message.attributes.get("kind") != "healthcheck")
        subscriber.acknowledge(request={"subscription": subscription,
                                        "ack_ids": [m.ack_id for m in got]})
    return count


def measure(*, seconds: int = 10, connections: int = 16) -> dict[str, float | str]:
    """Requests/s of the bare endpoint and of ours, and whether every 202 was published."""
    from capi_relay_dev import localstack

    why = missing_tools()
    if why:
        return {"skipped": why}
    processes = []
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    try:
        pubsub_port = localstack.free_port()
        processes.append(localstack.start_emulator("pubsub", pubsub_port, None))
        os.environ["PUBSUB_EMULATOR_HOST"] = f"127.0.0.1:{pubsub_port}"
        from google.cloud import pubsub_v1

        publisher, subscriber = pubsub_v1.PublisherClient(), pubsub_v1.SubscriberClient()
        topic = publisher.topic_path(localstack.PROJECT, localstack.TOPIC)
        subscription = subscriber.subscription_path(localstack.PROJECT, "wrk-count")
        publisher.create_topic(name=topic)
        subscriber.create_subscription(name=subscription, topic=topic)
        env = {**os.environ, "GOOGLE_CLOUD_PROJECT": localstack.PROJECT,
               "PUBSUB_TOPIC": localstack.TOPIC, "META_PIXEL_ID": "1234567890",
               "PYTHONUNBUFFERED": "1",
               # as deployed (infra/functions.tf): as many threads as concurrent requests
               "THREADS": str(connections)}
        with tempfile.TemporaryDirectory() as folder:
            script = Path(folder) / "post.lua"
            script.write_text(WRK_SCRIPT % json.dumps(BODY), encoding="utf-8")
            results = {}
            for name, source, target in (
                    ("bare", Path(__file__).resolve().parent / "bare_function.py", "bare"),
                    ("ours", localstack.FUNCTIONS_DIR / "main.py", "ingest")):
                port = localstack.free_port()
                server = _serve(source, target, port, env)
                processes.append(server)
                run_wrk(f"http://127.0.0.1:{port}/", script, seconds=2,
                        connections=connections)  # warm-up: imports, clients, connections
                if name == "ours":
                    time.sleep(0.5)
                    _drain(subscription)
                rate, total, errors = run_wrk(f"http://127.0.0.1:{port}/", script,
                                              seconds=seconds, connections=connections)
                results[name] = rate
                results[f"{name}_accepted"] = total - errors
                server.stop()
                processes.remove(server)
            results["published"] = _drain(subscription)
            return results
    finally:
        for proc in reversed(processes):
            proc.stop()
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved


if __name__ == "__main__":
    print(measure())
