"""A local stand-in for Meta's Graph API ``/{version}/{pixel_id}/events`` edge (stdlib only).

Operators run it to try the relay without a Meta token; tests run it as Meta::

    python -m capi_relay_dev.graph_standin --host 127.0.0.1 --port 8089 [--token TOKEN]

It checks a batch the way Meta documents (Conversions API "Using the API" and "Server Event" /
"Customer Information Parameters" pages) and answers in Graph's error format. One invalid event
rejects the whole batch, as Meta does. Where Meta publishes no rule, the stand-in says so below.

Subcodes: Meta does not publish its 2804xxx table. ``EVENT_TOO_OLD`` (2804003) is the subcode real
responses carry for an ``event_time`` older than the window; ``NO_MATCH_KEYS`` (2804050) is the one
reported for events without customer information. Every other subcode here sits in a 28049xx block
the stand-in owns, so a test can tell the rules apart while ``classify()`` still reads them as
invalid-event errors (code 100, subcode 2804xxx), like Meta's own.

Endpoints besides ``/events``: ``GET /{version}/dataset_quality`` (Meta's Dataset Quality API, see
``dataset_quality``), ``GET /healthz``, ``GET|DELETE /_standin/events`` (accepted events),
``GET|POST /_standin/faults`` (fault injection). Faults are decided before any validation, and a
faulted request records nothing. One JSON line per request goes to stderr: method, path (without
its query string), status, event count and error code; never a token or a user_data value.
"""

from __future__ import annotations

import argparse
import hmac
import ipaddress
import json
import random
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from email import policy as email_policy
from email.parser import BytesParser
from enum import IntEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit

from capi_relay.core.model import HASHED_KEYS, NEVER_HASHED_KEYS, ActionSource

#: "You can send up to 1,000 events in data." (Conversions API, Using the API: Batch Requests)
MAX_EVENTS = 1000
#: "The event_time can be up to 7 days before you send an event." (Server Event parameters)
MAX_AGE_SECONDS = 7 * 86400
#: physical_store: "upload transactions within 62 days of the conversion." (Using the API)
MAX_AGE_PHYSICAL_STORE_SECONDS = 62 * 86400
#: Meta publishes no bound for future event_time; the stand-in allows this much clock skew.
FUTURE_TOLERANCE_SECONDS = 300
MAX_BODY_BYTES = 20 * 1024 * 1024

#: Keys that Meta requires hashed but accepts unhashed anyway ("Hashing recommended").
HASH_OPTIONAL_KEYS = frozenset({"external_id"})
#: A user agent alone is required for website events but identifies no one: not a match key.
NOT_MATCH_KEYS = frozenset({"client_user_agent"})

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# Parameter Builder output: the hash followed by "." and a 2- or 8-character base64url appendix.
_PARAM_BUILDER_HASH = re.compile(r"[0-9a-f]{64}\.(?:[A-Za-z0-9_-]{2}|[A-Za-z0-9_-]{8})")
_ANY_SHA256 = re.compile(r"[0-9A-Fa-f]{64}(?:\.[A-Za-z0-9_-]{2,8})?")
# fb.<subdomain_index>.<creation_time ms>.<fbclid>, optionally with a Parameter Builder appendix.
_FBC = re.compile(r"fb\.\d+\.\d+\.[^.\s]+(?:\.(?:[A-Za-z0-9_-]{2}|[A-Za-z0-9_-]{8}))?")
_EVENTS_PATH = re.compile(r"^/(v\d+\.\d+)/([^/]+)/events/?$")
_DATASET_QUALITY_PATH = re.compile(r"^/(v\d+\.\d+)/dataset_quality/?$")


