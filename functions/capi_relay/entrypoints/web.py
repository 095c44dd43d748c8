"""HTTP and Pub/Sub transport for the entry points: requests in, service calls, statuses out."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from functools import cache
from pathlib import Path
from typing import Any, Callable

from capi_relay import log
from capi_relay.app.ingest import IngestService, RequestContext
from capi_relay.app.keys import Gate
from capi_relay.app.process import ProcessService
from capi_relay.app.pull import PullService
from capi_relay.core import collect
from capi_relay.core.auth import AuthDecision, Source
from capi_relay.core.errors import ConfigurationError, KeysUnavailable, PublishFailed, RelayError
from capi_relay.core.meta_rules import MAX_EVENTS_PER_REQUEST

MAX_BODY_BYTES = 1_000_000
JSON_HEADERS = {"Content-Type": "application/json"}
TAG_FILE = Path(__file__).resolve().parent / "static" / "tag.js"
#: a public script: any site may load it, caches may keep it for an hour
TAG_HEADERS = {"Content-Type": "application/javascript; charset=utf-8",
               "Cache-Control": "public, max-age=3600", "Vary": "Accept-Encoding",
               "Access-Control-Allow-Origin": "*",
               "Cross-Origin-Resource-Policy": "cross-origin"}


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
    # headers read from the WSGI environ, as request.headers reads them, without its lookup
    # machinery; cookies parsed only when there are some (a tag's fetch often sends none)
    environ = request.environ
    forwarded = environ.get("HTTP_X_FORWARDED_FOR", "")
    ip = forwarded.split(",")[0].strip() if forwarded.strip() else request.remote_addr
    cookies = request.cookies if "HTTP_COOKIE" in environ else {}
    return RequestContext(ip=ip or None, user_agent=environ.get("HTTP_USER_AGENT") or None,
                          fbp=cookies.get("_fbp") or None, fbc=cookies.get("_fbc") or None)


def _no_constants(name: str):
    raise ValueError(f"{name} is not JSON")  # NaN and Infinity: Python accepts them, JSON does not


def parse_events(body: bytes) -> tuple[list[Any] | None, str | None]:
    """The events in a body, or an error message. A body is one event object, a list of them,
    the relay's own ``{"events": [...]}``, or a GA4 Measurement Protocol body
    (``{client_id, user_id, user_data, events: [{name, params}]}``), which becomes one event
    per ``events[]`` entry.

    Bytes that are not UTF-8 inside a string do not fail the body: they are decoded as lone
    surrogates, which the mapper drops with the one field that holds them.
    """
    try:
        data = json.loads(body.decode("utf-8", errors="surrogateescape"),
                          parse_constant=_no_constants)
    except (ValueError, RecursionError):
        return None, "body: not valid JSON"
    if isinstance(data, dict) and isinstance(data.get("events"), list):
        data = ga4_mp_events(data) if is_ga4_mp(data) else data["events"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return None, "body: must be an event object, a list of events, or {\"events\": [...]}"
    if not data:
        return None, "events: empty"
    return data, None


#: GA4 Measurement Protocol body keys that hold for every event in it
#: (developers.google.com/analytics/devguides/collection/protocol/ga4/reference)
_MP_BODY_KEYS = ("client_id", "app_instance_id", "user_id", "user_data", "user_properties",
                 "consent", "non_personalized_ads", "ip_override", "user_location", "device",
                 "user_agent")
_MP_EVENT_KEYS = frozenset({"name", "params", "timestamp_micros"})


def is_ga4_mp(data: dict[str, Any]) -> bool:
    """A Measurement Protocol body, not the relay's own ``{"events": [...]}`` batch: it names
    its client (client_id / app_instance_id), or its events are ``{name, params}`` entries."""
    if "client_id" in data or "app_instance_id" in data:
        return True
    events = data.get("events") or []
    return bool(events) and all(isinstance(e, dict) and "name" in e and "event_name" not in e
                                and e.keys() <= _MP_EVENT_KEYS for e in events)


def ga4_mp_events(data: dict[str, Any]) -> list[Any]:
    """One event per ``events[]`` entry: its params, its name, and the body's shared keys."""
    out: list[Any] = []
    for entry in data["events"]:
        if not isinstance(entry, dict):
            out.append(entry)  # the mapper names what is wrong with it
            continue
        params = entry.get("params")
        event: dict[str, Any] = dict(params) if isinstance(params, dict) else {}
        event["event_name"] = entry.get("name")
        for key in _MP_BODY_KEYS:
            if key in data and key not in event:
                event[key] = data[key]
        stamp = entry.get("timestamp_micros", data.get("timestamp_micros"))
        if stamp is not None and "event_time" not in event:
            event["timestamp_micros"] = stamp
        out.append(event)
    return out


