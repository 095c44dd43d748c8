"""Where map + normalize + hash spends its time: µs per event for each workload source, ours
and the SDK's, then optionally a cProfile of our side.

    .venv/bin/python benchmarks/profile_mapping.py              # per-source table
    .venv/bin/python benchmarks/profile_mapping.py --profile 40 # plus the top 40 functions

Each repeat runs a fresh slice of the workload (so no email or phone is seen twice, and the
``prepare`` memo only serves what real traffic would repeat: countries, cities, user agents,
a browser's IP and _fbp over its few events);
the best repeat per source is shown. Not a gate: bench.py is.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import workload as wl  # noqa: E402  (the path above)


def per_source(events: int, repeats: int) -> None:
    work = wl.make_workload(events * (repeats + 1))
    warm = slice(events * repeats, events * repeats + min(events, 1000))
    for raw, spec in zip(work.raws[warm], work.sdk_specs[warm], strict=True):
        wl.ours_event(raw)
        wl.sdk_event(spec)
    ours = {source: float("inf") for source in wl.SOURCES}
    sdk = dict(ours)
    for rep in range(repeats):
        chunk = slice(rep * events, (rep + 1) * events)
        raws, specs = work.raws[chunk], work.sdk_specs[chunk]
        for k, source in enumerate(wl.SOURCES):
            for side, items, run in (("ours", raws[k::5], wl.ours_event),
                                     ("sdk", specs[k::5], wl.sdk_event)):
                start = time.perf_counter()
                for item in items:
                    run(item)
                best = ours if side == "ours" else sdk
                best[source] = min(best[source], (time.perf_counter() - start) / len(items))
    print(f"{'source':20s} {'ours µs':>9s} {'SDK µs':>9s}")
    for source in wl.SOURCES:
        print(f"{source:20s} {ours[source] * 1e6:9.1f} {sdk[source] * 1e6:9.1f}")
    mean_ours = sum(ours.values()) / len(ours)
    mean_sdk = sum(sdk.values()) / len(sdk)
    print(f"{'mean':20s} {mean_ours * 1e6:9.1f} {mean_sdk * 1e6:9.1f}   "
          f"ours {1 / mean_ours:,.0f} ev/s, SDK {1 / mean_sdk:,.0f} ev/s, "
          f"ratio {mean_sdk / mean_ours:.2f}x")


def profile(events: int, top: int) -> None:
    work = wl.make_workload(events + 500)
    for raw in work.raws[events:]:
        wl.ours_event(raw)
    profiler = cProfile.Profile()
    profiler.enable()
    for raw in work.raws[:events]:
        wl.ours_event(raw)
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--profile", type=int, default=0, metavar="TOP",
                        help="also cProfile our side and print the TOP functions")
    args = parser.parse_args()
    per_source(args.events, args.repeats)
    if args.profile:
        profile(args.events, args.profile)


if __name__ == "__main__":
    main()
