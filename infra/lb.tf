# Optional first-party endpoint: a global external HTTPS load balancer with a Google-managed
# certificate in front of the ingest function, so browsers post to e.g. collect.example.com
# (same site as the shop) instead of a *.run.app URL. Off while var.first_party_domain is "".

locals {
  first_party_enabled = var.first_party_domain != ""
  lb_count            = local.first_party_enabled ? 1 : 0
}

resource "google_compute_region_network_endpoint_group" "ingest" {
  count = local.lb_count

  project               = var.project_id
  name                  = "${var.name_prefix}-ingest-neg"
  region                = var.region
  network_endpoint_type = "SERVERLESS"

  # A gen2 function is a Cloud Run service of the same name.
  cloud_run {
    service = google_cloudfunctions2_function.ingest.name
  }

  depends_on = [google_project_service.enabled]
}

resource "google_compute_backend_service" "ingest" {
  count = local.lb_count

  project = var.project_id
  name    = "${var.name_prefix}-ingest-backend"
  # No protocol: with a serverless NEG the load balancer always reaches Cloud Run over HTTPS.
  load_balancing_scheme = "EXTERNAL_MANAGED"

  backend {
    group = google_compute_region_network_endpoint_group.ingest[0].id
  }

  log_config {
    enable      = true
    sample_rate = 0.1
  }
}

resource "google_compute_url_map" "ingest" {
  count = local.lb_count

  project         = var.project_id
  name            = "${var.name_prefix}-ingest"
  default_service = google_compute_backend_service.ingest[0].id
}

resource "google_compute_managed_ssl_certificate" "ingest" {
  count = local.lb_count

  project = var.project_id
  name    = "${var.name_prefix}-ingest-cert"

  managed {
    domains = [var.first_party_domain]
  }
}

resource "google_compute_ssl_policy" "modern" {
  count = local.lb_count

  project         = var.project_id
  name            = "${var.name_prefix}-tls12"
  profile         = "MODERN"
  min_tls_version = "TLS_1_2"
}

resource "google_compute_target_https_proxy" "ingest" {
  count = local.lb_count

  project          = var.project_id
  name             = "${var.name_prefix}-ingest-https"
  url_map          = google_compute_url_map.ingest[0].id
  ssl_certificates = [google_compute_managed_ssl_certificate.ingest[0].id]
  ssl_policy       = google_compute_ssl_policy.modern[0].id
}

resource "google_compute_global_address" "ingest" {
  count = local.lb_count

  project = var.project_id
  name    = "${var.name_prefix}-ingest-ip"
}

resource "google_compute_global_forwarding_rule" "ingest_https" {
  count = local.lb_count

  project               = var.project_id
  name                  = "${var.name_prefix}-ingest-https"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.ingest[0].id
  port_range            = "443"
  target                = google_compute_target_https_proxy.ingest[0].id
}

# Plain HTTP on the same address only redirects to HTTPS.
resource "google_compute_url_map" "https_redirect" {
  count = local.lb_count

  project = var.project_id
  name    = "${var.name_prefix}-ingest-redirect"

  default_url_redirect {
    https_redirect         = true
    redirect_response_code = "MOVED_PERMANENTLY_DEFAULT"
    strip_query            = false
  }
}

resource "google_compute_target_http_proxy" "https_redirect" {
  count = local.lb_count

  project = var.project_id
  name    = "${var.name_prefix}-ingest-http"
  url_map = google_compute_url_map.https_redirect[0].id
}

resource "google_compute_global_forwarding_rule" "ingest_http" {
  count = local.lb_count

  project               = var.project_id
  name                  = "${var.name_prefix}-ingest-http"
  load_balancing_scheme = "EXTERNAL_MANAGED"
  ip_address            = google_compute_global_address.ingest[0].id
  port_range            = "80"
  target                = google_compute_target_http_proxy.https_redirect[0].id
}
