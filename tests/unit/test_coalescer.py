"""The coalescer alone: a lone call sends at once, concurrent calls share one send, and an
error in the shared send reaches every caller that waited on it."""

import threading
import time

import pytest

from capi_relay.app.coalescer import Coalescer

LONG = 5.0  # a window no test should ever wait out


class Recorder:
    def __init__(self, delay=0.0, error=None):
        self.batches = []
        self.delay = delay
        self.error = error
        self.lock = threading.Lock()

    def __call__(self, items):
        with self.lock:
            self.batches.append(list(items))
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error


def run_all(coalescer, arrivals, payloads, deliver):
    """Each arrival joins from its own thread; returns each thread's exception (or None)."""
    errors = [None] * len(arrivals)

    def one(i):
        try:
            with arrivals[i] as arrival:
                arrival.run(payloads[i], deliver)
        except Exception as exc:  # collected for the assertions
            errors[i] = exc

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(arrivals))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=LONG * 2)
    assert not any(t.is_alive() for t in threads)
    return errors


def test_a_lone_call_sends_at_once_whatever_the_window():
    coalescer, deliver = Coalescer(LONG), Recorder()
    started = time.monotonic()
    coalescer.run(["a", "b"], deliver)
    assert time.monotonic() - started < 0.5
    assert deliver.batches == [["a", "b"]]


def test_calls_in_flight_share_one_send_and_it_goes_when_the_last_one_joins():
    coalescer, deliver = Coalescer(LONG), Recorder()
    arrivals = [coalescer.arrival() for _ in range(8)]  # all arrived: decoding, claiming
    started = time.monotonic()
    assert run_all(coalescer, arrivals, [[i] for i in range(8)], deliver) == [None] * 8
    assert len(deliver.batches) == 1 and sorted(deliver.batches[0]) == list(range(8))
    assert time.monotonic() - started < LONG / 2  # did not wait out the window


def test_an_error_in_the_shared_send_reaches_every_waiting_caller():
    boom = RuntimeError("graph down")
    coalescer, deliver = Coalescer(LONG), Recorder(error=boom)
    arrivals = [coalescer.arrival() for _ in range(5)]
    errors = run_all(coalescer, arrivals, [[i] for i in range(5)], deliver)
    assert len(deliver.batches) == 1
    assert errors == [boom] * 5
    # and the coalescer is usable afterwards: the next lone call sends at once
    after = Recorder()
    coalescer.run(["next"], after)
    assert after.batches == [["next"]]


def test_a_call_that_leaves_with_nothing_to_send_releases_the_leader():
    coalescer, deliver = Coalescer(LONG), Recorder()
    leaving = coalescer.arrival()  # e.g. every event of its message was a duplicate
    threading.Timer(0.05, lambda: leaving.__exit__(None, None, None)).start()
    started = time.monotonic()
    coalescer.run(["a"], deliver)
    assert 0.04 <= time.monotonic() - started < LONG / 2
    assert deliver.batches == [["a"]]


def test_the_leader_waits_no_longer_than_the_window():
    coalescer, deliver = Coalescer(0.1), Recorder()
    with coalescer.arrival():  # arrived, and never joins while the leader waits
        started = time.monotonic()
        coalescer.run(["a"], deliver)
        waited = time.monotonic() - started
    assert 0.09 <= waited < 1.0 and deliver.batches == [["a"]]


def test_calls_arriving_during_a_send_form_the_next_batch():
    coalescer, deliver = Coalescer(LONG), Recorder(delay=0.2)
    first = threading.Thread(target=coalescer.run, args=(["first"], deliver))
    first.start()
    time.sleep(0.05)  # the first batch is on its way to Graph
    later = [coalescer.arrival() for _ in range(3)]
    assert run_all(coalescer, later, [["b"], ["c"], ["d"]], deliver) == [None] * 3
    first.join()
    assert deliver.batches[0] == ["first"]
    assert [sorted(b) for b in deliver.batches[1:]] == [["b", "c", "d"]]


def test_a_full_batch_goes_without_waiting_for_more():
    coalescer, deliver = Coalescer(LONG, max_events=4), Recorder()
    with coalescer.arrival():  # someone else in flight, who will not join in time
        started = time.monotonic()
        coalescer.run([1, 2, 3, 4], deliver)
    assert time.monotonic() - started < LONG / 2 and deliver.batches == [[1, 2, 3, 4]]


def test_window_zero_never_shares():
    coalescer, deliver = Coalescer(0), Recorder()
    arrivals = [coalescer.arrival() for _ in range(3)]
    run_all(coalescer, arrivals, [[1], [2], [3]], deliver)
    assert sorted(deliver.batches) == [[1], [2], [3]]


def test_an_arrival_joins_at_most_once():
    coalescer = Coalescer(LONG)
    with coalescer.arrival() as arrival:
        arrival.run([1], Recorder())
        with pytest.raises(RuntimeError):
            arrival.run([2], Recorder())


def test_one_request_in_flight_at_a_time_even_past_the_window():
    """Events that arrive while a request is in flight wait for it and go out together: one
    Graph request per up to 1,000 waiting events, not one per window (issue 13)."""
    spans = []

    def deliver(items):
        start = time.monotonic()
        time.sleep(0.3)
        spans.append((start, time.monotonic(), list(items)))

    coalescer = Coalescer(0.05)
    first = threading.Thread(target=coalescer.run, args=(["first"], deliver))
    first.start()
    time.sleep(0.05)  # the first request is in flight for 0.25 s more: longer than the window
    later = [coalescer.arrival() for _ in range(3)]
    assert run_all(coalescer, later, [["b"], ["c"], ["d"]], deliver) == [None] * 3
    first.join()
    (_, first_end, first_items), (second_start, _, second_items) = sorted(spans)
    assert first_items == ["first"] and sorted(second_items) == ["b", "c", "d"]
    assert second_start >= first_end
