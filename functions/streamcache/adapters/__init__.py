"""Adapters of the ports (:mod:`streamcache.ports`), one file per backend.

- mutation logs: :mod:`.kafka_log` (Kafka, OCI Streaming, the local Tansu), :mod:`.memory_log`;
- snapshot stores: :mod:`.oci_object_store` (with :mod:`.oci_auth`), :mod:`.directory_store`,
  :mod:`.memory_store`;
- :mod:`.oci_secrets`: the Kafka auth token from an OCI Vault secret;
- :mod:`.urls`: the one place that opens any of them from a URL string.

Adapters take plain values, never the settings object, and import neither the settings nor the
functions' packages (checked by ``make check``).
"""
