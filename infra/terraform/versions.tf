# Terraform and the oracle/oci provider, pinned: the configuration follows that provider's documented
# arguments (see infra/README.md). Upgrade deliberately, with `terraform plan` reviewed.
terraform {
  required_version = ">= 1.6.0"

  required_providers {
    oci = {
      source  = "oracle/oci"
      version = "7.32.0"
    }
  }
}

# Credentials: a profile of ~/.oci/config (API key or `oci session authenticate`).
provider "oci" {
  region              = var.region
  config_file_profile = var.oci_config_profile
}

# IAM writes (dynamic groups, policies) are accepted only in the tenancy's home region.
provider "oci" {
  alias               = "home"
  region              = coalesce(var.home_region, var.region)
  config_file_profile = var.oci_config_profile
}
