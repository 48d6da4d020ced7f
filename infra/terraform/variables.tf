# Every input of the deployment. Each has a description; each with a constrained domain has a
# validation (tests/infra/test_terraform_wiring.py checks both). Validations use only their own
# variable; rules that relate two variables are preconditions on the resources that use them.

# ---- where ----------------------------------------------------------------------------------------

variable "tenancy_ocid" {
  description = "OCID of the tenancy. Dynamic groups can only be created in the tenancy (root) compartment."
  type        = string
  validation {
    condition     = startswith(var.tenancy_ocid, "ocid1.tenancy.")
    error_message = "tenancy_ocid must be a tenancy OCID (ocid1.tenancy....)."
  }
}

variable "compartment_ocid" {
  description = "OCID of the compartment that holds everything this configuration creates."
  type        = string
  validation {
    condition     = startswith(var.compartment_ocid, "ocid1.compartment.")
    error_message = "compartment_ocid must be a compartment OCID (ocid1.compartment....); deploying into the root compartment is not supported."
  }
}

variable "region" {
  description = "Region identifier to deploy into, e.g. eu-frankfurt-1."
  type        = string
  validation {
    condition     = can(regex("^[a-z]+-[a-z]+-[0-9]+$", var.region))
    error_message = "region must be a region identifier such as eu-frankfurt-1."
  }
}

variable "home_region" {
  description = "The tenancy's home region, where IAM writes must go. Empty: the same as region."
  type        = string
  default     = ""
  validation {
    condition     = var.home_region == "" || can(regex("^[a-z]+-[a-z]+-[0-9]+$", var.home_region))
    error_message = "home_region must be empty or a region identifier such as us-ashburn-1."
  }
}

variable "oci_config_profile" {
  description = "Profile of ~/.oci/config that Terraform signs with."
  type        = string
  default     = "DEFAULT"
}

variable "name_prefix" {
  description = "Prefix of every resource name (bucket, stream, functions application, gateway, policies)."
  type        = string
  default     = "streamcache"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{0,23}$", var.name_prefix))
    error_message = "name_prefix must be 1 to 24 lowercase letters, digits or hyphens, starting with a letter."
  }
}

# ---- network --------------------------------------------------------------------------------------

variable "create_network" {
  description = "Create a VCN with a public subnet for the API gateway and a private subnet (service gateway) for the functions. false: use function_subnet_id and gateway_subnet_id."
  type        = bool
  default     = true
}

variable "vcn_cidr" {
  description = "CIDR block of the VCN created when create_network is true (two /24 subnets are cut from it)."
  type        = string
  default     = "10.20.0.0/16"
  validation {
    condition     = can(cidrsubnet(var.vcn_cidr, 8, 2))
    error_message = "vcn_cidr must be an IPv4 CIDR block of /22 or larger, e.g. 10.20.0.0/16."
  }
}

variable "function_subnet_id" {
  description = "Existing subnet for the functions (create_network = false). It must reach the Oracle Services Network (service or NAT gateway)."
  type        = string
  default     = ""
  validation {
    condition     = var.function_subnet_id == "" || startswith(var.function_subnet_id, "ocid1.subnet.")
    error_message = "function_subnet_id must be empty or a subnet OCID."
  }
}

variable "gateway_subnet_id" {
  description = "Existing public subnet for the API gateway (create_network = false); its security list must allow TCP 443 in."
  type        = string
  default     = ""
  validation {
    condition     = var.gateway_subnet_id == "" || startswith(var.gateway_subnet_id, "ocid1.subnet.")
    error_message = "gateway_subnet_id must be empty or a subnet OCID."
  }
}

# ---- the stream -----------------------------------------------------------------------------------

variable "stream_partitions" {
  description = "Partitions of the stream. Each takes at most 1 MB/s of writes. Fixed at creation: changing it recreates the stream (data loss; see streaming.tf)."
  type        = number
  default     = 1
  validation {
    condition     = var.stream_partitions >= 1 && var.stream_partitions <= 200 && floor(var.stream_partitions) == var.stream_partitions
    error_message = "stream_partitions must be a whole number from 1 to 200 (the default tenancy limit)."
  }
}

