"""Readiness: ready only when the events topic has a subscription; answers cached briefly."""

from capi_relay.app.health import Readiness
from fakes import FakeClock, FakePublisher


def test_not_ready_until_subscribed_and_rechecked_soon():
    probe, clock = FakePublisher(), FakeClock()
    probe.subscribed = False
    ready = Readiness(probe, clock, ok_ttl=30, fail_ttl=1)
    assert ready.ready() is False
    probe.subscribed = True
    assert ready.ready() is False  # still the cached answer
    clock.advance(1)
    assert ready.ready() is True
    assert probe.probes == 2 and probe.messages == []


def test_ready_answer_cached_then_rechecked():
    probe, clock = FakePublisher(), FakeClock()
    ready = Readiness(probe, clock, ok_ttl=30, fail_ttl=1)
    assert all(ready.ready() for _ in range(50))
    assert probe.probes == 1
    probe.fail = True
    clock.advance(29.9)
    assert ready.ready() is True
    clock.advance(0.2)
    assert ready.ready() is False  # a failed check means not ready


def test_not_ready_is_logged_without_details(logs):
    probe = FakePublisher(fail=True)
    assert Readiness(probe, FakeClock()).ready() is False
    (line,) = logs()
    assert line["message"] == "not ready" and line["cause"] == "topic check failed: PublishFailed"
