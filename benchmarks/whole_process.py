"""One side of the whole-process race: a fresh Python builds every event of a JSON file.

    python benchmarks/whole_process.py ours|sdk EVENTS.json

Timed from outside (bench.py), so the figure holds the interpreter's start, the imports (the
SDK's, or ours plus the phonenumbers and pycountry loads they do on first use), reading the
file and building each event: what a fresh instance pays to turn N events into wire dicts.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main(side: str, path: str) -> int:
    items = json.loads(Path(path).read_text(encoding="utf-8"))
    if side == "ours":
        sys.path.insert(0, str(ROOT / "functions"))
        from capi_relay.core.mapping import to_capi_event

        ids = iter(range(1 << 62))
        built = 0
        for raw in items:
            mapped = to_capi_event(raw, now=1_732_450_000.0, new_id=lambda: f"e{next(ids)}")
            built += mapped.event is not None and bool(mapped.event.to_wire())
    else:
        sys.path.insert(0, str(ROOT / "benchmarks"))
        from facebook_business.adobjects.serverside.action_source import ActionSource
        from sdk_side import sdk_event

        built = 0
        for spec in items:
            spec["action_source"] = ActionSource(spec["action_source"])
            built += bool(sdk_event(spec))
    print(built)
    return 0 if built == len(items) else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:3]))
