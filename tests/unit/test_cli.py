"""The capi-relay command as operators run it: a real subprocess of the console script."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from samples import EVENTS, NOW

CLI = [sys.executable, "-m", "capi_relay_ops.cli"]
FUNCTIONS = str(Path(__file__).resolve().parents[2] / "functions")


def run(*args, stdin=None):
    return subprocess.run([*CLI, *args], input=stdin, capture_output=True, text=True,
                          env={"PYTHONPATH": FUNCTIONS, "PATH": "/usr/bin:/bin"}, timeout=60)


def test_preview_from_stdin_prints_data_and_reasons_on_stderr():
    body = json.dumps({"events": [json.loads((EVENTS / "lead.json").read_text()),
                                  {"event_name": "page_view"}]})
    result = run("preview", "--now", str(NOW), stdin=body)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [e["event_name"] for e in out["data"]] == ["Lead"]
    assert out["data"][0]["user_data"]["em"] == [hashlib.sha256(b"lead@example.net").hexdigest()]
    assert out["rejected"][0]["index"] == 1
    assert "event 1: event_source_url: required for website events" in result.stderr


def test_preview_from_file_is_deterministic_with_a_fixed_clock():
    path = str(EVENTS / "ga4_purchase_sgtm.json")
    first, second = run("preview", "--now", str(NOW), path), run("preview", "--now", str(NOW),
                                                                  path)
    assert first.stdout == second.stdout
    assert json.loads(first.stdout)["data"][0]["event_time"] == int(NOW)


def test_preview_unreadable_input_exits_non_zero_without_echoing_it():
    result = run("preview", stdin="{secret@example.com")
    assert result.returncode == 2 and "secret@example.com" not in result.stderr


def test_hash_prints_one_line_per_value_empty_when_dropped():
    result = run("hash", "--country", "us", "ph", "(650) 555-1234", "12", "+44 20 7946 0018")
    assert result.returncode == 0
    assert result.stdout.splitlines() == [
        hashlib.sha256(b"16505551234").hexdigest(), "",
        hashlib.sha256(b"442079460018").hexdigest()]


def test_hash_never_hashes_ip_and_rejects_unknown_fields():
    assert run("hash", "client_ip_address", "203.0.113.9:80").stdout.strip() == "203.0.113.9"
    assert run("hash", "emial", "x").returncode == 2


def test_hash_country_applies_to_zip_codes_too():
    result = run("hash", "--country", "us", "zp", "940251234")
    assert result.stdout.strip() == hashlib.sha256(b"94025").hexdigest()
    assert run("hash", "zp", "940251234").stdout.strip() == hashlib.sha256(
        b"940251234").hexdigest()


def test_preview_explain_names_paths_and_unused_keys_never_values():
    body = json.dumps({"event": "purchase", "page_location": "https://shop.example.com/",
                       "user_agent": "Mozilla/5.0", "ecommerce": {"value": 5, "currency": "USD"},
                       "user_data": {"billing_email": "erika@example.org",
                                     "billing_phone": "12"},
                       "shipping": {"city": "Elsewhere"}, "billingStreet": "1 Main St"})
    result = run("preview", "--now", str(NOW), "--explain", stdin=body)
    assert result.returncode == 0, result.stderr
    (explained,) = json.loads(result.stdout)["explain"]
    assert explained["fields"]["user_data.em"] == ["user_data.billing_email"]
    assert explained["fields"]["value"] == ["ecommerce.value"]
    assert "user_data.ph" in [d["field"] for d in explained["dropped"]]
    assert {"shipping.city", "billingStreet"} <= set(explained["not_used"])
    assert "erika" not in result.stdout.lower().replace("user_data.billing_email", "")
    assert "Elsewhere" not in result.stdout


def test_preview_says_when_meta_would_refuse_the_customer_information():
    body = json.dumps({"event_name": "page_view", "page_location": "https://example.com/",
                       "user_agent": "Mozilla/5.0", "city": "Berlin"})
    result = run("preview", "--now", str(NOW), "--explain", stdin=body)
    (explained,) = json.loads(result.stdout)["explain"]
    assert explained["would_be_dead_lettered"].startswith("user_data: insufficient")


def test_preview_as_if_posted_by_a_browser():
    body = json.dumps({"event": "dl_purchase", "page_location": "https://shop.example.com/",
                       "user_properties": {"customer_email": "a@example.com"},
                       "ecommerce": {"currencyCode": "USD", "purchase": {
                           "actionField": {"id": "1", "revenue": "5.00"}}}})
    alone = json.loads(run("preview", "--now", str(NOW), stdin=body).stdout)
    assert alone["rejected"][0]["errors"] == ["client_user_agent: required for website events"]
    assert alone["rejected"][0]["match_keys_found"] == ["em"]
    draft = alone["rejected"][0]["draft"]  # what would go out once a browser posts it
    assert draft["event_name"] == "Purchase" and draft["custom_data"]["order_id"] == "1"
    result = run("preview", "--now", str(NOW), "--user-agent", "Mozilla/5.0", "--ip",
                 "203.0.113.5", stdin=body)
    (event,) = json.loads(result.stdout)["data"]
    assert event["event_name"] == "Purchase" and event["custom_data"]["value"] == 5
    assert event["user_data"]["client_ip_address"] == "203.0.113.5"
    assert event["user_data"]["em"] == [hashlib.sha256(b"a@example.com").hexdigest()]


def test_preview_withholds_denied_consent_and_strips_per_the_policy_flag_or_variable(tmp_path):
    lead = json.loads((EVENTS / "lead.json").read_text())
    body = json.dumps([{**lead, "x-ga-gcd": "13p3p3p3p5"},
                       {**lead, "event_id": "ok", "x-ga-gcd": "13r3r3r3r5l1"}])
    strict = run("preview", "--now", str(NOW), stdin=body)
    out = json.loads(strict.stdout)
    assert [e["event_id"] for e in out["data"]] == ["ok"]
    assert out["not_sent"] == [{"index": 0, "event_id": "lead-3003", "reason": "consent",
                                "detail": "denied:ad_storage,ad_user_data"}]
    assert "event 0: not sent: consent (denied:ad_storage,ad_user_data)" in strict.stderr
    by_flag = run("preview", "--now", str(NOW), "--consent-policy", "strip_user_data",
                  stdin=body)
    by_variable = subprocess.run(
        [*CLI, "preview", "--now", str(NOW)], input=body, capture_output=True, text=True,
        env={"PYTHONPATH": FUNCTIONS, "PATH": "/usr/bin:/bin",
             "CONSENT_POLICY": "strip_user_data"}, timeout=60)
    assert by_flag.stdout == by_variable.stdout
    stripped = json.loads(by_flag.stdout)["data"][0]
    assert set(stripped["user_data"]) == {"client_ip_address", "client_user_agent"}


def test_preview_simulates_enrichment_from_a_profiles_file_and_refuses_bad_settings(tmp_path):
    em = hashlib.sha256(b"known@example.com").hexdigest()
    external_id = hashlib.sha256(b"customer-7").hexdigest()
    link = "link_cid_" + hashlib.sha256(b"555.666").hexdigest()
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({link: {"external_id": external_id, "keys": {"em": [em]},
                                       "expire_at": NOW + 3600}}))
    page_view = (EVENTS / "page_view.json").read_text()
    plain = json.loads(run("preview", "--now", str(NOW), stdin=page_view).stdout)
    enriched = json.loads(run("preview", "--now", str(NOW), "--profiles", str(path),
                              stdin=page_view).stdout)
    assert "em" not in plain["data"][0]["user_data"]
    assert enriched["data"][0]["user_data"]["em"] == [em]
    assert enriched["data"][0]["user_data"]["external_id"] == [external_id]
    bad = run("preview", "--ldu-regions", "zz-nowhere", stdin=page_view)
    assert bad.returncode == 2 and "LDU_REGIONS" in bad.stderr
    missing = run("preview", "--profiles", str(tmp_path / "none.json"), stdin=page_view)
    assert missing.returncode == 2 and "--profiles" in missing.stderr


def test_preview_names_the_pixels_each_event_would_go_to():
    lead = json.loads((EVENTS / "lead.json").read_text())
    purchase = json.loads((EVENTS / "ga4_purchase_sgtm.json").read_text())
    view = json.loads((EVENTS / "page_view.json").read_text())
    body = json.dumps([lead, purchase, view])
    pixels = json.dumps([
        {"id": "1234567890", "route": {"hosts": ["*.example.org"]}},  # META_PIXEL_ID's route
        {"id": "222", "route": {"event_names": ["Purchase"], "source_keys": ["shop-sgtm"]}},
        {"id": "333", "token_env": "NOT_SET_HERE", "route": {"hosts": ["shop.example.com"]}}])
    env = {"PYTHONPATH": FUNCTIONS, "PATH": "/usr/bin:/bin", "META_PIXEL_ID": "1234567890",
           "PIXELS": pixels}
    result = subprocess.run([*CLI, "preview", "--now", str(NOW), "--key-name", "shop-sgtm"],
                            input=body, capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert [(row["index"], row["pixels"]) for row in out["pixels"]] == [
        (0, ["1234567890"]), (1, ["222", "333"]), (2, ["333"])]
    assert [e["event_id"] for e in out["data"]] == [row["event_id"] for row in out["pixels"]]
    other_key = subprocess.run([*CLI, "preview", "--now", str(NOW)], input=json.dumps(
        [{**lead, "page_location": "https://elsewhere.example/"}, purchase]),
        capture_output=True, text=True, env=env, timeout=60)
    out = json.loads(other_key.stdout)
    assert [row["pixels"] for row in out["pixels"]] == [["333"]]
    assert out["not_sent"] == [{"index": 0, "event_id": "lead-3003",
                                "reason": "no_pixel_route"}]
    assert "event 0: not sent: no_pixel_route" in other_key.stderr
    # without PIXELS the output is as before: one pixel, every event
    assert "pixels" not in json.loads(run("preview", "--now", str(NOW), stdin=body).stdout)
