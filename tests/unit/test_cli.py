"""The capi-relay command as operators run it: a real subprocess of the console script."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from samples import EVENTS, NOW

CLI = [sys.executable, "-m", "capi_relay_ops.cli"]
FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions")


def run(*args, stdin=None):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True,
                          env={"PYTHONPATH": FUNCTIONS, "PATH": "/usr/bin:/bin"}, timeout=60)


def test_preview_from_stdin_prints_data_and_reasons_on_stderr():
    body = json.dumps({"events": [json.loads((EVENTS / "lead.json").read_text()),
                                  {"event_name": "page_view"}]})
    result = run("preview", "--now", str(NOW), stdin=body)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [e["event_name"] for e in out["data"]] == ["Lead"]
    assert out["data"][0]["user_data"]["em"] == [hashlib.sha256(b"lead@example.net").hexdigest()]
    assert out["rejected"][0]["index"] == 1
    assert "event 1: event_source_url: required for website events" in result.stderr


def test_preview_from_file_is_deterministic_with_a_fixed_clock():
    path = str(EVENTS / "ga4_purchase_sgtm.json")
    first, second = run("preview", "--now", str(NOW), path), run("preview", "--now", str(NOW),
                                                                  path)
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["data"][0]["event_time"] == int(NOW)


def test_preview_unreadable_input_exits_non_zero_without_echoing_it():
    result = run("preview", stdin="{secret@example.com")
    assert result.returncode == 2 and "secret@example.com" not in result.stderr


def test_hash_prints_one_line_per_value_empty_when_dropped():
    result = run("hash", "--country", "us", "ph", "(650) 555-1234", "12", "+44 20 7946 0018")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        hashlib.sha256(b"16505551234").hexdigest(), "",
        hashlib.sha256(b"442079460018").hexdigest()]


def test_hash_never_hashes_ip_and_rejects_unknown_fields():
    assert run("hash", "client_ip_address", "203.0.113.9:80").stdout.strip() == "203.0.113.9"
    assert run("hash", "emial", "x").returncode == 2
