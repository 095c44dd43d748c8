"""Asserts the wiring of infra/ (push delivery, dead-lettering, IAM, ingress, TTL, conventions).

The checks read the parsed Terraform (see conftest.py), so they run without providers or a
network. The last test breaks a copy of infra/ in several ways and makes sure the checks notice.
"""

from __future__ import annotations

import re
import shutil

import pytest
from tfmodel import INFRA_DIR, Terraform, block, load_terraform, ref

PRIMITIVE_ROLES = {"roles/owner", "roles/editor", "roles/viewer"}
PROCESS_URI = "google_cloudfunctions2_function.process.service_config[0].uri"
PUBSUB_AGENT = "local.pubsub_service_agent"

EXPECTED_FILES = {
    "versions.tf", "variables.tf", "outputs.tf", "apis.tf", "pubsub.tf", "functions.tf",
    "firestore.tf", "secrets.tf", "iam.tf", "storage.tf", "lb.tf",
}


def sa_member(account: str) -> str:
    return "serviceAccount:${google_service_account." + account + ".email}"


def iam_grants(tf: Terraform) -> list[tuple[str, str, dict]]:
    """Every IAM grant resource: (type, name, body)."""
    return [(t, n, b) for t, n, b in tf.all_resources()
            if re.search(r"_iam_(member|binding|policy)$", t)]


def grants_of(tf: Terraform, member: str) -> set[tuple[str, str, str]]:
    """(resource type, role, target) of every grant to `member`; target names what it is on."""
    found = set()
    for rtype, _, body in iam_grants(tf):
        members = body.get("members", [body.get("member")])
        if member in members:
            target = next((ref(body[k]) for k in ("topic", "subscription", "secret_id", "name",
                                                   "service_account_id", "bucket") if k in body),
                          "project")
            found.add((rtype, body["role"], target))
    return found


