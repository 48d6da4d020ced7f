# An external HTTP monitor on <prefix>/health. It shows reachability and latency from the vantage
# points, and it keeps one instance warm per probe (probes carry no Authorization header; /health is
# anonymous). It sees the status code only: a "degraded" instance that still answers 200 is visible in
# the /health body and the function logs, not here (see infra/README.md, Operations).

resource "oci_health_checks_http_monitor" "health" {
  count               = var.health_check_enabled ? 1 : 0
  compartment_id      = var.compartment_ocid
  display_name        = "${var.name_prefix}-health"
  targets             = [oci_apigateway_gateway.this.hostname]
  protocol            = "HTTPS"
  port                = 443
  method              = "GET"
  path                = "${var.api_path_prefix}/health"
  interval_in_seconds = var.health_check_interval_seconds
  # One of 10, 20, 30, 60 and at most the interval.
  timeout_in_seconds = min(var.health_check_interval_seconds, 30)
  is_enabled         = true
}
