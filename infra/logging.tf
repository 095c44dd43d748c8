# Cloud Run writes one request log entry (run.googleapis.com/requests) per invocation: one per
# ingest request and one per push (or puller run) of the processor. Nothing in this stack reads them
# (the log-based metrics in monitoring.tf read the functions' own lines, and Cloud Run's
# request_count and latency metrics do not come from logs), yet at ~800 bytes each they are
# about 40 % of the Cloud Logging bill per event (infra/README.md, Cost per million events).
# This exclusion on the _Default sink keeps the successful ones out of storage, so they are not
# billed; requests that ended with a status of 400 or more (refused input, a 429 when no
# instance was free, a crash, a timeout, a push refused for redelivery) are still stored.

resource "google_logging_project_exclusion" "run_request_logs" {
  count = var.exclude_request_logs ? 1 : 0

  project     = var.project_id
  name        = "${var.name_prefix}-run-request-logs"
  description = "Successful Cloud Run request logs of ${google_cloudfunctions2_function.ingest.name} and ${google_cloudfunctions2_function.process.name} (capi-relay); errors are kept."
  filter      = "resource.type=\"cloud_run_revision\" AND log_id(\"run.googleapis.com/requests\") AND resource.labels.service_name=(\"${google_cloudfunctions2_function.ingest.name}\" OR \"${google_cloudfunctions2_function.process.name}\") AND httpRequest.status<400"
}
