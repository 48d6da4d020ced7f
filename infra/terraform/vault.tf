# The Kafka auth token's Vault secret is taken by OCID, not created here. Creating it from a
# sensitive variable would put the token, in clear text, into the Terraform state and plan files;
# created with the OCI CLI or Console (infra/README.md, Deploy), it exists only in Vault. Terraform
# reads the secret's metadata (never its content) to check it and to place the read policy.

data "oci_vault_secret" "kafka_auth_token" {
  secret_id = var.kafka_auth_token_secret_ocid

  lifecycle {
    postcondition {
      condition     = self.state == "ACTIVE"
      error_message = "The Kafka auth token secret is not ACTIVE."
    }
  }
}
