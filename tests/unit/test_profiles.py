"""Profiles, pure: document ids, the one-read lookup, fill-only-missing, write-back, CRM rows."""

import json

import pytest

from capi_relay.core import profiles
from capi_relay.core.model import UserData
from capi_relay.core.normalize import prepare, sha256_hex
from capi_relay.core.profiles import (
    LINK_TTL_SECONDS,
    Lookup,
    Profile,
    choose,
    fill,
    header_key,
    link_doc_id,
    lookup_for,
    missing_keys,
    plan_import,
    prepare_row,
    profile_doc_id,
    remember,
)
from capi_relay_ops import cli
from samples import EVENTS

NOW = 1_732_450_000.0
USER = prepare("external_id", "customer-1001")
OTHER = prepare("external_id", "customer-2002")
EM = prepare("em", "jane.doe@example.com")
PH = prepare("ph", "+49 170 1234567")
FN = prepare("fn", "Jane")
DB = prepare("db", "1990-05-17")
FBP = "fb.1.1732450000000.1098115397"
CID = "1234567890.1732450000"


def ud(**keys):
    return UserData.from_wire(keys)


def stored(external_id=USER, expire_at=None, **keys):
    return Profile(external_id, {k: tuple(v) for k, v in keys.items()},
                   expire_at=expire_at).to_doc()


# --- document ids -----------------------------------------------------------------------------

def test_doc_ids_are_hashes_never_raw_values():
    assert profile_doc_id(USER) == "xid_" + USER
    assert profile_doc_id(USER.upper()) == "xid_" + USER
    assert profile_doc_id(USER + ".AQ") == "xid_" + USER  # Parameter Builder appendix dropped
    assert profile_doc_id("customer-1001") is None
    assert link_doc_id("client_id", CID) == "link_cid_" + sha256_hex(CID)
    assert link_doc_id("fbp", FBP) == "link_fbp_" + sha256_hex(FBP)
    assert CID not in link_doc_id("client_id", CID)


def test_one_lookup_names_every_document_an_event_may_need():
    lookup = lookup_for(ud(external_id=[USER, OTHER, sha256_hex("third")], fbp=FBP), CID)
    assert lookup.profile_ids == ("xid_" + USER, "xid_" + OTHER)  # at most two profiles
    assert lookup.link_ids == {"client_id": link_doc_id("client_id", CID),
                               "fbp": link_doc_id("fbp", FBP)}
    assert lookup.doc_ids == lookup.profile_ids + tuple(lookup.link_ids.values())
    assert lookup_for(ud(client_ip_address="1.2.3.4"), None).doc_ids == ()
    assert lookup_for(ud(), "  ").doc_ids == ()


# --- the stored model -------------------------------------------------------------------------

def test_from_doc_keeps_only_hashes_of_known_keys():
    doc = {"external_id": USER, "keys": {"em": [EM, "jane@example.com", EM.upper()],
                                         "ph": PH, "fbp": [FBP], "nonsense": [EM]},
           "expire_at": NOW + 5, "updated_at": NOW}
    profile = Profile.from_doc(doc)
    assert dict(profile.keys) == {"em": (EM,), "ph": (PH,)}
    assert profile.expire_at == NOW + 5 and profile.live(NOW) and not profile.live(NOW + 5)
    assert Profile.from_doc({"external_id": "customer-1001", "keys": {"em": [EM]}}) is None
    assert Profile.from_doc(None) is None
    assert "jane" not in repr(profile) and EM not in repr(profile)


# --- the fill-only-missing decision ------------------------------------------------------------

def test_identified_event_takes_its_own_profile_first():
    lookup = lookup_for(ud(external_id=[USER]), CID)
    docs = {"xid_" + USER: stored(em=[EM], db=[DB]),
            link_doc_id("client_id", CID): stored(expire_at=NOW + 10, em=[sha256_hex("x")])}
    match = choose(lookup, docs, ud(external_id=[USER]), NOW)
    assert match.matched_by == "profile" and match.profile.keys["em"] == (EM,)