def walk_strings(node):
    if isinstance(node, dict):
        for value in node.values():
            yield from walk_strings(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk_strings(value)
    elif isinstance(node, str):
        yield node


# --- layout and conventions ------------------------------------------------------------------


def test_files_are_split_by_concern(tf):
    assert EXPECTED_FILES <= set(tf.files), EXPECTED_FILES - set(tf.files)


def test_every_variable_has_type_and_description(tf):
    assert tf.variables
    for name, body in tf.variables.items():
        assert ref(str(body.get("type", ""))), f"variable {name} has no type"
        assert str(body.get("description", "")).strip(), f"variable {name} has no description"


def test_enumerable_variables_are_validated(tf):
    enumerable = ["python_runtime", "ingest_ingress_settings", "ingest_memory", "processor_memory",
                  "max_delivery_attempts", "region", "first_party_domain", "default_country"]
    for name in enumerable:
        assert tf.variables[name].get("validation"), f"variable {name} has no validation"


def test_every_output_has_description(tf):
    assert tf.outputs
    for name, body in tf.outputs.items():
        assert str(body.get("description", "")).strip(), f"output {name} has no description"
        assert "value" in body, f"output {name} has no value"


def test_required_outputs(tf):
    required = {"ingest_url", "events_topic", "dead_letter_topic", "push_subscription",
                "dead_letter_subscription", "ingest_service_account_email",
                "processor_service_account_email", "push_invoker_service_account_email"}
    assert required <= set(tf.outputs), required - set(tf.outputs)


def test_providers_are_pinned_and_backend_is_gcs(tf):
    (settings,) = tf.terraform
    providers = settings["required_providers"][0]
    for name in ("google", "archive"):
        assert providers[name]["version"].startswith("~>"), f"{name} provider is not pinned"
    assert "gcs" in settings["backend"][0]


def test_tfvars_example_only_sets_declared_variables(tf):
    text = (INFRA_DIR / "terraform.tfvars.example").read_text(encoding="utf-8")
    assigned = set(re.findall(r"^([a-z_]+)\s*=", text, flags=re.MULTILINE))
    required = {n for n, b in tf.variables.items() if "default" not in b}
    assert assigned <= set(tf.variables), assigned - set(tf.variables)
    assert required <= assigned, f"example misses required variables {required - assigned}"


def test_every_reference_resolves_and_every_variable_is_used(tf):
    # No provider can be installed here (no `terraform validate`); this catches dangling names.
    everything = [tf.resources, tf.data, tf.locals, tf.outputs, tf.variables, tf.providers]
    text = "\n".join(walk_strings(everything))
    variables = set(re.findall(r"\bvar\.([a-z0-9_]+)", text))
    assert variables <= set(tf.variables), f"undeclared variables {variables - set(tf.variables)}"
    assert set(tf.variables) <= variables, f"unused variables {set(tf.variables) - variables}"
    locals_used = set(re.findall(r"\blocal\.([a-z0-9_]+)", text))
    assert locals_used <= set(tf.locals), f"undeclared locals {locals_used - set(tf.locals)}"
    for rtype, name in re.findall(r"(?<![.\w])(google_[a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert name in tf.resources.get(rtype, {}), f"reference to undeclared {rtype}.{name}"
    for rtype, name in re.findall(r"\bdata\.([a-z0-9_]+)\.([a-z0-9_]+)", text):
        assert name in tf.data.get(rtype, {}), f"reference to undeclared data.{rtype}.{name}"


def test_apis_are_enabled(tf):
    apis = tf.locals["enabled_apis"]
    for api in ("cloudfunctions", "run", "cloudbuild", "artifactregistry", "pubsub",
                "firestore", "secretmanager", "iam"):
        assert f"{api}.googleapis.com" in apis, f"{api} API is not enabled"
    service = tf.resource("google_project_service", "enabled")
    assert ref(service["for_each"]) == "toset(local.enabled_apis)"
    assert service["disable_on_destroy"] is False


# --- Pub/Sub ---------------------------------------------------------------------------------


def test_push_subscription_delivers_to_processor_with_oidc(tf):
    sub = tf.resource("google_pubsub_subscription", "process_push")
    assert ref(sub["topic"]) == "google_pubsub_topic.events.id"
    # pushed only with delivery = "push"; without push_config the puller pulls it
    assert "push_config" not in sub
    [dynamic] = [d["push_config"] for d in sub["dynamic"] if "push_config" in d]
    assert ref(dynamic["for_each"]) == "local.pull_delivery ? [] : [1]"
    assert tf.locals["pull_delivery"] == '${var.delivery == "scheduled_pull"}'
    push = block(dynamic, "content")
    assert ref(push["push_endpoint"]) == PROCESS_URI
    oidc = block(push, "oidc_token")
    assert ref(oidc["service_account_email"]) == "google_service_account.push_invoker.email"
    assert ref(oidc["audience"]) == PROCESS_URI


def test_push_subscription_retry_policy(tf):
    retry = block(tf.resource("google_pubsub_subscription", "process_push"), "retry_policy")
    assert retry["minimum_backoff"] == "10s"
    assert retry["maximum_backoff"] == "600s"


def test_push_subscription_dead_letter_policy(tf):
    sub = tf.resource("google_pubsub_subscription", "process_push")
    policy = block(sub, "dead_letter_policy")
    assert ref(policy["dead_letter_topic"]) == "google_pubsub_topic.dead_letter.id"
    assert ref(str(policy["max_delivery_attempts"])) == "var.max_delivery_attempts"
    variable = tf.variables["max_delivery_attempts"]
    assert variable["default"] == 10
    condition = block(variable, "validation")["condition"]
    assert ">= 5" in condition and "<= 100" in condition


def test_push_subscription_deadline_and_retention(tf):
    sub = tf.resource("google_pubsub_subscription", "process_push")
    # The ack deadline is the push request timeout: it must follow the processor's timeout.
    assert ref(str(sub["ack_deadline_seconds"])) == "var.processor_timeout_seconds"
    process = block(tf.resource("google_cloudfunctions2_function", "process"), "service_config")
    assert ref(str(process["timeout_seconds"])) == "var.processor_timeout_seconds"
    assert ref(sub["message_retention_duration"]) == "local.message_retention"
    assert tf.locals["message_retention"] == "${var.message_retention_days * 86400}s"


def test_dead_letter_topic_has_retained_pull_subscription(tf):
    sub = tf.resource("google_pubsub_subscription", "dead_letter_pull")
    assert ref(sub["topic"]) == "google_pubsub_topic.dead_letter.id"
    assert "push_config" not in sub, "the dead-letter subscription must be pull"
    assert ref(sub["message_retention_duration"]) == "local.message_retention"
    assert tf.variables["message_retention_days"]["default"] == 7
    assert block(sub, "expiration_policy")["ttl"] == ""


def test_pubsub_service_agent_can_dead_letter(tf):
    agent = tf.locals["pubsub_service_agent"]
    assert agent == ("serviceAccount:service-${data.google_project.this.number}"
                     "@gcp-sa-pubsub.iam.gserviceaccount.com")
    grants = grants_of(tf, "${" + PUBSUB_AGENT + "}")
    assert ("google_pubsub_topic_iam_member", "roles/pubsub.publisher",
            "google_pubsub_topic.dead_letter.name") in grants
    assert ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber",
            "google_pubsub_subscription.process_push.name") in grants
    assert ("google_service_account_iam_member", "roles/iam.serviceAccountTokenCreator",
            "google_service_account.push_invoker.name") in grants
    assert len(grants) == 3, f"unexpected grants to the Pub/Sub agent: {grants}"


# --- IAM -------------------------------------------------------------------------------------


def test_no_primitive_roles_anywhere(tf):
    for rtype, name, body in tf.all_resources():
        for text in walk_strings(body):
            for role in PRIMITIVE_ROLES:
                assert role not in text, f"{rtype}.{name} uses {role}"


def test_one_service_account_per_function(tf):
    accounts = tf.resources["google_service_account"]
    assert {"ingest", "processor", "push_invoker"} <= set(accounts)
    ingest = block(tf.resource("google_cloudfunctions2_function", "ingest"), "service_config")
    process = block(tf.resource("google_cloudfunctions2_function", "process"), "service_config")
    assert ref(ingest["service_account_email"]) == "google_service_account.ingest.email"
    assert ref(process["service_account_email"]) == "google_service_account.processor.email"


def test_ingest_may_only_publish_and_view_events(tf):
    # viewer: /healthz lists the topic's subscriptions (issue 12: ready only once one exists);
    # the keys secret: source authentication
    assert grants_of(tf, sa_member("ingest")) == {
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher",
         "google_pubsub_topic.events.name"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.viewer",
         "google_pubsub_topic.events.name"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor",
         "google_secret_manager_secret.ingest_keys.secret_id"),
    }


