"""The sample events under tests/events/ and the clock they were written for."""

import json
from pathlib import Path

EVENTS = Path(__file__).resolve().parent / "events"
NOW = 1_732_450_100.0


def load_event(name: str):
    return json.loads((EVENTS / name).read_text())
