# Inputs of the capi-relay stack; every one is typed, described and, where it can be, validated.

# --- project ---------------------------------------------------------------------------------

variable "project_id" {
  type        = string
  description = "Google Cloud project ID that hosts the relay."

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{4,28}[a-z0-9]$", var.project_id))
    error_message = "project_id must be a project ID (6-30 lowercase letters, digits, hyphens)."
  }
}

variable "region" {
  type        = string
  description = "Region for the functions, the source bucket and the load balancer's serverless NEG, e.g. europe-west1."

  validation {
    condition     = can(regex("^[a-z]+-[a-z]+[0-9]+$", var.region))
    error_message = "region must look like europe-west1 or us-central1."
  }
}

variable "name_prefix" {
  type        = string
  description = "Prefix of every resource name (topics, subscriptions, functions, service accounts)."
  default     = "capi-relay"

  validation {
    # Service account IDs are 6-30 chars; the longest suffix used is "-processor" (10 chars).
    condition     = can(regex("^[a-z][a-z0-9-]{2,18}[a-z0-9]$", var.name_prefix))
    error_message = "name_prefix must be 4-20 lowercase letters, digits or hyphens, starting with a letter."
  }
}

variable "labels" {
  type        = map(string)
  description = "Extra labels put on every resource that takes labels."
  default     = {}
}

# --- Meta Conversions API ----------------------------------------------------------------------

variable "meta_pixel_id" {
  type        = string
  description = "Meta pixel (dataset) ID the events are sent to."

  validation {
    condition     = can(regex("^[0-9]{5,20}$", var.meta_pixel_id))
    error_message = "meta_pixel_id must be the numeric pixel ID."
  }
}

variable "meta_api_version" {
  type        = string
  description = "Graph API version, e.g. v27.0. Empty keeps the version the code is tested against."
  default     = ""

  validation {
    condition     = var.meta_api_version == "" || can(regex("^v[0-9]+\\.[0-9]+$", var.meta_api_version))
    error_message = "meta_api_version must be empty or look like v27.0."
  }
}

variable "meta_graph_url" {
  type        = string
  description = "Base URL of the Graph API. Empty means https://graph.facebook.com."
  default     = ""

  validation {
    condition     = var.meta_graph_url == "" || can(regex("^https://", var.meta_graph_url))
    error_message = "meta_graph_url must be empty or an https:// URL."
  }
}

variable "meta_test_event_code" {
  type        = string
  description = "Test event code from Events Manager; when set, events show under Test Events only. Leave empty in production."
  default     = ""
}

variable "meta_token_secret_id" {
  type        = string
  description = "Secret Manager secret ID that holds the Conversions API access token (the value is added out of band)."
  default     = "capi-relay-meta-token"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.meta_token_secret_id))
    error_message = "meta_token_secret_id may hold letters, digits, underscores and hyphens only."
  }
}

variable "pixels" {
  type = list(object({
    id = string
    # A Secret Manager secret id; this stack creates the container (its value is added out of
    # band, like the main token's) and lets only the processor read it. "" or meta_token_secret_id:
    # the main token (one system-user token may serve several pixels).
    token_secret_id = optional(string, "")
    test_event_code = optional(string, "")
    route = optional(object({
      event_names = optional(list(string), [])
      hosts       = optional(list(string), [])
      source_keys = optional(list(string), [])
    }), {})
  }))
  description = "More pixels (PIXELS): each with its own token secret, test event code and route (Meta event names, page hosts like shop.example.com or *.example.com, source key names); an event goes to every pixel whose route it matches, and to meta_pixel_id's unless it is listed here with a route."
  default     = []

  validation {
    condition     = alltrue([for p in var.pixels : can(regex("^[0-9]{5,20}$", p.id))]) && length(distinct([for p in var.pixels : p.id])) == length(var.pixels)
    error_message = "pixels: each id must be a numeric pixel ID, listed once."
  }
  validation {
    condition     = alltrue([for p in var.pixels : p.token_secret_id == "" || can(regex("^[A-Za-z0-9_-]{1,255}$", p.token_secret_id))])
    error_message = "pixels: token_secret_id may hold letters, digits, underscores and hyphens only."
  }
  validation {
    condition = alltrue(flatten([for p in var.pixels : concat(
      [for n in p.route.event_names : can(regex("^[A-Za-z][A-Za-z0-9_]*$", n))],
      [for h in p.route.hosts : can(regex("^(\\*\\.)?[a-z0-9_-]+(\\.[a-z0-9_-]+)*$", lower(h)))],
      [for k in p.route.source_keys : can(regex("^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$", k))],
    )]))
    error_message = "pixels: route.event_names are Meta event names, route.hosts host names (shop.example.com, *.example.com), route.source_keys key names (not keys)."
  }
}