def test_ingest_is_created_after_the_push_subscription(tf):
    """Pub/Sub drops messages published to a topic with no subscription."""
    ingest = tf.resource("google_cloudfunctions2_function", "ingest")
    assert "google_pubsub_subscription.process_push" in [ref(d) for d in ingest["depends_on"]]


def test_processor_grants_are_minimal(tf):
    assert grants_of(tf, sa_member("processor")) == {
        ("google_project_iam_member", "roles/datastore.user", "project"),
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor",
         "google_secret_manager_secret.meta_token.secret_id"),
        # one grant per pixel token secret (issue 14), each on that secret alone
        ("google_secret_manager_secret_iam_member", "roles/secretmanager.secretAccessor",
         "each.value.secret_id"),
        ("google_pubsub_topic_iam_member", "roles/pubsub.publisher",
         "google_pubsub_topic.dead_letter.name"),
        # the scheduled puller pulls, acknowledges and hands back its one subscription
        ("google_pubsub_subscription_iam_member", "roles/pubsub.subscriber",
         "google_pubsub_subscription.process_push.name"),
    }


def test_secret_accessor_only_on_the_one_secret(tf):
    """Each function reads only its own secrets: the processor the tokens (the main one and
    one per pixel of var.pixels with its own), the ingest the keys."""
    holders = [(t, n, b) for t, n, b in iam_grants(tf)
               if b.get("role") == "roles/secretmanager.secretAccessor"]
    assert len(holders) == 3, f"secretAccessor granted {len(holders)} times"
    assert all(rtype == "google_secret_manager_secret_iam_member" for rtype, _, _ in holders)
    assert {(ref(b["secret_id"]), b["member"]) for _, _, b in holders} == {
        ("google_secret_manager_secret.meta_token.secret_id", sa_member("processor")),
        ("each.value.secret_id", sa_member("processor")),
        ("google_secret_manager_secret.ingest_keys.secret_id", sa_member("ingest"))}
    per_pixel = tf.resource("google_secret_manager_secret_iam_member",
                            "processor_reads_pixel_tokens")
    assert ref(per_pixel["for_each"]) == "google_secret_manager_secret.pixel_token"