class Subcode(IntEnum):
    """error_subcode values the stand-in answers with (code 100, "Invalid parameter")."""

    EVENT_TOO_OLD = 2804003          # as Meta answers
    NO_MATCH_KEYS = 2804050          # as reported for events with no customer information
    MISSING_PARAMETER = 2804901      # stand-in's own from here on
    INVALID_PARAMETER = 2804902
    EVENT_IN_FUTURE = 2804903
    INVALID_ACTION_SOURCE = 2804904
    WEBSITE_PARAMETERS = 2804905
    NOT_HASHED = 2804906
    MUST_NOT_BE_HASHED = 2804907
    INVALID_FBC = 2804908
    INVALID_IP = 2804909


@dataclass(frozen=True)
class Rejection:
    """An error answer in Graph's format; messages name fields and indexes, never values."""

    http_status: int
    code: int
    message: str
    subcode: int | None = None
    title: str | None = None
    user_msg: str | None = None
    error_type: str = "OAuthException"
    is_transient: bool = False

    def body(self, fbtrace_id: str) -> dict[str, Any]:
        error: dict[str, Any] = {
            "message": self.message, "type": self.error_type, "code": self.code,
        }
        if self.subcode is not None:
            error["error_subcode"] = int(self.subcode)
        error["is_transient"] = self.is_transient
        if self.title:
            error["error_user_title"] = self.title
        if self.user_msg:
            error["error_user_msg"] = self.user_msg
        error["fbtrace_id"] = fbtrace_id
        return {"error": error}


def _invalid(subcode: Subcode, index: int, title: str, detail: str) -> Rejection:
    return Rejection(
        http_status=400, code=100, message="Invalid parameter", subcode=subcode, title=title,
        user_msg=f"The event at index {index} is invalid: {detail}",
    )


# --- token -------------------------------------------------------------------------------------

MISSING_TOKEN = Rejection(400, 104, "An access token is required to request this resource.")
INVALID_TOKEN = Rejection(400, 190, "Invalid OAuth access token - Cannot parse access token")
EXPIRED_TOKEN = Rejection(
    400, 190, "Error validating access token: Session has expired.", subcode=463,
)
SERVICE_UNAVAILABLE = Rejection(
    503, 2, "(#2) Service temporarily unavailable", is_transient=True,
)
USER_REQUEST_LIMIT = Rejection(
    400, 17, "(#17) User request limit reached", subcode=2446079, is_transient=True,
    title="User request limit reached",
)


def check_token(token: str | None, expected: str | None) -> Rejection | None:
    if not token:
        return MISSING_TOKEN
    if expected is not None and not hmac.compare_digest(token.encode(), expected.encode()):
        return INVALID_TOKEN
    return None


# --- batch and events --------------------------------------------------------------------------

def check_batch(data: Any, *, now: float,
                future_tolerance: float = FUTURE_TOLERANCE_SECONDS) -> Rejection | None:
    """Meta's request-level rules, then each event's; the first broken rule rejects the batch."""
    if data is None:
        return Rejection(400, 100, "(#100) The parameter data is required")
    if not isinstance(data, list) or not data:
        return Rejection(400, 100, "(#100) Param data must be a non-empty array of server events")
    if len(data) > MAX_EVENTS:
        return Rejection(
            400, 100, f"(#100) Param data must be an array with at most {MAX_EVENTS} elements",
        )
    for index, event in enumerate(data):
        problem = check_event(event, index, now=now, future_tolerance=future_tolerance)
        if problem is not None:
            return problem
    return None


