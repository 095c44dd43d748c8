# Monitoring: log-based metrics read from the functions' structured log lines, a dashboard and
# three alert policies (token rejected, dead-letter share, accepted but nothing sent).
#
# The functions write one JSON object per line (functions/capi_relay/log.py); Cloud Logging puts
# it in jsonPayload. Every filter below names a log message and the fields it reads, and
# tests/infra/test_monitoring.py checks that the code still writes that message with those
# fields, so renaming a log line fails a test instead of silencing an alert.

locals {
  # Gen2 functions run as Cloud Run services named after the function.
  ingest_logs  = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.ingest.name}\" AND jsonPayload.component=\"ingest\""
  process_logs = "resource.type=\"cloud_run_revision\" AND resource.labels.service_name=\"${google_cloudfunctions2_function.process.name}\" AND jsonPayload.component=\"process\""

  # Cloud Monitoring's PromQL name of logging.googleapis.com/user/<name_prefix>/<metric>:
  # ":" after the domain, every other ".", "/" and "-" becomes "_"; a distribution is read by
  # its _sum/_count; log-based metrics can span resource types, so monitored_resource is named
  # (Google Cloud, "Mapping Cloud Monitoring metrics to PromQL").
  promql_prefix = "logging_googleapis_com:user_${replace(var.name_prefix, "-", "_")}_"
  on_run        = "{monitored_resource=\"cloud_run_revision\"}"

  # PromQL sums over a window; each takes the window, e.g. "5m".
  promql = {
    accepted     = "sum(increase(${local.promql_prefix}events_accepted_sum${local.on_run}[%s]))"
    sent         = "sum(increase(${local.promql_prefix}events_sent_sum${local.on_run}[%s]))"
    dead         = "sum(increase(${local.promql_prefix}events_dead_lettered${local.on_run}[%s]))"
    dead_reason  = "sum by (reason) (increase(${local.promql_prefix}events_dead_lettered${local.on_run}[%s]))"
    consent      = "sum(increase(${local.promql_prefix}consent_drops${local.on_run}[%s]))"
    consent_why  = "sum by (consent) (increase(${local.promql_prefix}consent_drops${local.on_run}[%s]))"
    insufficient = "sum(increase(${local.promql_prefix}insufficient_customer_information_sum${local.on_run}[%s]))"
    token        = "sum(increase(${local.promql_prefix}token_errors${local.on_run}[%s]))"
  }

  dead_window    = "${var.dead_letter_alert_window_minutes}m"
  stalled_window = "${var.stalled_delivery_minutes}m"

  # Counts carried in a field (accepted=, batch_size=, count=) become distributions, whose
  # _sum is the number of events; a line per event becomes a counter.
  count_buckets = {
    num_finite_buckets = 11 # 1, 2, 4 ... 1024: a request or a Graph batch holds up to 1,000 events
    growth_factor      = 2
    scale              = 1
  }
}

# --- log-based metrics -------------------------------------------------------------------------

resource "google_logging_metric" "events_accepted" {
  project     = var.project_id
  name        = "${var.name_prefix}/events_accepted"
  description = "Events ingest accepted and queued (the accepted= count of each 'ingested' line)."
  filter      = "${local.ingest_logs} AND jsonPayload.message=\"ingested\" AND jsonPayload.accepted>0"

  value_extractor = "EXTRACT(jsonPayload.accepted)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.count_buckets.num_finite_buckets
      growth_factor      = local.count_buckets.growth_factor
      scale              = local.count_buckets.scale
    }
  }
}

resource "google_logging_metric" "events_sent" {
  project     = var.project_id
  name        = "${var.name_prefix}/events_sent"
  description = "Events Meta accepted (the batch_size= of each 'sent' line of the processor), by pixel: with several pixels, each pixel's copy counts."
  filter      = "${local.process_logs} AND jsonPayload.message=\"sent\""

  value_extractor = "EXTRACT(jsonPayload.batch_size)"
  label_extractors = {
    pixel_id = "EXTRACT(jsonPayload.pixel_id)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
    labels {
      key         = "pixel_id"
      value_type  = "STRING"
      description = "The pixel (dataset) the events went to."
    }
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.count_buckets.num_finite_buckets
      growth_factor      = local.count_buckets.growth_factor
      scale              = local.count_buckets.scale
    }
  }
}