def test_pixel_tokens_are_containers_made_for_the_listed_pixels(tf):
    secret = tf.resource("google_secret_manager_secret", "pixel_token")
    assert ref(secret["for_each"]) == "local.pixel_token_secret_ids"
    assert "var.pixels" in tf.locals["pixel_token_secret_ids"]
    processor = tf.locals["processor_settings"]
    assert "jsonencode(local.pixels_setting)" in processor["PIXELS"]
    assert "PIXELS" not in tf.locals["ingest_settings"]
    # the version name the code expects (projects/P/secrets/S/versions/latest)
    assert "/versions/latest" in str(tf.locals["pixel_token_versions"])


def test_push_invoker_may_only_invoke_processor(tf):
    grants = grants_of(tf, sa_member("push_invoker"))
    assert len(grants) == 1, grants
    ((rtype, role, target),) = grants
    assert rtype in ("google_cloud_run_service_iam_member",
                     "google_cloud_run_v2_service_iam_member")
    assert role == "roles/run.invoker"
    assert target == "google_cloudfunctions2_function.process.name"


def test_only_ingest_is_public(tf):
    public = [(t, b) for t, _, b in iam_grants(tf)
              if b.get("member") in ("allUsers", "allAuthenticatedUsers")
              or {"allUsers", "allAuthenticatedUsers"} & set(b.get("members", []))]
    assert len(public) == 1, f"expected one public grant, found {len(public)}"
    _, body = public[0]
    assert body["role"] == "roles/run.invoker"
    assert ref(body["name"]) == "google_cloudfunctions2_function.ingest.name"


# --- functions -------------------------------------------------------------------------------


def test_processor_is_internal_and_not_event_triggered(tf):
    process = tf.resource("google_cloudfunctions2_function", "process")
    assert block(process, "service_config")["ingress_settings"] == "ALLOW_INTERNAL_ONLY"
    assert "event_trigger" not in process, "delivery is our own subscription"
    assert ref(block(process, "build_config")["entry_point"]) == \
        'local.pull_delivery ? "pull" : "process"'


def test_scheduled_pull_is_a_scheduler_job_invoking_the_processor_with_oidc(tf):
    job = tf.resource("google_cloud_scheduler_job", "pull")
    assert ref(str(job["count"])) == "local.pull_delivery ? 1 : 0"
    assert ref(job["schedule"]) == "var.pull_schedule"
    assert tf.variables["pull_schedule"]["default"] == "* * * * *"
    assert tf.variables["delivery"]["default"] == "scheduled_pull"
    target = block(job, "http_target")
    assert target["http_method"] == "POST" and ref(target["uri"]) == PROCESS_URI
    oidc = block(target, "oidc_token")
    assert ref(oidc["service_account_email"]) == "google_service_account.scheduler[0].email"
    assert ref(oidc["audience"]) == PROCESS_URI
    assert block(job, "retry_config")["retry_count"] == 0


def test_scheduler_may_only_invoke_processor(tf):
    grants = grants_of(tf, "serviceAccount:${google_service_account.scheduler[0].email}")
    assert grants == {("google_cloud_run_v2_service_iam_member", "roles/run.invoker",
                       "google_cloudfunctions2_function.process.name")}