def check_event(event: Any, index: int, *, now: float,
                future_tolerance: float = FUTURE_TOLERANCE_SECONDS) -> Rejection | None:
    if not isinstance(event, dict):
        return _invalid(Subcode.INVALID_PARAMETER, index, "Invalid event", "not an object")
    name = event.get("event_name")
    if not isinstance(name, str) or not name.strip():
        return _invalid(Subcode.MISSING_PARAMETER, index, "Missing event_name",
                        "event_name is required")

    event_time = event.get("event_time")
    if event_time is None:
        return _invalid(Subcode.MISSING_PARAMETER, index, "Missing event_time",
                        "event_time is required")
    if isinstance(event_time, bool) or not isinstance(event_time, int):
        return _invalid(Subcode.INVALID_PARAMETER, index, "Invalid event_time",
                        "event_time must be a Unix timestamp in seconds")

    action_source = event.get("action_source")
    if action_source is None:
        return _invalid(Subcode.MISSING_PARAMETER, index, "Missing action_source",
                        "action_source is required")
    if action_source not in {source.value for source in ActionSource}:
        return _invalid(Subcode.INVALID_ACTION_SOURCE, index, "Invalid action_source",
                        "action_source is not one of the documented values")

    max_age = (MAX_AGE_PHYSICAL_STORE_SECONDS if action_source == ActionSource.PHYSICAL_STORE.value
               else MAX_AGE_SECONDS)
    if now - event_time > max_age:
        return _invalid(Subcode.EVENT_TOO_OLD, index, "Event Timestamp Too Old",
                        f"event_time is more than {max_age // 86400} days in the past")
    if event_time - now > future_tolerance:
        return _invalid(Subcode.EVENT_IN_FUTURE, index, "Event Timestamp In The Future",
                        "event_time is in the future")

    user_data = event.get("user_data")
    if user_data is None:
        return _invalid(Subcode.MISSING_PARAMETER, index, "Missing user_data",
                        "user_data is required")
    if not isinstance(user_data, dict):
        return _invalid(Subcode.INVALID_PARAMETER, index, "Invalid user_data",
                        "user_data must be an object")

    if action_source == ActionSource.WEBSITE.value:
        url = event.get("event_source_url")
        if not isinstance(url, str) or not url.strip():
            return _invalid(Subcode.WEBSITE_PARAMETERS, index, "Missing event_source_url",
                            "event_source_url is required for website events")
        agent = user_data.get("client_user_agent")
        if not isinstance(agent, str) or not agent.strip():
            return _invalid(Subcode.WEBSITE_PARAMETERS, index, "Missing client_user_agent",
                            "user_data.client_user_agent is required for website events")

    return _check_user_data(user_data, index)


def _check_user_data(user_data: dict[str, Any], index: int) -> Rejection | None:
    for key in HASHED_KEYS:
        if key not in user_data or user_data[key] in (None, "", []):
            continue
        values = user_data[key] if isinstance(user_data[key], list) else [user_data[key]]
        for value in values:
            if not isinstance(value, str) or not value:
                return _invalid(Subcode.INVALID_PARAMETER, index, f"Invalid {key}",
                                f"user_data.{key} must be a string or a list of strings")
            if key in HASH_OPTIONAL_KEYS:
                continue
            if not (_SHA256_HEX.fullmatch(value) or _PARAM_BUILDER_HASH.fullmatch(value)):
                return _invalid(Subcode.NOT_HASHED, index, f"Unhashed {key}",
                                f"user_data.{key} must be a lowercase SHA-256 hex digest")

    for key in NEVER_HASHED_KEYS:
        value = user_data.get(key)
        if value in (None, ""):
            continue
        if not isinstance(value, str):
            return _invalid(Subcode.INVALID_PARAMETER, index, f"Invalid {key}",
                            f"user_data.{key} must be a string")
        if _ANY_SHA256.fullmatch(value):
            return _invalid(Subcode.MUST_NOT_BE_HASHED, index, f"Hashed {key}",
                            f"user_data.{key} must not be hashed")

    fbc = user_data.get("fbc")
    if fbc and not _FBC.fullmatch(fbc):
        return _invalid(Subcode.INVALID_FBC, index, "Invalid fbc",
                        "user_data.fbc must look like "
                        "fb.<subdomain_index>.<creation_time>.<fbclid>")
    ip = user_data.get("client_ip_address")
    if ip:
        try:
            ipaddress.ip_address(ip)
        except ValueError:
            return _invalid(Subcode.INVALID_IP, index, "Invalid client_ip_address",
                            "user_data.client_ip_address must be an IPv4 or IPv6 address")

    match_keys = [
        key for key in (*HASHED_KEYS, *NEVER_HASHED_KEYS)
        if key not in NOT_MATCH_KEYS and user_data.get(key) not in (None, "", [])
    ]
    if not match_keys:
        return _invalid(Subcode.NO_MATCH_KEYS, index, "Missing customer information",
                        "user_data carries no customer information parameter")
    return None


