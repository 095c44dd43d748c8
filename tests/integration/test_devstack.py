"""`make dev`: function logs on its stdout, prefixed; nothing outlives it, even SIGKILL."""

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from capi_relay_dev.localstack import free_port

pytestmark = pytest.mark.integration


def descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rpartition(")")[2].split()[1])
            children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("stop_signal", [signal.SIGKILL, signal.SIGTERM, signal.SIGINT],
                         ids=["SIGKILL", "SIGTERM", "Ctrl-C"])
def test_make_dev_prints_prefixed_function_logs_and_dies_with_all_its_children(stop_signal):
    from emulators import require_emulators

    require_emulators()
    port = free_port()
    env = {**os.environ, "INGEST_PORT": str(port)}
    dev = subprocess.Popen([sys.executable, "-m", "capi_relay_dev.devstack"], env=env,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(iter(dev.stdout.readline, "")),
                     daemon=True).start()
    try:
        deadline = time.monotonic() + 120
        while not any("Ctrl-C stops everything" in line for line in lines):
            assert dev.poll() is None and time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        response = requests.post(f"http://127.0.0.1:{port}/", timeout=30, json={
            "event_name": "page_view", "page_location": "https://shop.example.com/",
            "client_id": "1.2", "ip_override": "198.51.100.1", "user_agent": "Mozilla/5.0"})
        assert response.status_code == 202
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ingest = [line for line in lines if line.startswith("ingest ") and "| {" in line]
            process = [line for line in lines if line.startswith("process") and "| {" in line]
            if any('"ingested"' in line for line in ingest) and process:
                break
            time.sleep(0.2)
        record = json.loads(next(line for line in ingest if '"ingested"' in line)
                            .split("| ", 1)[1])
        assert record["severity"] == "INFO" and record["accepted"] == 1
        assert process, "no processor log line on make dev's stdout"

        children = descendants(dev.pid)
        assert len(children) >= 6  # guards, gcloud + java for two emulators, two functions
        dev.send_signal(stop_signal)  # SIGKILL: no handler, none of its own cleanup runs
        dev.wait(timeout=30)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(alive(p) for p in children):
            time.sleep(0.2)
        survivors = [p for p in children if alive(p)]
        assert not survivors, f"{len(survivors)} processes outlived make dev"
        with pytest.raises(requests.ConnectionError):
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    finally:
        if dev.poll() is None:
            dev.kill()
        for pid in descendants(dev.pid) | locals().get("children", set()):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
