"""The client's direct-invoke transport: operations go to the cache function through the OCI Functions
invoke API, with the ``oci`` SDK's ``FunctionsInvokeClient`` (signed requests, as OCI requires).

The body of an invoke is an operation of :mod:`streamcache.cache.invoke_api`; the platform answers 200 with
the function's JSON answer, which carries the operation's own status. Only a failure of the platform
itself (unknown function 404, too busy 503, 429, the function crashed 502 or timed out 504) is an HTTP
error, raised by the SDK as ``ServiceError``; it is turned into an answer of the same shape.

Values travel as base64 (``value_base64`` out, ``"value_encoding": "base64"`` on gets), so bytes come
back exactly whatever the content type. The SDK's own retries and circuit breaker are off: the
:class:`~streamcache.client.cache_client.Client` retries, knowing which operations are safe to repeat.
"""

from __future__ import annotations

import os

import orjson

from streamcache.client.models import TransportError
from streamcache.client.ops import from_wire as _from_wire, invalid_answer as _invalid, to_wire as _wire

DEFAULT_CONFIG_FILE = "~/.oci/config"


class InvokeTransport:
    """Invokes one function. Credentials, in order: ``signer`` (with ``config``, or an empty one);
    ``config``; Resource Principals when ``OCI_RESOURCE_PRINCIPAL_VERSION`` is set; the ``profile``
    (default ``$OCI_CLI_PROFILE`` or DEFAULT) of ``config_file`` (default ``~/.oci/config``)."""

    def __init__(self, function_id: str, endpoint: str, *, config: dict | None = None, profile: str | None = None,
                 config_file: str | None = None, signer: object | None = None, timeout: float = 10.0) -> None:
        import oci  # here, not at module level: the SDK takes a third of a second to import
        import urllib3  # the SDK's (its vendored requests uses it)

        self.function_id = function_id
        self.endpoint = endpoint
        if signer is None and config is None and os.environ.get("OCI_RESOURCE_PRINCIPAL_VERSION"):
            signer = oci.auth.signers.get_resource_principals_signer()
        if signer is None and config is None:
            config = oci.config.from_file(config_file or DEFAULT_CONFIG_FILE,
                                          profile or os.environ.get("OCI_CLI_PROFILE") or "DEFAULT")
        options: dict = {
            "service_endpoint": endpoint,
            "timeout": (min(timeout, 10.0), timeout),  # (connect, read)
            "retry_strategy": oci.retry.NoneRetryStrategy(),
            "circuit_breaker_strategy": oci.circuit_breaker.NoCircuitBreakerStrategy(),
        }
        if signer is not None:
            options["signer"] = signer
        self._client = oci.functions.FunctionsInvokeClient(config or {}, **options)
        self._service_error = oci.exceptions.ServiceError
        self._request_error = oci._vendor.requests.exceptions.RequestException
        self._connect_timeout = oci._vendor.requests.exceptions.ConnectTimeout
        self._not_connected = urllib3.exceptions.ConnectTimeoutError  # refused and unresolvable too

    def send(self, op: dict) -> dict:
        answer = self._invoke(_wire(op))
        if isinstance(answer, dict):
            return _from_wire(answer)
        return _invalid(f"expected one JSON answer, got {type(answer).__name__}")

    def send_batch(self, ops: list[dict]) -> list[dict] | dict:
        """One invoke for the whole list: a list of answers, or one answer if the call as a whole failed."""
        answer = self._invoke({"operations": [_wire(op) for op in ops]})
        if isinstance(answer, dict):
            return _from_wire(answer)
        if not isinstance(answer, list) or len(answer) != len(ops):
            return _invalid(f"expected a list of {len(ops)} answers")
        return [_from_wire(a) if isinstance(a, dict) else _invalid("an answer is not an object") for a in answer]

    def _invoke(self, body: dict) -> object:
        """The function's JSON answer (or an answer made from the platform's error)."""
        try:
            response = self._client.invoke_function(self.function_id, invoke_function_body=orjson.dumps(body))
            data = response.data.content
        except self._service_error as exc:
            answer = {"status": exc.status, "error": exc.code or f"http_{exc.status}", "message": exc.message or ""}
            retry_after = (exc.headers or {}).get("retry-after")
            if retry_after and str(retry_after).strip().isdigit():
                answer["retry_after"] = int(retry_after)
            return answer
        except self._request_error as exc:  # refused, reset, timed out (the SDK wraps requests' errors)
            raise TransportError(f"invoke {self.function_id} at {self.endpoint}: {exc}", sent=not self._never_sent(exc)) from exc
        try:
            answer = orjson.loads(data)
        except orjson.JSONDecodeError:
            return _invalid(f"the function answered something that is not JSON: {data[:200]!r}")
        if isinstance(answer, dict) and "status" not in answer:
            # An answer without a status is an error made for HTTP (e.g. "misconfigured"): a 500.
            answer = {"status": 500, **answer}
        return answer

    def _never_sent(self, exc: Exception) -> bool:
        """The connection could not be made (refused, unresolvable, timed out connecting): nothing
        left, so a write certainly did not run (a plain Unreachable, not an UnansweredWrite)."""
        cause: BaseException | None = exc
        for _ in range(8):  # the SDK's error, from requests' error, from urllib3's, from the socket's
            if cause is None:
                return False
            if isinstance(cause, (self._connect_timeout, self._not_connected)):
                return True
            cause = cause.__cause__ or cause.__context__
        return False

    def close(self) -> None:
        session = getattr(self._client.base_client, "session", None)
        if session is not None:
            session.close()