def test_anonymous_event_takes_the_client_id_link_then_fbp():
    user_data = ud(fbp=FBP)
    lookup = lookup_for(user_data, CID)
    cid_doc = stored(expire_at=NOW + 10, em=[EM])
    fbp_doc = stored(OTHER, expire_at=NOW + 10, em=[sha256_hex("other")])
    both = {link_doc_id("client_id", CID): cid_doc, link_doc_id("fbp", FBP): fbp_doc}
    assert choose(lookup, both, user_data, NOW).matched_by == "client_id"
    only_fbp = {link_doc_id("fbp", FBP): fbp_doc}
    assert choose(lookup, only_fbp, user_data, NOW).profile.external_id == OTHER
    expired = {link_doc_id("client_id", CID): stored(expire_at=NOW - 1, em=[EM])}
    assert choose(lookup, expired, user_data, NOW) is None


def test_identified_event_never_borrows_another_users_link():
    user_data = ud(external_id=[USER], fbp=FBP)
    lookup = lookup_for(user_data, CID)
    foreign = {link_doc_id("client_id", CID): stored(OTHER, expire_at=NOW + 10, em=[EM])}
    assert choose(lookup, foreign, user_data, NOW) is None
    own = {link_doc_id("fbp", FBP): stored(USER, expire_at=NOW + 10, em=[EM])}
    assert choose(lookup, own, user_data, NOW).matched_by == "fbp"


def test_fill_adds_only_missing_keys_and_the_event_wins():
    mine = sha256_hex("mine@example.com")
    event = ud(em=[mine], client_ip_address="203.0.113.7")
    profile = Profile(USER, {"em": (EM,), "ph": (PH,), "fn": (FN,)})
    added = missing_keys(event, profile)
    assert added == {"ph": (PH,), "fn": (FN,), "external_id": (USER,)}
    wire = fill(event, added).to_wire()
    assert wire["em"] == [mine] and wire["ph"] == [PH] and wire["external_id"] == [USER]
    assert wire["client_ip_address"] == "203.0.113.7"


# --- write-back -------------------------------------------------------------------------------

def test_identified_event_remembers_its_keys_and_links_its_browser():
    user_data = ud(external_id=[USER], em=[EM], fbp=FBP)
    lookup = lookup_for(user_data, CID)
    writes = remember(user_data, lookup, {}, NOW)
    by_id = {w.doc_id: w for w in writes}
    assert set(by_id) == {"xid_" + USER, link_doc_id("client_id", CID), link_doc_id("fbp", FBP)}
    profile = by_id["xid_" + USER]
    assert profile.merge and profile.data["keys"] == {"em": [EM]}
    link = by_id[link_doc_id("client_id", CID)]
    assert not link.merge and link.data["external_id"] == USER
    assert link.data["keys"] == {"em": [EM]} and link.data["expire_at"] == NOW + LINK_TTL_SECONDS
    # the same event again, with what was written now stored: nothing to write
    docs = {w.doc_id: dict(w.data) for w in writes}
    assert remember(user_data, lookup, docs, NOW + 60) == ()
    # past half the TTL the links are refreshed, the unchanged profile is not rewritten
    later = remember(user_data, lookup, docs, NOW + LINK_TTL_SECONDS * 0.6)
    assert {w.doc_id for w in later} == set(lookup.link_ids.values())


