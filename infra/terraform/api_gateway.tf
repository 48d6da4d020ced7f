# The public HTTPS entry: a gateway and one deployment whose routes all reach the cache function,
# one per path of functions/cache/openapi.yaml (a test holds them equal).
#   <prefix>/cache          list (GET ?prefix=), POST a JSON value, GET/PUT/DELETE with ?key=
#   <prefix>/cache/{key*}   one key; the wildcard keeps keys that contain '/'
#   <prefix>/changes        the change feed as JSON (long poll)
#   <prefix>/console        the console page and its files; anonymous, like /health
#   <prefix>/health         the instance's status; anonymous, because Health Checks cannot send Authorization
# The gateway passes the raw path (with <prefix>) to the function, which routes it itself.
# Bodies: the gateway refuses more than 6 MB towards a function; the function refuses values above
# STREAMCACHE_MAX_VALUE_BYTES (5.5 MiB by default; big values go to the bucket, see docs/api.md) with 413.

resource "oci_apigateway_gateway" "this" {
  compartment_id = var.compartment_ocid
  display_name   = "${var.name_prefix}-gateway"
  endpoint_type  = "PUBLIC"
  subnet_id      = local.gateway_subnet_id
}

locals {
  cache_routes = {
    "/cache"        = ["GET", "HEAD", "POST", "PUT", "DELETE"]
    "/cache/{key*}" = ["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH"] # POST: ?increment=N; PATCH: ?ttl=S
    "/changes"      = ["GET", "HEAD"]
  }
  # Anonymous even with authentication on: Health Checks send no Authorization, and the console's
  # page and files are the same for everyone (every call the page makes goes through cache_routes).
  open_routes = {
    "/health"          = ["GET", "HEAD"]
    "/console"         = ["GET", "HEAD"]
    "/console/{asset}" = ["GET", "HEAD"]
  }
  authenticated = var.api_auth != "NONE"
}

resource "oci_apigateway_deployment" "this" {
  compartment_id = var.compartment_ocid
  gateway_id     = oci_apigateway_gateway.this.id
  display_name   = "${var.name_prefix}-api"
  path_prefix    = var.api_path_prefix

  specification {
    request_policies {
      dynamic "rate_limiting" {
        for_each = var.rate_limit_per_second > 0 ? [var.rate_limit_per_second] : []
        content {
          rate_in_requests_per_second = rate_limiting.value
          rate_key                    = var.rate_limit_key
        }
      }

      dynamic "authentication" {
        for_each = var.api_auth == "JWT" ? [1] : []
        content {
          type                        = "JWT_AUTHENTICATION"
          token_header                = "Authorization"
          token_auth_scheme           = "Bearer"
          issuers                     = var.jwt_issuers
          audiences                   = var.jwt_audiences
          max_clock_skew_in_seconds   = 60
          is_anonymous_access_allowed = true # for /health only: see its ANONYMOUS route below
          public_keys {
            type                        = "REMOTE_JWKS"
            uri                         = var.jwt_jwks_uri
            max_cache_duration_in_hours = 1
          }
        }
      }

      dynamic "authentication" {
        for_each = var.api_auth == "AUTHORIZER_FUNCTION" ? [1] : []
        content {
          type                        = "CUSTOM_AUTHENTICATION"
          function_id                 = var.authorizer_function_ocid
          token_header                = "Authorization"
          is_anonymous_access_allowed = true # for /health only
        }
      }
    }

    dynamic "routes" {
      for_each = local.cache_routes
      content {
        path    = routes.key
        methods = routes.value
        backend {
          type        = "ORACLE_FUNCTIONS_BACKEND"
          function_id = oci_functions_function.cache.id
        }
        dynamic "request_policies" {
          for_each = local.authenticated ? [1] : []
          content {
            authorization {
              type = "AUTHENTICATION_ONLY"
            }
          }
        }
      }
    }

    dynamic "routes" {
      for_each = local.open_routes
      content {
        path    = routes.key
        methods = routes.value
        backend {
          type        = "ORACLE_FUNCTIONS_BACKEND"
          function_id = oci_functions_function.cache.id
        }
        dynamic "request_policies" {
          for_each = local.authenticated ? [1] : []
          content {
            authorization {
              type = "ANONYMOUS"
            }
          }
        }
      }
    }
  }

  lifecycle {
    precondition {
      condition     = var.api_auth != "JWT" || (length(var.jwt_issuers) > 0 && length(var.jwt_audiences) > 0 && var.jwt_jwks_uri != "")
      error_message = "api_auth = JWT needs jwt_issuers, jwt_audiences and jwt_jwks_uri."
    }
    precondition {
      condition     = var.api_auth != "AUTHORIZER_FUNCTION" || var.authorizer_function_ocid != ""
      error_message = "api_auth = AUTHORIZER_FUNCTION needs authorizer_function_ocid."
    }
  }
}
