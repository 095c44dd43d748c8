# The two gen2 functions, ingest (public HTTP) and process (internal; fed by our push subscription,
# or, with delivery = "scheduled_pull", started by Cloud Scheduler to pull it), both built from one
# source archive whose object name carries its hash.

locals {
  functions_dir = "${path.module}/../functions"

  # Each function gets exactly the settings it reads (config.SETTINGS in the code says which;
  # tests/infra/test_settings.py checks both ways). Empty values are dropped so that the code's
  # own defaults apply; JSON settings are HCL maps encoded here.
  ingest_settings = {
    GOOGLE_CLOUD_PROJECT = var.project_id # newer runtimes no longer set it
    PUBSUB_TOPIC         = google_pubsub_topic.events.name
    META_PIXEL_ID        = var.meta_pixel_id
    ALLOWED_ORIGINS      = join(",", var.allowed_origins)
    # "latest": a key added to a new secret version works without a redeploy
    INGEST_KEYS_SECRET = var.ingest_keys_required ? "${google_secret_manager_secret.ingest_keys.id}/versions/latest" : ""
    BROWSER_EVENTS     = join(",", var.browser_events)
    DEFAULT_COUNTRY    = var.default_country
    DEFAULT_CURRENCY   = var.default_currency
    FIELD_ALIASES      = length(var.field_aliases) > 0 ? jsonencode(var.field_aliases) : ""
    EVENT_NAME_MAP     = length(var.event_name_map) > 0 ? jsonencode(var.event_name_map) : ""
  }

  processor_settings = {
    GOOGLE_CLOUD_PROJECT = var.project_id
    PUBSUB_TOPIC         = google_pubsub_topic.events.name
    DEAD_LETTER_TOPIC    = google_pubsub_topic.dead_letter.name
    META_PIXEL_ID        = var.meta_pixel_id
    META_API_VERSION     = var.meta_api_version
    META_GRAPH_URL       = var.meta_graph_url
    # A version resource name; "latest" lets a rotated token take effect without a redeploy.
    META_TOKEN_SECRET      = "${google_secret_manager_secret.meta_token.id}/versions/latest"
    META_TEST_EVENT_CODE   = var.meta_test_event_code
    PIXELS                 = length(var.pixels) > 0 ? jsonencode(local.pixels_setting) : ""
    META_TIMEOUT_SECONDS   = tostring(var.meta_timeout_seconds)
    CONSENT_POLICY         = var.consent_policy
    CONSENT_MISSING        = var.consent_missing
    LDU_REGIONS            = join(",", var.ldu_regions)
    REDACT_FIELDS          = length(var.redact_fields) > 0 ? jsonencode(var.redact_fields) : ""
    PROFILES_COLLECTION    = var.profiles_collection
    PROFILE_WRITEBACK      = tostring(var.profile_writeback)
    IDEMPOTENCY_COLLECTION = var.idempotency_collection
    IDEMPOTENCY_TTL_HOURS  = tostring(var.idempotency_ttl_hours)
    CLAIM_LEASE_SECONDS    = tostring(var.claim_lease_seconds)
    BATCH_WINDOW_MS        = tostring(var.batch_window_ms)
    # The processor dead-letters an event itself, with its reason, after this many attempts;
    # it stays below the subscription's dead-letter policy so that Pub/Sub's own forwarding
    # (which carries no reason) is only the last resort.
    MAX_DELIVERY_ATTEMPTS = tostring(var.max_delivery_attempts - 2)
    PULL_SUBSCRIPTION     = local.pull_delivery ? google_pubsub_subscription.process_push.name : ""
  }

  # PIXELS as the processor reads it (core/routing.py): a token's secret as a version name,
  # empty fields and route lists left out.
  pixels_setting = [for p in var.pixels : merge(
    { for k, v in {
      id              = p.id
      token_secret    = lookup(local.pixel_token_versions, p.token_secret_id, "")
      test_event_code = p.test_event_code
    } : k => v if v != "" },
    { route = { for k, v in p.route : k => v if length(v) > 0 } },
  )]

  # THREADS is the functions framework's own (gunicorn threads, default 4 per core): Google
  # recommends it equal to the concurrency, or requests beyond the threads queue inside the
  # instance (the ingest waits on Pub/Sub; the processor's coalescer batches concurrent pushes).
  ingest_env = merge({ for k, v in local.ingest_settings : k => v if v != "" },
  { THREADS = tostring(var.ingest_max_instance_request_concurrency) })
  processor_env = merge({ for k, v in local.processor_settings : k => v if v != "" },
  { THREADS = tostring(local.processor_concurrency) })

  # The puller is one run at a time: one instance, one request (its ledger writes one record
  # per run and relies on no other run sending the same events meanwhile).
  processor_concurrency   = local.pull_delivery ? 1 : var.processor_max_instance_request_concurrency
  processor_max_instances = local.pull_delivery ? 1 : var.processor_max_instances
}

