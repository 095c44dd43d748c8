# What the operator, the smoke test and `capi-relay replay` need after an apply.

output "ingest_url" {
  description = "HTTPS URL of the ingest function (its Cloud Run URL); the first-party URL too when the load balancer is on."
  value       = google_cloudfunctions2_function.ingest.service_config[0].uri
}

output "first_party_url" {
  description = "https:// URL of the first-party endpoint, or null when first_party_domain is empty."
  value       = local.first_party_enabled ? "https://${var.first_party_domain}" : null
}

output "first_party_ip_address" {
  description = "IPv4 address to point the first_party_domain A record at, or null when the load balancer is off."
  value       = one(google_compute_global_address.ingest[*].address)
}

output "processor_url" {
  description = "Internal-only URL of the process function (the push subscription's endpoint and OIDC audience)."
  value       = google_cloudfunctions2_function.process.service_config[0].uri
}

output "events_topic" {
  description = "Name of the Pub/Sub topic ingest publishes events to."
  value       = google_pubsub_topic.events.name
}

output "dead_letter_topic" {
  description = "Name of the dead-letter topic."
  value       = google_pubsub_topic.dead_letter.name
}

output "push_subscription" {
  description = "Name of the push subscription that delivers events to the processor."
  value       = google_pubsub_subscription.process_push.name
}

output "dead_letter_subscription" {
  description = "Name of the pull subscription on the dead-letter topic, for `capi-relay replay`."
  value       = google_pubsub_subscription.dead_letter_pull.name
}

output "meta_token_secret" {
  description = "Secret ID to add the Meta access token to (`gcloud secrets versions add <id> --data-file=-`)."
  value       = google_secret_manager_secret.meta_token.secret_id
}

output "source_bucket" {
  description = "Bucket holding the function source archives."
  value       = google_storage_bucket.source.name
}

output "ingest_service_account_email" {
  description = "Service account the ingest function runs as."
  value       = google_service_account.ingest.email
}

output "processor_service_account_email" {
  description = "Service account the process function runs as."
  value       = google_service_account.processor.email
}

output "push_invoker_service_account_email" {
  description = "Service account in the push subscription's OIDC token."
  value       = google_service_account.push_invoker.email
}

output "build_service_account_email" {
  description = "Service account Cloud Build uses to build the functions."
  value       = google_service_account.build.email
}
