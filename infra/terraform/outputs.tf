output "cache_url" {
  description = "Base URL of the cache: GET/PUT/DELETE <cache_url>/<key>."
  value       = "${oci_apigateway_deployment.this.endpoint}/cache"
}

output "health_url" {
  description = "The /health route (also what the Health Checks monitor probes)."
  value       = "${oci_apigateway_deployment.this.endpoint}/health"
}

output "gateway_hostname" {
  description = "Hostname of the API gateway."
  value       = oci_apigateway_gateway.this.hostname
}

output "stream_ocid" {
  description = "OCID of the stream (the cache's log; STREAMCACHE_STREAM_ID)."
  value       = oci_streaming_stream.log.id
}

output "stream_pool_ocid" {
  description = "OCID of the stream pool (last part of the Kafka SASL username)."
  value       = oci_streaming_stream_pool.this.id
}

output "kafka_bootstrap_servers" {
  description = "Kafka bootstrap servers of the stream pool, for subscribers (`streamcache watch --log-url`)."
  value       = local.kafka_bootstrap
}

output "kafka_sasl_username" {
  description = "SASL/PLAIN username for Kafka clients (the password is the auth token in Vault)."
  value       = local.kafka_username
}

output "log_url" {
  description = "STREAMCACHE_LOG_URL of this deployment."
  value       = local.log_url
}

output "bucket_name" {
  description = "Bucket of the snapshots and imports."
  value       = oci_objectstorage_bucket.data.name
}

output "object_storage_namespace" {
  description = "Object Storage namespace of the tenancy."
  value       = local.namespace
}

output "snapshot_url" {
  description = "STREAMCACHE_SNAPSHOT_URL of this deployment."
  value       = local.snapshot_url
}

output "import_location" {
  description = "Where to drop JSON Lines files to import them."
  value       = "oci://${oci_objectstorage_bucket.data.name}@${local.namespace}/${var.import_prefix}"
}

output "cache_function_ocid" {
  description = "OCID of the cache function."
  value       = oci_functions_function.cache.id
}

output "compactor_function_ocid" {
  description = "OCID of the compactor function (invoke it by hand to compact now)."
  value       = oci_functions_function.compactor.id
}

output "cache_invoke_endpoint" {
  description = "Invoke endpoint of the cache function (direct JSON operations, `streamcache` client over the OCI invoke API)."
  value       = oci_functions_function.cache.invoke_endpoint
}

output "compactor_invoke_endpoint" {
  description = "Invoke endpoint of the compactor function."
  value       = oci_functions_function.compactor.invoke_endpoint
}

output "log_group_ocid" {
  description = "OCI Logging log group with the function and gateway logs."
  value       = oci_logging_log_group.this.id
}