def check_marker(data: list[Any], marker: str) -> Rejection | None:
    """The reject_marker fault: events carrying custom_data[marker] are invalid."""
    for index, event in enumerate(data):
        custom = event.get("custom_data") if isinstance(event, dict) else None
        if isinstance(custom, dict) and marker in custom:
            return _invalid(Subcode.INVALID_PARAMETER, index, "Invalid parameter",
                            f"custom_data.{marker} is not accepted")
    return None


# --- Dataset Quality API -------------------------------------------------------------------------
#
# Meta's Dataset Quality API (Conversions API > Dataset Quality API):
#   GET /{version}/dataset_quality?dataset_id={PIXEL_ID}&fields=web{event_match_quality,event_name}
# answers {"web": [{"event_name": ..., "event_match_quality": {"composite_score": 0-10,
# "match_key_feedback": [{"identifier": ..., "coverage": {"percentage": ...}}]}}]}.
# Event Match Quality exists for web events only (Meta: "EMQ is currently available only for web
# events"), so only action_source=website events count here. Meta does not publish how the
# composite score is computed: the weights below are the stand-in's own, to give a plausible
# 0-10 number that rises with the keys sent. The identifier names are those seen in responses
# quoted by integrators (ip_address, user_agent, ...), not a published list.

#: CAPI user_data key -> match_key_feedback identifier
DQ_IDENTIFIERS = {
    "em": "email", "ph": "phone", "fn": "first_name", "ln": "last_name", "ge": "gender",
    "db": "date_of_birth", "ct": "city", "st": "state", "zp": "zip", "country": "country",
    "external_id": "external_id", "client_ip_address": "ip_address",
    "client_user_agent": "user_agent", "fbc": "fbc", "fbp": "fbp",
}
#: the stand-in's own composite-score weights (per share of events carrying the key)
_DQ_WEIGHTS = {
    "em": 3.0, "ph": 2.0, "external_id": 1.0, "fbp": 1.0, "fbc": 1.0, "client_ip_address": 0.75,
    "client_user_agent": 0.25, "fn": 0.25, "ln": 0.25, "ct": 0.25, "st": 0.1, "zp": 0.25,
    "country": 0.1, "db": 0.1, "ge": 0.1,
}
PERMISSION_DENIED = Rejection(
    400, 10, "(#10) Application does not have permission for this action",
)


def dataset_quality(events: list[dict[str, Any]]) -> dict[str, Any]:
    """The Dataset Quality API's ``web`` answer, from accepted events."""
    by_name: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        if event.get("action_source") == ActionSource.WEBSITE.value:
            by_name.setdefault(str(event.get("event_name")), []).append(
                event.get("user_data") or {})
    web = []
    for name in sorted(by_name):
        users = by_name[name]
        shares = {key: sum(1 for u in users if u.get(key) not in (None, "", [])) / len(users)
                  for key in DQ_IDENTIFIERS}
        score = min(10.0, sum(_DQ_WEIGHTS[key] * share for key, share in shares.items()))
        web.append({
            "event_name": name,
            "event_match_quality": {
                "composite_score": round(score, 1),
                "match_key_feedback": [
                    {"identifier": DQ_IDENTIFIERS[key],
                     "coverage": {"percentage": round(share * 100, 1)}}
                    for key, share in shares.items() if share > 0
                ],
            },
        })
    return {"web": web}


