# Service accounts and every IAM grant of the stack. Each grant is on the narrowest resource that
# works (a topic, a secret, a subscription, one Cloud Run service); no primitive roles.

# --- accounts --------------------------------------------------------------------------------

resource "google_service_account" "ingest" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-ingest"
  display_name = "capi-relay ingest function"
  description  = "Runs the ingest function; may only publish to the events topic."
}

resource "google_service_account" "processor" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-processor"
  display_name = "capi-relay process function"
  description  = "Runs the process function; Firestore, the Meta token secret, the dead-letter topic."
}

resource "google_service_account" "push_invoker" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-push"
  display_name = "capi-relay push invoker"
  description  = "Identity in the OIDC token Pub/Sub attaches to pushes; may only invoke the processor."
}

resource "google_service_account" "build" {
  project      = var.project_id
  account_id   = "${var.name_prefix}-build"
  display_name = "capi-relay function builds"
  description  = "Cloud Build identity for building both functions from source."
}

# --- ingest ----------------------------------------------------------------------------------

resource "google_pubsub_topic_iam_member" "ingest_publishes_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.ingest.email}"
}

# /healthz lists the topic's subscriptions (ready only once the push subscription exists).
# Pub/Sub's access-control table requires pubsub.topics.get on the topic for
# projects.topics.subscriptions.list; roles/pubsub.viewer on this one topic holds it and nothing
# that changes state.
resource "google_pubsub_topic_iam_member" "ingest_views_events" {
  project = var.project_id
  topic   = google_pubsub_topic.events.name
  role    = "roles/pubsub.viewer"
  member  = "serviceAccount:${google_service_account.ingest.email}"
}

resource "google_secret_manager_secret_iam_member" "ingest_reads_keys" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.ingest_keys.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.ingest.email}"
}

# Browsers and server-side GTM call ingest without Google credentials.
resource "google_cloud_run_v2_service_iam_member" "ingest_public" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.ingest.name
  role     = "roles/run.invoker"
  member   = "allUsers"
}

# --- processor -------------------------------------------------------------------------------

# Idempotency records and profiles. Firestore has no collection-level IAM; datastore.user is the
# smallest predefined role with document read/write.
resource "google_project_iam_member" "processor_firestore" {
  project = var.project_id
  role    = "roles/datastore.user"
  member  = "serviceAccount:${google_service_account.processor.email}"
}

resource "google_secret_manager_secret_iam_member" "processor_reads_token" {
  project   = var.project_id
  secret_id = google_secret_manager_secret.meta_token.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.processor.email}"
}

# Each token of var.pixels that has its own secret: the processor alone reads it.
resource "google_secret_manager_secret_iam_member" "processor_reads_pixel_tokens" {
  for_each = google_secret_manager_secret.pixel_token

  project   = var.project_id
  secret_id = each.value.secret_id
  role      = "roles/secretmanager.secretAccessor"
  member    = "serviceAccount:${google_service_account.processor.email}"
}

resource "google_pubsub_topic_iam_member" "processor_publishes_dead_letter" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = "serviceAccount:${google_service_account.processor.email}"
}

# --- push delivery ---------------------------------------------------------------------------

resource "google_cloud_run_v2_service_iam_member" "push_invokes_processor" {
  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.process.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.push_invoker.email}"
}

# Pub/Sub mints the push OIDC token as the push invoker. Projects created before 2021-04-08
# need this grant; later ones have it implicitly. Scoped to this one account.
resource "google_service_account_iam_member" "pubsub_agent_token_creator" {
  service_account_id = google_service_account.push_invoker.name
  role               = "roles/iam.serviceAccountTokenCreator"
  member             = local.pubsub_service_agent
}

# Dead-lettering: the Pub/Sub service agent forwards the message to the dead-letter topic and
# acknowledges it on the source subscription.
resource "google_pubsub_topic_iam_member" "dead_letter_agent_publisher" {
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.name
  role    = "roles/pubsub.publisher"
  member  = local.pubsub_service_agent
}

resource "google_pubsub_subscription_iam_member" "dead_letter_agent_subscriber" {
  project      = var.project_id
  subscription = google_pubsub_subscription.process_push.name
  role         = "roles/pubsub.subscriber"
  member       = local.pubsub_service_agent
}

# --- builds ----------------------------------------------------------------------------------

# What a custom Cloud Build account needs to build a gen2 function: write build logs, push the
# image to Artifact Registry (gcf-artifacts), read the source Cloud Functions stages in its own
# gcf-v2-sources bucket (not ours, hence project level).
resource "google_project_iam_member" "build" {
  for_each = toset([
    "roles/logging.logWriter",
    "roles/artifactregistry.writer",
    "roles/storage.objectViewer",
  ])

  project = var.project_id
  role    = each.value
  member  = "serviceAccount:${google_service_account.build.email}"
}
