"""The ports: one small Protocol per external system the relay talks to."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Protocol, Sequence

from capi_relay.core.graph_outcome import GraphOutcome

if TYPE_CHECKING:
    from capi_relay.core.profiles import Write


class Clock(Protocol):
    def now(self) -> float: ...


class Publisher(Protocol):
    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publishes one message and returns its id; raises PublishFailed."""
        ...


class TopicProbe(Protocol):
    def has_subscription(self) -> bool:
        """Whether the topic has a subscription, so that what is published is kept; raises
        on any failure to find out."""
        ...


class SecretSource(Protocol):
    def get(self, *, refresh: bool = False) -> str:
        """The access token; ``refresh`` re-reads it (after a rotation)."""
        ...


class CapiClient(Protocol):
    def send(self, events: list[dict[str, Any]], access_token: str, *,
             test_event_code: str | None = None) -> GraphOutcome: ...


class IdempotencyBackend(Protocol):
    """Storage only; the claim protocol lives in ledger.DeliveryLedger."""

    def get(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """The record and an opaque version, or None."""
        ...

    def create(self, key: str, record: dict[str, Any]) -> bool:
        """Writes only if absent; False when the key exists."""
        ...

    def replace(self, key: str, record: dict[str, Any], version: Any) -> bool:
        """Writes only if unchanged since ``version``; False otherwise."""
        ...

    def put(self, key: str, record: dict[str, Any]) -> None:
        """Writes unconditionally (the claim holder recording an outcome)."""
        ...


class ProfileStore(Protocol):
    """Profile and link documents; ``profiles`` decides their ids and content, this only I/O."""

    def fetch(self, doc_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        """The documents that exist among ``doc_ids``, by id, read in ONE round trip.

        Raises StoreUnavailable.
        """
        ...

    def save(self, writes: Sequence[Write]) -> int:
        """Applies the writes in batches of at most 500; returns how many. Raises
        StoreUnavailable."""
        ...


class RunStore(Protocol):
    """The scheduled puller's delivery records: one document per run, listing event keys
    (``app.run_ledger`` decides their content; this only stores and finds them)."""

    def find(self, keys: Sequence[str]) -> list[dict[str, Any]]:
        """Every stored record whose ``keys`` holds one of ``keys``. Raises StoreUnavailable."""
        ...

    def create(self, run_id: str, record: dict[str, Any]) -> None:
        """Writes a new record. Raises StoreUnavailable."""
        ...

    def put(self, run_id: str, record: dict[str, Any]) -> None:
        """Overwrites the record. Raises StoreUnavailable."""
        ...


class Received(Protocol):
    """One pulled message."""

    ack_id: str
    data: bytes
    attributes: Mapping[str, str]
    delivery_attempt: int  # 1 on the first delivery (0 when the subscription does not count)


class Subscription(Protocol):
    """A pull subscription: what the scheduled puller reads."""

    def pull(self, max_messages: int) -> list[Received]:
        """Up to ``max_messages`` waiting messages; an empty list when none wait. Raises
        TransientError."""
        ...

    def ack(self, ack_ids: Sequence[str]) -> None: ...

    def retry_later(self, ack_ids: Sequence[str], seconds: int) -> None:
        """Hands the messages back, to be delivered again after ``seconds``."""
        ...
