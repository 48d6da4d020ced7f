# Where to look: the functions' invoke logs (every JSON log line of streamcache, with the call id)
# and the gateway's access and execution logs, in one log group.

resource "oci_logging_log_group" "this" {
  compartment_id = var.compartment_ocid
  display_name   = "${var.name_prefix}-logs"
  description    = "streamcache functions and API gateway."
}

resource "oci_logging_log" "functions" {
  display_name       = "${var.name_prefix}-functions"
  log_group_id       = oci_logging_log_group.this.id
  log_type           = "SERVICE"
  is_enabled         = true
  retention_duration = var.log_retention_days
  configuration {
    compartment_id = var.compartment_ocid
    source {
      source_type = "OCISERVICE"
      service     = "functions"
      resource    = oci_functions_application.this.id
      category    = "invoke"
    }
  }
}

resource "oci_logging_log" "gateway" {
  for_each           = toset(["access", "execution"])
  display_name       = "${var.name_prefix}-gateway-${each.key}"
  log_group_id       = oci_logging_log_group.this.id
  log_type           = "SERVICE"
  is_enabled         = true
  retention_duration = var.log_retention_days
  configuration {
    compartment_id = var.compartment_ocid
    source {
      source_type = "OCISERVICE"
      service     = "apigateway"
      resource    = oci_apigateway_deployment.this.id
      category    = each.key
    }
  }
}
