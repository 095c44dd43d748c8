"""The benchmark code runs, and it compares like with like; no timing is asserted here."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

pytest.importorskip("facebook_business")

import bench  # noqa: E402  (benchmarks/ is not a package)
import workload as wl  # noqa: E402

N = 50


@pytest.fixture(scope="module")
def work() -> wl.Workload:
    return wl.make_workload(N)


def test_workload_is_mixed_unique_and_maps(work):
    assert len(work) == N == len(work.sdk_specs)
    names = {wl.ours_event(raw)["event_name"] for raw in work.raws}
    assert {"Purchase", "Lead", "PageView", "ViewContent"} <= names
    ids = [raw.get("event_id") for raw in work.raws if raw.get("event_id")]
    assert len(ids) == len(set(ids))
    emails = [spec["user"]["emails"][0] for spec in work.sdk_specs if "emails" in spec["user"]]
    phones = [spec["user"]["phones"][0] for spec in work.sdk_specs if "phones" in spec["user"]]
    assert len(emails) == len(set(emails)) == N * 3 // 5
    assert len(phones) == len(set(phones)) == N * 3 // 5


def test_ours_and_sdk_hash_the_same_em_and_ph(work):
    compared = 0
    for raw, spec in zip(work.raws, work.sdk_specs, strict=True):
        ours, sdk = wl.ours_event(raw), wl.sdk_event(spec)
        assert wl.contact_hashes(ours) == wl.contact_hashes(sdk), ours["event_name"]
        assert set(ours["user_data"]) == set(sdk["user_data"]), ours["event_name"]
        assert ours["event_name"] == sdk["event_name"]
        compared += bool(wl.contact_hashes(ours))
    assert compared == N * 3 // 5


def test_floor_hashes_em_and_ph_as_we_do(work):
    # The floor skips validation, but on this workload it must still send what we send, or it
    # would not bound the same work.
    for raw, spec in zip(work.raws, work.sdk_specs, strict=True):
        ours, floor = wl.ours_event(raw), wl.floor_event(spec)
        assert wl.contact_hashes(ours) == wl.contact_hashes(floor), ours["event_name"]
        assert floor["event_name"] == ours["event_name"]
        assert floor["custom_data"].get("value") == ours.get("custom_data", {}).get("value")


def test_throughput_and_memory_rows(work):
    row, floor = bench.bench_throughput(work, repeats=1, warmup=5)
    assert row.ours > 0 and row.baseline > 0 and row.ratio is not None
    assert row.status == "INFO"  # in-process is shown; the gate is whole process
    assert floor.baseline == row.baseline and floor.ours > 0 and floor.status == "INFO"
    memory = bench.bench_memory(work, batch=N)
    assert memory.ours > 0 and memory.baseline > 0 and memory.status == "INFO"


def test_whole_process_row_races_two_fresh_pythons(work):
    row = bench.bench_whole_process(work, runs=1)
    assert row.ours > 0 and row.baseline > 0
    assert row.status in ("PASS", "FAIL") and row.target == bench.TARGET_RATIO


def test_process_rows_send_every_event(work):
    rows = bench.bench_process(work, repeats=1, n=N)
    plain = rows[0]
    assert plain.ours > 0 and f"sent {N}/{N}" in plain.note
    assert [r.name for r in rows[1:]] == ["process() with enrichment", "match keys per event"]
    assert rows[-1].ours >= 3  # ip, user agent and fbp at least, before enrichment


def test_import_measurement_runs_fresh_processes(monkeypatch):
    calls = []
    monkeypatch.setattr(bench, "_time_process",
                        lambda module: calls.append(module) or (0.05, 0.01))
    rows = bench.bench_imports(runs=1)
    assert {None, "capi_relay.core.mapping", "main", bench.SDK_IMPORT} == set(calls)
    assert [r.status for r in rows] == ["INFO"] * 4
    wall, inside = bench._time_process("json")  # one real subprocess
    assert wall > 0 and inside >= 0


def test_table_and_gate():
    rows = [bench.Row("fast", 10.0, 1.0, "ev/s", "SDK", target=5.0),
            bench.Row("slow", 1.0, 1.0, "ev/s", "SDK", target=5.0),
            bench.Row("skipped", None, 1.0, "ev/s", note="skipped: no enricher")]
    assert [r.status for r in rows] == ["PASS", "FAIL", "SKIP"]
    table = bench.format_table(rows)
    assert len(table.splitlines()) == 2 + len(rows)
    assert "10.00x" in table and "# skipped: no enricher" in table


def test_main_prints_the_table_and_gates(monkeypatch, capsys):
    monkeypatch.setattr(bench, "_time_process", lambda module: (0.05, 0.01))
    code = bench.main(["--events", str(N), "--repeats", "1", "--import-runs", "1",
                       "--wrk-seconds", "0", "--sparse-events", "20", "--steady-events", "20"])
    out = capsys.readouterr().out
    assert code in (0, 1)
    assert ("FAIL: " in out) == (code == 1)
    lines = out.splitlines()
    first = lines.index(next(line for line in lines if line.startswith("cost sparse: ")))
    assert re.fullmatch(r"cost sparse: \$\d+\.\d\d per million events", lines[first])
    assert re.fullmatch(r"cost steady: \$\d+\.\d\d per million events", lines[first + 1])
    for name in ("map+normalize+hash, whole process", "floor: hash + build only",
                 "import capi_relay.core.mapping", "Graph requests per 1,000 events", "sGTM",
                 "peak memory",
                 "process() 50-event message", "match keys per event"):
        assert name in out
