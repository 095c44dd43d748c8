"""Structured logs: one JSON object per line on stdout, with Cloud Logging's keys.

Only allow-listed keys are written; anything else is dropped before it can leak personal
data or a token. Values of allowed keys are counts, ids, names and codes, never user data.
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any, TextIO

SAFE_KEYS = frozenset({
    "component", "event_name", "event_id", "event_ids", "events", "events_received",
    "accepted", "rejected", "dropped_fields", "fields", "reason", "reasons", "code", "subcode",
    "verdict", "fbtrace_id", "http_status", "attempt", "attempts", "batch_size", "sent",
    "dead_lettered", "skipped", "released", "retry_after", "duration_ms", "message_id",
    "pixel_id", "topic", "status", "cause", "consent", "enriched_keys", "count", "port", "url",
    "error_type", "delivery_attempt", "match_keys", "policy", "unrouted",
    # enrichment: names of keys and kinds of documents, never a value or a document id
    "matched_by", "remembered",
})

_stream: TextIO | None = None


def set_stream(stream: TextIO | None) -> None:
    """Send logs somewhere else (tests); None restores stdout."""
    global _stream
    _stream = stream


def log(severity: str, message: str, *, trace: str | None = None, **fields: Any) -> None:
    record: dict[str, Any] = {"severity": severity, "message": message, "time": time.time()}
    for key, value in fields.items():
        if key in SAFE_KEYS and value is not None:
            record[key] = value
    if trace:
        record["logging.googleapis.com/trace"] = trace
    stream = _stream or sys.stdout
    stream.write(json.dumps(record, default=str, separators=(",", ":")) + "\n")
    stream.flush()


def info(message: str, **fields: Any) -> None:
    log("INFO", message, **fields)


def warning(message: str, **fields: Any) -> None:
    log("WARNING", message, **fields)


def error(message: str, **fields: Any) -> None:
    log("ERROR", message, **fields)