# --- relay behaviour -------------------------------------------------------------------------

variable "allowed_origins" {
  type        = list(string)
  description = "Origins allowed to POST to the ingest endpoint from browsers (CORS), e.g. [\"https://shop.example.com\"]."
  default     = []

  validation {
    condition     = alltrue([for o in var.allowed_origins : can(regex("^https?://[^/,]+$", o))])
    error_message = "Each allowed origin must be scheme://host[:port] with no path or comma."
  }
}

variable "default_country" {
  type        = string
  description = "ISO 3166-1 alpha-2 country used to normalise phone numbers without a country code. Empty for none."
  default     = ""

  validation {
    condition     = var.default_country == "" || can(regex("^[A-Z]{2}$", var.default_country))
    error_message = "default_country must be empty or two uppercase letters, e.g. DE."
  }
}

variable "idempotency_collection" {
  type        = string
  description = "Firestore collection of idempotency records; its expire_at field gets a TTL policy."
  default     = "capi_relay_idempotency"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.idempotency_collection))
    error_message = "idempotency_collection must be a top-level collection ID (letters, digits, _ and -)."
  }
}

variable "profiles_collection" {
  type        = string
  description = "Firestore collection of profiles the processor enriches events from."
  default     = "profiles"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,100}$", var.profiles_collection))
    error_message = "profiles_collection must be a top-level collection ID (letters, digits, _ and -)."
  }
}

variable "default_currency" {
  type        = string
  description = "ISO 4217 currency used for a value sent without one (DEFAULT_CURRENCY). Empty for none."
  default     = ""
  validation {
    condition     = var.default_currency == "" || can(regex("^[A-Z]{3}$", var.default_currency))
    error_message = "default_currency must be empty or three uppercase letters, e.g. EUR."
  }
}

variable "field_aliases" {
  type        = map(list(string))
  description = "Extra source paths per field (FIELD_ALIASES), e.g. { em = [\"form.mail\"] }."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.field_aliases : can(regex("^[a-z_]+$", k)) && length(v) > 0])
    error_message = "field_aliases keys must be field names (a-z, _) with at least one path each."
  }
}

variable "event_name_map" {
  type        = map(string)
  description = "Extra or overriding event-name mappings (EVENT_NAME_MAP), e.g. { newsletter_optin = \"Subscribe\" }."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.event_name_map : can(regex("^[A-Za-z][A-Za-z0-9_]*$", v))])
    error_message = "event_name_map values must be Meta event names (letters, digits, _)."
  }
}

variable "consent_policy" {
  type        = string
  description = "CONSENT_POLICY: strict (ad consent denied: not sent) or strip_user_data (sent without consent-covered identifiers)."
  default     = "strict"
  validation {
    condition     = contains(["strict", "strip_user_data"], var.consent_policy)
    error_message = "consent_policy must be strict or strip_user_data."
  }
}

variable "consent_missing" {
  type        = string
  description = "CONSENT_MISSING: what to do with an event that carries no consent signal at all, send or drop."
  default     = "send"
  validation {
    condition     = contains(["send", "drop"], var.consent_missing)
    error_message = "consent_missing must be send or drop."
  }
}