resource "google_logging_metric" "events_dead_lettered" {
  project     = var.project_id
  name        = "${var.name_prefix}/events_dead_lettered"
  description = "Events dead-lettered by the processor, one 'dead-lettered' line each, by reason (too_old, insufficient_customer_information, rejected, retries_exhausted; empty for an undecodable message)."
  filter      = "${local.process_logs} AND jsonPayload.message=(\"dead-lettered\" OR \"undecodable message dead-lettered\")"

  label_extractors = {
    reason = "EXTRACT(jsonPayload.reason)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "reason"
      value_type  = "STRING"
      description = "Why the event was dead-lettered."
    }
  }
}

resource "google_logging_metric" "consent_drops" {
  project     = var.project_id
  name        = "${var.name_prefix}/consent_drops"
  description = "Events not sent because of the visitor's consent, one 'not sent: consent' line each, by consent decision."
  filter      = "${local.process_logs} AND jsonPayload.message=\"not sent: consent\""

  label_extractors = {
    consent = "EXTRACT(jsonPayload.consent)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "consent"
      value_type  = "STRING"
      description = "The consent decision's reason."
    }
  }
}

resource "google_logging_metric" "insufficient_customer_information" {
  project     = var.project_id
  name        = "${var.name_prefix}/insufficient_customer_information"
  description = "Events the processor dead-lettered, after enrichment, because their user_data would not let Meta match anyone (Meta's baseline requirements; the count= of each 'rejected: insufficient customer information' line)."
  filter      = "${local.process_logs} AND jsonPayload.message=\"rejected: insufficient customer information\""

  value_extractor = "EXTRACT(jsonPayload.count)"
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "DISTRIBUTION"
    unit        = "1"
  }
  bucket_options {
    exponential_buckets {
      num_finite_buckets = local.count_buckets.num_finite_buckets
      growth_factor      = local.count_buckets.growth_factor
      scale              = local.count_buckets.scale
    }
  }
}

resource "google_logging_metric" "token_errors" {
  project     = var.project_id
  name        = "${var.name_prefix}/token_errors"
  description = "Processor runs in which Meta rejected the access token (expired, revoked, lacking permission) and events were held for retry, by pixel: the other pixels' events still go."
  filter      = "${local.process_logs} AND jsonPayload.cause=\"token\""

  label_extractors = {
    pixel_id = "EXTRACT(jsonPayload.pixel_id)"
  }
  metric_descriptor {
    metric_kind = "DELTA"
    value_type  = "INT64"
    unit        = "1"
    labels {
      key         = "pixel_id"
      value_type  = "STRING"
      description = "The pixel whose token Meta rejected."
    }
  }
}

# --- alerts ------------------------------------------------------------------------------------

resource "google_monitoring_alert_policy" "token_rejected" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: Meta rejected the access token"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  severity              = "CRITICAL"

  conditions {
    display_name = "token errors in the last 10 minutes"
    condition_prometheus_query_language {
      query               = "${format(local.promql.token, "10m")} > 0"
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Meta answered the processor with a token error (code 190 or a permission error). Events are held and retried, not lost, until the Pub/Sub retention runs out. Put a new system-user token in the secret (see infra/README.md, \"Rotating the Meta access token\") and run `capi-relay doctor` to check it."
  }

  alert_strategy {
    auto_close = "1800s"
  }

  depends_on = [google_logging_metric.token_errors]
}

resource "google_monitoring_alert_policy" "dead_letter_share" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: dead-letter share above ${var.dead_letter_alert_share * 100}%"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "dead-lettered / (sent + dead-lettered) over ${local.dead_window}"
    condition_prometheus_query_language {
      # A window without any sent event still counts: "or vector(0)" keeps the sum defined.
      query = join(" ", [
        "(${format(local.promql.dead, local.dead_window)}",
        "/ ((${format(local.promql.sent, local.dead_window)} or vector(0)) + ${format(local.promql.dead, local.dead_window)}))",
        "> ${var.dead_letter_alert_share}",
        "and ((${format(local.promql.sent, local.dead_window)} or vector(0)) + ${format(local.promql.dead, local.dead_window)})",
        ">= ${var.dead_letter_alert_min_events}",
      ])
      duration            = "0s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "More than ${var.dead_letter_alert_share * 100}% of the events settled in the last ${local.dead_window} went to the dead-letter topic. The dashboard splits them by reason; `capi-relay report` shows them per event name. Fix the cause, then `capi-relay replay` sends them again."
  }

  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.events_sent, google_logging_metric.events_dead_lettered]
}

