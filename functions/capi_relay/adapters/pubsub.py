"""Publisher and TopicProbe ports on Google Cloud Pub/Sub (follows PUBSUB_EMULATOR_HOST)."""

from __future__ import annotations

from typing import Mapping

from capi_relay.core.errors import PublishFailed

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
