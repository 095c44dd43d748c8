"""Publisher, TopicProbe and Subscription ports on Google Cloud Pub/Sub (follows
PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Mapping, Sequence

from capi_relay.core.errors import PublishFailed, TransientError

#: How long the client holds a message to batch it with others before sending. Every ingest
#: request waits for its publish, so the library's default (10 ms) is added to each one and,
#: with the server's fixed thread pool, caps requests per second: under wrk on loopback with
#: the emulator, 10 ms served ~470 req/s, 2 ms ~1,050, 1 ms or less ~1,200 (benchmarks/
#: ingest_wrk.py). Concurrent requests still share a publish call inside the window.
MAX_BATCH_LATENCY = 0.001


class PubSubPublisher:
    def __init__(self, project: str, topic: str, *, timeout: float = 30.0):
        self.topic_path = topic if topic.startswith("projects/") else \
            f"projects/{project}/topics/{topic}"
        self.timeout = timeout
        self._client = None

    def _get_client(self):
        if self._client is None:
            from google.cloud import pubsub_v1

            self._client = pubsub_v1.PublisherClient(
                batch_settings=pubsub_v1.types.BatchSettings(max_latency=MAX_BATCH_LATENCY))
        return self._client

    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        try:
            future = self._get_client().publish(self.topic_path, data, **dict(attributes))
            return future.result(timeout=self.timeout)
        except Exception as exc:  # any client failure means: not published, try again
            raise PublishFailed(f"publish to {self.topic_path} failed: "
                                f"{type(exc).__name__}") from exc

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
