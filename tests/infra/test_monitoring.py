"""infra/monitoring.tf: the metrics, alerts and dashboard, and that they read real log lines.

A log-based metric whose filter names a message the code no longer writes counts nothing, and
its alert never fires, silently. So every message, field and field value a metric filter or
extractor relies on is looked up in the log calls of functions/ (read with ``ast``): a renamed
log message or a dropped field fails here, not in production.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from tfmodel import REPO_ROOT, block

FUNCTIONS = REPO_ROOT / "functions"
LOG_LEVELS = {"info": "INFO", "warning": "WARNING", "error": "ERROR"}

#: what the issue asks to count, by metric resource name
EXPECTED_METRICS = {
    "events_accepted", "events_sent", "events_dead_lettered", "consent_drops",
    "insufficient_customer_information", "token_errors",
}


@dataclass
class LogCall:
    """One ``log.info/warning/error/log(...)`` call in functions/."""

    where: str
    message: str
    fields: set[str] = field(default_factory=set)
    constants: dict[str, object] = field(default_factory=dict)  # keyword=literal


def log_calls(root: Path = FUNCTIONS) -> list[LogCall]:
    calls = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and isinstance(node.func.value, ast.Name) and node.func.value.id == "log"):
                continue
            name, args = node.func.attr, node.args
            if name == "log":
                args = args[1:]  # log.log(severity, message, ...)
            elif name not in LOG_LEVELS:
                continue
            if not args or not isinstance(args[0], ast.Constant) \
                    or not isinstance(args[0].value, str):
                continue
            call = LogCall(f"{path.relative_to(root)}:{node.lineno}", args[0].value)
            for keyword in node.keywords:
                if keyword.arg is None:
                    continue
                call.fields.add(keyword.arg)
                if isinstance(keyword.value, ast.Constant):
                    call.constants[keyword.arg] = keyword.value.value
            calls.append(call)
    return calls


_STRING = r'"((?:[^"\\]|\\.)*)"'


def filter_terms(text: str) -> dict[str, list[str | None]]:
    """jsonPayload fields a filter reads: field -> the literal values it compares with
    (None for a comparison with a number, e.g. ``accepted>0``)."""
    terms: dict[str, list[str | None]] = {}
    for match in re.finditer(r'jsonPayload\.([A-Za-z_]+)\s*(=|>|<|>=|<=|:)\s*'
                             r'(\(\s*"[^)]*\)|' + _STRING + r'|[0-9.]+)', text):
        name, value = match.group(1), match.group(3)
        if value.startswith("("):
            values = re.findall(_STRING, value)
            assert re.fullmatch(r'\(\s*' + _STRING + r'(\s+OR\s+' + _STRING + r')*\s*\)',
                                value), f"only OR of strings is understood: {value}"
        elif value.startswith('"'):
            values = [value[1:-1]]
        else:
            values = [None]
        terms.setdefault(name, []).extend(values)
    return terms


def extracted_fields(metric: dict) -> set[str]:
    found = set()
    expressions = [metric.get("value_extractor", "")]
    for entry in metric.get("label_extractors", []) or []:
        expressions.extend(entry.values() if isinstance(entry, dict) else [entry])
    if isinstance(metric.get("label_extractors"), dict):
        expressions.extend(metric["label_extractors"].values())
    for expression in expressions:
        found.update(re.findall(r"EXTRACT\(jsonPayload\.([A-Za-z_]+)\)", str(expression)))
    return found


def resolve(text: str, tf) -> str:
    """Inlines ${local.ingest_logs}/${local.process_logs} so the component test applies."""
    for name in ("ingest_logs", "process_logs"):
        text = text.replace("${local." + name + "}", tf.locals[name])
    return text


def metrics(tf) -> dict[str, dict]:
    return tf.resources.get("google_logging_metric", {})


@pytest.fixture(scope="module")
def calls() -> list[LogCall]:
    found = log_calls()
    assert len(found) > 10, "the log call scanner found almost nothing: is it broken?"
    return found


# --- resources --------------------------------------------------------------------------------


def test_metrics_exist_and_are_named_per_deployment(tf):
    assert EXPECTED_METRICS <= set(metrics(tf)), EXPECTED_METRICS - set(metrics(tf))
    for name, metric in metrics(tf).items():
        assert metric["name"] == "${var.name_prefix}/" + name, name
        assert metric["filter"].startswith("${local.ingest_logs}") or \
            metric["filter"].startswith("${local.process_logs}"), name
        assert metric.get("description"), name


def test_log_scopes_name_the_function_and_its_component(tf):
    for fn in ("ingest", "process"):
        scope = tf.locals[f"{fn}_logs"]
        assert 'resource.type="cloud_run_revision"' in scope  # gen2 functions run on Cloud Run
        assert "${google_cloudfunctions2_function." + fn + ".name}" in scope
        assert f'jsonPayload.component="{fn}"' in scope


def test_counts_are_summed_from_fields_and_per_event_lines_are_counted(tf):
    kinds = {name: block(m, "metric_descriptor") for name, m in metrics(tf).items()}
    for name in ("events_accepted", "events_sent", "insufficient_customer_information"):
        assert kinds[name]["value_type"] == "DISTRIBUTION", name
        assert metrics(tf)[name].get("value_extractor"), name
        assert block(metrics(tf)[name], "bucket_options"), name
    for name in ("events_dead_lettered", "consent_drops", "token_errors"):
        assert kinds[name]["value_type"] == "INT64" and kinds[name]["metric_kind"] == "DELTA"
    labels = block(metrics(tf)["events_dead_lettered"], "metric_descriptor")["labels"]
    assert [label["key"] for label in labels] == ["reason"]
    for name in ("events_sent", "token_errors"):  # several pixels: which one (issue 14)
        labels = block(metrics(tf)[name], "metric_descriptor")["labels"]
        assert [label["key"] for label in labels] == ["pixel_id"], name
        assert metrics(tf)[name]["label_extractors"] == {
            "pixel_id": "EXTRACT(jsonPayload.pixel_id)"}, name


def test_alert_policies(tf):
    policies = tf.resources["google_monitoring_alert_policy"]
    assert set(policies) == {"token_rejected", "dead_letter_share", "accepted_not_sent"}
    for name, policy in policies.items():
        assert policy["notification_channels"] == "${var.alert_notification_channels}", name
        assert block(policy, "documentation")["content"], name
        query = block(block(policy, "conditions"), "condition_prometheus_query_language")["query"]
        assert "${" in query or "logging_googleapis_com" in query, name
    def query(name):
        return block(block(policies[name], "conditions"),
                     "condition_prometheus_query_language")["query"]
    assert "local.promql.token" in query("token_rejected") and "> 0" in query("token_rejected")
    share = query("dead_letter_share")
    assert "local.promql.dead" in share and "local.promql.sent" in share
    assert "${var.dead_letter_alert_share}" in share
    assert "${var.dead_letter_alert_min_events}" in share
    stalled = query("accepted_not_sent")
    assert "local.promql.accepted" in stalled and "unless" in stalled
    assert "local.stalled_window" in stalled


def test_promql_names_follow_the_metric_names(tf):
    # logging.googleapis.com/user/<prefix>/<name> is, in PromQL, logging_googleapis_com:user_...
    assert tf.locals["promql_prefix"] == \
        'logging_googleapis_com:user_${replace(var.name_prefix, "-", "_")}_'
    distributions = {n for n, m in metrics(tf).items()
                     if block(m, "metric_descriptor")["value_type"] == "DISTRIBUTION"}
    used = set()
    for query in tf.locals["promql"].values():
        (name,) = re.findall(r"\$\{local\.promql_prefix\}([a-z_]+)", query)
        base = name[:-4] if name.endswith("_sum") else name
        assert base in metrics(tf), f"{query} reads no metric of monitoring.tf"
        assert name.endswith("_sum") == (base in distributions), \
            f"{query}: a distribution is read by its _sum, a counter by its name"
        used.add(base)
    assert used == set(metrics(tf)), "every metric is on the dashboard"


def test_dashboard_shows_every_chart_and_alert(tf):
    dashboard = tf.resource("google_monitoring_dashboard", "relay")
    assert "jsonencode" in dashboard["dashboard_json"] and "mosaicLayout" in \
        dashboard["dashboard_json"]
    charts = tf.locals["dashboard_charts"]
    assert len(charts) >= 4
    assert len(tf.locals["alert_policies"]) == 3


def test_monitoring_api_is_enabled(tf):
    assert "monitoring.googleapis.com" in tf.files["apis.tf"]


def test_notification_channel_variable_is_validated(tf):
    variable = tf.variables["alert_notification_channels"]
    assert variable["type"] == "${list(string)}" and variable["default"] == []
    assert variable.get("validation")
    for name in ("dead_letter_alert_share", "dead_letter_alert_min_events",
                 "dead_letter_alert_window_minutes", "stalled_delivery_minutes"):
        assert tf.variables[name].get("validation"), name


# --- the filters read what the code writes ----------------------------------------------------


def emitters(calls: list[LogCall], message: str, component: str) -> list[LogCall]:
    return [c for c in calls if c.message == message and c.constants.get("component") == component]


def metric_requirements(tf, name: str) -> tuple[str, dict[str, list[str | None]], set[str]]:
    metric = metrics(tf)[name]
    terms = filter_terms(resolve(metric["filter"], tf))
    (component,) = terms.pop("component")
    return component, terms, extracted_fields(metric)


def filter_problems(tf, calls: list[LogCall], name: str) -> list[str]:
    """What metric `name` relies on that no log call in `calls` writes."""
    component, terms, extracted = metric_requirements(tf, name)
    messages = terms.pop("message", None)
    problems = []
    if messages is None:  # a filter on a field value alone, e.g. cause="token"
        candidates = [c for c in calls if c.constants.get("component") == component]
    else:
        candidates = []
        for message in messages:
            found = emitters(calls, message, component)
            if not found:
                problems.append(f"no log call writes {message!r} for component {component!r}")
            candidates.extend(found)
    for field_name, values in terms.items():
        for value in values:
            if value is None:
                holders = [c for c in candidates if field_name in c.fields]
            else:
                holders = [c for c in candidates if c.constants.get(field_name) == value]
            if not holders:
                problems.append(f"no matching log call writes {field_name}={value!r}")
            candidates = holders
    for field_name in extracted:
        with_field = [c for c in candidates if field_name in c.fields]
        if not with_field:
            problems.append(f"extracts jsonPayload.{field_name}, which nothing writes")
        elif name != "events_dead_lettered" and with_field != candidates:
            # (the undecodable line carries no reason: its label is empty, on purpose)
            problems.append(f"{[c.where for c in candidates if c not in with_field]} "
                            f"lack {field_name}")
    return problems


@pytest.mark.parametrize("name", sorted(EXPECTED_METRICS))
def test_metric_filter_matches_a_log_line_the_code_writes(tf, calls, name):
    assert filter_problems(tf, calls, name) == []


@pytest.mark.parametrize("edit, broken", [
    # (file, old, new) of functions/, and the metric that must then complain
    (("capi_relay/app/sender.py", 'log.info("sent"', 'log.info("delivered"'), "events_sent"),
    (("capi_relay/app/process.py", 'cause="token"', 'cause="auth"'), "token_errors"),
    (("capi_relay/app/sender.py", "batch_size=len(batch),\n                     events_received",
      "events_received"), "events_sent"),
    (("capi_relay/app/process.py", '"rejected: insufficient customer information"',
      '"rejected: too few keys"'), "insufficient_customer_information"),
    (("capi_relay/app/process.py", 'consent=decision.consent.reason',
      'policy=decision.consent.reason'),
     "consent_drops"),
])
def test_a_renamed_log_line_breaks_the_check(tf, tmp_path, edit, broken):
    import shutil

    path, old, new = edit
    copy = tmp_path / "functions"
    shutil.copytree(FUNCTIONS, copy, ignore=shutil.ignore_patterns("__pycache__"))
    text = (copy / path).read_text(encoding="utf-8")
    assert old in text, f"the edit no longer applies to {path}: update this test"
    (copy / path).write_text(text.replace(old, new), encoding="utf-8")
    assert filter_problems(tf, log_calls(copy), broken), f"{broken} did not notice"
    assert filter_problems(tf, log_calls(FUNCTIONS), broken) == []


def test_every_field_a_metric_reads_is_allowed_by_the_logger(tf):
    from capi_relay.log import SAFE_KEYS

    for name in metrics(tf):
        _, terms, extracted = metric_requirements(tf, name)
        for field_name in (set(terms) - {"message"}) | extracted:
            assert field_name in SAFE_KEYS, f"{name}: log.py drops {field_name}"


# --- the same, against real log lines -----------------------------------------------------------


def test_a_process_run_writes_the_lines_the_metrics_count(logs):
    """The processor's own lines, not just its source, carry what the filters read."""
    from dataclasses import replace

    from capi_relay.core.envelope import QueuedEvent, encode
    from capi_relay.core.errors import TokenProblem
    from capi_relay.core.mapping import to_capi_event
    from fakes import FakeClock, FakePublisher, ScriptedGraph, make_processor

    now = 1_732_450_000.0

    def queued(i):
        raw = {"event_name": "Lead", "event_id": f"e{i}", "event_time": now,
               "action_source": "system_generated", "email": f"u{i}@example.com"}
        return QueuedEvent(to_capi_event(raw, now=now, new_id=lambda: "x").event, None, {}, ())

    def build(graph):
        return make_processor(graph, clock=FakeClock(now), consent_missing="send",
                              dead_letter=FakePublisher())

    old = QueuedEvent(replace(queued(2).event, event_time=int(now - 30 * 86400)), None, {}, ())
    denied = QueuedEvent(queued(3).event, None, {"consent": {"ad_user_data": "denied"}}, ())
    build(ScriptedGraph()).process(encode([queued(1), old, denied]))
    with pytest.raises(TokenProblem):
        build(ScriptedGraph(lambda events, token: (400, {"error": {"code": 190}}))).process(
            encode([queued(4)]))

    lines = [line for line in logs() if line.get("component") == "process"]
    by_message = {}
    for line in lines:
        by_message.setdefault(line["message"], []).append(line)
    assert by_message["sent"][0]["batch_size"] == 1
    assert by_message["dead-lettered"][0]["reason"] == "too_old"
    assert by_message["not sent: consent"][0]["consent"]
    assert any(line.get("cause") == "token" for line in lines)
    sent = by_message["sent"][0]
    assert sent["match_keys"] == {"Lead": {"events": 1, "em": 1}}
    assert all(json.dumps(line).count("@example.com") == 0 for line in lines)


def test_process_counts_events_without_enough_customer_information(logs):
    """Meta's sufficiency rule runs in the processor after enrichment (issue 15): ingest
    accepts a thin event, the processor dead-letters it and writes the counted line."""
    from capi_relay.app.ingest import IngestService
    from capi_relay.core.mapping import DEFAULT_CONFIG, RequestContext
    from fakes import FakeClock, FakePublisher, make_processor

    queue = FakePublisher()
    service = IngestService(queue, FakeClock(), lambda: "id", DEFAULT_CONFIG)
    good = {"event_name": "Lead", "action_source": "system_generated", "email": "a@b.example",
            "event_id": "good"}
    thin = {"event_name": "Lead", "action_source": "system_generated", "gender": "f"}
    service.ingest([good, {**thin, "event_id": "t1"}, {**thin, "event_id": "t2"}],
                   RequestContext())
    (ingested,) = [x for x in logs() if x["message"] == "ingested"]
    assert ingested["accepted"] == 3
    make_processor(clock=FakeClock(), dead_letter=FakePublisher()).process(*queue.messages[0])
    (line,) = [x for x in logs() if x["message"] == "rejected: insufficient customer information"]
    assert line["count"] == 2 and line["component"] == "process"