variable "ldu_regions" {
  type        = list(string)
  description = "LDU_REGIONS: country or country-state codes that get Limited Data Use, e.g. [\"us-ca\", \"us-co\"]."
  default     = []
  validation {
    condition     = alltrue([for r in var.ldu_regions : can(regex("^[a-z]{2}(-[a-z0-9]{1,3})?$", r))])
    error_message = "Each LDU region must be a lowercase country (us) or country-state (us-ca) code."
  }
}

variable "redact_fields" {
  type        = map(list(string))
  description = "REDACT_FIELDS: user_data keys dropped per country or region, e.g. { eu = [\"client_ip_address\"] }."
  default     = {}
  validation {
    condition     = alltrue([for k, v in var.redact_fields : can(regex("^[a-z]{2}(-[a-z0-9]{1,3})?$", k)) && length(v) > 0])
    error_message = "redact_fields keys must be lowercase region codes, each with at least one user_data key."
  }
}

variable "profile_writeback" {
  type        = bool
  description = "PROFILE_WRITEBACK: remember hashed identifiers of identified events for later anonymous ones."
  default     = true
}

variable "idempotency_ttl_hours" {
  type        = number
  description = "IDEMPOTENCY_TTL_HOURS: how long a delivery record is kept (Meta deduplicates for 48 h)."
  default     = 48
  validation {
    condition     = var.idempotency_ttl_hours >= 1 && var.idempotency_ttl_hours <= 720
    error_message = "idempotency_ttl_hours must be from 1 to 720."
  }
}

variable "claim_lease_seconds" {
  type        = number
  description = "CLAIM_LEASE_SECONDS: how long a claim blocks other instances before a crashed holder is presumed dead."
  default     = 120
  validation {
    condition     = var.claim_lease_seconds >= 5 && var.claim_lease_seconds <= 3600
    error_message = "claim_lease_seconds must be from 5 to 3600."
  }
}

variable "batch_window_ms" {
  type        = number
  description = "BATCH_WINDOW_MS: at most how long the processor gathers concurrent deliveries into one Graph request; a lone delivery never waits (0: never share)."
  default     = 50
  validation {
    condition     = var.batch_window_ms >= 0 && var.batch_window_ms <= 5000
    error_message = "batch_window_ms must be from 0 to 5000."
  }
}

variable "meta_timeout_seconds" {
  type        = number
  description = "META_TIMEOUT_SECONDS: Graph request timeout; keep it below processor_timeout_seconds."
  default     = 10
  validation {
    condition     = var.meta_timeout_seconds >= 1 && var.meta_timeout_seconds <= 300
    error_message = "meta_timeout_seconds must be from 1 to 300."
  }
}

# --- source authentication -------------------------------------------------------------------

variable "ingest_keys_required" {
  type        = bool
  description = "Require a source key (Authorization: Bearer) from non-browser sources, read from the ingest keys secret (INGEST_KEYS_SECRET). False leaves the endpoint open to anyone."
  default     = true
}

variable "ingest_keys_secret_id" {
  type        = string
  description = "Secret Manager secret ID holding the ingest source keys, one per line (`key` or `key:Purchase|Lead`); versions are added out of band."
  default     = "capi-relay-ingest-keys"
  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,255}$", var.ingest_keys_secret_id))
    error_message = "ingest_keys_secret_id may hold letters, digits, underscores and hyphens only."
  }
}

variable "browser_events" {
  type        = list(string)
  description = "BROWSER_EVENTS: Meta event names keyless (browser) sources may send, e.g. [\"PageView\", \"ViewContent\"]. Empty: any."
  default     = []
  validation {
    condition     = alltrue([for e in var.browser_events : can(regex("^[A-Za-z][A-Za-z0-9_]*$", e))])
    error_message = "Each browser event must be a Meta event name (letters, digits, _)."
  }
}

variable "rate_limit_per_minute" {
  type        = number
  description = "Requests per minute one client IP may send through the first-party load balancer before Cloud Armor answers 429 (0: no Cloud Armor policy). Only with first_party_domain."
  default     = 600
  validation {
    condition     = var.rate_limit_per_minute >= 0 && var.rate_limit_per_minute <= 1000000 && floor(var.rate_limit_per_minute) == var.rate_limit_per_minute
    error_message = "rate_limit_per_minute must be a whole number from 0 to 1000000."
  }
}

