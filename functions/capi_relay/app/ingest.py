"""The ingest service: the pipeline's mapping step for each event, the good ones published."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable

from capi_relay import log
from capi_relay.app.ports import Clock, Publisher
from capi_relay.core import pipeline
from capi_relay.core.envelope import QueuedEvent, messages
from capi_relay.core.mapping import (  # RequestContext: re-exported for the transport
    DEFAULT_CONFIG,
    MappingConfig,
    RequestContext,
)
from capi_relay.core.meta_rules import MAX_EVENTS_PER_REQUEST


@dataclass(frozen=True)
class IngestResult:
    accepted: int
    rejected: list[dict[str, Any]]
    dropped: list[dict[str, Any]]
    event_ids: list[str]


class IngestService:
    def __init__(self, publisher: Publisher, clock: Clock, new_id: Callable[[], str],
                 mapping: MappingConfig = DEFAULT_CONFIG):
        self.publisher = publisher
        self.clock = clock
        self.new_id = new_id
        self.rules = pipeline.Policy(mapping=mapping)  # ingest runs step 1 only: mapping

    def ingest(self, events: list[Any], request: RequestContext, *,
               allowed_events: frozenset[str] | None = None,
               source: str | None = None) -> IngestResult:
        """Maps every event, publishes the good ones, and says what happened to each.

        ``allowed_events``: the Meta event names this source may send (None: any);
        ``source``: the name of the key it sent (never the key), queued with each event for
        the processor's pixel routes."""
        now = self.clock.now()
        good: list[QueuedEvent] = []
        rejected: list[dict[str, Any]] = []
        dropped: list[dict[str, Any]] = []
        for index, raw in enumerate(events):
            try:
                mapped = pipeline.admit(raw, now=now, new_id=self.new_id, policy=self.rules,
                                        request=request)
            except Exception as exc:  # a mapping bug costs this event only, never its batch
                log.error("event could not be mapped", component="ingest",
                          error_type=type(exc).__name__)
                rejected.append({"index": index, "errors": ["event: could not be read"]})
                continue
            if mapped.dropped:
                dropped.append({"index": index, "fields": list(mapped.dropped)})
            if mapped.event is None:
                rejected.append({"index": index, "errors": list(mapped.reasons)})
                continue
            if allowed_events is not None and mapped.event.event_name not in allowed_events:
                rejected.append({"index": index,
                                 "errors": ["event_name: not allowed for this source"]})
                continue
            queued = pipeline.queued(mapped)
            good.append(replace(queued, source=source) if source else queued)
        for data, count in messages(good, max_events=MAX_EVENTS_PER_REQUEST):
            self.publisher.publish(data, {"count": str(count), "source": "ingest"})
        log.info("ingested", component="ingest", accepted=len(good), rejected=len(rejected),
                 dropped_fields=sorted({f for d in dropped for f in d["fields"]}) or None)
        return IngestResult(len(good), rejected, dropped, [q.event.event_id for q in good])
