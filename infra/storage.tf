# The bucket that holds the function source archive; one object per distinct source hash.

resource "google_storage_bucket" "source" {
  # checkov:skip=CKV_GCP_62:Holds only build inputs uploaded by Terraform; access logs would need a second bucket and add nothing Cloud Audit Logs do not show.
  name     = "${var.project_id}-${var.name_prefix}-source"
  project  = var.project_id
  location = var.region

  uniform_bucket_level_access = true
  public_access_prevention    = "enforced"
  force_destroy               = false

  versioning {
    enabled = true
  }

  # Old archives are only needed to roll back; keep the last few, then let them go.
  lifecycle_rule {
    condition {
      num_newer_versions = 3
      with_state         = "ARCHIVED"
    }
    action {
      type = "Delete"
    }
  }

  lifecycle_rule {
    condition {
      days_since_noncurrent_time = 30
    }
    action {
      type = "Delete"
    }
  }

  depends_on = [google_project_service.enabled]
}
