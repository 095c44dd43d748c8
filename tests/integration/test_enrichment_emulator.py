"""Profiles on the real Firestore emulator: fill, write-back, CRM import, what a lookup costs."""

import json
import os
import statistics
import time
import uuid

import pytest

from capi_relay.adapters.firestore import FirestoreProfileStore
from capi_relay.app.enrichment import Enricher
from capi_relay.core.envelope import QueuedEvent, encode
from capi_relay.core.mapping import to_capi_event
from capi_relay.core.normalize import prepare, sha256_hex
from capi_relay.core.profiles import LINK_TTL_SECONDS, Profile, Write, link_doc_id
from capi_relay_dev.localstack import PROJECT, free_port, start_emulator
from capi_relay_ops import cli
from emulators import require_emulators
from fakes import FakeClock, ScriptedGraph, make_processor
from samples import EVENTS, NOW, load_event

pytestmark = pytest.mark.integration
CID = "1234567890.1732450000"


@pytest.fixture(scope="module")
def db():
    """A Firestore emulator of this module's own; FIRESTORE_EMULATOR_HOST restored after."""
    require_emulators()
    port = free_port()
    emulator = start_emulator("firestore", port, None)
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = f"127.0.0.1:{port}"
    try:
        from google.cloud import firestore

        yield firestore.Client(project=PROJECT)
    finally:
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
        emulator.stop()


@pytest.fixture
def collection():
    return f"profiles_{uuid.uuid4().hex[:8]}"


def queued(name, *, client_id=None, **extra):
    mapped = to_capi_event({**load_event(name), **extra}, now=NOW, new_id=lambda: "id-x")
    assert mapped.ok, mapped.reasons
    return QueuedEvent(mapped.event, client_id or mapped.client_id, {}, ())


def service_on(db, collection):
    graph = ScriptedGraph()
    store = FirestoreProfileStore(PROJECT, collection, client=db)
    service = make_processor(graph, clock=FakeClock(NOW), enrich=Enricher(store))
    return service, graph, store


def sent(graph, event_id):
    return next(e for events, _ in graph.calls for e in events if e["event_id"] == event_id)


def test_enrichment_fills_missing_keys_and_never_overwrites(db, collection):
    user = prepare("external_id", "customer-1001")
    crm = {"em": (sha256_hex("crm@example.com"),), "db": (prepare("db", "1990-05-17"),),
           "ge": (prepare("ge", "f"),)}
    service, graph, store = service_on(db, collection)
    store.save((Write("xid_" + user, Profile(user, crm).to_doc(source="import"), merge=True),))
    event = queued("ga4_purchase_sgtm.json")
    service.process(encode([event]))
    user_data = sent(graph, "sgtm-purchase-1001")["user_data"]
    own = event.event.user_data.to_wire()
    assert user_data["em"] == own["em"] != list(crm["em"])
    assert user_data["db"] == list(crm["db"]) and user_data["ge"] == list(crm["ge"])
    assert {k: v for k, v in user_data.items() if k not in ("db", "ge")} == own


def test_write_back_then_anonymous_event_from_the_same_browser_is_enriched(db, collection):
    service, graph, _ = service_on(db, collection)
    purchase = queued("ga4_purchase_sgtm.json")
    service.process(encode([purchase]))
    docs = {d.id: d.to_dict() for d in db.collection(collection).stream()}
    user = purchase.event.user_data.external_id[0]
    fbp = purchase.event.user_data.fbp
    assert set(docs) == {"xid_" + user, link_doc_id("client_id", CID), link_doc_id("fbp", fbp)}
    link = docs[link_doc_id("client_id", CID)]
    assert link["external_id"] == user  # expire_at is a timestamp, for the TTL policy
    assert link["expire_at"].timestamp() == NOW + LINK_TTL_SECONDS
    stored = json.dumps(docs, default=str)
    assert CID not in stored and fbp not in stored and "jane" not in stored.lower()

    anonymous = queued("page_view.json", client_id=CID)
    service.process(encode([anonymous]))
    user_data = sent(graph, "pv-4004")["user_data"]
    for key in ("em", "ph", "fn", "ln", "ct", "zp", "country", "external_id"):
        assert user_data[key] == purchase.event.user_data.to_wire()[key]
    assert user_data["fbp"] == anonymous.event.user_data.fbp


