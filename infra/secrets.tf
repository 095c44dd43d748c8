# The secret that holds Meta's Conversions API access token. Only the container is managed here:
# its value is added by the operator (`gcloud secrets versions add ... --data-file=-`, see
# scripts/deploy.sh --set-token), so the token never enters Terraform state.

resource "google_secret_manager_secret" "meta_token" {
  project   = var.project_id
  secret_id = var.meta_token_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# The ingest's source keys, one per line (`key` or `key:Purchase|Lead`). Container only, like
# the token: versions are added by the operator, so no key enters Terraform state. The ingest
# re-reads "latest" when an unknown key arrives, so adding a version rotates without a redeploy.
resource "google_secret_manager_secret" "ingest_keys" {
  project   = var.project_id
  secret_id = var.ingest_keys_secret_id

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

# One container per token of the pixels in var.pixels that have their own (PIXELS); values are
# added by the operator, as for the main token, and only the processor may read them (iam.tf).
resource "google_secret_manager_secret" "pixel_token" {
  for_each = local.pixel_token_secret_ids

  project   = var.project_id
  secret_id = each.value

  replication {
    auto {}
  }

  depends_on = [google_project_service.enabled]
}

locals {
  pixel_token_secret_ids = toset([for p in var.pixels : p.token_secret_id
  if p.token_secret_id != "" && p.token_secret_id != var.meta_token_secret_id])
  # "latest": a rotated pixel token takes effect without a redeploy
  pixel_token_versions = { for id, secret in google_secret_manager_secret.pixel_token :
  id => "${secret.id}/versions/latest" }
}
