"""Group commit: concurrent ``process`` calls share Graph requests; a lone call never waits."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from capi_relay.core.meta_rules import MAX_EVENTS_PER_REQUEST


class Coalescer:
    """Joins the sends of concurrent ``process`` calls into shared Graph requests.

    Each call announces itself on arrival (``arrival()``), before it decodes and claims, and
    then either joins a batch (``Arrival.run``) or leaves with nothing to send. The first call
    to join leads: it waits only while other calls are in flight (arrived and not yet joined
    or left, or sending an earlier batch, during which more calls arrive), never longer than
    ``window`` seconds or past 1000 events; then it sends everything that joined in as few
    requests as Meta's limit allows. A lone call sends at once. Each caller
    settles its own events, so every message is still acknowledged on its own outcome; when the
    send raises, every caller of that batch raises the same error. A window of 0 sends at once.
    """

    def __init__(self, window: float, max_events: int = MAX_EVENTS_PER_REQUEST):
        self.window = window
        self.max_events = max_events
        self._cond = threading.Condition()
        self._open: _Batch | None = None
        self._arrived = 0  # calls that arrived and have neither joined a batch nor left
        self._sending = 0  # batches being delivered

    def arrival(self) -> "Arrival":
        with self._cond:
            self._arrived += 1
        return Arrival(self)

    def run(self, items: list[Any], deliver: Callable[[list[Any]], None]) -> None:
        """Joins (or leads) a batch without having announced an arrival."""
        with self.arrival() as arrival:
            arrival.run(items, deliver)

    def _join(self, items: list[Any], deliver: Callable[[list[Any]], None]) -> None:
        with self._cond:
            self._arrived -= 1
            if self.window <= 0:
                batch, leader = _Batch(), True
            else:
                batch = self._open
                leader = batch is None
                if leader:
                    batch = self._open = _Batch()
            batch.items.extend(items)
            self._cond.notify_all()
        if not leader:
            batch.done.wait()
            if batch.error is not None:
                raise batch.error
            return
        if self.window > 0:
            deadline = time.monotonic() + self.window
            with self._cond:
                while len(batch.items) < self.max_events and (self._arrived or self._sending):
                    if self._sending:  # one request in flight: what waits goes out next, together
                        self._cond.wait()
                        continue
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                self._open = None  # later callers start the next batch
        with self._cond:
            self._sending += 1
        try:
            deliver(batch.items)
        except BaseException as exc:
            batch.error = exc
            raise
        finally:
            with self._cond:
                self._sending -= 1
                self._cond.notify_all()  # a leader waiting on this send may go now
            batch.done.set()

    def _leave(self) -> None:
        with self._cond:
            self._arrived -= 1
            self._cond.notify_all()  # a leader waiting for this call need not wait any more


class Arrival:
    """One ``process`` call's place in the coalescer: join a batch once, or leave."""

    def __init__(self, coalescer: Coalescer):
        self._coalescer = coalescer
        self._settled = False

    def run(self, items: list[Any], deliver: Callable[[list[Any]], None]) -> None:
        if self._settled:
            raise RuntimeError("an arrival joins at most one batch")
        self._settled = True
        self._coalescer._join(items, deliver)

    def __enter__(self) -> "Arrival":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        if not self._settled:
            self._settled = True
            self._coalescer._leave()


@dataclass
class _Batch:
    items: list = field(default_factory=list)
    done: threading.Event = field(default_factory=threading.Event)
    error: BaseException | None = None