# --- Pub/Sub ---------------------------------------------------------------------------------

variable "max_delivery_attempts" {
  type        = number
  description = "Deliveries of one message to the processor before Pub/Sub moves it to the dead-letter topic."
  default     = 10

  validation {
    # Pub/Sub accepts 5..100.
    condition     = var.max_delivery_attempts >= 5 && var.max_delivery_attempts <= 100 && floor(var.max_delivery_attempts) == var.max_delivery_attempts
    error_message = "max_delivery_attempts must be a whole number from 5 to 100."
  }
}

variable "message_retention_days" {
  type        = number
  description = "Days unacknowledged messages are kept on the push subscription and the dead-letter subscription (for `capi-relay replay`)."
  default     = 7

  validation {
    condition     = var.message_retention_days >= 1 && var.message_retention_days <= 31 && floor(var.message_retention_days) == var.message_retention_days
    error_message = "message_retention_days must be a whole number from 1 to 31 (Pub/Sub's subscription maximum)."
  }
}

# --- Firestore -------------------------------------------------------------------------------

variable "create_firestore_database" {
  type        = bool
  description = "Create the (default) Firestore database. Set false if the project already has one (or import it)."
  default     = true
}

variable "firestore_location" {
  type        = string
  description = "Firestore location, a region (europe-west1) or multi-region (eur3, nam5). Empty means var.region. Cannot change later."
  default     = ""

  validation {
    condition     = var.firestore_location == "" || can(regex("^([a-z]+-[a-z]+[0-9]+|eur3|nam5|nam7)$", var.firestore_location))
    error_message = "firestore_location must be empty, a region, or one of eur3, nam5, nam7."
  }
}

# --- functions -------------------------------------------------------------------------------

variable "python_runtime" {
  type        = string
  description = "Cloud Functions Python runtime for both functions."
  default     = "python312"

  validation {
    condition     = contains(["python311", "python312", "python313"], var.python_runtime)
    error_message = "python_runtime must be python311, python312 or python313."
  }
}

variable "ingest_ingress_settings" {
  type        = string
  description = "Who may reach the ingest function: ALLOW_ALL (its own URL works), or ALLOW_INTERNAL_AND_GCLB (only via the first-party load balancer)."
  default     = "ALLOW_ALL"

  validation {
    condition     = contains(["ALLOW_ALL", "ALLOW_INTERNAL_AND_GCLB"], var.ingest_ingress_settings)
    error_message = "ingest_ingress_settings must be ALLOW_ALL or ALLOW_INTERNAL_AND_GCLB."
  }
}

variable "ingest_memory" {
  type        = string
  description = "Memory of one ingest instance. The ingest uses about 80 MiB (PSS of the functions-framework server after 1,000 events, measured on the local stack); above 512Mi Cloud Run needs ingest_cpu >= 0.5, above 1Gi >= 1."
  default     = "256Mi"

  validation {
    condition     = contains(["256Mi", "512Mi", "1Gi", "2Gi", "4Gi"], var.ingest_memory)
    error_message = "ingest_memory must be one of 256Mi, 512Mi, 1Gi, 2Gi, 4Gi."
  }
}

