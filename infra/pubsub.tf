# The events topic, the processor's subscription (pushed to it, or pulled by the scheduled
# puller: var.delivery), and the dead-letter topic with a pull subscription kept for
# `capi-relay replay`.

locals {
  push_subscription_name = "${var.name_prefix}-process-push"
  pull_delivery          = var.delivery == "scheduled_pull"
  message_retention      = "${var.message_retention_days * 86400}s"
  # The Google-managed agent that delivers pushes and forwards messages to the dead-letter topic.
  pubsub_service_agent = "serviceAccount:service-${data.google_project.this.number}@gcp-sa-pubsub.iam.gserviceaccount.com"
}

resource "google_pubsub_topic" "events" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest is used; a CMEK would add a KMS key, its rotation and per-operation KMS cost for short-lived event data.
  name    = "${var.name_prefix}-events"
  project = var.project_id

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_topic" "dead_letter" {
  # checkov:skip=CKV_GCP_83:Google-managed encryption at rest is used; see the events topic.
  name    = "${var.name_prefix}-dead-letter"
  project = var.project_id

  depends_on = [google_project_service.enabled]
}

resource "google_pubsub_subscription" "process_push" {
  name    = local.push_subscription_name
  project = var.project_id
  topic   = google_pubsub_topic.events.id

  # For a push subscription this is also the HTTP request timeout, so it matches the processor's.
  # Pulled, a message is hidden this long: a puller run (at most the processor's timeout)
  # acknowledges it or hands it back with its own backoff first.
  ack_deadline_seconds       = var.processor_timeout_seconds
  message_retention_duration = local.message_retention

  # Without push_config the subscription is pulled (delivery = "scheduled_pull").
  dynamic "push_config" {
    for_each = local.pull_delivery ? [] : [1]
    content {
      push_endpoint = google_cloudfunctions2_function.process.service_config[0].uri

      # Pub/Sub signs each push with an ID token of the push-invoker account; Cloud Run checks
      # it against roles/run.invoker on the processor (iam.tf).
      oidc_token {
        service_account_email = google_service_account.push_invoker.email
        audience              = google_cloudfunctions2_function.process.service_config[0].uri
      }
    }
  }

  retry_policy {
    minimum_backoff = "10s"
    maximum_backoff = "600s"
  }

  dead_letter_policy {
    dead_letter_topic     = google_pubsub_topic.dead_letter.id
    max_delivery_attempts = var.max_delivery_attempts
  }

  expiration_policy {
    ttl = "" # never expire for inactivity
  }

  # Dead-lettering and OIDC fail silently without these grants, so they must exist first.
  depends_on = [
    google_pubsub_topic_iam_member.dead_letter_agent_publisher,
    google_service_account_iam_member.pubsub_agent_token_creator,
    google_cloud_run_v2_service_iam_member.push_invokes_processor,
  ]
}

resource "google_pubsub_subscription" "dead_letter_pull" {
  name    = "${var.name_prefix}-dead-letter"
  project = var.project_id
  topic   = google_pubsub_topic.dead_letter.id

  # Pulled by an operator with `capi-relay replay`, never automatically.
  ack_deadline_seconds       = 60
  message_retention_duration = local.message_retention
  retain_acked_messages      = false

  expiration_policy {
    ttl = ""
  }
}
