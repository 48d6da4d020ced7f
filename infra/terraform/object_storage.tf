# One bucket holds the snapshot store (under <snapshot_prefix>/snapshots/, written and pruned only by
# the compactor) and the import drop zone (under import_prefix). Object events are on for imports.

data "oci_objectstorage_namespace" "this" {
  compartment_id = var.tenancy_ocid
}

locals {
  namespace   = data.oci_objectstorage_namespace.this.namespace
  bucket_name = var.bucket_name != "" ? var.bucket_name : "${var.name_prefix}-data"
  # STREAMCACHE_SNAPSHOT_URL: oci://BUCKET@NAMESPACE/PREFIX (the prefix may be empty).
  snapshot_url = "oci://${local.bucket_name}@${local.namespace}/${var.snapshot_prefix}"
  # Where the compactor writes, as full object names: the import rule must never match these.
  snapshot_objects_prefix = var.snapshot_prefix == "" ? "snapshots/" : "${var.snapshot_prefix}/snapshots/"
  import_markers_prefix   = "import-markers/" # completion markers, at the bucket's root (importer.py)
  # Big values (over STREAMCACHE_INLINE_MAX_BYTES): written by the cache function, collected by the compactor.
  values_objects_prefix = var.snapshot_prefix == "" ? "values/" : "${var.snapshot_prefix}/values/"
}

resource "oci_objectstorage_bucket" "data" {
  compartment_id        = var.compartment_ocid
  namespace             = local.namespace
  name                  = local.bucket_name
  access_type           = "NoPublicAccess"
  storage_tier          = "Standard"
  object_events_enabled = true
  # Snapshots are immutable and written create-only; versions would only keep pruned ones alive.
  versioning = "Disabled"
}

# Only when asked, and never for snapshots: an age rule could delete the newest snapshot while the
# compactor is failing, and then a cold start has to replay a stream that may no longer hold it all.
# Imports are safe to age out once loaded; stale multipart uploads are never useful.
resource "oci_objectstorage_object_lifecycle_policy" "imports" {
  count     = var.import_retention_days > 0 ? 1 : 0
  namespace = local.namespace
  bucket    = oci_objectstorage_bucket.data.name

  rules {
    name        = "delete-loaded-imports"
    action      = "DELETE"
    target      = "objects"
    is_enabled  = true
    time_amount = var.import_retention_days
    time_unit   = "DAYS"
    object_name_filter {
      inclusion_prefixes = [var.import_prefix]
    }
  }

  rules {
    name        = "abort-stale-multipart-uploads"
    action      = "ABORT"
    target      = "multipart-uploads"
    is_enabled  = true
    time_amount = 2
    time_unit   = "DAYS"
  }

  depends_on = [oci_identity_policy.object_lifecycle]
}
