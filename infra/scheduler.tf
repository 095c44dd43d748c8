# delivery = "scheduled_pull": Cloud Scheduler starts the puller (the process function's `pull`
# entry point) on var.pull_schedule. Each run sends what waits on the subscription, up to 1,000
# events per Graph request, and records them in one ledger document. Cloud Scheduler bills
# $0.10 a job a month (three jobs free per billing account).

resource "google_service_account" "scheduler" {
  count = local.pull_delivery ? 1 : 0

  project      = var.project_id
  account_id   = "${var.name_prefix}-scheduler"
  display_name = "capi-relay puller schedule"
  description  = "Identity in the OIDC token Cloud Scheduler attaches to puller runs; may only invoke the processor."
}

resource "google_cloud_run_v2_service_iam_member" "scheduler_invokes_processor" {
  count = local.pull_delivery ? 1 : 0

  project  = var.project_id
  location = var.region
  name     = google_cloudfunctions2_function.process.name
  role     = "roles/run.invoker"
  member   = "serviceAccount:${google_service_account.scheduler[0].email}"
}

# The puller pulls, acknowledges and hands back messages of this one subscription.
resource "google_pubsub_subscription_iam_member" "processor_pulls_events" {
  count = local.pull_delivery ? 1 : 0

  project      = var.project_id
  subscription = google_pubsub_subscription.process_push.name
  role         = "roles/pubsub.subscriber"
  member       = "serviceAccount:${google_service_account.processor.email}"
}

resource "google_cloud_scheduler_job" "pull" {
  count = local.pull_delivery ? 1 : 0

  project     = var.project_id
  region      = var.region
  name        = "${var.name_prefix}-pull"
  description = "Starts the capi-relay puller: sends the events waiting on ${google_pubsub_subscription.process_push.name}."
  schedule    = var.pull_schedule
  time_zone   = "Etc/UTC"
  # A run stops pulling after 45 s; the processor's timeout bounds the rest.
  attempt_deadline = "${var.processor_timeout_seconds}s"

  # A failed run is not retried by the scheduler: the next run takes what is still waiting.
  retry_config {
    retry_count = 0
  }

  http_target {
    http_method = "POST"
    uri         = google_cloudfunctions2_function.process.service_config[0].uri

    oidc_token {
      service_account_email = google_service_account.scheduler[0].email
      audience              = google_cloudfunctions2_function.process.service_config[0].uri
    }
  }

  depends_on = [
    google_project_service.enabled,
    google_cloud_run_v2_service_iam_member.scheduler_invokes_processor,
    google_pubsub_subscription_iam_member.processor_pulls_events,
  ]
}