variable "stream_retention_hours" {
  description = "How long the stream keeps records, 24 to 168 hours. The compactor must run well inside it. Fixed at creation: changing it recreates the stream (data loss)."
  type        = number
  default     = 168
  validation {
    condition     = var.stream_retention_hours >= 24 && var.stream_retention_hours <= 168 && floor(var.stream_retention_hours) == var.stream_retention_hours
    error_message = "stream_retention_hours must be a whole number of hours from 24 to 168."
  }
}

# ---- Kafka credentials (OCI Streaming's Kafka endpoint authenticates a user with an auth token) ----

variable "tenancy_name" {
  description = "Name (not OCID) of the tenancy: the first part of the Kafka SASL username."
  type        = string
  validation {
    condition     = can(regex("^[A-Za-z0-9_.-]+$", var.tenancy_name))
    error_message = "tenancy_name must be the tenancy's name, e.g. acme."
  }
}

variable "identity_domain_name" {
  description = "Identity domain of the streaming user, the second part of the SASL username. Empty: the older tenancyName/userName/poolOCID form (tenancies without identity domains)."
  type        = string
  default     = "Default"
  validation {
    condition     = !strcontains(var.identity_domain_name, "/")
    error_message = "identity_domain_name must not contain '/'."
  }
}

variable "streaming_user_name" {
  description = "Name of the IAM user whose auth token is in the Vault secret (SASL username part)."
  type        = string
  validation {
    condition     = length(var.streaming_user_name) > 0 && !strcontains(var.streaming_user_name, "/")
    error_message = "streaming_user_name must be a user name without '/'."
  }
}

variable "streaming_user_group" {
  description = "IAM group of that user, as a policy names it: NAME (Default domain) or 'DOMAIN'/'NAME'. It is granted stream-push and stream-pull on this stream only."
  type        = string
  validation {
    condition     = length(var.streaming_user_group) > 0
    error_message = "streaming_user_group must name the streaming user's group."
  }
}

variable "kafka_auth_token_secret_ocid" {
  description = "OCID of the OCI Vault secret holding the streaming user's auth token. Created outside Terraform so the token never enters Terraform state (see vault.tf)."
  type        = string
  validation {
    condition     = startswith(var.kafka_auth_token_secret_ocid, "ocid1.vaultsecret.")
    error_message = "kafka_auth_token_secret_ocid must be a Vault secret OCID (ocid1.vaultsecret....)."
  }
}

# ---- Object Storage -------------------------------------------------------------------------------

variable "bucket_name" {
  description = "Name of the bucket for snapshots and imports. Empty: <name_prefix>-data."
  type        = string
  default     = ""
  validation {
    condition     = var.bucket_name == "" || can(regex("^[A-Za-z0-9_.-]{1,256}$", var.bucket_name))
    error_message = "bucket_name must be letters, digits, hyphens, underscores and periods."
  }
}

variable "snapshot_prefix" {
  description = "Object name prefix of the snapshot store inside the bucket (snapshots go under <prefix>/snapshots/). Empty: the bucket's root."
  type        = string
  default     = ""
  validation {
    condition     = var.snapshot_prefix == "" || can(regex("^[^/].*[^/]$|^[^/]$", var.snapshot_prefix))
    error_message = "snapshot_prefix must not start or end with '/'."
  }
}

variable "import_prefix" {
  description = "Objects created under this prefix of the bucket are imported by the compactor (Events rule). STREAMCACHE_IMPORT_PREFIX."
  type        = string
  default     = "imports/"
  validation {
    condition     = endswith(var.import_prefix, "/") && !startswith(var.import_prefix, "/") && !startswith(var.import_prefix, "snapshots/") && !startswith(var.import_prefix, "import-markers/")
    error_message = "import_prefix must end with '/', must not start with '/', and must not be under snapshots/ or import-markers/ (the compactor's own writes)."
  }
}

