"""How streamcache names and signs requests to OCI services (Object Storage, Vault), in one place.

``oci://BUCKET@NAMESPACE/PREFIX`` URLs are parsed here (:func:`parse_oci_url`), without the SDK.

In order: an explicit signer; Resource Principals inside OCI Functions (the platform sets
``OCI_RESOURCE_PRINCIPAL_VERSION``); else a profile of ``~/.oci/config``, including session-token
profiles made by ``oci session authenticate``. The ``oci`` SDK is imported here only when called:
importing it costs about half a second of cold start.
"""

from __future__ import annotations

from pathlib import Path
from typing import Mapping
from urllib.parse import urlsplit

from streamcache.core.errors import ConfigError

DEFAULT_CONFIG_FILE = "~/.oci/config"


def parse_oci_url(url: str) -> tuple[str, str, str]:
    """``oci://BUCKET@NAMESPACE/PREFIX`` -> ``(bucket, namespace, prefix)``; the prefix may be empty."""
    parts = urlsplit(url)
    bucket, at, namespace = parts.netloc.rpartition("@")
    if parts.scheme != "oci" or not at or not bucket or not namespace or parts.query or parts.fragment:
        raise ConfigError([f"snapshot store URL {url!r}: expected oci://BUCKET@NAMESPACE/PREFIX"])
    return bucket, namespace, parts.path.strip("/")


def oci_credentials(
    environ: Mapping[str, str], profile: str | None, config_file: str | None, signer: object | None,
    error: type[ConfigError] = ConfigError,
) -> tuple[dict, object | None]:
    """The SDK config and signer. Problems raise ``error`` (a :class:`ConfigError` subclass)."""
    import oci

    if signer is not None:
        return {"region": getattr(signer, "region", None) or "us-ashburn-1"}, signer
    if environ.get("OCI_RESOURCE_PRINCIPAL_VERSION"):
        try:
            principal = oci.auth.signers.get_resource_principals_signer()
        except Exception as exc:  # the SDK raises plain ValueError/EnvironmentError/KeyError here
            raise error([f"resource principal: {exc}"]) from exc
        return {"region": principal.region}, principal
    path = config_file or DEFAULT_CONFIG_FILE
    try:
        config = oci.config.from_file(path, profile or "DEFAULT")
        if config.get("security_token_file"):  # a session from `oci session authenticate`
            token = Path(config["security_token_file"]).expanduser().read_text().strip()
            key = oci.signer.load_private_key_from_file(config["key_file"], config.get("pass_phrase"))
            return config, oci.auth.signers.SecurityTokenSigner(token, key)
        return config, None
    except (oci.exceptions.ClientError, OSError) as exc:
        raise error([f"OCI config {path!r} profile {profile or 'DEFAULT'!r}: {exc}"]) from exc


def bounded_retries(max_attempts: int, total_s: int, max_wait_s: int) -> object:
    """Retries for throttling, 5xx and transport errors, bounded so that a function invocation gives
    up well inside its timeout instead of after the SDK's default 10 minutes."""
    import oci

    return oci.retry.RetryStrategyBuilder(
        max_attempts=max_attempts,
        total_elapsed_time_seconds=total_s,
        retry_base_sleep_time_seconds=1,
        retry_max_wait_between_calls_seconds=max_wait_s,
        service_error_retry_on_any_5xx=True,
    ).get_retry_strategy()


def client_options(signer: object | None, endpoint: str | None, retry_strategy: object,
                   timeout: object) -> dict:
    """Keyword arguments for an SDK client. No circuit breaker: callers map unavailability to 503
    themselves, and a breaker would only hide recoveries."""
    import oci

    options: dict = {
        "retry_strategy": retry_strategy,
        "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        "timeout": timeout,
    }
    if signer is not None:
        options["signer"] = signer
    if endpoint:
        options["service_endpoint"] = endpoint
    return options