def test_write_back_merges_newest_first_and_links_carry_the_whole_profile():
    crm_em = sha256_hex("crm@example.com")
    new_em = sha256_hex("new@example.com")
    user_data = ud(external_id=[USER], em=[new_em])
    lookup = lookup_for(user_data, CID)
    docs = {"xid_" + USER: stored(em=[crm_em], db=[DB])}
    writes = {w.doc_id: w.data for w in remember(user_data, lookup, docs, NOW)}
    assert writes["xid_" + USER]["keys"] == {"em": [new_em, crm_em], "db": [DB]}
    assert writes[link_doc_id("client_id", CID)]["keys"] == {"em": [new_em, crm_em], "db": [DB]}
    many = {"xid_" + USER: stored(em=[sha256_hex(str(i)) for i in range(3)])}
    kept = {w.doc_id: w.data for w in remember(user_data, lookup, many, NOW)}
    assert len(kept["xid_" + USER]["keys"]["em"]) == profiles.MAX_VALUES_PER_KEY
    assert kept["xid_" + USER]["keys"]["em"][0] == new_em


def test_browser_seen_with_another_user_is_relinked():
    user_data = ud(external_id=[USER])
    lookup = lookup_for(user_data, CID)
    docs = {link_doc_id("client_id", CID): stored(OTHER, expire_at=NOW + LINK_TTL_SECONDS)}
    writes = remember(user_data, lookup, docs, NOW)
    assert [w.data["external_id"] for w in writes] == [USER]


def test_anonymous_or_raw_identity_writes_nothing():
    assert remember(ud(fbp=FBP), lookup_for(ud(fbp=FBP), CID), {}, NOW) == ()
    raw = UserData(external_id=("customer-1001",))
    assert remember(raw, Lookup(), {}, NOW) == ()


def test_raw_values_are_never_remembered():
    user_data = UserData(external_id=(USER,), em=("jane@example.com",), ph=(PH,))
    writes = remember(user_data, lookup_for(user_data, None), {}, NOW)
    assert writes[0].data["keys"] == {"ph": [PH]}


# --- CRM rows ---------------------------------------------------------------------------------

@pytest.mark.parametrize("header,key", [
    ("Customer ID", "external_id"), ("user_id", "external_id"), ("userId", "external_id"),
    ("Kundennummer", None),
    ("E-Mail", "em"), ("email_address", "em"), ("Phone Number", "ph"), ("mobile", "ph"),
    ("First Name", "fn"), ("surname", "ln"), ("Postal Code", "zp"), ("PLZ", "zp"),
    ("Date of Birth", "db"), ("DOB", "db"), ("sex", "ge"), ("Country Code", "country"),
    ("State/Province", "st"), ("Loyalty Tier", None), (None, None),
])
def test_common_header_spellings(header, key):
    assert header_key(header) == key


def test_crm_row_is_hashed_exactly_as_ingest_would_send_it():
    row = {"User ID": " customer-1001 ", "Email": "Jane.Doe@Example.com",
           "Phone": "0170 1234567", "Country": "Germany", "City": "Berlin", "Zip": "10115"}
    prepared = prepare_row(row, row=2)
    assert prepared.errors == () and prepared.dropped == ()
    assert prepared.profile.external_id == USER
    assert dict(prepared.profile.keys) == {
        "em": (EM,), "ph": (PH,), "ct": (prepare("ct", "Berlin"),),
        "zp": (prepare("zp", "10115", country="de"),), "country": (prepare("country", "de"),)}


def test_default_country_applies_to_rows_without_one():
    row = {"id": "7", "phone": "(650) 555-1234"}
    us_number = (prepare("ph", "+16505551234"),)
    # without a country the digits are read as an international number: not the US one
    assert prepare_row(row, row=2).profile.keys.get("ph") != us_number
    assert prepare_row(row, row=2, default_country="US").profile.keys["ph"] == us_number
    assert prepare_row({**row, "country": "us"}, row=2).profile.keys["ph"] == us_number


def test_rejected_rows_name_fields_never_values():
    secret = "do-not-echo@@example"
    no_id = prepare_row({"email": "jane.doe@example.com"}, row=3)
    assert no_id.profile is None and no_id.errors == ("user_id: missing",)
    nothing = prepare_row({"user_id": "u1", "E-Mail": secret, "Gender": "x"}, row=4)
    assert nothing.profile is None and nothing.dropped == ("E-Mail", "Gender")
    assert secret not in repr(nothing) and "u1" not in repr(nothing)


