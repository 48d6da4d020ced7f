# Alarms on the functions' metrics (docs/metrics.md), notified through an ONS topic. The queries live
# in one place, alarms.json.tftpl, which `streamcache dev` also evaluates on its local metrics;
# infra/README.md ("Alarms") says what to do when each one fires.

locals {
  alarms = var.metrics_namespace == "" ? {} : jsondecode(templatefile("${path.module}/alarms.json.tftpl", {
    deployment            = var.name_prefix
    snapshot_age_limit_s  = floor(var.stream_retention_hours * 3600 * var.snapshot_age_alarm_fraction)
    no_compaction_minutes = var.no_compaction_alarm_minutes
    stale_reads_limit     = var.stale_reads_alarm_limit
    errors_5xx_limit      = var.errors_5xx_alarm_limit
    quota_percent         = var.quota_alarm_percent
  }))
}

resource "oci_ons_notification_topic" "alarms" {
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-alarms"
  description    = "streamcache alarms: data-loss risk, compaction, stale reads, 5xx, degraded instances, quota."
}

resource "oci_ons_subscription" "alarm_email" {
  count          = var.alarm_email == "" ? 0 : 1
  compartment_id = var.compartment_ocid
  topic_id       = oci_ons_notification_topic.alarms.id
  protocol       = "EMAIL"
  endpoint       = var.alarm_email
}

resource "oci_ons_subscription" "alarm_https" {
  count          = var.alarm_https_endpoint == "" ? 0 : 1
  compartment_id = var.compartment_ocid
  topic_id       = oci_ons_notification_topic.alarms.id
  protocol       = "CUSTOM_HTTPS"
  endpoint       = var.alarm_https_endpoint
}

resource "oci_monitoring_alarm" "streamcache" {
  for_each              = local.alarms
  compartment_id        = var.compartment_ocid
  metric_compartment_id = var.compartment_ocid
  namespace             = var.metrics_namespace
  display_name          = "${var.name_prefix}-${each.key}"
  query                 = each.value.query
  severity              = each.value.severity
  body                  = "${each.value.summary} What to do: ${each.value.runbook}"
  destinations          = [oci_ons_notification_topic.alarms.id]
  is_enabled            = true
  # Held for a few minutes before it fires: one bad minute is not a page.
  pending_duration = "PT5M"
  message_format   = "ONS_OPTIMIZED"
}
