"""What the processor does to an event between consent and delivery: profiles, regions, guard.

``Enricher(queued, now)`` is the profile step, for events whose consent covers user data: ONE
batched read (the user's profile and this browser's links, see ``profiles``), the missing match
keys filled in (the event's own values win), and, for an identified event, what it teaches
written back in one batch (nothing when nothing changed). ``Enricher.finish(event)`` runs for
every event that leaves the relay: the regional rules, then the guard that lets only SHA-256
(or Parameter Builder) values through for hashed keys.

Profiles improve matching; they never hold an event back: when Firestore cannot be read or
written, the event goes on as it is and the failure is logged (names only).
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Callable

from capi_relay import log
from capi_relay.app.ports import ProfileStore
from capi_relay.core import profiles, regional
from capi_relay.core.envelope import QueuedEvent
from capi_relay.core.errors import StoreUnavailable
from capi_relay.core.model import HASHED_KEYS, CapiEvent, UserData
from capi_relay.core.regional import RegionalRules


def guard_hashed(user_data: UserData) -> tuple[UserData, tuple[str, ...]]:
    """``user_data`` with every hashed-key value that is not a hash removed, and their keys.

    The last check before sending: ingest hashes, profiles hold hashes, yet a value from an old
    or hand-made message must still never reach Meta in clear.
    """
    wire = user_data.to_wire()
    bad: list[str] = []
    for key in HASHED_KEYS:
        values = wire.get(key)
        if not values:
            continue
        kept = [v for v in values if profiles.is_hashed(v)]
        if len(kept) != len(values):
            bad.append(key)
            if kept:
                wire[key] = kept
            else:
                del wire[key]
    return (UserData.from_wire(wire), tuple(bad)) if bad else (user_data, ())


def _kinds(lookup: profiles.Lookup, writes) -> list[str]:
    """Which documents were written, by kind ("profile", "client_id", "fbp"): never an id."""
    links = {doc_id: kind for kind, doc_id in lookup.link_ids.items()}
    return sorted(links.get(w.doc_id, "profile") for w in writes)


class Enricher:
    """The processor's profile step and pre-send rules; ``store`` None means no profiles."""

    def __init__(self, store: ProfileStore | None, rules: RegionalRules | None = None, *,
                 writeback: bool = True, link_ttl_seconds: float = profiles.LINK_TTL_SECONDS,
                 timer: Callable[[], float] = time.perf_counter):
        self.store = store
        self.rules = rules or RegionalRules()
        self.writeback = writeback
        self.link_ttl_seconds = link_ttl_seconds
        self.timer = timer

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
        enriched = replace(event, user_data=profiles.fill(event.user_data, added)) \
            if added else event
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
        if added or writes:
            log.info("enriched", component="process", event_name=event.event_name,
                     event_id=event.event_id,
                     enriched_keys=sorted(added) or None,
                     matched_by=match.matched_by if added else None,
                     remembered=_kinds(lookup, writes) or None,
                     duration_ms=round((self.timer() - started) * 1000, 1))
        return enriched

    def finish(self, event: CapiEvent) -> CapiEvent:
        """Regional rules (LDU, redaction), then the hashed-value guard. Runs for every event."""
        if not self.rules.empty:
            event = regional.apply(event, self.rules.decide(event))
        user_data, bad = guard_hashed(event.user_data)
        if bad:
            log.warning("hashed key dropped: value is not a SHA-256 hash", component="process",
                        event_id=event.event_id, fields=list(bad))
            event = replace(event, user_data=user_data)
        return event


def build_enricher(settings) -> Enricher:
    """The processor's enricher: Firestore profiles plus the configured regional rules."""
    from capi_relay.adapters.firestore import FirestoreProfileStore

    rules = RegionalRules.from_settings(settings.ldu_regions, settings.redact)
    store = FirestoreProfileStore(settings.project, settings.profiles_collection)
    return Enricher(store, rules, writeback=settings.profile_writeback)