def test_import_csv_with_good_and_bad_rows_then_enrich_from_it(db, collection, capsys):
    code = cli.main(["profiles", "import", str(EVENTS / "crm_export.csv"), "--project", PROJECT,
                     "--collection", collection])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    out = json.loads(captured.out)
    assert out["summary"] == {"rows": 8, "profiles": 5, "written": 5, "rejected": 3,
                              "batches": 1, "dry_run": False}
    assert [r["row"] for r in out["rejected"]] == [4, 6, 7]
    assert "row 4: rejected: user_id: missing" in captured.err
    docs = {d.id: d.to_dict() for d in db.collection(collection).stream()}
    assert set(docs) == {"xid_" + prepare("external_id", f"customer-{n}")
                         for n in (1001, 1002, 1004, 1007, 1008)}
    amy = docs["xid_" + prepare("external_id", "customer-1004")]
    assert amy["source"] == "import" and set(amy["keys"]) == {"ph", "fn", "ln", "ct", "zp",
                                                              "country"}
    assert amy["keys"]["ph"] == [prepare("ph", "+44 20 7946 0018")]
    text = json.dumps(docs, default=str)
    for raw in ("jane.doe@example.com", "Jane", "Berlin", "10115", "customer-1001", "Amy"):
        assert raw not in text

    service, graph, _ = service_on(db, collection)
    service.process(encode([queued("page_view.json", user_id="customer-1004")]))
    user_data = sent(graph, "pv-4004")["user_data"]
    assert user_data["ph"] == amy["keys"]["ph"] and user_data["zp"] == amy["keys"]["zp"]


def test_large_import_is_written_in_batches_of_500(db, collection, tmp_path, capsys):
    path = tmp_path / "big.csv"
    path.write_text("user_id,email\n" + "".join(f"u{i},u{i}@example.com\n" for i in range(1201)),
                    encoding="utf-8")
    assert cli.main(["profiles", "import", str(path), "--project", PROJECT,
                     "--collection", collection]) == 0
    summary = json.loads(capsys.readouterr().out)["summary"]
    assert summary["written"] == 1201 and summary["batches"] == 3
    assert len(list(db.collection(collection).select([]).stream())) == 1201


def test_added_latency_of_one_lookup(db, collection, capsys):
    """What enrichment adds per event on the emulator: one get_all, and a write when new."""
    store = FirestoreProfileStore(PROJECT, collection, client=db)
    enricher = Enricher(store)
    identified = queued("ga4_purchase_sgtm.json")
    enricher(identified, NOW)  # warm the channel
    anonymous = [queued("page_view.json", client_id=CID if i % 2 else f"{i}.1")
                 for i in range(60)]
    first_visits = [queued("ga4_purchase_sgtm.json", user_id=f"lat-{i}", client_id=f"c{i}.1",
                           **{"x-fb-ck-fbp": f"fb.1.1732450000000.{i}"}) for i in range(30)]

    def timed(events):
        out = []
        for q in events:
            started = time.perf_counter()
            enricher(q, NOW)
            out.append((time.perf_counter() - started) * 1000)
        return out

    read_only = timed(anonymous)
    read_write = timed(first_visits)
    numbers = {name: {"p50_ms": round(statistics.median(v), 1),
                      "p95_ms": round(statistics.quantiles(v, n=20)[18], 1), "n": len(v)}
               for name, v in (("lookup", read_only), ("lookup+write_back", read_write))}
    with capsys.disabled():
        print(f"\nenrichment latency on the Firestore emulator: {json.dumps(numbers)}")
    assert numbers["lookup"]["p50_ms"] < 250 and numbers["lookup+write_back"]["p50_ms"] < 500
