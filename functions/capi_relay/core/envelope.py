"""The Pub/Sub message between ingest and process: prepared (hashed) events, never raw ones."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable, Mapping

from capi_relay.core.errors import InvalidEvent
from capi_relay.core.model import CapiEvent, canonical_json
from capi_relay.core.routing import KEY_NAME, PIXEL_ID

VERSION = 1


@dataclass(frozen=True)
class QueuedEvent:
    """One event as the processor receives it, with what the relay needs besides the wire."""

    event: CapiEvent
    client_id: str | None = None
    consent: Mapping[str, Any] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    #: the name of the ingest key it came with (``name@key``), never the key; pixel routes
    #: read it (core.routing)
    source: str | None = None
    #: set on a dead-lettered copy that concerns one pixel: a replay resends it there alone
    pixel: str | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"event": self.event.to_wire()}
        if self.client_id:
            out["client_id"] = self.client_id
        if self.consent:
            out["consent"] = dict(self.consent)
        if self.dropped:
            out["dropped"] = list(self.dropped)
        if self.source:
            out["source"] = self.source
        if self.pixel:
            out["pixel"] = self.pixel
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "QueuedEvent":
        return cls(
            event=CapiEvent.from_wire(data["event"]),
            client_id=data.get("client_id"),
            consent=dict(data.get("consent") or {}),
            dropped=tuple(data.get("dropped") or ()),
            source=_source(data.get("source")),
            pixel=_pixel(data.get("pixel")),
        )


def _pixel(value: Any) -> str | None:
    return value if isinstance(value, str) and PIXEL_ID.fullmatch(value) else None


def _source(value: Any) -> str | None:
    """A key name as queued; anything else (an old or hand-made message) is no name."""
    return value if isinstance(value, str) and KEY_NAME.fullmatch(value) else None


#: canonical_json of {"v": VERSION, "events": [...]}: keys sorted, so "events" comes first
_HEAD, _TAIL = b'{"events":[', b'],"v":%d}' % VERSION


def encode(events: Iterable[QueuedEvent]) -> bytes:
    """One message holding ``events``: ``canonical_json({"v": 1, "events": [...]})``."""
    return _HEAD + b",".join(_event_bytes(e) for e in events) + _TAIL


def _event_bytes(event: QueuedEvent) -> bytes:
    return canonical_json(event.to_json()).encode()


def decode(data: bytes) -> list[QueuedEvent]:
    """The events in one message; raises InvalidEvent naming what is wrong."""
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        raise InvalidEvent(["message: not JSON"]) from None
    if not isinstance(body, dict) or body.get("v") != VERSION or not isinstance(
            body.get("events"), list):
        raise InvalidEvent(["message: not a capi-relay envelope"])
    out = []
    for index, item in enumerate(body["events"]):
        try:
            out.append(QueuedEvent.from_json(item))
        except (KeyError, TypeError, ValueError):
            raise InvalidEvent([f"events[{index}]: malformed"]) from None
    return out


def messages(events: Iterable[QueuedEvent], *, max_events: int = 1000,
             max_bytes: int = 9_000_000) -> list[tuple[bytes, int]]:
    """The events as Pub/Sub messages (bytes, event count), each under Pub/Sub's 10 MB limit
    and Meta's 1000-event batch. Each event is serialized once; its size in bytes is measured
    on that encoding, which is the one sent."""
    out: list[tuple[bytes, int]] = []
    parts: list[bytes] = []
    size = len(_HEAD) + len(_TAIL)
    for event in events:
        part = _event_bytes(event)
        if parts and (len(parts) >= max_events or size + len(part) + 1 > max_bytes):
            out.append((_HEAD + b",".join(parts) + _TAIL, len(parts)))
            parts, size = [], len(_HEAD) + len(_TAIL)
        parts.append(part)
        size += len(part) + (1 if len(parts) > 1 else 0)
    if parts:
        out.append((_HEAD + b",".join(parts) + _TAIL, len(parts)))
    return out