resource "google_monitoring_alert_policy" "accepted_not_sent" {
  project               = var.project_id
  display_name          = "${var.name_prefix}: events accepted but none sent for ${local.stalled_window}"
  combiner              = "OR"
  notification_channels = var.alert_notification_channels
  severity              = "ERROR"

  conditions {
    display_name = "accepted > 0 and sent = 0 over ${local.stalled_window}"
    condition_prometheus_query_language {
      # Events dropped for consent are handled, not stuck: they count as progress.
      query = join(" ", [
        "${format(local.promql.accepted, local.stalled_window)} > 0",
        "unless on() ((${format(local.promql.sent, local.stalled_window)} > 0)",
        "or (${format(local.promql.consent, local.stalled_window)} > 0))",
      ])
      # held for 5 minutes, so events accepted at the end of the window have time to go out
      duration            = "300s"
      evaluation_interval = "60s"
    }
  }

  documentation {
    mime_type = "text/markdown"
    content   = "Ingest accepted events in the last ${local.stalled_window} but the processor sent none. Look at the processor's logs (token, Graph outage, push subscription) and run `capi-relay doctor`."
  }

  alert_strategy {
    auto_close = "3600s"
  }

  depends_on = [google_logging_metric.events_accepted, google_logging_metric.events_sent, google_logging_metric.consent_drops]
}

# --- dashboard ---------------------------------------------------------------------------------

locals {
  dashboard_charts = [
    {
      title = "Events per 5 minutes: accepted, sent, dead-lettered, dropped for consent"
      queries = {
        accepted        = format(local.promql.accepted, "5m")
        sent            = format(local.promql.sent, "5m")
        dead-lettered   = format(local.promql.dead, "5m")
        consent-dropped = format(local.promql.consent, "5m")
      }
    },
    {
      title   = "Dead-lettered by reason (per 5 minutes)"
      queries = { "" = format(local.promql.dead_reason, "5m") } # "": legend from the label
    },
    {
      title   = "Dropped for consent by decision (per 5 minutes)"
      queries = { "" = format(local.promql.consent_why, "5m") }
    },
    {
      title = "Rejected at ingest: insufficient customer information; token errors (per 5 minutes)"
      queries = {
        insufficient-customer-information = format(local.promql.insufficient, "5m")
        token-errors                      = format(local.promql.token, "5m")
      }
    },
  ]
  alert_policies = [
    google_monitoring_alert_policy.token_rejected,
    google_monitoring_alert_policy.dead_letter_share,
    google_monitoring_alert_policy.accepted_not_sent,
  ]
}

resource "google_monitoring_dashboard" "relay" {
  project = var.project_id
  dashboard_json = jsonencode({
    displayName = "${var.name_prefix}: delivery to Meta"
    mosaicLayout = {
      columns = 48
      tiles = concat(
        [for i, chart in local.dashboard_charts : {
          xPos   = (i % 2) * 24
          yPos   = floor(i / 2) * 16
          width  = 24
          height = 16
          widget = {
            title = chart.title
            xyChart = {
              chartOptions = { mode = "COLOR" }
              dataSets = [for legend, query in chart.queries : merge({
                plotType           = "LINE" # accepted and sent overlap: lines, not stacked bars
                targetAxis         = "Y1"
                timeSeriesQuery    = { prometheusQuery = query }
                minAlignmentPeriod = "300s"
              }, legend == "" ? {} : { legendTemplate = legend })]
            }
          }
        }],
        [for i, policy in local.alert_policies : {
          xPos   = i * 16
          yPos   = ceil(length(local.dashboard_charts) / 2) * 16
          width  = 16
          height = 8
          widget = {
            title      = policy.display_name
            alertChart = { name = policy.name }
          }
        }],
      )
    }
  })
}
