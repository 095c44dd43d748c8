# The Firestore database (Native mode) and the TTL policy that deletes expired idempotency records.

locals {
  firestore_location = var.firestore_location == "" ? var.region : var.firestore_location
}

resource "google_firestore_database" "default" {
  count = var.create_firestore_database ? 1 : 0

  project     = var.project_id
  name        = "(default)" # the client libraries' default; the functions name no database
  location_id = local.firestore_location
  type        = "FIRESTORE_NATIVE"

  concurrency_mode                  = "PESSIMISTIC"
  point_in_time_recovery_enablement = "POINT_IN_TIME_RECOVERY_ENABLED"
  delete_protection_state           = "DELETE_PROTECTION_ENABLED"
  # `terraform destroy` leaves the data in place; deleting a database is a deliberate manual act.
  deletion_policy = "ABANDON"

  depends_on = [google_project_service.enabled]
}

# Firestore deletes an idempotency record some time (usually within 24 h) after its expire_at.
resource "google_firestore_field" "idempotency_ttl" {
  project    = var.project_id
  database   = "(default)"
  collection = var.idempotency_collection
  field      = "expire_at"

  ttl_config {}

  # An empty index_config turns off single-field indexes on expire_at: the relay never queries
  # it, and an index on a monotonically increasing timestamp would hotspot writes.
  index_config {}

  depends_on = [google_firestore_database.default, google_project_service.enabled]
}

# Browser links in the profiles collection (link_cid_*, link_fbp_*) carry expire_at; profile
# documents themselves do not, so only links expire.
resource "google_firestore_field" "profile_links_ttl" {
  project    = var.project_id
  database   = "(default)"
  collection = var.profiles_collection
  field      = "expire_at"

  ttl_config {}
  index_config {}

  depends_on = [google_firestore_database.default, google_project_service.enabled]
}

# Profiles are only read by document id: the hashed match keys need no index, and indexing
# them would cost a write per value.
resource "google_firestore_field" "profile_keys_unindexed" {
  project    = var.project_id
  database   = "(default)"
  collection = var.profiles_collection
  field      = "keys"

  index_config {}

  depends_on = [google_firestore_database.default, google_project_service.enabled]
}
