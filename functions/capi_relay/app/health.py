"""Readiness of the ingest: can what it accepts be delivered? A cheap check, cached briefly."""

from __future__ import annotations

import threading

from capi_relay import log
from capi_relay.app.ports import Clock, TopicProbe


class Readiness:
    """``ready()`` is True only when the events topic has a subscription.

    The answer is cached (``ok_ttl`` when ready, ``fail_ttl`` when not) so that probes cost at
    most one Pub/Sub admin call per interval per instance, and nothing is ever published.
    """

    def __init__(self, probe: TopicProbe, clock: Clock, *, ok_ttl: float = 30.0,
                 fail_ttl: float = 1.0):
        self.probe = probe
        self.clock = clock
        self.ok_ttl = ok_ttl
        self.fail_ttl = fail_ttl
        self._lock = threading.Lock()
        self._answer: bool | None = None
        self._until = 0.0

    def ready(self) -> bool:
        with self._lock:
            now = self.clock.now()
            if self._answer is not None and now < self._until:
                return self._answer
            try:
                answer = bool(self.probe.has_subscription())
                cause = None if answer else "events topic has no subscription"
            except Exception as exc:  # any failure to find out means: not ready yet
                answer, cause = False, f"topic check failed: {type(exc).__name__}"
            if cause:
                log.warning("not ready", component="ingest", cause=cause)
            self._answer = answer
            self._until = now + (self.ok_ttl if answer else self.fail_ttl)
            return answer