def test_the_puller_runs_one_request_on_one_instance(tf):
    """The run ledger writes one record per run: it relies on one run at a time."""
    assert ref(tf.locals["processor_concurrency"]) == \
        "local.pull_delivery ? 1 : var.processor_max_instance_request_concurrency"
    assert ref(tf.locals["processor_max_instances"]) == \
        "local.pull_delivery ? 1 : var.processor_max_instances"
    service = block(tf.resource("google_cloudfunctions2_function", "process"), "service_config")
    assert ref(str(service["max_instance_request_concurrency"])) == "local.processor_concurrency"
    assert "google_pubsub_subscription.process_push.name" in \
        tf.locals["processor_settings"]["PULL_SUBSCRIPTION"]


def test_ingest_scaling_is_configurable(tf):
    ingest = tf.resource("google_cloudfunctions2_function", "ingest")
    assert block(ingest, "build_config")["entry_point"] == "ingest"
    service = block(ingest, "service_config")
    assert ref(str(service["max_instance_request_concurrency"])) == \
        "var.ingest_max_instance_request_concurrency"
    assert ref(str(service["min_instance_count"])) == "var.ingest_min_instances"
    assert ref(str(service["max_instance_count"])) == "var.ingest_max_instances"
    assert ref(str(service["available_cpu"])) == "var.ingest_cpu"


def test_both_functions_are_gen2_from_one_hashed_archive(tf):
    assert "google_cloudfunctions_function" not in tf.resources, "gen1 functions are not used"
    archive = tf.data["archive_file"]["functions"]
    assert archive["type"] == "zip"
    assert ref(archive["source_dir"]) == "local.functions_dir"
    assert tf.locals["functions_dir"] == "${path.module}/../functions"
    obj = tf.resource("google_storage_bucket_object", "functions_source")
    assert "${data.archive_file.functions.output_md5}" in obj["name"]
    assert ref(obj["source"]) == "data.archive_file.functions.output_path"
    for name in ("ingest", "process"):
        build = block(tf.resource("google_cloudfunctions2_function", name), "build_config")
        storage = block(block(build, "source"), "storage_source")
        assert ref(storage["object"]) == "google_storage_bucket_object.functions_source.name"
        assert ref(storage["bucket"]) == "google_storage_bucket.source.name"


def test_functions_get_the_settings_the_code_reads(tf):
    # which settings go where is checked against the code's registry in test_settings.py
    ingest, processor = tf.locals["ingest_settings"], tf.locals["processor_settings"]
    assert ref(processor["PUBSUB_TOPIC"]) == "google_pubsub_topic.events.name"
    assert ref(processor["IDEMPOTENCY_COLLECTION"]) == "var.idempotency_collection"
    assert processor["META_TOKEN_SECRET"] == \
        "${google_secret_manager_secret.meta_token.id}/versions/latest"
    assert "google_secret_manager_secret.ingest_keys.id" in ingest["INGEST_KEYS_SECRET"]
    assert "jsonencode(var.redact_fields)" in processor["REDACT_FIELDS"]
    assert "META_TOKEN_SECRET" not in ingest
    for name, env in (("ingest", "local.ingest_env"), ("process", "local.processor_env")):
        service = block(tf.resource("google_cloudfunctions2_function", name), "service_config")
        assert ref(service["environment_variables"]) == env


def test_each_function_runs_as_many_threads_as_its_concurrency(tf):
    # Cloud Run functions' concurrency page: for Python, set THREADS equal to the concurrency.
    for env, concurrency in (("ingest_env", "var.ingest_max_instance_request_concurrency"),
                             ("processor_env", "local.processor_concurrency")):
        assert f"THREADS = tostring({concurrency})" in tf.locals[env], env


# --- Firestore and the secret ----------------------------------------------------------------


def test_firestore_native_database(tf):
    database = tf.resource("google_firestore_database", "default")
    assert database["type"] == "FIRESTORE_NATIVE"
    assert database["name"] == "(default)"


def test_idempotency_ttl_on_expire_at(tf):
    field = tf.resource("google_firestore_field", "idempotency_ttl")
    assert ref(field["collection"]) == "var.idempotency_collection"
    assert field["field"] == "expire_at"
    assert field["database"] == "(default)"
    assert "ttl_config" in field, "the TTL policy is missing"
    assert tf.variables["idempotency_collection"]["default"] == "capi_relay_idempotency"


