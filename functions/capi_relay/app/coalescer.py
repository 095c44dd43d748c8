"""Group commit: concurrent ``process`` calls share Graph requests."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from capi_relay.core.meta_rules import MAX_EVENTS_PER_REQUEST


class Coalescer:
    """Joins the sends of concurrent ``process`` calls into shared Graph requests.

    Group commit: the first caller to arrive leads; it waits up to ``window`` seconds (less if
    1000 events gather), then sends everything that joined in as few requests as Meta's limit
    allows. Each caller then settles its own events, so every message is still acknowledged on
    its own outcome. A window of 0 sends at once.
    """

    def __init__(self, window: float, max_events: int = MAX_EVENTS_PER_REQUEST):
        self.window = window
        self.max_events = max_events
        self._cond = threading.Condition()
        self._open: _Batch | None = None

    def run(self, items: list[Any], deliver: Callable[[list[Any]], None]) -> None:
        if self.window <= 0:
            deliver(items)
            return
        with self._cond:
            batch = self._open
            leader = batch is None
            if leader:
                batch = self._open = _Batch()
            batch.items.extend(items)
            self._cond.notify_all()
        if not leader:
            batch.done.wait()
        else:
            deadline = time.monotonic() + self.window
            with self._cond:
                while len(batch.items) < self.max_events:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._open = None  # later callers start the next batch
            try:
                deliver(batch.items)
            except BaseException as exc:
                batch.error = exc
                raise
            finally:
                batch.done.set()
        if batch.error is not None and not leader:
            raise batch.error


@dataclass
class _Batch:
    items: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
