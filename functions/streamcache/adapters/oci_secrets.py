"""OCI Vault secrets through the ``oci`` SDK: the Kafka auth token, read once when a function starts.

OCI Streaming's Kafka endpoint authenticates with a user's auth token (SASL/PLAIN); a resource
principal cannot sign a Kafka connection. So the token lives in a Vault secret, the function's
configuration carries only the secret's OCID (``STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID``), and the
function reads the secret's current version with its own identity when it builds its settings. The
token is never in the function's config, in Terraform state or in a log line.

Signing: inside OCI Functions (``OCI_RESOURCE_PRINCIPAL_VERSION`` set) the function's resource
principal; elsewhere a profile of ``~/.oci/config`` (API key, or a session token from
``oci session authenticate``). ``endpoint`` overrides the service URL (the tests' local server).

Every failure is a :class:`SecretUnavailable`, a :class:`ConfigError`: an instance cannot start
without its token, so it answers "misconfigured" with the reason, and tries again on the next call.
The message names the secret, the service's status, code and ``opc-request-id``, and the usual cause.
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Callable, Mapping

from streamcache.adapters.oci_auth import bounded_retries, client_options, oci_credentials
from streamcache.core.errors import ConfigError

# The `oci` SDK (about 0.5 s to import) is imported where it is used: importing this module, and
# calling with_secrets() when no secret is named, costs a cold start nothing.

#: Setting that names a secret -> the setting its value fills. The only one so far: the Kafka token.
SECRET_SETTINGS = {"STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID": "STREAMCACHE_KAFKA_SASL_PASSWORD"}
#: (connect, read) seconds: a cold start waits for this, so it must stay far below the function timeout.
DEFAULT_TIMEOUT = (5.0, 10.0)

_HINTS = {
    401: "the request's signature was refused: check the function's resource principal or the OCI config profile",
    404: "no such secret, or this function may not read it: check the OCID and that the function's "
    "dynamic group has 'read secret-bundles' on it (policy changes take up to 15 minutes to apply)",
}


class SecretUnavailable(ConfigError):
    """A secret could not be read; ``problems[0]`` says which, why, and what usually fixes it.
    ``transient``: the service failed or could not be reached (429, 5xx, network), so retrying may
    succeed with no change (a caller may answer 503 rather than "misconfigured")."""

    def __init__(self, problems: list[str], transient: bool = False) -> None:
        super().__init__(problems)
        self.transient = transient


def default_retry_strategy() -> object:
    """At most 3 attempts within 15 s for throttling, 5xx and transport errors, so a cold start gives
    up well inside the function's timeout instead of the SDK's default 10 minutes."""
    return bounded_retries(max_attempts=3, total_s=15, max_wait_s=4)


def read_secret(
    secret_id: str,
    *,
    environ: Mapping[str, str] | None = None,
    profile: str | None = None,
    config_file: str | None = None,
    endpoint: str | None = None,
    signer: object | None = None,
    retry_strategy: object | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> str:
    """The current version of the secret ``secret_id`` as text (surrounding whitespace removed: a
    token pasted with its newline is still the token). ``signer`` bypasses the choice of credentials."""
    import oci
    # The vendored requests' base exception: the SDK's RequestException and ConnectTimeout derive from it.
    from oci._vendor.requests.exceptions import RequestException as TransportError

    environ = os.environ if environ is None else environ
    config, signer = oci_credentials(environ, profile, config_file, signer, SecretUnavailable)
    options = client_options(signer, endpoint, default_retry_strategy() if retry_strategy is None else retry_strategy,
                             timeout)
    try:
        client = oci.secrets.SecretsClient(config, **options)
    except (oci.exceptions.ClientError, ValueError) as exc:
        raise SecretUnavailable([f"secret {secret_id!r}: {exc}"]) from exc
    try:
        bundle = client.get_secret_bundle(secret_id).data
    except oci.exceptions.ServiceError as exc:
        detail = f"{exc.status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
        hint = _HINTS.get(exc.status, "the Vault service refused or failed; the next call tries again")
        transient = exc.status == 429 or exc.status >= 500
        raise SecretUnavailable([f"secret {secret_id!r} cannot be read: {detail}; {hint}"], transient) from exc
    except TransportError as exc:
        problem = f"secret {secret_id!r}: the Vault service cannot be reached: {exc}"
        raise SecretUnavailable([problem], transient=True) from exc
    finally:
        client.base_client.session.close()
    return _text(secret_id, bundle.secret_bundle_content)


def with_secrets(
    env: Mapping[str, str], read: Callable[[str], str] | None = None
) -> Mapping[str, str]:
    """``env`` with every secret-backed setting filled from the secret its ``*_SECRET_ID`` names
    (see :data:`SECRET_SETTINGS`). Returns ``env`` itself when no secret is named. Setting both the
    value and its secret is refused: one of them would be silently ignored."""
    named = {name: env[name] for name in SECRET_SETTINGS if env.get(name)}
    if not named:
        return env
    if read is None:
        def read(secret_id: str) -> str:
            return read_secret(
                secret_id,
                environ=env,
                profile=env.get("STREAMCACHE_OCI_PROFILE") or None,
                config_file=env.get("STREAMCACHE_OCI_CONFIG_FILE") or None,
            )
    filled = dict(env)
    for name, secret_id in named.items():
        target = SECRET_SETTINGS[name]
        if env.get(target):
            raise ConfigError([f"set {target} or {name}, not both"])
        filled[target] = read(secret_id)
    return filled


def _text(secret_id: str, content: object) -> str:
    if getattr(content, "content_type", None) != "BASE64":
        kind = getattr(content, "content_type", None)
        raise SecretUnavailable([f"secret {secret_id!r}: unexpected content type {kind!r} (expected BASE64)"])
    try:
        text = base64.b64decode(content.content or "", validate=True).decode("utf-8").strip()  # type: ignore[attr-defined]
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise SecretUnavailable([f"secret {secret_id!r}: the content is not base64 of UTF-8 text"]) from exc
    if not text:
        raise SecretUnavailable([f"secret {secret_id!r}: the current version is empty"])
    return text
