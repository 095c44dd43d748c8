# Terraform and provider versions, the state backend and the provider defaults.

terraform {
  # 1.9: variable validations that read other variables (ingest_cpu with its concurrency and
  # memory)
  required_version = ">= 1.9.0"

  required_providers {
    google = {
      source  = "hashicorp/google"
      version = "~> 6.0"
    }
    archive = {
      source = "hashicorp/archive"
      # 2.4 added glob patterns in archive_file.excludes, used to keep caches out of the zip.
      version = "~> 2.4"
    }
  }

  # The bucket and prefix come from `terraform init -backend-config=backend.hcl`, written by
  # scripts/deploy.sh (or passed by cloudbuild.yaml), so no project-specific value lives here.
  backend "gcs" {}
}

provider "google" {
  project = var.project_id
  region  = var.region

  default_labels = merge({ app = var.name_prefix }, var.labels)
}

data "google_project" "this" {
  project_id = var.project_id
}
