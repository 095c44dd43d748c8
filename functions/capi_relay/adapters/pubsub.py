"""Publisher, TopicProbe and Subscription ports on Google Cloud Pub/Sub (follows
PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

import queue
import threading
import time
import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

from capi_relay.core.errors import PublishFailed, TransientError

#: Pub/Sub's limits on one Publish request (cloud.google.com/pubsub/quotas#resource_limits):
#: 1,000 messages and 10 MB; the bytes limit is kept with room for the request's framing.
MAX_BATCH_MESSAGES = 1000
MAX_BATCH_BYTES = 9_000_000
#: Publish calls in flight at once, each carrying every message that was waiting when it
#: started. With one, a message that arrives during a call waits for it and then for its own
#: (two round trips at most); under load each call carries more messages, and a call costs
#: the ingest more CPU than a request's mapping: under wrk (16 connections, server alone on
#: one core, emulator) one sender made ~5.7 messages a call and 0.51 ms of server CPU a
#: request, two senders ~3.0 and 0.57 ms (benchmarks/ingest_wrk.py).
SENDERS = 1
#: Under load (the last call carried more than one message) the sender waits this long
#: before taking the next batch, so that one call carries more: ~0.50 ms of server CPU a
#: request instead of ~0.545 in the same run, and 10-20% more req/s. A message that comes
#: alone is sent at once; the library's batching, before, held every message 1 ms.
BUSY_LINGER = 0.0005


class _Pending:
    """One message waiting for its Publish call: ``done`` is released when the call ends."""

    __slots__ = ("message", "size", "done", "message_id", "error")

    def __init__(self, message, size: int):
        self.message = message
        self.size = size
        self.done = threading.Lock()
        self.done.acquire()
        self.message_id: str | None = None
        self.error: BaseException | None = None


class PubSubPublisher:
    """Publishes each message and returns only once Pub/Sub has it (its message id).

    Messages published while a Publish call is in flight are sent together in the next one
    (group commit): a lone message is sent at once, without a batching window, and under load
    one RPC carries many messages (``BUSY_LINGER``). The RPC itself is the generated client's,
    with its default retry and timeout, as the library's own batching sends it; this replaces
    only that batching (a timer thread and a commit thread per batch, a future and a
    proto-plus wrapper per message), which under wrk cost more CPU per request than the
    mapping (benchmarks/ingest_wrk.py). Each publish still returns only once Pub/Sub has
    answered for its message, or raises PublishFailed (the call failed, or took longer than
    ``timeout``).
    """

    def __init__(self, project: str, topic: str, *, timeout: float = 30.0):
        self.topic_path = topic if topic.startswith("projects/") else \
            f"projects/{project}/topics/{topic}"
        self.timeout = timeout
        self._client = None
        self._queue: queue.SimpleQueue[_Pending] = queue.SimpleQueue()
        self._senders: list[threading.Thread] = []
        self._start_lock = threading.Lock()
        self._message = None

    def _get_client(self):
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.PublisherClient()
        return self._client

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        try:
            if not self._senders:
                self._start_senders()
            pending = _Pending(self._message(data=data, attributes=attributes),
                               len(data) + sum(len(k) + len(v) for k, v in attributes.items()))
        except Exception as exc:  # any client failure means: not published, try again
            raise PublishFailed(f"publish to {self.topic_path} failed: "
                                f"{type(exc).__name__}") from exc
        self._queue.put(pending)
        if not pending.done.acquire(timeout=self.timeout):
            raise PublishFailed(f"publish to {self.topic_path} failed: TimeoutError")
        if pending.error is not None:
            raise PublishFailed(f"publish to {self.topic_path} failed: "
                                f"{type(pending.error).__name__}") from pending.error
        return pending.message_id  # type: ignore[return-value]

    def _start_senders(self) -> None:
        with self._start_lock:
            if self._senders:
                return
            self._get_client()  # built here, where a failure is the publish's own
            from google.pubsub_v1.types import PubsubMessage

            self._message = PubsubMessage.pb()  # the raw protobuf class: no wrapper per message
            senders = [threading.Thread(target=self._send_forever, daemon=True,
                                        name=f"pubsub-sender-{n}") for n in range(SENDERS)]
            for sender in senders:
                sender.start()
            self._senders = senders

    def _send_forever(self) -> None:
        carried: _Pending | None = None
        busy = False  # the last call carried more than one message
        while True:
            first = carried or self._queue.get()
            if busy:
                time.sleep(BUSY_LINGER)
            batch, size, carried = [first], first.size, None
            while len(batch) < MAX_BATCH_MESSAGES:
                try:
                    pending = self._queue.get_nowait()
                except queue.Empty:
                    break
                if size + pending.size > MAX_BATCH_BYTES:
                    carried = pending  # the first of the next call
                    break
                batch.append(pending)
                size += pending.size
            self._send(batch)
            busy = len(batch) > 1

    def _send(self, batch: list[_Pending]) -> None:
        try:
            ids = self._publish_rpc([pending.message for pending in batch])
            if len(ids) != len(batch):
                raise RuntimeError(f"{len(ids)} message ids for {len(batch)} messages")
        except Exception as exc:  # every waiter hears of it; the sender lives on
            for pending in batch:
                pending.error = exc
                pending.done.release()
            return
        for pending, message_id in zip(batch, ids, strict=True):
            pending.message_id = message_id
            pending.done.release()

    def _publish_rpc(self, messages: list) -> list[str]:
        """One Publish call: the generated client's (which the high-level client overrides
        with its batching), with its default retry and timeout, as the library's own
        batches call it. The message ids, in order."""
        from google.pubsub_v1.services.publisher.client import PublisherClient as Gapic
        from google.pubsub_v1.types import PublishRequest, PublishResponse

        request = PublishRequest.wrap(PublishRequest.pb()(topic=self.topic_path,
                                                          messages=messages))
        response = Gapic.publish(self._get_client(), request=request)
        return list(PublishResponse.pb(response).message_ids)

    def has_subscription(self) -> bool:
        """TopicProbe: one ListTopicSubscriptions call (Pub/Sub drops messages published to a
        topic without a subscription, so the ingest is not ready until one exists)."""
        page = self._get_client().list_topic_subscriptions(
            request={"topic": self.topic_path, "page_size": 1}, timeout=self.timeout)
        return next(iter(page), None) is not None


@dataclass(frozen=True)
class PulledMessage:
    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    delivery_attempt: int


class PubSubSubscription:
    """Subscription port: synchronous pull, acknowledge, hand back (modify the ack deadline)."""

    def __init__(self, project: str, subscription: str, *, timeout: float = 10.0):
        self.path = subscription if subscription.startswith("projects/") else \
            f"projects/{project}/subscriptions/{subscription}"
        self.timeout = timeout
        self._client = None

    def _get_client(self):
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.SubscriberClient()
        return self._client

    def pull(self, max_messages: int) -> list[PulledMessage]:
        from google.api_core import exceptions

        try:
            # A puller run drains what waits and exits: waiting for more would be billed.
            # Pub/Sub discourages return_immediately for pullers that poll in a loop (an
            # immediate answer may be empty while messages wait); a run every minute is not one,
            # and a message missed now is taken by the next run.
            with warnings.catch_warnings():  # the client warns on every call that it is
                warnings.simplefilter("ignore", DeprecationWarning)  # deprecated (see above)
                response = self._get_client().pull(
                    request={"subscription": self.path, "max_messages": max_messages,
                             "return_immediately": True}, timeout=self.timeout)
        except exceptions.DeadlineExceeded:
            return []  # nothing arrived while the request waited
        except exceptions.GoogleAPICallError as exc:
            raise TransientError(f"pull from {self.path} failed: {type(exc).__name__}") from exc
        return [PulledMessage(r.ack_id, r.message.data, dict(r.message.attributes),
                              r.delivery_attempt) for r in response.received_messages]

    def ack(self, ack_ids: Sequence[str]) -> None:
        for start in range(0, len(ack_ids), 1000):
            self._call("acknowledge", {"subscription": self.path,
                                       "ack_ids": list(ack_ids[start:start + 1000])})

    def retry_later(self, ack_ids: Sequence[str], seconds: int) -> None:
        for start in range(0, len(ack_ids), 1000):
            self._call("modify_ack_deadline", {"subscription": self.path,
                                               "ack_ids": list(ack_ids[start:start + 1000]),
                                               "ack_deadline_seconds": seconds})

    def _call(self, method: str, request: dict) -> None:
        from google.api_core import exceptions

        try:
            getattr(self._get_client(), method)(request=request, timeout=self.timeout)
        except exceptions.GoogleAPICallError as exc:
            raise TransientError(f"{method} on {self.path} failed: "
                                 f"{type(exc).__name__}") from exc
