"""Random, hostile events never make mapping raise: bad input is a reason, never a 500."""

import json
import random

from capi_relay.core import aliases
from capi_relay.core.mapping import to_capi_event

PATHS = sorted({p for table in (aliases.USER_FIELDS, aliases.EVENT_FIELDS)
                for paths in table.values() for p in paths})
NOW = 1_732_450_000.0
VALID = {"event_name": "purchase", "page_location": "https://x.example/", "email": "a@b.co",
         "user_agent": "UA", "value": 1, "currency": "USD"}
PROTECTED = {"event_name", "event", "page_location", "user_agent", "email", "value",
             "currency", "event_time", "action_source"}


def random_value(rng: random.Random, depth: int = 0):
    kinds = ["str", "int", "float", "bool", "none", "list", "dict", "huge", "unicode"]
    kind = rng.choice(kinds if depth < 3 else kinds[:5])
    if kind == "str":
        return rng.choice(["", " ", "x", "a@b.co", "+1 650 555 1234", "G100", "fb.1.2.3",
                           "2024-02-30", "NaN", "1e400", "::1", "[", "{\"a\":1}", "US", "-1"])
    if kind == "int":
        return rng.choice([0, -1, 1, 2**63, 1732450000, 1732450000123, 10**20])
    if kind == "float":
        return rng.choice([0.5, -3.2, float("inf"), float("nan"), 1e308])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "none":
        return None
    if kind == "huge":
        return "x" * 5000
    if kind == "unicode":
        return rng.choice(["Ünïcødé", "東京", "\u0000", "\ud7ff", "e\u0301"])
    if kind == "list":
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["a", "id", "item_id", "price", "quantity", "city", "country"]):
            random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}


def set_path(event: dict, path: str, value) -> None:
    parts = [p.removesuffix("[]") for p in path.split(".")]
    node = event
    for part in parts[:-1]:
        child = node.get(part)
        if not isinstance(child, dict):
            child = node[part] = {}
        node = child
    node[parts[-1]] = value


def test_thousands_of_random_events_never_raise():
    rng = random.Random(20261124)
    outcomes = {"ok": 0, "rejected": 0}
    for _ in range(3000):
        event: dict = dict(VALID) if rng.random() < 0.6 else {}
        for path in rng.sample(PATHS, rng.randint(1, 12)):
            if path.split(".")[0] in PROTECTED and event is not None and rng.random() < 0.7:
                continue
            set_path(event, path, random_value(rng))
        result = to_capi_event(event, now=NOW, new_id=lambda: "id")
        outcomes["ok" if result.ok else "rejected"] += 1
        if result.ok:
            json.dumps(result.event.to_wire(), allow_nan=False)  # always valid JSON for Meta
        else:
            assert result.reasons and all(isinstance(r, str) for r in result.reasons)
    assert outcomes["ok"] > 0 and outcomes["rejected"] > 0
