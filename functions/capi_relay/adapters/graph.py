"""CapiClient port on Meta's Graph API: POST /{version}/{pixel_id}/events over a pooled session;
and the Dataset Quality API read that ``capi-relay report`` uses.

The only module that imports ``requests``. It never raises for what Graph answers and never for a
timeout or a refused connection: every answer becomes a ``GraphOutcome`` through
``graph_errors.classify``, and the service decides what to do with it.

The access token travels in the JSON body, never in the URL, so no proxy, load balancer or
``requests``/``urllib3`` debug log that prints URLs can carry it. It is not stored on the client.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import requests
from requests.adapters import HTTPAdapter

from capi_relay.core.graph_outcome import GraphOutcome, Verdict, classify
from capi_relay.core.model import canonical_json

#: Seconds to wait for the TCP/TLS connection; the read timeout is the caller's ``timeout``.
CONNECT_TIMEOUT = 3.05
POOL_SIZE = 10


def pooled_session(pool_size: int = POOL_SIZE) -> requests.Session:
    """A Session whose connections are kept alive and reused; no automatic retries (the relay
    decides retries from Meta's codes, and urllib3 retrying a POST could double-send)."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class GraphCapiClient:
    def __init__(self, base_url: str, api_version: str, pixel_id: str, *, timeout: float = 10.0,
                 session: requests.Session | None = None):
        if timeout <= 0:
            raise ValueError("timeout must be positive")
        self.base_url = base_url.rstrip("/")
        self.api_version = api_version.strip("/")
        self.pixel_id = str(pixel_id).strip("/")
        self.timeout = (min(CONNECT_TIMEOUT, timeout), timeout)
        self._owns_session = session is None
        self._session = session if session is not None else pooled_session()

    @property
    def events_url(self) -> str:
        return f"{self.base_url}/{self.api_version}/{self.pixel_id}/events"

    def send(self, events: list[dict[str, Any]], access_token: str, *,
             test_event_code: str | None = None) -> GraphOutcome:
        if not access_token:
            # Nothing to send with: hold the events like an expired token, without a round trip.
            return GraphOutcome(Verdict.TOKEN, None, None, None, "no access token configured",
                                None, None, None)
        body: dict[str, Any] = {"data": events, "access_token": access_token}
        if test_event_code:
            body["test_event_code"] = test_event_code
        try:
            response = self._session.post(
                self.events_url,
                data=canonical_json(body).encode("utf-8"),
                headers={"Content-Type": "application/json", "Accept": "application/json"},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Timeouts, refused or reset connections, TLS failures: Meta's answer is unknown.
            # Only the exception's class is kept: its text names hosts and ports, not tokens,
            # but nothing here needs it.
            return replace(classify(None, None, transport_error=True),
                           message=f"transport error: {type(exc).__name__}")
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = None
        return classify(response.status_code, parsed if isinstance(parsed, dict) else None,
                        headers=response.headers)

    #: what ``dataset_quality`` asks for: Event Match Quality per web event name
    DATASET_QUALITY_FIELDS = "web{event_match_quality,event_name}"

    def dataset_quality(self, access_token: str) -> tuple[GraphOutcome, dict[str, Any] | None]:
        """Meta's Dataset Quality API for this pixel: GET /{version}/dataset_quality.

        The token travels in the Authorization header, never in the URL. Returns the outcome
        (classified like a send) and, when it is OK, the parsed body.
        """
        try:
            response = self._session.get(
                f"{self.base_url}/{self.api_version}/dataset_quality",
                params={"dataset_id": self.pixel_id, "fields": self.DATASET_QUALITY_FIELDS},
                headers={"Authorization": f"Bearer {access_token}",
                         "Accept": "application/json"},
                timeout=self.timeout, allow_redirects=False,
            )
        except requests.RequestException as exc:
            return replace(classify(None, None, transport_error=True),
                           message=f"transport error: {type(exc).__name__}"), None
        try:
            parsed = response.json() if response.content else None
        except ValueError:
            parsed = None
        parsed = parsed if isinstance(parsed, dict) else None
        if 200 <= response.status_code < 300 and parsed is not None and "error" not in parsed:
            # classify() wants events_received for an OK: a read has none
            return GraphOutcome(Verdict.OK, response.status_code, None, None, "", None, None,
                                None), parsed
        return classify(response.status_code, parsed, headers=response.headers), None

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> "GraphCapiClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"GraphCapiClient({self.events_url!r}, timeout={self.timeout})"
