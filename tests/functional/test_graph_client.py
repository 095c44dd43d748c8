"""GraphCapiClient against a running stand-in and against sockets that misbehave."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from capi_relay.adapters.graph import GraphCapiClient
from capi_relay.core.graph_outcome import Verdict
from capi_relay_dev.graph_standin import GraphStandin, Subcode

NOW = 1_750_000_000
TOKEN = "EAAclientsecrettoken0123456789abcdef"
PIXEL = "1234567890"


def event(**changes) -> dict:
    base = {
        "event_name": "Lead",
        "event_time": NOW - 10,
        "event_id": "lead-1",
        "action_source": "website",
        "event_source_url": "https://shop.example/form",
        "user_data": {"em": [hashlib.sha256(b"a@b.example").hexdigest()],
                      "client_user_agent": "Mozilla/5.0"},
    }
    base.update(changes)
    return base


@pytest.fixture
def standin():
    with GraphStandin("127.0.0.1", 0, expected_token=TOKEN, clock=lambda: NOW,
                      log=io.StringIO()) as server:
        yield server


@pytest.fixture
def client(standin):
    with GraphCapiClient(standin.url, "v21.0", PIXEL, timeout=5) as graph:
        yield graph


def test_ok(client, standin):
    outcome = client.send([event(), event(event_id="lead-2")], TOKEN, test_event_code="TEST9")
    assert outcome.verdict is Verdict.OK
    assert outcome.events_received == 2 and outcome.fbtrace_id
    assert [e["event_id"] for e in standin.accepted] == ["lead-1", "lead-2"]
    assert {e["test_event_code"] for e in standin.accepted} == {"TEST9"}


def test_token_travels_in_the_body_never_in_the_url(client, standin):
    assert client.send([event()], TOKEN).verdict is Verdict.OK  # the stand-in checked the token
    lines = standin.request_lines
    assert lines == [f"POST /v21.0/{PIXEL}/events HTTP/1.1"]
    assert TOKEN not in repr(client)
    assert not any(TOKEN in value for value in vars(client).values() if isinstance(value, str))


def test_connections_are_reused(client, standin):
    for _ in range(3):
        assert client.send([event()], TOKEN).verdict is Verdict.OK
    assert standin.connections == 1  # one pooled keep-alive connection for all three


def test_invalid_event(client, standin):
    outcome = client.send([event(), event(event_time=NOW - 8 * 86400)], TOKEN)
    assert outcome.verdict is Verdict.INVALID_EVENT
    assert (outcome.http_status, outcome.code, outcome.subcode) == (400, 100, Subcode.EVENT_TOO_OLD)
    assert outcome.user_title == "Event Timestamp Too Old"
    assert standin.accepted == []


def test_wrong_token(standin):
    with GraphCapiClient(standin.url, "v21.0", PIXEL) as graph:
        outcome = graph.send([event()], "not-the-token")
    assert (outcome.verdict, outcome.code) == (Verdict.TOKEN, 190)


def test_empty_token_is_held_without_a_request(client, standin):
    outcome = client.send([event()], "")
    assert outcome.verdict is Verdict.TOKEN
    assert standin.requests == 0


def test_5xx(client, standin):
    standin.set_faults(error_rate_5xx=1.0)
    outcome = client.send([event()], TOKEN)
    assert (outcome.verdict, outcome.http_status, outcome.code) == (Verdict.TRANSIENT, 503, 2)


def test_throttle(client, standin):
    standin.set_faults(throttle_rate=1.0)
    outcome = client.send([event()], TOKEN)
    assert (outcome.verdict, outcome.code) == (Verdict.THROTTLED, 17)
    assert outcome.to_error() is not None


def test_expired_token(client, standin):
    standin.set_faults(expired_token_first_n=1)
    first, second = client.send([event()], TOKEN), client.send([event()], TOKEN)
    assert (first.verdict, first.code, first.subcode) == (Verdict.TOKEN, 190, 463)
    assert second.verdict is Verdict.OK


# --- transport failures --------------------------------------------------------------------------

def test_timeout_against_a_socket_that_never_answers():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)  # the kernel accepts the connection; nobody ever reads or answers
    port = listener.getsockname()[1]
    try:
        with GraphCapiClient(f"http://127.0.0.1:{port}", "v21.0", PIXEL, timeout=0.3) as graph:
            started = time.monotonic()
            outcome = graph.send([event()], TOKEN)
            elapsed = time.monotonic() - started
    finally:
        listener.close()
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.http_status is None and outcome.message == "transport error: ReadTimeout"
    assert elapsed < 2.0


def test_connection_refused_on_a_closed_port():
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    port = probe.getsockname()[1]
    probe.close()
    with GraphCapiClient(f"http://127.0.0.1:{port}", "v21.0", PIXEL, timeout=1) as graph:
        outcome = graph.send([event()], TOKEN)
    assert outcome.verdict is Verdict.TRANSIENT
    assert outcome.message == "transport error: ConnectionError"


class _Capture:
    """A tiny server that answers every request with a fixed status and body, and keeps what
    it received (request line and body) so tests can look at the wire."""

    def __init__(self, status: int, body: bytes, content_type: str = "text/html"):
        captured: list[tuple[str, bytes]] = []
        self.captured = captured

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                length = int(self.headers.get("Content-Length", 0))
                captured.append((self.requestline, self.rfile.read(length)))
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()


def test_5xx_without_a_graph_body_and_what_goes_on_the_wire():
    with _Capture(502, b"<html>Bad Gateway</html>") as capture:
        with GraphCapiClient(capture.url + "/", "v21.0", PIXEL) as graph:
            outcome = graph.send([event()], TOKEN, test_event_code="TEST1")
    assert (outcome.verdict, outcome.http_status, outcome.code) == (Verdict.TRANSIENT, 502, None)
    [(request_line, raw)] = capture.captured
    assert request_line == f"POST /v21.0/{PIXEL}/events HTTP/1.1"
    body = json.loads(raw)
    assert body == {"data": [event()], "access_token": TOKEN, "test_event_code": "TEST1"}


def test_unexpected_4xx_page_is_permanent():
    with _Capture(404, b"not here") as capture:
        with GraphCapiClient(capture.url, "v21.0", PIXEL) as graph:
            outcome = graph.send([event()], TOKEN)
    assert outcome.verdict is Verdict.PERMANENT


def test_throttle_hint_from_usage_header():
    body = json.dumps({"error": {"code": 80004, "message": "too many calls"}}).encode()

    with _Capture(400, body, "application/json") as capture:
        original = capture.server.RequestHandlerClass.end_headers

        def end_headers(handler):
            handler.send_header("X-Business-Use-Case-Usage", json.dumps(
                {PIXEL: [{"type": "ads_management", "estimated_time_to_regain_access": 3}]}))
            original(handler)

        capture.server.RequestHandlerClass.end_headers = end_headers
        with GraphCapiClient(capture.url, "v21.0", PIXEL) as graph:
            outcome = graph.send([event()], TOKEN)
    assert (outcome.verdict, outcome.retry_after) == (Verdict.THROTTLED, 180.0)


def test_rejects_a_non_positive_timeout():
    with pytest.raises(ValueError):
        GraphCapiClient("http://127.0.0.1:1", "v21.0", PIXEL, timeout=0)
