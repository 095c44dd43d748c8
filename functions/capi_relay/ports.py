"""The ports: one small Protocol per external system the relay talks to."""

from __future__ import annotations

from typing import Any, Mapping, Protocol

from .graph_errors import GraphOutcome


class Clock(Protocol):
    def now(self) -> float: ...


class Publisher(Protocol):
    def publish(self, data: bytes, attributes: Mapping[str, str]) -> str:
        """Publishes one message and returns its id; raises PublishFailed."""
        ...


class SecretSource(Protocol):
    def get(self, *, refresh: bool = False) -> str:
        """The access token; ``refresh`` re-reads it (after a rotation)."""
        ...


class CapiClient(Protocol):
    def send(self, events: list[dict[str, Any]], access_token: str, *,
             test_event_code: str | None = None) -> GraphOutcome: ...


class IdempotencyBackend(Protocol):
    """Storage only; the claim protocol lives in idempotency.Idempotency."""

    def get(self, key: str) -> tuple[dict[str, Any], Any] | None:
        """The record and an opaque version, or None."""
        ...

    def create(self, key: str, record: dict[str, Any]) -> bool:
        """Writes only if absent; False when the key exists."""
        ...

    def replace(self, key: str, record: dict[str, Any], version: Any) -> bool:
        """Writes only if unchanged since ``version``; False otherwise."""
        ...


class ProfileStore(Protocol):
    def find(self, keys: Mapping[str, str]) -> dict[str, Any] | None:
        """The first profile linked to any of the lookup keys (external_id, client_id, fbp)."""
        ...

    def remember(self, external_id: str, match_keys: Mapping[str, list[str]],
                 links: Mapping[str, str], now: float) -> None: ...
