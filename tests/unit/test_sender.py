"""The Graph sender alone: per-event deliveries, token re-read, in-call retries, bisection."""

import pytest

from capi_relay.app.sender import MAX_IN_CALL_WAIT_SECONDS, GraphSender, SenderConfig
from capi_relay.core.delivery import DeadReason, Hold, Outcome
from capi_relay.core.model import ActionSource, CapiEvent
from fakes import FakeSecret, ScriptedGraph, graph_error


def events(n):
    return [CapiEvent("Lead", 1_732_450_000, f"e{i}", ActionSource.SYSTEM_GENERATED)
            for i in range(n)]


def sender(answer=None, secret=None, retries=2):
    waits = []
    return GraphSender(ScriptedGraph(answer), secret or FakeSecret(),
                       SenderConfig(test_event_code="TEST1", in_call_retries=retries),
                       sleep=waits.append), waits


def test_one_request_per_thousand_events_each_sent_with_the_trace_id():
    s, _ = sender()
    out = s.send(events(2500))
    assert [len(c[0]) for c in s.client.calls] == [1000, 1000, 500] and s.requests == 3
    assert {(d.outcome, d.fbtrace_id) for d in out} == {(Outcome.SENT, "Ftrace")}
    assert len(out) == 2500


def test_bisection_isolates_the_refused_events_and_keeps_their_codes():
    bad = {"e3", "e11"}

    def answer(batch, token):
        if bad & {e["event_id"] for e in batch}:
            return graph_error(100, 2804050)
        return 200, {"events_received": len(batch)}

    s, _ = sender(answer)
    out = s.send(events(16))
    dead = {f"e{i}": d for i, d in enumerate(out) if d.outcome is Outcome.DEAD}
    assert set(dead) == bad
    assert {(d.dead.reason, d.dead.code, d.dead.subcode) for d in dead.values()} == {
        (DeadReason.REJECTED, 100, 2804050)}
    assert sum(d.outcome is Outcome.SENT for d in out) == 14
    assert len(s.client.calls) <= 1 + 2 * 2 * 4  # log2(16) levels, two bad leaves


def test_a_rejected_token_is_read_again_once_then_held():
    secret = FakeSecret("old", "new")
    s, _ = sender(lambda batch, token: graph_error(190), secret)
    out = s.send(events(3))
    assert [t for _, t in s.client.calls] == ["old", "new"]
    assert {(d.outcome, d.hold) for d in out} == {(Outcome.HELD, Hold.TOKEN)}
    assert out[0].graph.to_error().__class__.__name__ == "TokenProblem"


def test_rotated_token_succeeds_on_the_re_read():
    s, _ = sender(lambda batch, token: (200, {"events_received": 1}) if token == "new"
                  else graph_error(190), FakeSecret("old", "new"))
    assert [d.outcome for d in s.send(events(1))] == [Outcome.SENT]


@pytest.mark.parametrize("answer,hold", [
    ((503, {}), Hold.UNAVAILABLE),
    (graph_error(17), Hold.THROTTLED),
])
def test_transient_answers_retry_briefly_in_call_then_hold(answer, hold):
    s, waits = sender(lambda batch, token: answer, retries=2)
    out = s.send(events(2))
    assert len(s.client.calls) == 3 and len(waits) == 2
    assert all(0 < w <= MAX_IN_CALL_WAIT_SECONDS for w in waits)
    assert {(d.outcome, d.hold) for d in out} == {(Outcome.HELD, hold)}


def test_the_test_event_code_is_passed_on():
    seen = []

    class Client(ScriptedGraph):
        def send(self, events, access_token, *, test_event_code=None):
            seen.append(test_event_code)
            return super().send(events, access_token)

    s = GraphSender(Client(), FakeSecret(), SenderConfig(test_event_code="TEST1"))
    s.send(events(1))
    assert seen == ["TEST1"]


def test_one_sent_line_per_request_counts_the_keys_enrichment_added(logs):
    from dataclasses import replace

    from capi_relay.core.model import UserData

    plain = events(3)
    with_em = UserData(em=("a" * 64,), external_id=("b" * 64,))
    batch = [replace(plain[0], user_data=with_em, enriched=("em", "external_id")),
             # enriched, then consent or redaction removed the key: not counted
             replace(plain[1], user_data=UserData(external_id=("b" * 64,)), enriched=("em",)),
             plain[2]]
    assert batch[0] == replace(batch[0], enriched=())  # names only: not part of the event
    assert "enriched" not in batch[0].to_wire()
    s, _ = sender()
    s.send(batch)
    (line,) = [r for r in logs() if r["message"] == "sent"]
    assert line["batch_size"] == 3
    assert line["match_keys"] == {"Lead": {"events": 3, "em": 1, "external_id": 2}}
    assert line["enriched_keys"] == {"Lead": {"events": 1, "em": 1, "external_id": 1}}
    s.send(events(2))
    assert "enriched_keys" not in [r for r in logs() if r["message"] == "sent"][-1]
