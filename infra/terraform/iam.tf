# Least privilege for exactly what the code calls. Who calls what:
#   cache function      GetSecretBundle (the Kafka token, at start); ListObjects + GetObject (restore,
#                       big values); PutObject (create-only) of big values, under <prefix>/values/ only;
#                       InvokeFunction of the compactor, detached (after a long tail at cold start)
#   compactor function  GetSecretBundle; ListObjects, GetObject, PutObject (create-only), DeleteObject
#                       (snapshots, and the big values nothing refers to any more)
#   streaming user      Kafka produce and consume on the stream (SASL with the auth token: the
#                       functions' resource principal cannot sign Kafka, so stream rights go to the user)
#   API Gateway, the Resource Scheduler, Events    invoke the functions
# Dynamic groups live in the tenancy (root) compartment of the Default identity domain; IAM writes
# go to the home region. Changes reach running functions within ~15 minutes (token cache).

locals {
  compartment = "compartment id ${var.compartment_ocid}"
  bucket_only = "target.bucket.name = '${oci_objectstorage_bucket.data.name}'"
  # Functions policies accept target.function.id (OCI: "Controlling Access to Invoke and Manage Functions").
  compactor_only = "target.function.id = '${oci_functions_function.compactor.id}'"
  metrics_only   = "target.metrics.namespace = '${var.metrics_namespace}'"
  # Object Storage policies accept target.object.name patterns and the permission asked for (OCI IAM
  # policy reference, "Details for Object Storage"): a big value's PutObject, nothing else, nowhere else.
  values_only = "all {${local.bucket_only}, target.object.name = '${local.values_objects_prefix}*', any {request.permission = 'OBJECT_CREATE', request.permission = 'OBJECT_OVERWRITE'}}"
}

resource "oci_identity_dynamic_group" "cache" {
  provider       = oci.home
  compartment_id = var.tenancy_ocid
  name           = "${var.name_prefix}-cache-function"
  description    = "The streamcache cache function."
  matching_rule  = "ALL {resource.type = 'fnfunc', resource.id = '${oci_functions_function.cache.id}'}"
}

resource "oci_identity_dynamic_group" "compactor" {
  provider       = oci.home
  compartment_id = var.tenancy_ocid
  name           = "${var.name_prefix}-compactor-function"
  description    = "The streamcache compactor function."
  matching_rule  = "ALL {resource.type = 'fnfunc', resource.id = '${oci_functions_function.compactor.id}'}"
}

resource "oci_identity_policy" "functions" {
  provider       = oci.home
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-functions"
  description    = "What the streamcache functions may do with their resource principal: objects in their bucket, and the cache may invoke the compactor."
  statements = [
    # read = GetObject, and inspect = ListObjects/HeadObject: snapshot restore.
    "Allow dynamic-group ${oci_identity_dynamic_group.cache.name} to read objects in ${local.compartment} where ${local.bucket_only}",
    # A big value is written before its record (PutObject needs OBJECT_CREATE, which only `manage`
    # grants): in the values prefix, create (and the same bytes again) only; never a snapshot, never a delete.
    "Allow dynamic-group ${oci_identity_dynamic_group.cache.name} to manage objects in ${local.compartment} where ${local.values_only}",
    # PutObject needs OBJECT_CREATE, which only `manage` grants; the bucket holds nothing but snapshots and imports.
    "Allow dynamic-group ${oci_identity_dynamic_group.compactor.name} to manage objects in ${local.compartment} where ${local.bucket_only}",
    # A cold start that replayed a long tail asks for a compaction (STREAMCACHE_COMPACT_AFTER_RECORDS):
    # the compactor function only, nothing else in the compartment.
    "Allow dynamic-group ${oci_identity_dynamic_group.cache.name} to use fn-invocation in ${local.compartment} where ${local.compactor_only}",
    # PostMetricData, in our namespace only (OCI Monitoring policy reference).
    "Allow dynamic-group ${oci_identity_dynamic_group.cache.name} to use metrics in ${local.compartment} where ${local.metrics_only}",
    "Allow dynamic-group ${oci_identity_dynamic_group.compactor.name} to use metrics in ${local.compartment} where ${local.metrics_only}",
  ]
}

# In the secret's own compartment (the vault's may differ from ours), for that one secret.
resource "oci_identity_policy" "kafka_token" {
  provider       = oci.home
  compartment_id = data.oci_vault_secret.kafka_auth_token.compartment_id
  name           = "${var.name_prefix}-kafka-token"
  description    = "The streamcache functions read the Kafka auth token secret, and nothing else in Vault."
  statements = [
    for group in [oci_identity_dynamic_group.cache.name, oci_identity_dynamic_group.compactor.name] :
    "Allow dynamic-group ${group} to read secret-bundles in compartment id ${data.oci_vault_secret.kafka_auth_token.compartment_id} where target.secret.id = '${var.kafka_auth_token_secret_ocid}'"
  ]
}

resource "oci_identity_policy" "streaming_user" {
  provider       = oci.home
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-streaming-user"
  description    = "The user whose auth token the functions use: produce to and consume from the streamcache stream only."
  statements = [
    "Allow group ${var.streaming_user_group} to use stream-push in ${local.compartment} where target.stream.id = '${oci_streaming_stream.log.id}'",
    "Allow group ${var.streaming_user_group} to use stream-pull in ${local.compartment} where target.stream.id = '${oci_streaming_stream.log.id}'",
    # Kafka metadata (topic and partition discovery) reads the stream. Not confirmed to be needed: remove
    # it if the functions still connect without it.
    "Allow group ${var.streaming_user_group} to read streams in ${local.compartment} where target.streampool.id = '${oci_streaming_stream_pool.this.id}'",
  ]
}

resource "oci_identity_policy" "invokers" {
  provider       = oci.home
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-invokers"
  description    = "Services that invoke the streamcache functions: API Gateway, the compaction schedule, Events."
  statements = [
    # Without it the gateway answers 500 on every function route (API Gateway documentation).
    "Allow any-user to use functions-family in ${local.compartment} where ALL {request.principal.type = 'ApiGateway', request.resource.compartment.id = '${var.compartment_ocid}'}",
    # Resource Scheduler example policy, narrowed to our one schedule.
    "Allow any-user to manage functions-family in ${local.compartment} where ALL {request.principal.type = 'resourceschedule', request.principal.id = '${oci_resource_scheduler_schedule.compaction.id}'}",
    # Events rules with a function action invoke as the cloudEvents service (not on an Oracle reference
    # page we could read; the form used in practice).
    "Allow service cloudEvents to use functions-family in ${local.compartment}",
  ]
}

# Object lifecycle rules run as the Object Storage service of this region; only when they exist.
resource "oci_identity_policy" "object_lifecycle" {
  count          = var.import_retention_days > 0 ? 1 : 0
  provider       = oci.home
  compartment_id = var.compartment_ocid
  name           = "${var.name_prefix}-object-lifecycle"
  description    = "Object Storage may delete aged imports in the streamcache bucket."
  statements = [
    "Allow service objectstorage-${var.region} to manage object-family in ${local.compartment} where ${local.bucket_only}",
  ]
}
