"""Ingest requests per second under wrk, against a bare functions-framework endpoint.

Both run under functions-framework's own server on loopback, one after the other, with the
same wrk settings and the same one-event JSON body (a page view, as the web tag posts it):

* **bare**: ``bare_function.py`` reads the body and parses it with ``json.loads``; 202.
* **ours**: ``functions/main.py``'s ingest with the Pub/Sub emulator: every event mapped,
  published, and the publish awaited before the 202.

After our run the events topic's subscription is drained and counted: every 202 must be a
message Pub/Sub holds. Needs wrk, gcloud and java (the emulator); without them the row is
skipped with the reason.

Where the CPU goes is measured too: the CPU seconds of the server (every process and thread
it started), of the emulator and of wrk during each run, and what the rest of the machine used
meanwhile. With ``pin`` the server under test runs alone on one core, as on a 1-vCPU
instance, and wrk and the emulator on the other, the same for both endpoints: the emulator,
which a deployed ingest does not run beside it, then takes no CPU from the server, and the
req/s ratio compares what one core serves. The server's CPU seconds per request compare the
same thing without depending on wrk or on other load on the machine.
"""

from __future__ import annotations

import json
import os
import re
import resource
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


_TICK = os.sysconf("SC_CLK_TCK")


def _tree(pid: int) -> set[int]:
    """``pid`` and every process descended from it (gcloud starts the emulator's java in a
    process group of its own, so the group is not enough)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, ()))
    return found


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by ``pid`` and its descendants, all threads."""
    total = 0
    for member in _tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15)
    return total / _TICK


def run_wrk(url: str, script: Path, *, seconds: int, connections: int,
            threads: int = 1) -> tuple[float, int, int, float]:
    """(requests per second, requests, answers that were not 2xx/3xx, wrk's own CPU seconds)
    of one wrk run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s",
                           "-s", str(script), url], capture_output=True, text=True, check=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))
    total = int(re.search(r"(\d+) requests in", done.stdout).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", done.stdout)
    return rate, total, int(errors.group(1)) if errors else 0, cpu


def _serve(source: Path, target: str, port: int, env: dict[str, str], cpu: int | None = None):
    from capi_relay_dev import localstack

    pinned = ["taskset", "-c", str(cpu)] if cpu is not None else []
    argv = [*pinned, sys.executable, "-m", "functions_framework", f"--target={target}",
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


def _busy_seconds() -> float:
    """CPU seconds the whole machine has spent not idle, all cores (/proc/stat)."""
    ticks = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(ticks) - ticks[3] - ticks[4]) / _TICK  # less idle and iowait


#: wrk's connections (and THREADS): the concurrency an ingest instance of 1 vCPU serves
#: (infra's default before issue 13; the default is now a sixth of a vCPU at concurrency 1,
#: where an instance serves one request at a time). With 16, our server sat idle ~12% of the
#: run waiting for the emulator's answers while the bare one never waits: that measured wrk's
#: concurrency against a round trip, not what an instance serves.
CONNECTIONS = 80


def measure(*, seconds: int = 10, connections: int = CONNECTIONS,
            pin: bool = False) -> dict[str, float | str]:
    """Requests/s of the bare endpoint and of ours, the CPU seconds each process spent, and
    whether every 202 was published.

    ``pin``: the server under test runs on one core alone, wrk and the emulator on another."""
    from capi_relay_dev import localstack

    why = missing_tools()
    if why:
        return {"skipped": why}
    if pin and len(os.sched_getaffinity(0)) < 2:
        return {"skipped": "pinning needs two CPUs"}
    processes = []
    saved = os.environ.get("PUBSUB_EMULATOR_HOST")
    affinity = os.sched_getaffinity(0)
    if pin:  # inherited by the emulator and wrk; the server is moved to CPU 0 by taskset
        os.sched_setaffinity(0, {sorted(affinity)[1]})
    try:
        pubsub_port = localstack.free_port()
        emulator = localstack.start_emulator("pubsub", pubsub_port, None)
        processes.append(emulator)
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
            results: dict[str, float | str] = {}
            for name, source, target in (
                    ("bare", Path(__file__).resolve().parent / "bare_function.py", "bare"),
                    ("ours", localstack.FUNCTIONS_DIR / "main.py", "ingest")):
                port = localstack.free_port()
                server = _serve(source, target, port, env,
                                cpu=sorted(affinity)[0] if pin else None)
                processes.append(server)
                run_wrk(f"http://127.0.0.1:{port}/", script, seconds=2,
                        connections=connections)  # warm-up: imports, clients, connections
                if name == "ours":
                    time.sleep(0.5)
                    _drain(subscription)
                cpu = (cpu_seconds(server.popen.pid), cpu_seconds(emulator.popen.pid),
                       _busy_seconds())
                rate, total, errors, wrk_cpu = run_wrk(
                    f"http://127.0.0.1:{port}/", script, seconds=seconds,
                    connections=connections)
                server_cpu = cpu_seconds(server.popen.pid) - cpu[0]
                emulator_cpu = cpu_seconds(emulator.popen.pid) - cpu[1]
                busy = _busy_seconds() - cpu[2]
                results[name] = rate
                results[f"{name}_accepted"] = total - errors
                results[f"{name}_cpu_server"] = server_cpu
                results[f"{name}_cpu_emulator"] = emulator_cpu
                results[f"{name}_cpu_wrk"] = wrk_cpu
                results[f"{name}_cpu_other"] = busy - server_cpu - emulator_cpu - wrk_cpu
                results[f"{name}_server_ms_per_request"] = 1000 * server_cpu / max(total, 1)
                results[f"{name}_server_busy"] = server_cpu / seconds  # 1.0: one core, all run
                results["pinned"] = pin
                server.stop()
                processes.remove(server)
            results["published"] = _drain(subscription)
            return results
    finally:
        for proc in reversed(processes):
            proc.stop()
        os.sched_setaffinity(0, affinity)
        if saved is None:
            os.environ.pop("PUBSUB_EMULATOR_HOST", None)
        else:
            os.environ["PUBSUB_EMULATOR_HOST"] = saved


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=CONNECTIONS)
    parser.add_argument("--pin", action="store_true",
                        help="server on CPU 0 alone, wrk and the emulator on CPU 1")
    args = parser.parse_args()
    found = measure(seconds=args.seconds, connections=args.connections, pin=args.pin)
    for key, value in found.items():
        print(f"{key:32} {value:,.3f}" if isinstance(value, float) else f"{key:32} {value}")
