# Optional first-party endpoint: a global external HTTPS load balancer with a Google-managed
# certificate in front of the ingest function, so browsers post to e.g. collect.example.com
# (same site as the shop) instead of a *.run.app URL. Off while var.first_party_domain is "".

locals {
  first_party_enabled = var.first_party_domain != ""
  lb_count            = local.first_party_enabled ? 1 : 0
  armor_count         = local.first_party_enabled && var.rate_limit_per_minute > 0 ? 1 : 0
}

# Optional Cloud Armor policy on the load balancer: each client IP may send
# var.rate_limit_per_minute requests a minute; above that it gets 429 until its rate falls
# (a "throttle" rule, which is not a ban). It bounds what one poster can cost and how fast
# keys can be guessed; it does not authenticate (the ingest's keys and origins do).
resource "google_compute_security_policy" "ingest" {
  count = local.armor_count

  project     = var.project_id
  name        = "${var.name_prefix}-ingest-armor"
  description = "Per-IP rate limit in front of the capi-relay ingest."

  rule {
    action   = "throttle"
    priority = 1000
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    rate_limit_options {
      conform_action = "allow"
      exceed_action  = "deny(429)"
      enforce_on_key = "IP"
      rate_limit_threshold {
        count        = var.rate_limit_per_minute
        interval_sec = 60
      }
    }
    description = "Per-IP rate limit."
  }

  # Log4j lookups (CVE-2021-44228) in any header: a cheap preconfigured rule, no Java behind us.
  rule {
    action   = "deny(403)"
    priority = 900
    match {
      expr {
        expression = "evaluatePreconfiguredExpr('cve-canary')"
      }
    }
    description = "CVE-2021-44228 and CVE-2021-45046."
  }

  rule {
    action   = "allow"
    priority = 2147483647
    match {
      versioned_expr = "SRC_IPS_V1"
      config {
        src_ip_ranges = ["*"]
      }
    }
    description = "Default rule."
  }
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
  security_policy       = local.armor_count == 1 ? google_compute_security_policy.ingest[0].id : null

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