variable "import_retention_days" {
  description = "Delete objects under import_prefix this many days after creation (an Object Storage lifecycle rule). 0: keep them. Snapshots are never aged out: the compactor prunes them."
  type        = number
  default     = 0
  validation {
    condition     = var.import_retention_days >= 0 && floor(var.import_retention_days) == var.import_retention_days
    error_message = "import_retention_days must be a whole number of days, 0 to keep imports."
  }
}

variable "snapshots_keep" {
  description = "How many snapshots the compactor keeps (STREAMCACHE_SNAPSHOTS_KEEP); older ones are the fallback when the newest is damaged."
  type        = number
  default     = 3
  validation {
    condition     = var.snapshots_keep >= 1 && floor(var.snapshots_keep) == var.snapshots_keep
    error_message = "snapshots_keep must be a whole number of at least 1."
  }
}

variable "snapshots_keep_all_hours" {
  description = "Every snapshot younger than this many hours is kept (STREAMCACHE_SNAPSHOTS_KEEP_ALL_HOURS): the window in which the table can be seen as of any moment."
  type        = number
  default     = 24
  validation {
    condition     = var.snapshots_keep_all_hours >= 0 && floor(var.snapshots_keep_all_hours) == var.snapshots_keep_all_hours
    error_message = "snapshots_keep_all_hours must be a whole number of hours, 0 or more."
  }
}

variable "snapshots_daily_days" {
  description = "Before that window, the newest snapshot of each UTC day is kept for this many days (STREAMCACHE_SNAPSHOTS_DAILY_DAYS)."
  type        = number
  default     = 7
  validation {
    condition     = var.snapshots_daily_days >= 0 && floor(var.snapshots_daily_days) == var.snapshots_daily_days
    error_message = "snapshots_daily_days must be a whole number of days, 0 or more."
  }
}

variable "compact_after_records" {
  description = "A cache cold start that replays more log records than this asks the compactor for a compaction (a detached invoke), so the next cold start has a short tail. 0: never. STREAMCACHE_COMPACT_AFTER_RECORDS."
  type        = number
  default     = 20000
  validation {
    condition     = var.compact_after_records >= 0 && floor(var.compact_after_records) == var.compact_after_records
    error_message = "compact_after_records must be a whole number, 0 to never ask."
  }
}

# ---- the functions --------------------------------------------------------------------------------

variable "cache_image" {
  description = "Image of the cache function in OCIR, as `fn build` tagged and `docker push` pushed it: <region-key>.ocir.io/<namespace>/<repo>/cache:<version>."
  type        = string
  validation {
    condition     = can(regex("^[^/\\s]+/[^\\s]+:[A-Za-z0-9_.-]+$", var.cache_image))
    error_message = "cache_image must be a full image reference with a tag, e.g. fra.ocir.io/ns/streamcache/cache:0.1.0."
  }
}

variable "compactor_image" {
  description = "Image of the compactor function in OCIR: <region-key>.ocir.io/<namespace>/<repo>/compactor:<version>."
  type        = string
  validation {
    condition     = can(regex("^[^/\\s]+/[^\\s]+:[A-Za-z0-9_.-]+$", var.compactor_image))
    error_message = "compactor_image must be a full image reference with a tag, e.g. fra.ocir.io/ns/streamcache/compactor:0.1.0."
  }
}

variable "cache_image_digest" {
  description = "Digest of cache_image (sha256:...), to pin exactly what was pushed. Empty: resolved by OCI."
  type        = string
  default     = ""
  validation {
    condition     = var.cache_image_digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.cache_image_digest))
    error_message = "cache_image_digest must be empty or sha256:<64 hex digits>."
  }
}