def authenticate(request, get_gate: Callable[[], Gate] | None, *,
                 collect_get: bool = False) -> AuthDecision:
    """core.auth's verdict on this request (accepted when no gate is wired)."""
    if get_gate is None:
        return AuthDecision(0, "open", Source.OPEN)
    environ = request.environ
    return get_gate().decide(authorization=environ.get("HTTP_AUTHORIZATION"),
                             origin=environ.get("HTTP_ORIGIN"),
                             referer=environ.get("HTTP_REFERER"), collect_get=collect_get)


def _refusal(decision: AuthDecision, path: str) -> None:
    log.warning("request refused", component="ingest", http_status=decision.status,
                reason=decision.reason, url=path)


def handle_ingest(request, get_service: Callable[[], IngestService],
                  allowed_origins: Callable[[], tuple[str, ...]],
                  ready: Callable[[], bool], get_gate: Callable[[], Gate] | None = None):
    """The ingest function's whole HTTP surface."""
    try:
        origins = allowed_origins()
        if get_gate is not None:
            get_gate()  # built on the first request of any kind: the open-endpoint warning
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return _json(503, {"error": str(exc)})
    cors = cors_headers(request.environ.get("HTTP_ORIGIN"), origins)
    path = request.path.rstrip("/")

    if request.method == "OPTIONS":
        if not cors:
            return "", 403, {}
        return "", 204, {**cors, "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
                         "Access-Control-Allow-Headers": "Content-Type, Authorization",
                         "Access-Control-Max-Age": "3600"}
    if path.endswith("/tag.js"):
        return tag_script(request)
    if path.endswith("/g/collect"):
        return handle_collect(request, get_service, cors, get_gate)
    if request.method == "GET" and path.endswith("/healthz"):
        try:
            ok = ready()
        except ConfigurationError as exc:
            log.error("misconfigured", component="ingest", reason=str(exc))
            ok = False
        return _json(200 if ok else 503, {"status": "ok" if ok else "not ready"},
                     {"Cache-Control": "no-store"})
    if request.method != "POST":
        return _json(405, {"error": "method: use POST"}, {"Allow": "POST, OPTIONS", **cors})
    try:
        decision = authenticate(request, get_gate)
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return _json(503, {"error": str(exc)}, cors)
    except KeysUnavailable:
        return _json(503, {"error": "source keys unavailable, retry later"},
                     {"Retry-After": "10", **cors})
    if not decision.accepted:
        _refusal(decision, path or "/")
        extra = {"WWW-Authenticate": 'Bearer realm="capi-relay"'} \
            if decision.status == 401 else {}
        return _json(decision.status, {"error": decision.reason}, {**extra, **cors})

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
        result = get_service().ingest(events, request_context(request),
                                      allowed_events=decision.allowed_events,
                                      source=decision.key_name)
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


@cache
def _tag_variants() -> dict[str, tuple[bytes, str]]:
    """tag.js as served, plain and gzipped, each with its ETag; read once per instance."""
    plain = TAG_FILE.read_bytes()
    digest = hashlib.sha256(plain).hexdigest()[:20]
    return {"identity": (plain, f'"{digest}"'),
            "gzip": (gzip.compress(plain, compresslevel=9, mtime=0), f'"{digest}-gz"')}