def test_profile_links_expire_and_keys_are_not_indexed(tf):
    links = tf.resource("google_firestore_field", "profile_links_ttl")
    assert ref(links["collection"]) == "var.profiles_collection"
    assert links["field"] == "expire_at" and "ttl_config" in links
    keys = tf.resource("google_firestore_field", "profile_keys_unindexed")
    assert keys["field"] == "keys" and "ttl_config" not in keys and "index_config" in keys


def test_token_secret_is_a_container_only(tf):
    tf.resource("google_secret_manager_secret", "meta_token")
    assert "google_secret_manager_secret_version" not in tf.resources, \
        "the token value must not pass through Terraform state"


# --- optional load balancer ------------------------------------------------------------------


def test_load_balancer_is_off_without_a_domain(tf):
    assert tf.variables["first_party_domain"]["default"] == ""
    assert tf.locals["first_party_enabled"] == '${var.first_party_domain != ""}'
    lb_resources = [(t, n, b) for t, n, b in tf.all_resources() if t.startswith("google_compute_")]
    assert lb_resources
    for rtype, name, body in lb_resources:
        assert ref(str(body.get("count"))) in ("local.lb_count", "local.armor_count"), \
            f"{rtype}.{name} is not optional"
    assert "local.first_party_enabled &&" in tf.locals["armor_count"]
    neg = tf.resource("google_compute_region_network_endpoint_group", "ingest")
    assert neg["network_endpoint_type"] == "SERVERLESS"
    assert ref(block(neg, "cloud_run")["service"]) == "google_cloudfunctions2_function.ingest.name"
    cert = tf.resource("google_compute_managed_ssl_certificate", "ingest")
    assert block(cert, "managed")["domains"] == ["${var.first_party_domain}"]


# --- logging ---------------------------------------------------------------------------------


def test_only_the_relays_successful_request_logs_are_excluded(tf):
    # Cloud Run's request log entries (two per event) are read by nothing in the stack; the
    # functions' own lines (run.googleapis.com/stdout), which the log-based metrics and
    # `capi-relay report` read, must never match, nor another service's requests, nor errors.
    exclusion = tf.resource("google_logging_project_exclusion", "run_request_logs")
    assert ref(str(exclusion["count"])) == "var.exclude_request_logs ? 1 : 0"
    assert tf.variables["exclude_request_logs"]["default"] is True
    clauses = [c.strip() for c in exclusion["filter"].split(" AND ")]
    assert clauses == [
        'resource.type="cloud_run_revision"',
        'log_id("run.googleapis.com/requests")',
        'resource.labels.service_name=("${google_cloudfunctions2_function.ingest.name}" OR '
        '"${google_cloudfunctions2_function.process.name}")',
        "httpRequest.status<400",
    ]
    for name, metric in tf.resources["google_logging_metric"].items():
        assert "run.googleapis.com/requests" not in metric["filter"], name


# --- the checks above notice broken wiring ---------------------------------------------------

