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
