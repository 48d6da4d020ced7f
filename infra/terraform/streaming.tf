# The stream is the cache's log and its truth: every write is a record here, and snapshots only
# summarise it. Clients speak Kafka to the stream pool's endpoint.
#
# DATA LOSS WARNING: partitions and retention cannot change after creation. Changing
# stream_partitions or stream_retention_hours makes Terraform replace the stream: every record not
# yet in a snapshot is lost, and the snapshots no longer match the new stream (the cache reports
# "snapshot ahead of log" until a new snapshot exists). prevent_destroy makes such a plan fail
# instead. To recreate the stream on purpose: compact, stop writers, remove prevent_destroy, apply.

resource "oci_streaming_stream_pool" "this" {
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-pool"

  kafka_settings {
    # A topic name typo in a client must fail, not create a second stream.
    auto_create_topics_enable = false
  }
}

resource "oci_streaming_stream" "log" {
  name               = "${var.name_prefix}-log"
  stream_pool_id     = oci_streaming_stream_pool.this.id
  partitions         = var.stream_partitions
  retention_in_hours = var.stream_retention_hours

  lifecycle {
    prevent_destroy = true
  }
}

locals {
  # The pool's Kafka bootstrap servers; the pool endpoint plus the Kafka port when not reported.
  kafka_bootstrap = coalesce(
    try(oci_streaming_stream_pool.this.kafka_settings[0].bootstrap_servers, null),
    "${oci_streaming_stream_pool.this.endpoint_fqdn}:9092",
  )
  # The Kafka topic is the stream's name. STREAMCACHE_LOG_URL.
  log_url = "kafka://${local.kafka_bootstrap}/${oci_streaming_stream.log.name}"
  # SASL/PLAIN username: tenancyName/domainName/userName/streamPoolOCID (older form without domain).
  kafka_username = join("/", compact([
    var.tenancy_name,
    var.identity_domain_name,
    var.streaming_user_name,
    oci_streaming_stream_pool.this.id,
  ]))
}
