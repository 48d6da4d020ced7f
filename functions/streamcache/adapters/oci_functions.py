"""Detached invokes of an OCI function through the ``oci`` SDK's ``FunctionsInvokeClient``.

This is how a cache instance whose cold start replayed a long tail asks the compactor function for a
compaction: ``fn-invoke-type: detached``, so the platform answers 202 once it has accepted the call
and the compactor runs on its own time (its timeout, not the caller's). The body is the compactor's
usual JSON (``{"action": "compact", ...}``).

Signing, as for Object Storage and Vault (:mod:`~streamcache.adapters.oci_auth`): inside OCI
Functions the calling function's resource principal (its dynamic group needs ``use fn-invocation``
on the compactor); elsewhere a profile of ``~/.oci/config``; ``signer`` bypasses that choice (tests).
``endpoint`` is the function's invoke endpoint, which OCI gives per function
(``oci_functions_function.invoke_endpoint``): the SDK has no region default for it.

Every failure is an :class:`InvokeFailed` whose message names the function, the service's status,
code and ``opc-request-id``, and the usual cause. The ``oci`` SDK is imported only when called.
"""

from __future__ import annotations

import os
from typing import Mapping

from streamcache.adapters.oci_auth import bounded_retries, client_options, oci_credentials
from streamcache.core.errors import ConfigError

#: (connect, read) seconds. On OCI a detached invoke answers as soon as it is accepted; the local
#: stand-in (``streamcache dev``) answers after the function ran, so the read timeout leaves room.
DEFAULT_TIMEOUT = (5.0, 60.0)

_HINTS = {
    401: "the request's signature was refused: check the function's resource principal or the OCI config profile",
    404: "no such function, or this caller may not invoke it: check the OCID and that the caller's dynamic "
    "group has 'use fn-invocation' on it (policy changes take up to 15 minutes to apply)",
}


class InvokeFailed(ConfigError):
    """A function could not be invoked; ``problems[0]`` says which, why, and what usually fixes it.
    A :class:`ConfigError` because missing or broken credentials surface here too."""


def default_retry_strategy() -> object:
    """At most 3 attempts within 20 s for throttling, 5xx and transport errors. A repeated detached
    invoke is harmless here: two compactions at once tolerate each other."""
    return bounded_retries(max_attempts=3, total_s=20, max_wait_s=4)


def invoke_detached(
    function_id: str,
    endpoint: str,
    body: bytes,
    *,
    environ: Mapping[str, str] | None = None,
    profile: str | None = None,
    config_file: str | None = None,
    signer: object | None = None,
    retry_strategy: object | None = None,
    timeout: tuple[float, float] = DEFAULT_TIMEOUT,
) -> str:
    """Invoke ``function_id`` at ``endpoint`` with ``body``, detached; return the call's
    ``opc-request-id`` (how to find it in the platform's logs). Raises :class:`InvokeFailed`."""
    import oci
    # The vendored requests' base exception: the SDK's RequestException and ConnectTimeout derive from it.
    from oci._vendor.requests.exceptions import RequestException as TransportError

    environ = os.environ if environ is None else environ
    config, signer = oci_credentials(environ, profile, config_file, signer, InvokeFailed)
    options = client_options(signer, endpoint, default_retry_strategy() if retry_strategy is None else retry_strategy,
                             timeout)
    try:
        client = oci.functions.FunctionsInvokeClient(config, **options)
    except (oci.exceptions.ClientError, ValueError) as exc:
        raise InvokeFailed([f"function {function_id!r}: {exc}"]) from exc
    try:
        response = client.invoke_function(function_id, invoke_function_body=body, fn_invoke_type="detached")
    except oci.exceptions.ServiceError as exc:
        detail = f"{exc.status} {exc.code}: {exc.message} (opc-request-id {exc.request_id})"
        hint = _HINTS.get(exc.status, "the Functions service refused or failed; a later cold start asks again")
        raise InvokeFailed([f"invoke of {function_id!r} at {endpoint}: {detail}; {hint}"]) from exc
    except TransportError as exc:
        raise InvokeFailed([f"invoke of {function_id!r}: {endpoint} cannot be reached: {exc}"]) from exc
    finally:
        client.base_client.session.close()
    if response.status != 202:  # a detached invoke is accepted, never answered with the function's body
        raise InvokeFailed([f"invoke of {function_id!r} at {endpoint}: expected 202 Accepted, got {response.status}"])
    return str(response.headers.get("opc-request-id", ""))