data "archive_file" "functions" {
  type        = "zip"
  source_dir  = local.functions_dir
  output_path = "${path.module}/.build/functions-source.zip"
  # The provider zeroes timestamps; fixing the mode too makes the hash depend on content only,
  # whatever the checkout's umask.
  output_file_mode = "0644"

  # Caches and local artefacts would change the hash without changing the code.
  excludes = [
    "**/__pycache__/**",
    "**/*.pyc",
    "**/.pytest_cache/**",
    "**/.ruff_cache/**",
    "**/*.egg-info/**",
    ".env",
  ]
}

resource "google_storage_bucket_object" "functions_source" {
  # Named after the content hash: a code change is a new object, so both functions redeploy.
  name         = "source-${data.archive_file.functions.output_md5}.zip"
  bucket       = google_storage_bucket.source.name
  source       = data.archive_file.functions.output_path
  content_type = "application/zip"
}

resource "google_cloudfunctions2_function" "ingest" {
  # checkov:skip=CKV_GCP_124:Ingest is the public collection endpoint browsers post to; ingress is a variable, ALLOW_INTERNAL_AND_GCLB once the first-party load balancer is on.
  name        = "${var.name_prefix}-ingest"
  location    = var.region
  project     = var.project_id
  description = "Receives marketing events over HTTP and publishes them to ${google_pubsub_topic.events.name}."

  build_config {
    runtime         = var.python_runtime
    entry_point     = "ingest"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  service_config {
    service_account_email            = google_service_account.ingest.email
    ingress_settings                 = var.ingest_ingress_settings
    all_traffic_on_latest_revision   = true
    available_memory                 = var.ingest_memory
    available_cpu                    = var.ingest_cpu
    max_instance_request_concurrency = var.ingest_max_instance_request_concurrency
    min_instance_count               = var.ingest_min_instances
    max_instance_count               = var.ingest_max_instances
    timeout_seconds                  = 30
    environment_variables            = local.ingest_env
  }

  # Pub/Sub drops what is published to a topic with no subscription: on a first deploy the
  # ingest must not take events before the processor's push subscription exists.
  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
    google_pubsub_subscription.process_push,
    google_pubsub_topic_iam_member.ingest_views_events,
  ]
}

resource "google_cloudfunctions2_function" "process" {
  name        = "${var.name_prefix}-process"
  location    = var.region
  project     = var.project_id
  description = "Enriches events pushed by the ${local.push_subscription_name} subscription and sends them to Meta's Conversions API."

  build_config {
    runtime         = var.python_runtime
    entry_point     = local.pull_delivery ? "pull" : "process"
    service_account = google_service_account.build.id

    source {
      storage_source {
        bucket = google_storage_bucket.source.name
        object = google_storage_bucket_object.functions_source.name
      }
    }
  }

  # No event_trigger: delivery is our own push subscription (pubsub.tf), whose retry and
  # dead-letter settings we control. functions-framework turns the push envelope into a
  # CloudEvent for the `process` entry point.
  service_config {
    service_account_email            = google_service_account.processor.email
    ingress_settings                 = "ALLOW_INTERNAL_ONLY"
    all_traffic_on_latest_revision   = true
    available_memory                 = var.processor_memory
    available_cpu                    = "1"
    max_instance_request_concurrency = local.processor_concurrency
    min_instance_count               = var.processor_min_instances
    max_instance_count               = local.processor_max_instances
    timeout_seconds                  = var.processor_timeout_seconds
    environment_variables            = local.processor_env
  }

  depends_on = [
    google_project_service.enabled,
    google_project_iam_member.build,
  ]
}
