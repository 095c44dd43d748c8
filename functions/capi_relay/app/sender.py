"""The Graph sender: puts events in front of Meta and says, per event, what Meta made of them.

One ``send`` call: requests of at most 1000 events; a rejected token is re-read once (the secret
may have been rotated); throttling and transient failures are retried a few times within the
call, briefly (a longer wait is Pub/Sub's redelivery backoff); a batch Meta refuses because of
one bad event is bisected until the bad ones are alone, so their neighbours still go through.
It never touches the ledger: the process service settles what this returns.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Sequence

from capi_relay import log
from capi_relay.app.ports import CapiClient, SecretSource
from capi_relay.core.delivery import DeadLetter, Hold, Outcome
from capi_relay.core.graph_outcome import GraphOutcome, Verdict, backoff_seconds
from capi_relay.core.meta_rules import (
    MAX_EVENTS_PER_REQUEST,
    enriched_key_counts,
    match_key_counts,
)
from capi_relay.core.model import CapiEvent

#: an in-call retry never waits longer than this; Pub/Sub's backoff handles longer waits
MAX_IN_CALL_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class SenderConfig:
    test_event_code: str | None = None
    in_call_retries: int = 2
    pixel_id: str | None = None  # named in its log lines when the relay feeds several pixels


@dataclass(frozen=True)
class Delivery:
    """What became of one event: SENT (with Meta's trace id), DEAD (with why) or HELD."""

    outcome: Outcome
    fbtrace_id: str | None = None
    dead: DeadLetter | None = None
    hold: Hold | None = None
    graph: GraphOutcome | None = None  # the answer that decided a HELD event (for its error)


class GraphSender:
    def __init__(self, client: CapiClient, secrets: SecretSource,
                 config: SenderConfig = SenderConfig(), *,
                 sleep: Callable[[float], None] = time.sleep,
                 jitter: Callable[[], float] = lambda: 0.5):
        self.client = client
        self.secrets = secrets
        self.config = config
        self.sleep = sleep
        self.jitter = jitter
        self._lock = threading.Lock()
        self.requests = 0  # Graph requests made, over the sender's life

    def send(self, events: Sequence[CapiEvent]) -> list[Delivery]:
        """One Delivery per event, in order. Raises only what the client or secret raise."""
        out: list[Delivery] = []
        for start in range(0, len(events), MAX_EVENTS_PER_REQUEST):
            out.extend(self._deliver(events[start:start + MAX_EVENTS_PER_REQUEST]))
        return out

    def _deliver(self, batch: Sequence[CapiEvent]) -> list[Delivery]:
        outcome = self._request([event.to_wire() for event in batch])
        if outcome.verdict is Verdict.OK:
            log.info("sent", component="process", pixel_id=self.config.pixel_id,
                     batch_size=len(batch),
                     events_received=outcome.events_received, fbtrace_id=outcome.fbtrace_id,
                     match_keys=match_key_counts(batch),
                     enriched_keys=enriched_key_counts(batch))
            return [Delivery(Outcome.SENT, fbtrace_id=outcome.fbtrace_id)] * len(batch)
        if outcome.verdict in (Verdict.INVALID_EVENT, Verdict.PERMANENT):
            if len(batch) == 1:
                return [Delivery(Outcome.DEAD, dead=DeadLetter.rejected(outcome))]
            middle = len(batch) // 2  # bisect: find the bad neighbour, send the rest
            return self._deliver(batch[:middle]) + self._deliver(batch[middle:])
        hold = Hold.for_verdict(outcome.verdict)
        log.log("ERROR" if hold is Hold.TOKEN else "WARNING", "send failed, will retry",
                component="process", pixel_id=self.config.pixel_id,
                verdict=outcome.verdict.value, code=outcome.code,
                subcode=outcome.subcode, batch_size=len(batch), fbtrace_id=outcome.fbtrace_id)
        return [Delivery(Outcome.HELD, hold=hold, graph=outcome)] * len(batch)

    def _request(self, events: list[dict]) -> GraphOutcome:
        refreshed = False
        attempt = 0
        while True:
            token = self.secrets.get(refresh=refreshed)
            with self._lock:
                self.requests += 1
            outcome = self.client.send(events, token, test_event_code=self.config.test_event_code)
            if outcome.verdict is Verdict.TOKEN and not refreshed:
                refreshed = True  # the secret may have been rotated: read it once more
                continue
            if outcome.verdict in (Verdict.TRANSIENT, Verdict.THROTTLED) and \
                    attempt < self.config.in_call_retries:
                attempt += 1
                self.sleep(min(outcome.retry_after or backoff_seconds(
                    outcome.verdict, attempt, jitter=self.jitter()), MAX_IN_CALL_WAIT_SECONDS))
                continue
            return outcome