variable "compactor_image_digest" {
  description = "Digest of compactor_image (sha256:...). Empty: resolved by OCI."
  type        = string
  default     = ""
  validation {
    condition     = var.compactor_image_digest == "" || can(regex("^sha256:[0-9a-f]{64}$", var.compactor_image_digest))
    error_message = "compactor_image_digest must be empty or sha256:<64 hex digits>."
  }
}

variable "cache_memory_mb" {
  description = "Memory of each cache instance (MB). Every instance holds the whole table: size it for the data set."
  type        = number
  default     = 1024
  validation {
    condition     = contains([128, 256, 512, 1024, 2048, 3072], var.cache_memory_mb)
    error_message = "cache_memory_mb must be one of 128, 256, 512, 1024, 2048, 3072."
  }
}

variable "max_bytes" {
  description = "The table's memory quota (STREAMCACHE_MAX_BYTES; key + value + 64 B an entry); a put past it answers 507. Size it with the cache function's memory: see bench/README.md (the default fits cache_memory_mb = 1024). 0: no quota."
  type        = number
  default     = 400000000
  validation {
    condition     = var.max_bytes >= 0 && floor(var.max_bytes) == var.max_bytes
    error_message = "max_bytes must be a whole number of bytes, 0 for no quota."
  }
}

variable "compactor_memory_mb" {
  description = "Memory of the compactor (MB): it folds the newest snapshot and the tail into a new one."
  type        = number
  default     = 1024
  validation {
    condition     = contains([128, 256, 512, 1024, 2048, 3072], var.compactor_memory_mb)
    error_message = "compactor_memory_mb must be one of 128, 256, 512, 1024, 2048, 3072."
  }
}

variable "cache_timeout_seconds" {
  description = "Timeout of one cache invocation. The first call of a fresh instance loads the snapshot and replays the tail inside it."
  type        = number
  default     = 60
  validation {
    condition     = var.cache_timeout_seconds >= 5 && var.cache_timeout_seconds <= 300 && floor(var.cache_timeout_seconds) == var.cache_timeout_seconds
    error_message = "cache_timeout_seconds must be a whole number from 5 to 300."
  }
}

variable "compactor_timeout_seconds" {
  description = "Timeout of one compactor invocation (compaction or import)."
  type        = number
  default     = 300
  validation {
    condition     = var.compactor_timeout_seconds >= 5 && var.compactor_timeout_seconds <= 300 && floor(var.compactor_timeout_seconds) == var.compactor_timeout_seconds
    error_message = "compactor_timeout_seconds must be a whole number from 5 to 300."
  }
}

variable "cache_provisioned_concurrency" {
  description = "Provisioned concurrency units kept warm for the cache function (0: none). Minimum and step: 40 at 128 MB, 20 at 256 MB, 10 from 512 MB. Unused units are charged."
  type        = number
  default     = 0
  validation {
    condition     = var.cache_provisioned_concurrency >= 0 && floor(var.cache_provisioned_concurrency) == var.cache_provisioned_concurrency
    error_message = "cache_provisioned_concurrency must be a whole number, 0 for none."
  }
}

variable "cache_extra_settings" {
  description = "More STREAMCACHE_* settings for the cache function (e.g. STREAMCACHE_STALENESS_MS). The deployment's own settings win on a clash."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for name in keys(var.cache_extra_settings) : can(regex("^STREAMCACHE_[A-Z0-9_]+$", name)) && name != "STREAMCACHE_KAFKA_SASL_PASSWORD"])
    error_message = "cache_extra_settings keys must be STREAMCACHE_* setting names; the Kafka password belongs in Vault, never in config."
  }
}

variable "compactor_extra_settings" {
  description = "More STREAMCACHE_* settings for the compactor function. The deployment's own settings win on a clash."
  type        = map(string)
  default     = {}
  validation {
    condition     = alltrue([for name in keys(var.compactor_extra_settings) : can(regex("^STREAMCACHE_[A-Z0-9_]+$", name)) && name != "STREAMCACHE_KAFKA_SASL_PASSWORD"])
    error_message = "compactor_extra_settings keys must be STREAMCACHE_* setting names; the Kafka password belongs in Vault, never in config."
  }
}