variable "ingest_cpu" {
  type        = string
  description = "vCPUs of one ingest instance. Below 1, Cloud Run serves one request at a time per instance, so ingest_max_instance_request_concurrency must be 1, and allows at most 512Mi of memory below 0.5 vCPU and 1Gi below 1. The default, a sixth of a vCPU with 256Mi at concurrency 1, is what make bench measures cheapest at 1 M events a month and at 40 events/s (infra/README.md): a request needs a few ms of CPU, so it still ends within Cloud Run's 100 ms billing minimum."
  default     = "0.1667"

  validation {
    condition     = contains(["0.0833", "0.1667", "0.3333", "0.5", "0.5833", "1", "2"], var.ingest_cpu) && (tonumber(var.ingest_cpu) >= 1 || var.ingest_max_instance_request_concurrency == 1)
    error_message = "ingest_cpu must be one of 0.0833, 0.1667, 0.3333, 0.5, 0.5833, 1, 2; below 1, set ingest_max_instance_request_concurrency = 1."
  }

  validation {
    condition     = tonumber(var.ingest_cpu) >= 1 || contains(tonumber(var.ingest_cpu) < 0.5 ? ["256Mi", "512Mi"] : ["256Mi", "512Mi", "1Gi"], var.ingest_memory)
    error_message = "Cloud Run allows at most 512Mi of memory below 0.5 vCPU and 1Gi below 1 vCPU: lower ingest_memory or raise ingest_cpu."
  }
}

variable "ingest_max_instance_request_concurrency" {
  type        = number
  description = "Concurrent requests one ingest instance serves (above 1, ingest_cpu must be at least 1; 80 with ingest_cpu = \"1\" and 512Mi was the default before issue 13)."
  default     = 1

  validation {
    condition     = var.ingest_max_instance_request_concurrency >= 1 && var.ingest_max_instance_request_concurrency <= 1000
    error_message = "ingest_max_instance_request_concurrency must be from 1 to 1000."
  }
}

variable "ingest_min_instances" {
  type        = number
  description = "Ingest instances kept warm (billed while idle); 0 allows scale to zero."
  default     = 0

  validation {
    condition     = var.ingest_min_instances >= 0 && var.ingest_min_instances <= 100
    error_message = "ingest_min_instances must be from 0 to 100."
  }
}

variable "ingest_max_instances" {
  type        = number
  description = "Upper bound on ingest instances, a cost ceiling. At concurrency 1 it is also the most requests in flight: 100 instances of a sixth of a vCPU (about 2,500 requests a second at ~40 ms each) cap the bill below the 20 instances of 1 vCPU that were the default before."
  default     = 100

  validation {
    condition     = var.ingest_max_instances >= 1 && var.ingest_max_instances <= 1000
    error_message = "ingest_max_instances must be from 1 to 1000."
  }
}

variable "processor_memory" {
  type        = string
  description = "Memory of one processor instance."
  default     = "512Mi"

  validation {
    condition     = contains(["256Mi", "512Mi", "1Gi", "2Gi", "4Gi"], var.processor_memory)
    error_message = "processor_memory must be one of 256Mi, 512Mi, 1Gi, 2Gi, 4Gi."
  }
}

variable "processor_max_instance_request_concurrency" {
  type        = number
  description = "Concurrent pushes one processor instance handles; most of its time is spent waiting on the Graph API."
  default     = 20

  validation {
    condition     = var.processor_max_instance_request_concurrency >= 1 && var.processor_max_instance_request_concurrency <= 1000
    error_message = "processor_max_instance_request_concurrency must be from 1 to 1000."
  }
}

variable "processor_min_instances" {
  type        = number
  description = "Processor instances kept warm (billed while idle); 0 allows scale to zero."
  default     = 0

  validation {
    condition     = var.processor_min_instances >= 0 && var.processor_min_instances <= 100
    error_message = "processor_min_instances must be from 0 to 100."
  }
}

variable "processor_max_instances" {
  type        = number
  description = "Upper bound on processor instances; also caps the request rate sent to Meta."
  default     = 20

  validation {
    condition     = var.processor_max_instances >= 1 && var.processor_max_instances <= 1000
    error_message = "processor_max_instances must be from 1 to 1000."
  }
}

variable "processor_timeout_seconds" {
  type        = number
  description = "Processor request timeout; also the push subscription's ack deadline, so Pub/Sub waits exactly as long."
  default     = 60

  validation {
    # A push subscription's ack deadline is 10..600 s.
    condition     = var.processor_timeout_seconds >= 10 && var.processor_timeout_seconds <= 600
    error_message = "processor_timeout_seconds must be from 10 to 600."
  }
}

# --- optional first-party endpoint ------------------------------------------------------------

