"""HTTP and Pub/Sub transport for the entry points: requests in, service calls, statuses out."""

from __future__ import annotations

import base64
import json
from typing import Any, Callable

from . import log
from .errors import ConfigurationError, PublishFailed, RelayError
from .service import MAX_EVENTS_PER_REQUEST, IngestService, ProcessService, RequestContext

MAX_BODY_BYTES = 1_000_000
JSON_HEADERS = {"Content-Type": "application/json"}


def _json(status: int, body: Any, headers: dict[str, str] | None = None):
    return json.dumps(body, separators=(",", ":")), status, {**JSON_HEADERS, **(headers or {})}


def cors_headers(origin: str | None, allowed: tuple[str, ...]) -> dict[str, str]:
    """CORS headers for a configured origin; credentials only for an explicitly listed one."""
    if not origin or not allowed:
        return {}
    if origin in allowed:
        return {"Access-Control-Allow-Origin": origin,
                "Access-Control-Allow-Credentials": "true", "Vary": "Origin"}
    if "*" in allowed:
        return {"Access-Control-Allow-Origin": "*"}
    return {}


def request_context(request) -> RequestContext:
    forwarded = request.headers.get("X-Forwarded-For", "")
    ip = forwarded.split(",")[0].strip() if forwarded.strip() else request.remote_addr
    return RequestContext(ip=ip or None, user_agent=request.headers.get("User-Agent") or None,
                          fbp=request.cookies.get("_fbp") or None,
                          fbc=request.cookies.get("_fbc") or None)


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not


def parse_events(body: bytes) -> tuple[list[Any] | None, str | None]:
    """The events in a body: one object, a list, or {"events": [...]}; or an error message."""
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None, "body: not valid JSON"
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = data["events"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return None, "body: must be an event object, a list of events, or {\"events\": [...]}"
    if not data:
        return None, "events: empty"
    return data, None


def handle_ingest(request, get_service: Callable[[], IngestService],
                  allowed_origins: Callable[[], tuple[str, ...]],
                  can_publish: Callable[[], bool]):
    """The ingest function's whole HTTP surface."""
    try:
        origins = allowed_origins()
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return _json(503, {"error": str(exc)})
    cors = cors_headers(request.headers.get("Origin"), origins)
    path = request.path.rstrip("/")

    if request.method == "OPTIONS":
        if not cors:
            return "", 403, {}
        return "", 204, {**cors, "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
                         "Access-Control-Allow-Headers": "Content-Type",
                         "Access-Control-Max-Age": "3600"}
    if request.method == "GET" and path.endswith("/healthz"):
        ok = can_publish()
        return _json(200 if ok else 503, {"status": "ok" if ok else "cannot publish"})
    if request.method != "POST":
        return _json(405, {"error": "method: use POST"}, {"Allow": "POST, OPTIONS", **cors})

    length = request.content_length
    if length is not None and length > MAX_BODY_BYTES:
        return _json(413, {"error": f"body: larger than {MAX_BODY_BYTES} bytes"}, cors)
    body = request.stream.read(MAX_BODY_BYTES + 1)
    if len(body) > MAX_BODY_BYTES:
        return _json(413, {"error": f"body: larger than {MAX_BODY_BYTES} bytes"}, cors)
    events, problem = parse_events(body)
    if problem:
        return _json(400, {"error": problem}, cors)
    if len(events) > MAX_EVENTS_PER_REQUEST:
        return _json(413, {"error": f"events: at most {MAX_EVENTS_PER_REQUEST} per request"},
                     cors)
    try:
        result = get_service().ingest(events, request_context(request))
    except PublishFailed as exc:
        log.error("publish failed", component="ingest", cause=str(exc))
        return _json(503, {"error": "queue unavailable, retry later"},
                     {"Retry-After": "5", **cors})
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return _json(503, {"error": str(exc)}, cors)
    body_out = {"accepted": result.accepted, "rejected": result.rejected}
    if result.dropped:
        body_out["dropped"] = result.dropped
    if result.accepted:
        body_out["event_ids"] = result.event_ids
        return _json(202, body_out, cors)
    return _json(400, body_out, cors)


def handle_process(cloud_event, get_service: Callable[[], ProcessService]) -> None:
    """The processor's transport: decode the push message, let errors that mean retry raise."""
    message = (cloud_event.data or {}).get("message") or {}
    attributes = message.get("attributes") or {}
    if attributes.get("kind") == "healthcheck":
        return
    try:
        data = base64.b64decode(message.get("data") or "")
    except (ValueError, TypeError):
        data = b""
    try:
        get_service().process(data, attributes)
    except RelayError as exc:  # transient, token and configuration problems: redeliver
        log.warning("message will be redelivered", component="process",
                    error_type=type(exc).__name__, cause=str(exc))
        raise
