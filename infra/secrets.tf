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