variable "first_party_domain" {
  type        = string
  description = "Domain (e.g. collect.example.com) served by a global HTTPS load balancer in front of ingest. Empty turns the load balancer off."
  default     = ""

  validation {
    condition     = var.first_party_domain == "" || can(regex("^([a-z0-9]([a-z0-9-]*[a-z0-9])?\\.)+[a-z]{2,}$", var.first_party_domain))
    error_message = "first_party_domain must be empty or a lowercase DNS name such as collect.example.com."
  }
}

# --- monitoring ------------------------------------------------------------------------------

variable "alert_notification_channels" {
  type        = list(string)
  description = "Cloud Monitoring notification channels the alerts go to, as projects/P/notificationChannels/N (create them in the console or with google_monitoring_notification_channel). Empty: the alerts still open incidents, shown on the dashboard, but tell nobody."
  default     = []

  validation {
    condition     = alltrue([for c in var.alert_notification_channels : can(regex("^projects/[^/]+/notificationChannels/[0-9]+$", c))])
    error_message = "alert_notification_channels entries must look like projects/P/notificationChannels/N."
  }
}

variable "dead_letter_alert_share" {
  type        = number
  description = "Alert when more than this share of the events the processor settled (sent or dead-lettered) was dead-lettered within dead_letter_alert_window_minutes, e.g. 0.05 for 5%."
  default     = 0.05

  validation {
    condition     = var.dead_letter_alert_share > 0 && var.dead_letter_alert_share < 1
    error_message = "dead_letter_alert_share must be between 0 and 1 (exclusive)."
  }
}

variable "dead_letter_alert_min_events" {
  type        = number
  description = "The dead-letter share alert only fires once at least this many events were settled in the window, so one bad event on a quiet night does not page anyone."
  default     = 20

  validation {
    condition     = var.dead_letter_alert_min_events >= 1 && floor(var.dead_letter_alert_min_events) == var.dead_letter_alert_min_events
    error_message = "dead_letter_alert_min_events must be a whole number >= 1."
  }
}

variable "dead_letter_alert_window_minutes" {
  type        = number
  description = "Window over which the dead-letter share is measured."
  default     = 60

  validation {
    condition     = var.dead_letter_alert_window_minutes >= 5 && var.dead_letter_alert_window_minutes <= 1440
    error_message = "dead_letter_alert_window_minutes must be from 5 to 1440."
  }
}

variable "stalled_delivery_minutes" {
  type        = number
  description = "Alert when ingest accepted events during this many minutes but the processor sent none (and dropped none for consent)."
  default     = 30

  validation {
    condition     = var.stalled_delivery_minutes >= 10 && var.stalled_delivery_minutes <= 1440
    error_message = "stalled_delivery_minutes must be from 10 to 1440."
  }
}

variable "delivery" {
  type        = string
  description = "How events reach the processor: \"scheduled_pull\" (Cloud Scheduler starts a puller that sends what waits, up to 1,000 events per Graph request, one ledger record per run; events wait up to one schedule period) or \"push\" (each message pushed as it arrives, claimed and settled per event; real time, several times the cost)."
  default     = "scheduled_pull"

  validation {
    condition     = contains(["scheduled_pull", "push"], var.delivery)
    error_message = "delivery must be scheduled_pull or push."
  }
}

variable "pull_schedule" {
  type        = string
  description = "Cloud Scheduler cron schedule of the puller (delivery = scheduled_pull); once a minute is the finest Cloud Scheduler allows."
  default     = "* * * * *"

  validation {
    condition     = length(split(" ", trimspace(var.pull_schedule))) == 5
    error_message = "pull_schedule must be a five-field cron expression, e.g. \"* * * * *\"."
  }
}

variable "exclude_request_logs" {
  type        = bool
  description = "Keep Cloud Run's request log entries (run.googleapis.com/requests) of the two functions out of Cloud Logging when the request succeeded (status below 400): one entry per invocation (every ingest request, every push or puller run), read by nothing here. Errors stay logged. false stores them all (billed beyond the free 50 GiB a month)."
  default     = true
}