# ---- API Gateway ----------------------------------------------------------------------------------

variable "api_path_prefix" {
  description = "Path prefix of the API deployment: the cache is at https://<gateway>/<prefix>/cache."
  type        = string
  default     = "/v1"
  validation {
    condition     = can(regex("^(/[A-Za-z0-9._~-]+)+$", var.api_path_prefix)) && length(var.api_path_prefix) <= 255
    error_message = "api_path_prefix must look like /v1: one or more /segments, no trailing '/'."
  }
}

variable "api_auth" {
  description = "Authentication of the cache routes: NONE, JWT (issuers, audiences and a JWKS URL below) or AUTHORIZER_FUNCTION (authorizer_function_ocid). /health stays anonymous for the health check."
  type        = string
  default     = "NONE"
  validation {
    condition     = contains(["NONE", "JWT", "AUTHORIZER_FUNCTION"], var.api_auth)
    error_message = "api_auth must be NONE, JWT or AUTHORIZER_FUNCTION."
  }
}

variable "jwt_issuers" {
  description = "Accepted JWT issuers (iss) when api_auth = JWT."
  type        = list(string)
  default     = []
}

variable "jwt_audiences" {
  description = "Accepted JWT audiences (aud) when api_auth = JWT."
  type        = list(string)
  default     = []
}

variable "jwt_jwks_uri" {
  description = "HTTPS URL of the issuer's JSON Web Key Set when api_auth = JWT."
  type        = string
  default     = ""
  validation {
    condition     = var.jwt_jwks_uri == "" || startswith(var.jwt_jwks_uri, "https://")
    error_message = "jwt_jwks_uri must be empty or an https:// URL."
  }
}

variable "authorizer_function_ocid" {
  description = "OCID of the authorizer function when api_auth = AUTHORIZER_FUNCTION (it reads the Authorization header)."
  type        = string
  default     = ""
  validation {
    condition     = var.authorizer_function_ocid == "" || startswith(var.authorizer_function_ocid, "ocid1.fnfunc.")
    error_message = "authorizer_function_ocid must be empty or a function OCID."
  }
}

variable "rate_limit_per_second" {
  description = "Requests per second the gateway lets through (per rate_limit_key); more get 429 with Retry-After. 0: no limit."
  type        = number
  default     = 100
  validation {
    condition     = var.rate_limit_per_second >= 0 && floor(var.rate_limit_per_second) == var.rate_limit_per_second
    error_message = "rate_limit_per_second must be a whole number, 0 for no limit."
  }
}

variable "rate_limit_key" {
  description = "What the rate limit counts: CLIENT_IP (per client address) or TOTAL (all clients together)."
  type        = string
  default     = "CLIENT_IP"
  validation {
    condition     = contains(["CLIENT_IP", "TOTAL"], var.rate_limit_key)
    error_message = "rate_limit_key must be CLIENT_IP or TOTAL."
  }
}

# ---- schedule, health, logs -----------------------------------------------------------------------

variable "compactor_schedule_cron" {
  description = "UNIX cron (5 fields, UTC) of the compaction schedule. Keep its period well inside stream_retention_hours; hourly is the finest period Oracle's documentation mentions."
  type        = string
  default     = "0 * * * *"
  validation {
    condition     = can(regex("^([0-9*/,-]+\\s+){4}[0-9*/,-]+$", trimspace(var.compactor_schedule_cron)))
    error_message = "compactor_schedule_cron must be a 5-field UNIX cron expression, e.g. '0 * * * *'."
  }
}

variable "health_check_enabled" {
  description = "Create the Health Checks HTTP monitor on /health."
  type        = bool
  default     = true
}

variable "health_check_interval_seconds" {
  description = "Interval of the /health monitor: 10, 30 or 60 seconds. Each vantage point probes once per interval."
  type        = number
  default     = 30
  validation {
    condition     = contains([10, 30, 60], var.health_check_interval_seconds)
    error_message = "health_check_interval_seconds must be 10, 30 or 60."
  }
}