# --- faults ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Faults:
    """Fault injection; decided per ``/events`` request before validation, deterministic by seed."""

    error_rate_5xx: float = 0.0
    throttle_rate: float = 0.0
    expired_token_first_n: int = 0
    seed: int | None = None
    #: an event whose custom_data has this key is invalid (Meta rejects its whole batch)
    reject_marker: str | None = None
    #: seconds to wait before answering an /events request (a slow Meta; crash tests)
    delay_seconds: float = 0.0
    #: the Dataset Quality API answers a permission error (a token without ads_read)
    dataset_quality_denied: bool = False

    def __post_init__(self) -> None:
        for name in ("error_rate_5xx", "throttle_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) \
                    or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number within [0, 1]")
        n = self.expired_token_first_n
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError("expired_token_first_n must be an integer >= 0")
        seed = self.seed
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise ValueError("seed must be an integer or null")
        if not isinstance(self.dataset_quality_denied, bool):
            raise ValueError("dataset_quality_denied must be true or false")


# --- server ------------------------------------------------------------------------------------

class GraphStandin:
    """The stand-in server; ``start()`` serves on a background thread, ``stop()`` shuts it down."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        expected_token: str | None = None,
        clock: Callable[[], float] = time.time,
        *,
        error_rate_5xx: float = 0.0,
        throttle_rate: float = 0.0,
        expired_token_first_n: int = 0,
        seed: int | None = None,
        future_tolerance: float = FUTURE_TOLERANCE_SECONDS,
        log: TextIO | None = None,
        pixel_tokens: dict[str, str] | None = None,
    ) -> None:
        self.expected_token = expected_token
        #: per pixel, the only token its /events edge accepts (others: ``expected_token``), as
        #: Meta accepts a token only for the datasets its system user may use
        self._pixel_tokens = dict(pixel_tokens or {})
        self.clock = clock
        self.future_tolerance = future_tolerance
        self._log = log
        self._lock = threading.Lock()
        self._accepted: list[dict[str, Any]] = []
        self._accepted_pixels: list[str] = []  # the pixel each accepted event was sent to
        self._seen: set[tuple[Any, Any, Any]] = set()
        self._in_flight: set[Any] = set()
        self._duplicates = 0
        self._request_lines: list[str] = []
        self._requests = 0
        self._connections = 0
        self._faults = Faults(error_rate_5xx, throttle_rate, expired_token_first_n, seed)
        self._rng = random.Random(seed)
        self._expired_left = expired_token_first_n
        handler = type("GraphStandinHandler", (_Handler,), {"standin": self})
        self._server = ThreadingHTTPServer((host, port), handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._serving = False
        self._closed = False

    # -- lifecycle

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        host = f"[{host}]" if ":" in str(host) else host
        return f"http://{host}:{port}"

    def start(self) -> "GraphStandin":
        if self._thread is None:
            self._serving = True
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                name="graph-standin", daemon=True,
            )
            self._thread.start()
        return self

    def serve_forever(self) -> None:
        """Serve on the calling thread (the command line uses this)."""
        self._serving = True
        self._server.serve_forever(poll_interval=0.2)

    def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._serving:
            self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> "GraphStandin":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"GraphStandin(url={self.url!r}, accepted={len(self._accepted)})"

    # -- state

    @property
    def accepted(self) -> list[dict[str, Any]]:
        """A copy of the accepted events, oldest first (``test_event_code`` added when given)."""
        with self._lock:
            return list(self._accepted)

    def accepted_by_pixel(self) -> dict[str, list[dict[str, Any]]]:
        """The accepted events per pixel id, oldest first."""
        with self._lock:
            out: dict[str, list[dict[str, Any]]] = {}
            for pixel, record in zip(self._accepted_pixels, self._accepted, strict=True):
                out.setdefault(pixel, []).append(record)
            return out

    def set_pixel_token(self, pixel_id: str, token: str | None) -> None:
        """The token ``pixel_id``'s edge accepts from now on (None: ``expected_token``)."""
        with self._lock:
            if token is None:
                self._pixel_tokens.pop(pixel_id, None)
            else:
                self._pixel_tokens[pixel_id] = token

    @property
    def requests(self) -> int:
        with self._lock:
            return self._requests

    @property
    def connections(self) -> int:
        """TCP connections accepted so far (keep-alive clients reuse one)."""
        with self._lock:
            return self._connections

    @property
    def request_lines(self) -> list[str]:
        """Raw HTTP request lines as received, for tests; kept in memory only, never logged."""
        with self._lock:
            return list(self._request_lines)

    @property
    def faults(self) -> Faults:
        with self._lock:
            return self._faults

    @property
    def in_flight(self) -> set[Any]:
        """event_ids of requests being held by the delay_seconds fault."""
        with self._lock:
            return set(self._in_flight)

    @property
    def duplicates(self) -> int:
        """Accepted events Meta would have dropped as duplicates (same event_name, event_id)."""
        with self._lock:
            return self._duplicates

    def clear(self) -> int:
        with self._lock:
            cleared = len(self._accepted)
            self._accepted.clear()
            self._accepted_pixels.clear()
            self._seen.clear()
            self._duplicates = 0
            return cleared

    def set_faults(self, **changes: Any) -> Faults:
        """Change fault settings; a new seed restarts the random sequence, a new
        ``expired_token_first_n`` counts from the next request."""
        with self._lock:
            faults = replace(self._faults, **changes)
            self._faults = faults
            if "seed" in changes:
                self._rng = random.Random(faults.seed)
            if "expired_token_first_n" in changes:
                self._expired_left = faults.expired_token_first_n
            return faults

    # -- request handling

    def _handle(self, handler: "_Handler", method: str) -> None:
        with self._lock:
            self._requests += 1
            self._request_lines.append(handler.requestline)
        target = urlsplit(handler.path)
        path = target.path
        status, body, note = 500, {}, {}
        try:
            raw = handler.read_body()
            if raw is None:
                status, body = 411, {"error": {"message": "Content-Length required", "code": 100}}
            else:
                status, body, note = self._route(method, path, target.query, raw, handler)
        except _BodyTooLarge:
            status, body = 413, {"error": {"message": "Request body too large", "code": 100}}
        except Exception as exc:  # a stand-in bug must answer, not hang the client
            status, body = 500, {"error": {"message": f"stand-in error: {type(exc).__name__}",
                                           "code": 1, "is_transient": True}}
        self._log_line(method, path, status, note)  # before answering: a reader sees it at once
        handler.send_json(status, body)

    def _route(self, method: str, path: str, query: str, raw: bytes,
               handler: "_Handler") -> tuple[int, Any, dict[str, Any]]:
        if path == "/healthz" and method == "GET":
            return 200, {"status": "ok"}, {}
        if path == "/_standin/events":
            if method == "GET":
                return 200, self.accepted, {}
            if method == "DELETE":
                return 200, {"cleared": self.clear()}, {}
        if path == "/_standin/faults":
            if method == "GET":
                return 200, asdict(self.faults), {}
            if method == "POST":
                return self._post_faults(raw)
        if _DATASET_QUALITY_PATH.match(path) and method == "GET":
            return self._get_dataset_quality(parse_qs(query), handler)
        match = _EVENTS_PATH.match(path)
        if match and method == "POST":
            content_type = handler.headers.get("Content-Type", "")
            return self._post_events(raw, content_type, parse_qs(query), match.group(2))
        if match:
            return 400, Rejection(400, 100, f"Unsupported {method.lower()} request.").body(
                _fbtrace_id()), {"code": 100}
        return 404, Rejection(404, 2500, "Unknown path components").body(_fbtrace_id()), \
            {"code": 2500}

    def _post_faults(self, raw: bytes) -> tuple[int, Any, dict[str, Any]]:
        try:
            changes = json.loads(raw or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("body must be a JSON object")
            unknown = set(changes) - set(Faults.__dataclass_fields__)
            if unknown:
                raise ValueError(f"unknown fault settings: {sorted(unknown)}")
            faults = self.set_faults(**changes)
        except (ValueError, TypeError) as exc:
            return 400, {"error": {"message": str(exc), "code": 100}}, {}
        return 200, asdict(faults), {}

    def _post_events(self, raw: bytes, content_type: str, query: dict[str, list[str]],
                     pixel_id: str = "") -> tuple[int, Any, dict[str, Any]]:
        fault = self._decide_fault()
        if fault is not None:
            rejection, name = fault
            return rejection.http_status, rejection.body(_fbtrace_id()), {
                "code": rejection.code, "subcode": rejection.subcode, "fault": name}

        payload = _parse_payload(raw, content_type)
        if payload is None:
            rejection = Rejection(400, 100, "(#100) Could not parse the request body")
            return 400, rejection.body(_fbtrace_id()), {"code": 100}

        token = payload.get("access_token") or _first(query, "access_token")
        data = payload.get("data")
        if isinstance(data, str):
            try:
                data = json.loads(data)
            except ValueError:
                data = "unparseable"
        test_event_code = payload.get("test_event_code") or _first(query, "test_event_code")
        count = len(data) if isinstance(data, list) else None
        if self.faults.delay_seconds:  # a slow Meta: the request is in, the answer is not yet
            ids = {e.get("event_id") for e in data if isinstance(e, dict)} \
                if isinstance(data, list) else set()
            with self._lock:
                self._in_flight |= ids
            time.sleep(self.faults.delay_seconds)
            with self._lock:
                self._in_flight -= ids

        with self._lock:
            expected = self._pixel_tokens.get(pixel_id, self.expected_token)
        rejection = check_token(token if isinstance(token, str) else None, expected)
        if rejection is None:
            rejection = check_batch(data, now=self.clock(), future_tolerance=self.future_tolerance)
        if rejection is None and self.faults.reject_marker:
            rejection = check_marker(data, self.faults.reject_marker)
        if rejection is not None:
            return rejection.http_status, rejection.body(_fbtrace_id()), {
                "code": rejection.code, "subcode": rejection.subcode, "events": count}

        assert isinstance(data, list)
        records = [dict(event) for event in data]
        if test_event_code:
            for record in records:
                record["test_event_code"] = str(test_event_code)
        with self._lock:
            self._accepted.extend(records)
            self._accepted_pixels.extend([pixel_id] * len(records))
            for record in records:  # Meta deduplicates on (event_name, event_id), per dataset
                key = (pixel_id, record.get("event_name"), record.get("event_id"))
                if key in self._seen:
                    self._duplicates += 1
                self._seen.add(key)
        body = {"events_received": len(records), "messages": [], "fbtrace_id": _fbtrace_id()}
        return 200, body, {"events": len(records)}

    def _get_dataset_quality(self, query: dict[str, list[str]],
                             handler: "_Handler") -> tuple[int, Any, dict[str, Any]]:
        # Graph takes the token as a query parameter or an "Authorization: OAuth|Bearer" header.
        header = handler.headers.get("Authorization", "")
        scheme, _, credential = header.partition(" ")
        token = credential.strip() if scheme.lower() in ("bearer", "oauth") else None
        token = token or _first(query, "access_token")
        rejection = check_token(token, self.expected_token)
        if rejection is None and self.faults.dataset_quality_denied:
            rejection = PERMISSION_DENIED
        if rejection is None and not re.fullmatch(r"[0-9]+", _first(query, "dataset_id") or ""):
            rejection = Rejection(400, 100, "(#100) The parameter dataset_id is required")
        if rejection is not None:
            return rejection.http_status, rejection.body(_fbtrace_id()), {"code": rejection.code}
        body = dataset_quality(self.accepted)
        return 200, body, {"events": len(body["web"])}

    def _decide_fault(self) -> tuple[Rejection, str] | None:
        with self._lock:
            # Draw both numbers on every request so the sequence depends only on the seed and the
            # number of requests, not on which fault fired.
            draw_5xx, draw_throttle = self._rng.random(), self._rng.random()
            if self._expired_left > 0:
                self._expired_left -= 1
                return EXPIRED_TOKEN, "expired_token"
            if draw_5xx < self._faults.error_rate_5xx:
                return SERVICE_UNAVAILABLE, "5xx"
            if draw_throttle < self._faults.throttle_rate:
                return USER_REQUEST_LIMIT, "throttle"
        return None

    def _log_line(self, method: str, path: str, status: int, note: dict[str, Any]) -> None:
        line = {
            "severity": "INFO" if status < 400 else "WARNING",
            "message": "graph-standin request",
            "method": method,
            "path": path,
            "status": status,
            **{key: value for key, value in note.items() if value is not None},
        }
        stream = self._log if self._log is not None else sys.stderr
        try:
            stream.write(json.dumps(line, default=int) + "\n")
            stream.flush()
        except (OSError, ValueError):
            pass


class _BodyTooLarge(Exception):
    pass


class _Handler(BaseHTTPRequestHandler):
    standin: GraphStandin
    protocol_version = "HTTP/1.1"
    server_version = "graph-standin"
    sys_version = ""
    timeout = 30

    def setup(self) -> None:
        super().setup()
        with self.standin._lock:
            self.standin._connections += 1

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.standin._handle(self, "GET")

    def do_POST(self) -> None:  # noqa: N802
        self.standin._handle(self, "POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.standin._handle(self, "DELETE")

    def read_body(self) -> bytes | None:
        length = self.headers.get("Content-Length")
        if length is None:
            if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
                self.close_connection = True
                return None
            return b""
        size = int(length)
        if size > MAX_BODY_BYTES:
            self.close_connection = True
            raise _BodyTooLarge()
        return self.rfile.read(size)

    def send_json(self, status: int, body: Any) -> None:
        payload = json.dumps(body, default=int).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client went away (a crash test kills it): nobody to answer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # http.server would print the request line, query string and all: that can hold a token.
        return


def _first(query: dict[str, list[str]], key: str) -> str | None:
    values = query.get(key)
    return values[0] if values else None


def _parse_payload(raw: bytes, content_type: str) -> dict[str, Any] | None:
    """JSON, form-encoded or multipart (curl -F, as in Meta's examples) into one flat dict."""
    kind = content_type.split(";", 1)[0].strip().lower()
    if not raw.strip():
        return {}
    try:
        if kind == "application/json":
            payload = json.loads(raw)
            return payload if isinstance(payload, dict) else None
        if kind == "multipart/form-data":
            message = BytesParser(policy=email_policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + raw)
            fields: dict[str, Any] = {}
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name:
                    content = part.get_payload(decode=True) or b""
                    fields[str(name)] = content.decode("utf-8")
            return fields
        form = parse_qs(raw.decode("utf-8"), keep_blank_values=True)
        return {key: values[0] for key, values in form.items()}
    except (ValueError, UnicodeDecodeError):
        return None


def _fbtrace_id() -> str:
    return "A" + secrets.token_urlsafe(16)[:22]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m capi_relay_dev.graph_standin",
        description="Local stand-in for Meta's Graph API /events edge (no Meta account needed).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8089, help="0 picks a free port")
    parser.add_argument("--token", default=None,
                        help="the only access token to accept (default: any non-empty token)")
    parser.add_argument("--error-rate-5xx", type=float, default=0.0)
    parser.add_argument("--throttle-rate", type=float, default=0.0)
    parser.add_argument("--expired-token-first-n", type=int, default=0)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        standin = GraphStandin(
            args.host, args.port, expected_token=args.token,
            error_rate_5xx=args.error_rate_5xx, throttle_rate=args.throttle_rate,
            expired_token_first_n=args.expired_token_first_n, seed=args.seed,
        )
    except ValueError as exc:
        parser.error(str(exc))
    ready = {"severity": "INFO", "message": "graph-standin listening", "url": standin.url}
    print(json.dumps(ready), file=sys.stderr, flush=True)
    try:
        standin.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        standin.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