def test_plan_merges_a_user_found_on_several_rows():
    rows = [prepare_row({"id": "u1", "email": "a@example.com", "city": "Paris"}, row=2),
            prepare_row({"id": "u1", "email": "b@example.com"}, row=3),
            prepare_row({"email": "c@example.com"}, row=4)]
    plan = plan_import(rows, NOW)
    assert plan.rows == 3 and [r.row for r in plan.rejected] == [4]
    (write,) = plan.writes
    assert write.merge and write.data["source"] == "import"
    assert write.data["keys"] == {"em": [prepare("em", "b@example.com")],
                                  "ct": [prepare("ct", "Paris")]}


# --- the command, dry run (the emulator-backed test writes for real) ---------------------------

def test_import_dry_run_reports_rows_by_number_and_column(capsys):
    assert cli.main(["profiles", "import", str(EVENTS / "crm_export.csv"), "--dry-run"]) == 0
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert out["summary"] == {"rows": 8, "profiles": 5, "written": 0, "rejected": 3,
                              "batches": 0, "dry_run": True}
    assert out["rejected"] == [
        {"row": 4, "errors": ["user_id: missing"]},
        {"row": 6, "errors": ["row: no usable match key besides the user id"]},
        {"row": 7, "errors": ["row: no usable match key besides the user id"],
         "fields": ["E-Mail", "Country"]}]
    assert out["dropped"] == [{"row": 5, "fields": ["E-Mail", "Gender", "Date of Birth"]}]
    assert out["ignored_columns"] == ["Loyalty Tier"]
    printed = captured.out + captured.err
    for raw in ("no-id@example.com", "not-an-email", "Atlantis", "1992-13-45", "Jane", "Berlin",
                "customer-1001", "O'Brien"):
        assert raw not in printed


def test_import_reads_json_lines(tmp_path, capsys):
    path = tmp_path / "crm.jsonl"
    path.write_text('{"user_id": 42, "email": "x@example.com"}\n\nnot json\n'
                    '{"user_id": "43", "phone": "+44 20 7946 0018"}\n', encoding="utf-8")
    assert cli.main(["profiles", "import", str(path), "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["summary"]["profiles"] == 2
    assert out["rejected"] == [{"row": 3, "errors": ["row: not a JSON object"]}]


def test_import_semicolon_csv_with_bom(tmp_path, capsys):
    path = tmp_path / "crm.csv"
    path.write_bytes("\ufeffKundennummer;E-Mail;PLZ;Country\nk1;a@example.de;10115;DE\n"
                     .encode("utf-8"))
    assert cli.main(["profiles", "import", str(path), "--dry-run"]) == 0
    out = json.loads(capsys.readouterr().out)
    # "Kundennummer" is not a known spelling of the user id: every row is rejected, said so
    assert out["summary"]["profiles"] == 0 and out["ignored_columns"] == ["Kundennummer"]
    path.write_bytes("\ufeffCustomer_ID;E-Mail;PLZ;Country\nk1;a@example.de;10115;DE\n"
                     .encode("utf-8"))
    assert cli.main(["profiles", "import", str(path), "--dry-run"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["profiles"] == 1


def test_import_usage_errors(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("GOOGLE_CLOUD_PROJECT", raising=False)
    assert cli.main(["profiles", "import", str(tmp_path / "missing.csv")]) == 2
    assert cli.main(["profiles", "import", str(EVENTS / "crm_export.csv"),
                     "--country", "Atlantis"]) == 2
    assert cli.main(["profiles", "import", str(EVENTS / "crm_export.csv")]) == 2
    assert "GOOGLE_CLOUD_PROJECT" in capsys.readouterr().err
