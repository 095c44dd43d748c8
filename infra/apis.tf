# Google APIs the stack uses, enabled in the project before anything that needs them.

locals {
  # compute is only needed for the optional first-party load balancer.
  enabled_apis = concat(
    [
      "artifactregistry.googleapis.com", # images built from the function source
      "cloudbuild.googleapis.com",       # builds the function source
      "cloudfunctions.googleapis.com",
      "cloudresourcemanager.googleapis.com",
      "firestore.googleapis.com",
      "iam.googleapis.com",
      "iamcredentials.googleapis.com", # OIDC tokens minted for the push subscription
      "logging.googleapis.com",
      "monitoring.googleapis.com", # log-based metrics' alerts and the dashboard (monitoring.tf)
      "pubsub.googleapis.com",
      "run.googleapis.com", # gen2 functions run as Cloud Run services
      "secretmanager.googleapis.com",
      "storage.googleapis.com",
    ],
    local.first_party_enabled ? ["compute.googleapis.com"] : [],
    var.delivery == "scheduled_pull" ? ["cloudscheduler.googleapis.com"] : [],
  )
}

resource "google_project_service" "enabled" {
  for_each = toset(local.enabled_apis)

  project = var.project_id
  service = each.value

  # Other workloads in the project may use the same APIs: never switch them off on destroy.
  disable_on_destroy         = false
  disable_dependent_services = false
}
