"""The scheduled puller's ledger: the claim protocol of ``ledger.py``, written once per run.

The push processor claims and settles each event in its own document (two writes per event),
because many instances deliver at once and only a conditional create per key keeps two of
them from sending the same event. The scheduled puller is one run at a time (Cloud Scheduler
starts it; the function allows one instance and one request), so a run can record all its
events in ONE document before it sends and overwrite that document once after::

    find(keys)  ->  which keys earlier runs sent, dead-lettered, or still hold under a lease
    begin       ->  {state: in_progress, keys: [claimed], lease_until}   (1 write per 1,000 keys)
    send, settle
    commit      ->  {state: done, keys: [sent + failed], failed: [failed]}   (the same again)

A key released for another try is left out of the done record, so the next run claims it
again. A run that dies between begin and commit leaves an in_progress record: its keys are
BUSY until the lease runs out, then sent again (at worst twice with one event_id), as with the
push ledger. Attempts come from the subscription (Pub/Sub's delivery attempt), not the record.
Records carry ``expire_at`` for the same TTL policy; an expired one is treated as absent.
"""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterable, Mapping

from capi_relay.app.ledger import Claim, Decision, DeliveryLedger, State
from capi_relay.app.ports import Publisher, RunStore

#: keys per record: 1,000 event keys of 64 characters stay far below Firestore's 1 MiB
#: document and 40,000 index entries (a batch holds up to about 2,000 events, per pixel)
RECORD_KEYS = 1000
#: what a key's records say, strongest first
SENT, FAILED, LEASED = "sent", "failed", "leased"
RUN_IN_PROGRESS, RUN_DONE = "in_progress", "done"


def key_status(records: Iterable[Mapping[str, Any]], now: float) -> dict[str, str]:
    """Pure: per event key, what unexpired run records say of it (SENT, FAILED, or LEASED by a
    run whose lease is still live). A key in no such record is absent: free to send."""
    rank = {SENT: 3, FAILED: 2, LEASED: 1}
    status: dict[str, str] = {}

    def note(key: str, value: str) -> None:
        if rank[value] > rank.get(status.get(key, ""), 0):
            status[key] = value

    for record in records:
        if record.get("expire_at", float("inf")) <= now:
            continue
        if record.get("state") == RUN_DONE:
            failed = set(record.get("failed") or ())
            for key in record.get("keys") or ():
                note(key, FAILED if key in failed else SENT)
        elif record.get("lease_until", 0) > now:
            for key in record.get("keys") or ():
                note(key, LEASED)
    return status


class RunLedger(DeliveryLedger):
    """``DeliveryLedger``'s interface for one run at a time: ``prefetch`` the run's keys (one
    query per 30 keys), ``claim`` each, ``begin`` (one write), send, settle (``mark_sent``,
    ``mark_failed``, ``release``, ``dead_letter`` are remembered), ``commit`` (one write)."""

    def __init__(self, store: RunStore, *, lease_seconds: float, ttl_seconds: float,
                 dead_letter: Publisher | None = None,
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        super().__init__(store, lease_seconds=lease_seconds, ttl_seconds=ttl_seconds,
                         dead_letter=dead_letter)
        self.store = store
        self.new_id = new_id
        self._start({}, {})

    def _start(self, status: dict[str, str], attempts: Mapping[str, int]) -> None:
        self._status = status
        self._attempts = dict(attempts)
        self._claimed: list[str] = []
        self._final: dict[str, State] = {}
        self._runs: list[tuple[str, list[str]]] = []  # (record id, its keys)

    def prefetch(self, attempts: Mapping[str, int], now: float) -> None:
        """Starts a run over these keys (each with its delivery attempt): reads what earlier
        runs recorded of them. Raises StoreUnavailable."""
        records = self.store.find(list(attempts)) if attempts else []
        self._start(key_status(records, now), attempts)

    def claim(self, key: str, now: float, *, replay: bool = False) -> Decision:
        attempts = max(1, self._attempts.get(key, 1))
        status = self._status.get(key)
        if status == SENT:
            return Decision(Claim.ALREADY_SENT, attempts=attempts)
        if status == FAILED and not replay:
            return Decision(Claim.ALREADY_FAILED, attempts=attempts)
        if status == LEASED:
            return Decision(Claim.BUSY, attempts=attempts)
        # a second copy in this same run is a duplicate of the first: the first's outcome
        # stands for it (a held first copy is retried, so nothing is lost)
        self._status[key] = SENT
        self._claimed.append(key)
        return Decision(Claim.SEND, attempts=attempts)

    def begin(self, now: float) -> None:
        """Records the claimed keys under a lease before anything is sent: one record per
        ``RECORD_KEYS`` keys. Raises StoreUnavailable (then nothing is sent)."""
        if not self._claimed:
            return
        run = self.new_id()
        self._runs = [(f"run-{run}-{n}", self._claimed[start:start + RECORD_KEYS])
                      for n, start in enumerate(range(0, len(self._claimed), RECORD_KEYS))]
        for run_id, keys in self._runs:
            self.store.create(run_id, {
                "state": RUN_IN_PROGRESS, "keys": keys,
                "lease_until": now + self.lease_seconds, "updated_at": now,
                "expire_at": now + self.ttl_seconds})

    def _finish(self, key: str, state: State, now: float, attempts: int, **extra: Any) -> None:
        if state is State.RELEASED:
            self._final.pop(key, None)
        else:
            self._final[key] = state

    def commit(self, now: float) -> None:
        """Records what was sent and what was dead-lettered; released keys are left out (the
        next run claims them). Raises StoreUnavailable."""
        for run_id, keys in self._runs:
            done = [key for key in keys if key in self._final]
            self.store.put(run_id, {
                "state": RUN_DONE, "keys": done,
                "failed": [key for key in done if self._final[key] is State.FAILED],
                "lease_until": 0, "updated_at": now, "expire_at": now + self.ttl_seconds})
        self._runs = []
