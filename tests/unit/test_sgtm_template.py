"""sgtm/capi-relay.tpl stays a template sGTM can import: its sections, JSON and permissions."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "sgtm" / "capi-relay.tpl"
SECTION_ORDER = ["TERMS_OF_SERVICE", "INFO", "TEMPLATE_PARAMETERS", "SANDBOXED_JS_FOR_SERVER",
                 "SERVER_PERMISSIONS", "TESTS", "NOTES"]

#: server-side sandboxed APIs and the permission each needs (None: it needs none)
API_PERMISSION = {
    "getAllEventData": "read_event_data", "getEventData": "read_event_data",
    "sendHttpRequest": "send_http", "logToConsole": "logging",
    "getRequestHeader": "read_request", "getRemoteAddress": "read_request",
    "getRequestBody": "read_request", "getRequestPath": "read_request",
    "getRequestQueryParameter": "read_request", "getCookieValues": "get_cookies",
    "setCookie": "set_cookies", "getContainerVersion": "read_container_data",
    "JSON": None, "Math": None, "Object": None, "Promise": None, "getType": None,
    "makeString": None, "makeNumber": None, "makeInteger": None, "makeTableMap": None,
    "callLater": None, "encodeUriComponent": None, "getTimestampMillis": None,
    "sha256": None, "sha256Sync": None, "toBase64": None, "fromBase64": None,
}
PARAM_TYPES = {"TEXT", "CHECKBOX", "RADIO", "SELECT", "SIMPLE_TABLE", "PARAM_TABLE", "GROUP",
               "LABEL"}


def sections(text: str) -> dict[str, str]:
    heads = list(re.finditer(r"^___([A-Z_]+)___\s*$", text, flags=re.M))
    return {h.group(1): text[h.end():heads[i + 1].start() if i + 1 < len(heads) else None]
            .strip() for i, h in enumerate(heads)}


@pytest.fixture(scope="module")
def tpl() -> dict[str, str]:
    return sections(TEMPLATE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def code(tpl) -> str:
    return tpl["SANDBOXED_JS_FOR_SERVER"]


def flat_params(params: list[dict]) -> list[dict]:
    out = []
    for param in params:
        out.append(param)
        out.extend(flat_params(param.get("subParams", [])))
    return out


def without_strings_and_comments(js: str) -> str:
    js = re.sub(r"//[^\n]*", "", js)
    return re.sub(r"'(?:[^'\\\n]|\\.)*'", "''", js)


def test_sections_in_the_order_sgtm_writes_them(tpl):
    assert list(tpl) == SECTION_ORDER
    assert all(tpl[name] for name in SECTION_ORDER)


def test_info_describes_a_server_tag(tpl):
    info = json.loads(tpl["INFO"])
    assert info["type"] == "TAG" and info["containerContexts"] == ["SERVER"]
    assert info["id"] == "cvt_temp_public_id" and info["version"] == 1
    assert info["securityGroups"] == [] and info["displayName"] and info["description"]


def test_parameters_are_valid_and_named_once(tpl):
    params = flat_params(json.loads(tpl["TEMPLATE_PARAMETERS"]))
    names = [p["name"] for p in params]
    assert len(names) == len(set(names))
    by_name = {p["name"]: p for p in params}
    for param in params:
        assert param["type"] in PARAM_TYPES, param
        if param["type"] == "RADIO":
            assert {i["value"] for i in param["radioItems"]} >= {param["defaultValue"]}
        if param["type"] == "SIMPLE_TABLE":
            columns = [c["name"] for c in param["simpleTableColumns"]]
            assert len(columns) == len(set(columns)) and all(
                c["type"] == "TEXT" for c in param["simpleTableColumns"])
        for condition in param.get("enablingConditions", []):
            target = by_name[condition["paramName"]]
            assert condition["type"] == "EQUALS"
            assert condition["paramValue"] in {i["value"] for i in target["radioItems"]}
    assert {"type": "NON_EMPTY"} in by_name["relayUrl"]["valueValidators"]
    assert by_name["payload"]["defaultValue"] == "all"
    assert by_name["debug"]["defaultValue"] is False


def test_code_reads_only_declared_fields(tpl, code):
    declared = {p["name"] for p in flat_params(json.loads(tpl["TEMPLATE_PARAMETERS"]))}
    used = set(re.findall(r"\bdata\.(\w+)", code)) - {"gtmOnSuccess", "gtmOnFailure"}
    assert used and used <= declared, used - declared
    assert "data.gtmOnSuccess()" in code and "data.gtmOnFailure()" in code


def test_every_required_api_has_its_permission_and_every_permission_is_used(tpl, code):
    permissions = json.loads(tpl["SERVER_PERMISSIONS"])
    declared = {p["instance"]["key"]["publicId"] for p in permissions}
    required = re.findall(r"require\('([^']+)'\)", code)
    assert len(required) == len(set(required))
    for api in required:
        assert api in API_PERMISSION, f"{api}: not a server-side sandboxed API this test knows"
        permission = API_PERMISSION[api]
        assert permission is None or permission in declared, f"{api} needs {permission}"
    assert declared == {API_PERMISSION[api] for api in required} - {None}


def test_permissions_have_sgtms_shape(tpl):
    for entry in json.loads(tpl["SERVER_PERMISSIONS"]):
        assert entry["isRequired"] is True
        assert entry["instance"]["key"]["versionId"] == "1"
        for param in entry["instance"]["param"]:
            assert set(param) == {"key", "value"} and param["value"]["type"] in (1, 2, 3, 8)
    by_id = {e["instance"]["key"]["publicId"]: {p["key"]: p["value"] for p in
                                                e["instance"]["param"]}
             for e in json.loads(tpl["SERVER_PERMISSIONS"])}
    assert by_id["read_event_data"]["eventDataAccess"] == {"type": 1, "string": "any"}
    assert by_id["send_http"]["allowedUrls"] == {"type": 1, "string": "any"}
    headers = by_id["read_request"]["headerWhitelist"]["listItem"]
    assert [h["mapValue"][0]["string"] for h in headers] == ["user-agent"]
    assert by_id["read_request"]["headerAccess"] == {"type": 1, "string": "specific"}
    assert by_id["logging"]["environments"]["string"] in ("debug", "all")


def test_code_uses_only_what_the_sandbox_has(code):
    bare = without_strings_and_comments(code)
    for construct in (r"\bnew\s", r"\bclass\s", r"\basync\b", r"\bawait\b", r"\bimport\b",
                      r"\beval\(", r"\bconsole\.", r"\bwindow\.", r"\bprocess\.", r"\btypeof\b",
                      r"\bsetTimeout\("):
        assert not re.search(construct, bare), construct
    for global_api in ("JSON", "Math", "Object", "Promise"):
        if re.search(rf"\b{global_api}\.", bare):
            assert f"const {global_api} = require('{global_api}');" in code


def test_logs_only_in_debug_and_never_the_key_or_event_data(code):
    calls = [m.start() for m in re.finditer(r"logToConsole\(", code)]
    assert len(calls) == 1, "one logging place: debugLog()"
    debug_log = code[code.index("function debugLog("):code.index("\n}\n", calls[0])]
    assert "if (data.debug)" in debug_log
    logged = code[calls[0]:code.index(";", calls[0])]
    for secret in ("relayKey", "key", "headers", "body", "getAllEventData", "Authorization"):
        assert secret not in logged


def test_tests_section_has_scenarios_and_setup(tpl):
    tests = tpl["TESTS"]
    assert tests.startswith("scenarios:") and "\nsetup: |-" in tests
    assert tests.count("\n- name: ") >= 5
