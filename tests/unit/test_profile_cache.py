"""ProfileCache: repeated link reads come from memory; this instance's writes are seen at once."""

from __future__ import annotations

import pytest

from capi_relay.app.profile_cache import ProfileCache
from capi_relay.core.errors import StoreUnavailable
from capi_relay.core.profiles import Write
from fakes import MemoryProfileStore


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def parts():
    store = MemoryProfileStore({"a": {"external_id": "x", "keys": {}}})
    clock = Clock()
    return store, clock, ProfileCache(store, ttl_seconds=300, clock=clock)


def test_found_and_missing_documents_are_read_once(parts):
    store, _, cache = parts
    assert cache.fetch(["a", "b"]) == {"a": {"external_id": "x", "keys": {}}}
    assert cache.fetch(["a", "b"]) == {"a": {"external_id": "x", "keys": {}}}
    assert store.reads == 1


def test_only_unremembered_ids_go_to_the_store_in_one_round_trip(parts):
    store, _, cache = parts
    cache.fetch(["a"])
    store.docs["c"] = {"external_id": "z", "keys": {}}
    assert set(cache.fetch(["a", "b", "c"])) == {"a", "c"}
    assert store.read_ids == [("a",), ("b", "c")]


def test_remembered_answers_expire(parts):
    store, clock, cache = parts
    cache.fetch(["b"])
    store.docs["b"] = {"external_id": "y", "keys": {}}  # written by another instance
    clock.t += 299
    assert cache.fetch(["b"]) == {}
    clock.t += 2
    assert cache.fetch(["b"]) == {"b": {"external_id": "y", "keys": {}}}
    assert store.reads == 2


def test_own_writes_are_seen_at_once(parts):
    store, _, cache = parts
    cache.fetch(["a", "b"])
    cache.save([Write("b", {"external_id": "y", "keys": {"em": ["h"]}})])
    assert cache.fetch(["b"]) == {"b": {"external_id": "y", "keys": {"em": ["h"]}}}
    cache.save([Write("a", {"keys": {"ph": ["p"]}}, merge=True)])  # merged by the store
    assert cache.fetch(["a"])["a"]["keys"] == {"ph": ["p"]}
    assert store.reads == 2  # the first fetch, then "a" again after the merge


def test_a_failed_read_remembers_nothing(parts):
    store, _, cache = parts
    store.fail_reads = True
    with pytest.raises(StoreUnavailable):
        cache.fetch(["a"])
    store.fail_reads = False
    assert cache.fetch(["a"]) and store.reads == 1


def test_a_failed_write_forgets_what_it_touched(parts):
    store, _, cache = parts
    cache.fetch(["a"])
    store.fail_writes = True
    with pytest.raises(StoreUnavailable):
        cache.save([Write("a", {"external_id": "new", "keys": {}})])
    store.fail_writes = False
    assert cache.fetch(["a"])["a"]["external_id"] == "x"
    assert store.reads == 2


def test_bounded(parts):
    store, _, cache = parts
    small = ProfileCache(store, max_entries=2, clock=Clock())
    small.fetch(["a", "b", "c"])
    small.fetch(["a"])  # the oldest went first
    assert store.read_ids == [("a", "b", "c"), ("a",)]


def test_warm_reads_a_batch_once_and_later_fetches_come_from_memory():
    from capi_relay.app.profile_cache import ProfileCache

    class Store:
        def __init__(self):
            self.calls = []

        def fetch(self, doc_ids):
            self.calls.append(list(doc_ids))
            return {d: {"v": d} for d in doc_ids if d != "missing"}

    store = Store()
    cache = ProfileCache(store, clock=lambda: 0.0)
    cache.warm(["a", "b", "a", "missing"])
    assert store.calls == [["a", "b", "missing"]]
    assert cache.fetch(["b", "missing"]) == {"b": {"v": "b"}}
    cache.warm(["a", "c"])
    assert store.calls[-1] == ["c"]       # only what is not remembered