MUTATIONS = [
    ("pubsub.tf", "audience              = google_cloudfunctions2_function.process",
     "audience              = google_cloudfunctions2_function.ingest",
     "test_push_subscription_delivers_to_processor_with_oidc"),
    ("pubsub.tf", 'minimum_backoff = "10s"', 'minimum_backoff = "1s"',
     "test_push_subscription_retry_policy"),
    ("pubsub.tf", "dead_letter_topic     = google_pubsub_topic.dead_letter.id",
     "dead_letter_topic     = google_pubsub_topic.events.id",
     "test_push_subscription_dead_letter_policy"),
    ("functions.tf", 'ingress_settings                 = "ALLOW_INTERNAL_ONLY"',
     'ingress_settings                 = "ALLOW_ALL"',
     "test_processor_is_internal_and_not_event_triggered"),
    ("iam.tf", 'role    = "roles/datastore.user"', 'role    = "roles/editor"',
     "test_no_primitive_roles_anywhere"),
    ("iam.tf", 'resource "google_secret_manager_secret_iam_member" "processor_reads_token"',
     'resource "google_project_iam_member" "processor_reads_token"',
     "test_secret_accessor_only_on_the_one_secret"),
    ("iam.tf", 'secret_id = each.value.secret_id\n  role      = '
     '"roles/secretmanager.secretAccessor"\n'
     '  member    = "serviceAccount:${google_service_account.processor.email}"',
     'secret_id = each.value.secret_id\n  role      = '
     '"roles/secretmanager.secretAccessor"\n'
     '  member    = "serviceAccount:${google_service_account.ingest.email}"',
     "test_secret_accessor_only_on_the_one_secret"),
    ("iam.tf", 'role    = "roles/pubsub.viewer"', 'role    = "roles/pubsub.editor"',
     "test_ingest_may_only_publish_and_view_events"),
    ("functions.tf", "    google_pubsub_subscription.process_push,\n", "",
     "test_ingest_is_created_after_the_push_subscription"),
    ("iam.tf", "name     = google_cloudfunctions2_function.process.name",
     "name     = google_cloudfunctions2_function.ingest.name",
     "test_push_invoker_may_only_invoke_processor"),
    ("firestore.tf", 'var.idempotency_collection\n  field      = "expire_at"',
     'var.idempotency_collection\n  field      = "expires"', "test_idempotency_ttl_on_expire_at"),
    ("functions.tf", 'name         = "source-${data.archive_file.functions.output_md5}.zip"',
     'name         = "source.zip"', "test_both_functions_are_gen2_from_one_hashed_archive"),
    ("variables.tf", '  type        = bool\n  description = "Create the (default)',
     '  description = "Create the (default)', "test_every_variable_has_type_and_description"),
    ("outputs.tf", '  description = "Name of the dead-letter topic."\n', "",
     "test_every_output_has_description"),
    ("logging.tf", 'log_id(\\"run.googleapis.com/requests\\")',
     'log_id(\\"run.googleapis.com/stdout\\")',
     "test_only_the_relays_successful_request_logs_are_excluded"),
    ("logging.tf", ' AND httpRequest.status<400', '',
     "test_only_the_relays_successful_request_logs_are_excluded"),
    ("pubsub.tf", "topic   = google_pubsub_topic.dead_letter.id",
     "topic   = google_pubsub_topic.dead_letters.id",
     "test_every_reference_resolves_and_every_variable_is_used"),
]


@pytest.mark.parametrize("filename, old, new, check", MUTATIONS,
                         ids=[m[3].removeprefix("test_") for m in MUTATIONS])
def test_checks_fail_on_broken_wiring(tmp_path, filename, old, new, check):
    broken = tmp_path / "infra"
    shutil.copytree(INFRA_DIR, broken, ignore=shutil.ignore_patterns(".terraform", ".build"))
    text = (broken / filename).read_text(encoding="utf-8")
    assert text.count(old) == 1, f"mutation anchor not found once in {filename}: {old!r}"
    (broken / filename).write_text(text.replace(old, new), encoding="utf-8")
    with pytest.raises(AssertionError):
        globals()[check](load_terraform(broken))


def test_cloud_armor_rate_limits_per_ip_on_the_load_balancer(tf):
    policy = tf.resource("google_compute_security_policy", "ingest")
    (throttle,) = [r for r in policy["rule"] if r["action"] == "throttle"]
    options = block(throttle, "rate_limit_options")
    assert options["enforce_on_key"] == "IP" and options["exceed_action"] == "deny(429)"
    threshold = block(options, "rate_limit_threshold")
    assert threshold["count"] == "${var.rate_limit_per_minute}"
    assert threshold["interval_sec"] == 60
    backend = tf.resource("google_compute_backend_service", "ingest")
    assert "google_compute_security_policy.ingest[0].id" in backend["security_policy"]


def test_both_functions_have_an_instance_cap(tf):
    for name, cap in (("ingest", "var.ingest_max_instances"),
                      ("process", "local.processor_max_instances")):
        service = block(tf.resource("google_cloudfunctions2_function", name), "service_config")
        assert ref(service["max_instance_count"]) == cap
