"""The pipeline's enrichment step over a ProfileStore: missing match keys filled from profiles.

``Enricher(queued, now)`` runs for events whose consent covers user data (``pipeline.decide``
decides when): ONE batched read (the user's profile and this browser's links, see
``profiles``), the missing match keys filled in (the event's own values win), and, for an
identified event, what it teaches written back in one batch (nothing when nothing changed).

The keys filled in are named on the event (``CapiEvent.enriched``) and counted on the sender's
"sent" line, one per Graph request, rather than logged here once per event; only a write-back
gets a line of its own.

Profiles improve matching; they never hold an event back: when Firestore cannot be read or
written, the event goes on as it is and the failure is logged (names only).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable, Sequence

from capi_relay import log
from capi_relay.app.ports import ProfileStore
from capi_relay.core import profiles
from capi_relay.core.envelope import QueuedEvent
from capi_relay.core.errors import StoreUnavailable
from capi_relay.core.model import CapiEvent


def _kinds(lookup: profiles.Lookup, writes) -> list[str]:
    """Which documents were written, by kind ("profile", "client_id", "fbp"): never an id."""
    links = {doc_id: kind for kind, doc_id in lookup.link_ids.items()}
    return sorted(links.get(w.doc_id, "profile") for w in writes)


class Enricher:
    """The enrichment port's implementation; ``store`` None means no profiles."""

    def __init__(self, store: ProfileStore | None, *,
                 writeback: bool = True, link_ttl_seconds: float = profiles.LINK_TTL_SECONDS,
                 timer: Callable[[], float] = time.perf_counter):
        self.store = store
        self.writeback = writeback
        self.link_ttl_seconds = link_ttl_seconds
        self.timer = timer

    def prefetch(self, batch: Sequence[QueuedEvent]) -> None:
        """Reads every profile and link document ``batch``'s events will look up, in one
        round trip, when the store remembers what it read (``ProfileCache.warm``); a failure
        is left for each event's own lookup to meet."""
        warm = getattr(self.store, "warm", None)
        if warm is None:
            return
        ids = [doc_id for queued in batch
               for doc_id in profiles.lookup_for(queued.event.user_data,
                                                 queued.client_id).doc_ids]
        if ids:
            try:
                warm(ids)
            except StoreUnavailable:
                pass

    def __call__(self, queued: QueuedEvent, now: float) -> CapiEvent:
        event = queued.event
        if self.store is None:
            return event
        lookup = profiles.lookup_for(event.user_data, queued.client_id)
        if not lookup.doc_ids:
            return event  # nothing to look up by: no read at all
        started = self.timer()
        try:
            docs = self.store.fetch(lookup.doc_ids)
        except StoreUnavailable as exc:
            log.warning("profile lookup failed; event sent without enrichment",
                        component="process", event_id=event.event_id,
                        error_type=type(exc.__cause__ or exc).__name__)
            return event
        match = profiles.choose(lookup, docs, event.user_data, now)
        added = profiles.missing_keys(event.user_data, match.profile) if match else {}
        enriched = replace(event, user_data=profiles.fill(event.user_data, added),
                           enriched=tuple(sorted(added))) if added else event
        writes = profiles.remember(event.user_data, lookup, docs, now,
                                   ttl_seconds=self.link_ttl_seconds) if self.writeback else ()
        if writes:
            try:
                self.store.save(writes)
            except StoreUnavailable as exc:
                writes = ()
                log.warning("profile write-back failed", component="process",
                            event_id=event.event_id,
                            error_type=type(exc.__cause__ or exc).__name__)
        if writes:
            log.info("profile written back", component="process", event_name=event.event_name,
                     event_id=event.event_id, remembered=_kinds(lookup, writes),
                     duration_ms=round((self.timer() - started) * 1000, 1))
        return enriched
