# The Functions application and its two functions. Their config is their settings: each key is an
# environment variable that streamcache.settings.Settings reads (tests/infra/test_terraform_wiring.py
# builds Settings from these maps). The Kafka auth token is not here, only its Vault secret's OCID:
# the functions read it with their resource principal when they start (adapters/oci_secrets.py).

resource "oci_functions_application" "this" {
  compartment_id = var.compartment_ocid
  display_name   = var.name_prefix
  subnet_ids     = [local.function_subnet_id]
  shape          = "GENERIC_X86"

  lifecycle {
    precondition {
      condition     = local.function_subnet_id != ""
      error_message = "Set create_network = true, or give function_subnet_id (and gateway_subnet_id)."
    }
  }
}

locals {
  # Settings both functions read.
  common_settings = {
    STREAMCACHE_LOG_URL                       = local.log_url
    STREAMCACHE_STREAM_ID                     = oci_streaming_stream.log.id
    STREAMCACHE_KAFKA_SECURITY_PROTOCOL       = "SASL_SSL"
    STREAMCACHE_KAFKA_SASL_MECHANISM          = "PLAIN"
    STREAMCACHE_KAFKA_SASL_USERNAME           = local.kafka_username
    STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID = var.kafka_auth_token_secret_ocid
    STREAMCACHE_SNAPSHOT_URL                  = local.snapshot_url
    # The memory quota decides outcomes, so the compactor must fold with the instances' value.
    STREAMCACHE_MAX_BYTES = tostring(var.max_bytes)
    # Metrics to OCI Monitoring (monitoring.tf holds the alarms on them); signed with the resource principal.
    STREAMCACHE_METRICS_NAMESPACE      = var.metrics_namespace
    STREAMCACHE_METRICS_COMPARTMENT_ID = var.compartment_ocid
    STREAMCACHE_METRICS_DEPLOYMENT     = var.name_prefix
  }
  # The cache function sees the whole request path, deployment prefix included (Fn-Http-Request-Url).
  # After a long tail at cold start it asks the compactor for a compaction: a detached invoke at the
  # compactor's own invoke endpoint, signed with its resource principal (iam.tf: use fn-invocation).
  cache_only_settings = {
    STREAMCACHE_ROUTE_PREFIX              = "${var.api_path_prefix}/cache"
    STREAMCACHE_COMPACT_AFTER_RECORDS     = tostring(var.compact_after_records)
    STREAMCACHE_COMPACTOR_FUNCTION_ID     = oci_functions_function.compactor.id
    STREAMCACHE_COMPACTOR_INVOKE_ENDPOINT = oci_functions_function.compactor.invoke_endpoint
  }
  # Snapshot retention is the compactor's alone (functions/streamcache/core/retention.py): no Object
  # Storage lifecycle rule deletes snapshots, since only the compactor knows which one is the newest
  # intact snapshot, and a time-based rule would delete the last one of a compactor that stalled.
  compactor_only_settings = {
    STREAMCACHE_SNAPSHOTS_KEEP           = tostring(var.snapshots_keep)
    STREAMCACHE_SNAPSHOTS_KEEP_ALL_HOURS = tostring(var.snapshots_keep_all_hours)
    STREAMCACHE_SNAPSHOTS_DAILY_DAYS     = tostring(var.snapshots_daily_days)
    STREAMCACHE_IMPORT_PREFIX            = var.import_prefix
  }
  # Extras first: the deployment's own settings win on a clash.
  cache_config     = merge(var.cache_extra_settings, local.common_settings, local.cache_only_settings)
  compactor_config = merge(var.compactor_extra_settings, local.common_settings, local.compactor_only_settings)
  # Provisioned concurrency: minimum and step by memory (OCI Functions documentation).
  pcu_step = { 128 = 40, 256 = 20, 512 = 10, 1024 = 10, 2048 = 10, 3072 = 10 }
}

resource "oci_functions_function" "cache" {
  application_id     = oci_functions_application.this.id
  display_name       = "cache"
  image              = var.cache_image
  image_digest       = var.cache_image_digest != "" ? var.cache_image_digest : null
  memory_in_mbs      = var.cache_memory_mb
  timeout_in_seconds = var.cache_timeout_seconds
  config             = local.cache_config

  dynamic "provisioned_concurrency_config" {
    for_each = var.cache_provisioned_concurrency > 0 ? [var.cache_provisioned_concurrency] : []
    content {
      strategy = "CONSTANT"
      count    = provisioned_concurrency_config.value
    }
  }

  lifecycle {
    precondition {
      condition     = var.cache_provisioned_concurrency == 0 || var.cache_provisioned_concurrency % local.pcu_step[var.cache_memory_mb] == 0
      error_message = "cache_provisioned_concurrency must be 0 or a multiple of ${local.pcu_step[var.cache_memory_mb]} at ${var.cache_memory_mb} MB."
    }
    precondition {
      condition     = length(join("", [for name, value in local.cache_config : "${name}${value}"])) <= 4096
      error_message = "The cache function's config exceeds the 4 KB that OCI Functions accepts."
    }
  }
}

resource "oci_functions_function" "compactor" {
  application_id     = oci_functions_application.this.id
  display_name       = "compactor"
  image              = var.compactor_image
  image_digest       = var.compactor_image_digest != "" ? var.compactor_image_digest : null
  memory_in_mbs      = var.compactor_memory_mb
  timeout_in_seconds = var.compactor_timeout_seconds
  config             = local.compactor_config

  lifecycle {
    precondition {
      condition     = length(join("", [for name, value in local.compactor_config : "${name}${value}"])) <= 4096
      error_message = "The compactor function's config exceeds the 4 KB that OCI Functions accepts."
    }
  }
}
