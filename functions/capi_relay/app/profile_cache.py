"""A per-instance memo in front of the ProfileStore port: a browsing session reads its links once.

Every event with a client_id or fbp reads that browser's link documents (see ``profiles``), and
a session posts several events from the same browser within minutes: page views, product views,
a cart. Firestore bills each document read, found or not, so without a memo a five-event
session pays ten reads for the same two answers. ``ProfileCache`` remembers each document it
read, and each it found missing, for ``ttl_seconds``; only ids not remembered go to the store,
still in one round trip. What this instance writes replaces (or, for a merge, forgets) the
remembered copy, so its own write-backs are seen at once.

The price is staleness across instances: a link another instance writes is seen here only when
the remembered answer expires. Profiles improve matching and never hold an event back, so a
session that learns its identity on another instance is enriched a few minutes later than it
could have been. Bounded: at most ``max_entries`` documents, oldest dropped first.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any, Callable, Mapping, Sequence

from capi_relay.app.ports import ProfileStore

#: Long enough to cover a browsing session, short enough that another instance's write-back
#: reaches this one soon.
DEFAULT_TTL_SECONDS = 300.0
DEFAULT_MAX_ENTRIES = 20_000
_MISSING = None


class ProfileCache:
    """A ProfileStore that answers repeated reads from memory; documents are read-only."""

    def __init__(self, store: ProfileStore, *, ttl_seconds: float = DEFAULT_TTL_SECONDS,
                 max_entries: int = DEFAULT_MAX_ENTRIES,
                 clock: Callable[[], float] = time.monotonic):
        self.store = store
        self.ttl_seconds = ttl_seconds
        self.max_entries = max_entries
        self.clock = clock
        self._entries: OrderedDict[str, tuple[float, Mapping[str, Any] | None]] = OrderedDict()
        self._lock = threading.Lock()

    def fetch(self, doc_ids: Sequence[str]) -> dict[str, Mapping[str, Any]]:
        now = self.clock()
        found: dict[str, Mapping[str, Any]] = {}
        wanted: list[str] = []
        with self._lock:
            for doc_id in doc_ids:
                entry = self._entries.get(doc_id)
                if entry is None or entry[0] <= now:
                    wanted.append(doc_id)
                elif entry[1] is not _MISSING:
                    found[doc_id] = entry[1]
        if wanted:
            fresh = self.store.fetch(wanted)  # StoreUnavailable propagates; nothing remembered
            with self._lock:
                for doc_id in wanted:
                    self._remember(doc_id, fresh.get(doc_id, _MISSING), now)
            found.update(fresh)
        return found

    def warm(self, doc_ids: Sequence[str]) -> None:
        """Reads, in one round trip, the documents among ``doc_ids`` not remembered yet, so
        that the fetches of a batch's events are answered from memory (the scheduled puller
        decides a whole batch; one round trip per browser would bound its rate)."""
        self.fetch(list(dict.fromkeys(doc_ids)))

    def save(self, writes: Sequence[Any]) -> int:
        now = self.clock()
        try:
            done = self.store.save(writes)
        except Exception:
            with self._lock:  # partly written, perhaps: forget them all
                for write in writes:
                    self._entries.pop(write.doc_id, None)
            raise
        with self._lock:
            for write in writes:
                if write.merge:  # the merged document is Firestore's to compute
                    self._entries.pop(write.doc_id, None)
                else:
                    self._remember(write.doc_id, dict(write.data), now)
        return done

    def _remember(self, doc_id: str, doc: Mapping[str, Any] | None, now: float) -> None:
        self._entries[doc_id] = (now + self.ttl_seconds, doc)
        self._entries.move_to_end(doc_id)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)