def _accepts_gzip(request) -> bool:
    return any(part.split(";")[0].strip() == "gzip"
               for part in request.headers.get("Accept-Encoding", "").split(","))


def tag_script(request):
    """GET /tag.js: the browser tag, cacheable, revalidated by ETag."""
    if request.method not in ("GET", "HEAD"):
        return "", 405, {"Allow": "GET, HEAD"}
    encoding = "gzip" if _accepts_gzip(request) else "identity"
    body, etag = _tag_variants()[encoding]
    headers = {**TAG_HEADERS, "ETag": etag}
    if encoding == "gzip":
        headers["Content-Encoding"] = "gzip"
    candidates = {tag.strip().removeprefix("W/")
                  for tag in request.headers.get("If-None-Match", "").split(",")}
    if etag in candidates or "*" in candidates:
        return "", 304, headers
    return body, 200, headers


def handle_collect(request, get_service: Callable[[], IngestService], cors: dict[str, str],
                   get_gate: Callable[[], Gate] | None = None):
    """GET|POST /g/collect: GA4 hits from gtag.js, answered as GA4 does (204, no body).

    Bad input is the page's problem, never the page's failure: it is logged by field name and
    still answered 2xx. Only a queue that cannot take the events answers 503 (no body).
    """
    headers = {**cors, "Cache-Control": "no-store"}
    if request.method not in ("GET", "POST"):
        return "", 405, {"Allow": "GET, POST, OPTIONS", **cors}
    try:
        decision = authenticate(request, get_gate, collect_get=request.method == "GET")
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return "", 503, headers
    except KeysUnavailable:
        return "", 503, {"Retry-After": "10", **headers}
    if not decision.accepted:  # a refusal is the one answer a page gets that is not 2xx/503
        _refusal(decision, "/g/collect")
        return "", decision.status, headers
    try:
        body = b""
        if request.method == "POST":
            body = request.stream.read(MAX_BODY_BYTES + 1)
            if len(body) > MAX_BODY_BYTES:
                log.warning("collect hit ignored", component="ingest", fields=["body"],
                            reason="larger than the limit")
                return "", 204, headers
        query = request.query_string.decode("utf-8", errors="replace")
        hits = collect.parse_collect(query, body, max_events=MAX_EVENTS_PER_REQUEST)
        if hits.problems:
            log.warning("collect hit fields ignored", component="ingest",
                        fields=list(hits.problems))
        if not hits.events:
            return "", 204, headers
        result = get_service().ingest(list(hits.events), request_context(request),
                                      allowed_events=decision.allowed_events,
                                      source=decision.key_name)
    except PublishFailed as exc:
        log.error("publish failed", component="ingest", cause=str(exc))
        return "", 503, {"Retry-After": "5", **headers}
    except ConfigurationError as exc:
        log.error("misconfigured", component="ingest", reason=str(exc))
        return "", 503, headers
    except Exception as exc:  # a GA4 endpoint never answers a page with a 500
        log.error("collect hit failed", component="ingest", error_type=type(exc).__name__)
        return "", 204, headers
    if result.rejected:
        log.warning("collect events rejected", component="ingest",
                    reasons=sorted({e for r in result.rejected for e in r["errors"]}))
    return "", 204, headers


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


def handle_pull(request, get_service: Callable[[], PullService]):
    """POST from Cloud Scheduler: one puller run. 200 with counts (no event data); 503 when
    the subscription or the settings fail (Cloud Scheduler records the failure; what was not
    acknowledged is delivered again)."""
    if request.method != "POST":
        return "", 405, {"Allow": "POST"}
    try:
        report = get_service().run()
    except ConfigurationError as exc:
        log.error("misconfigured", component="process", reason=str(exc))
        return _json(503, {"error": "misconfigured"})
    except RelayError as exc:
        log.error("pull run failed", component="process", error_type=type(exc).__name__)
        return _json(503, {"error": type(exc).__name__})
    return _json(200, report.summary())