variable "log_retention_days" {
  description = "Retention of the function and gateway logs in OCI Logging (30-day steps up to 180)."
  type        = number
  default     = 30
  validation {
    condition     = contains([30, 60, 90, 120, 150, 180], var.log_retention_days)
    error_message = "log_retention_days must be 30, 60, 90, 120, 150 or 180."
  }
}

# ---- metrics and alarms (monitoring.tf) -----------------------------------------------------------

variable "metrics_namespace" {
  description = "OCI Monitoring namespace the functions post their metrics to (STREAMCACHE_METRICS_NAMESPACE). Empty: no metrics, and no alarms."
  type        = string
  default     = "streamcache"
  validation {
    condition     = var.metrics_namespace == "" || (can(regex("^[a-z][a-z0-9_]*$", var.metrics_namespace)) && !startswith(var.metrics_namespace, "oci_") && !startswith(var.metrics_namespace, "oracle_"))
    error_message = "metrics_namespace must be empty or lowercase letters, digits and _, starting with a letter, and not start with oci_ or oracle_ (reserved by OCI)."
  }
}

variable "alarm_email" {
  description = "E-mail address the alarms notify (an ONS subscription; the address must confirm it). Empty: none."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_email == "" || can(regex("^[^@\\s]+@[^@\\s]+$", var.alarm_email))
    error_message = "alarm_email must be empty or an e-mail address."
  }
}

variable "alarm_https_endpoint" {
  description = "HTTPS endpoint the alarms notify (an ONS CUSTOM_HTTPS subscription, e.g. a pager's webhook). Empty: none."
  type        = string
  default     = ""
  validation {
    condition     = var.alarm_https_endpoint == "" || startswith(var.alarm_https_endpoint, "https://")
    error_message = "alarm_https_endpoint must be empty or an https:// URL."
  }
}

variable "snapshot_age_alarm_fraction" {
  description = "The snapshot-age alarm fires when records no snapshot covers may be older than this fraction of stream_retention_hours."
  type        = number
  default     = 0.5
  validation {
    condition     = var.snapshot_age_alarm_fraction > 0 && var.snapshot_age_alarm_fraction < 1
    error_message = "snapshot_age_alarm_fraction must be between 0 and 1 (exclusive)."
  }
}

variable "no_compaction_alarm_minutes" {
  description = "The no-compaction alarm fires when no compaction succeeded for this many minutes (a few periods of compactor_schedule_cron)."
  type        = number
  default     = 180
  validation {
    condition     = var.no_compaction_alarm_minutes >= 1 && var.no_compaction_alarm_minutes <= 4320
    error_message = "no_compaction_alarm_minutes must be 1 to 4320 (OCI's absence detection period is 1 minute to 3 days)."
  }
}

variable "stale_reads_alarm_limit" {
  description = "The stale-reads alarm fires when more reads than this in 5 minutes were answered from memory because the stream could not be read."
  type        = number
  default     = 0
  validation {
    condition     = var.stale_reads_alarm_limit >= 0
    error_message = "stale_reads_alarm_limit must be zero or more."
  }
}

variable "errors_5xx_alarm_limit" {
  description = "The 5xx alarm fires when more requests than this in 5 minutes were answered with a 5xx status."
  type        = number
  default     = 5
  validation {
    condition     = var.errors_5xx_alarm_limit >= 0
    error_message = "errors_5xx_alarm_limit must be zero or more."
  }
}

variable "quota_alarm_percent" {
  description = "The quota alarm fires when the table uses more than this percentage of max_bytes (only when max_bytes is set)."
  type        = number
  default     = 80
  validation {
    condition     = var.quota_alarm_percent > 0 && var.quota_alarm_percent < 100
    error_message = "quota_alarm_percent must be between 0 and 100 (exclusive)."
  }
}
