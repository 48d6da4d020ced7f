"""The local stand-in for the OCI Functions invoke API, served on ``streamcache dev``'s port.

    POST /20181201/functions/{function}/actions/invoke     (fn, the OCI CLI, older SDKs)
    POST /20260325/functions/{function}/actions/invoke     (the oci SDK 2.189: its API version)

``{function}`` is a name (``cache``, ``compactor``) or the function's OCID as the local Fn agent gives
it to the instance (``ocid1.fnfunc.oc1..localcache``, its ``FN_FN_ID``). The body goes to one
instance as a plain Fn invoke (no ``Fn-Intent``: the function sees a direct invoke, not an HTTP
request) and, as OCI does, the answer is 200 with the function's body and content type, whatever the
function put in it. Failures of the platform are OCI's, with its JSON error shape
``{"code", "message"}`` that the SDK turns into ``ServiceError``:

- 404 ``NotAuthorizedOrNotFound``: no such function; 405 for a method other than POST;
- 401 ``NotAuthenticated``: an ``authorization`` header that is not an OCI request signature (with
  ``require_signature``, also a missing one; without it, plain ``curl`` works, as the README shows);
  with ``trusted_keys``, the RSA-SHA256 signature and the signed body digest are verified too;
- 413 ``FunctionInvokeRequestContentTooLarge`` over 6 MB; 503 ``FunctionInvokeServiceUnavailable``
  when every instance stayed busy; 502 ``FunctionInvokeExecutionFailed`` when the handler raised
  (the FDK's 502), ``FunctionInvokeExecutionError`` when the instance died; 504 ``FunctionInvokeTimeout``.

``fn-invoke-type: detached`` answers 202 (here after the function ran); ``is-dry-run: true`` answers
200 without running it. :func:`pool_functions` builds the targets from the gateway's instance pool.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Callable, Mapping, NamedTuple

import orjson

from .fn_protocol import FnAnswer, FnTimeout, FnUnavailable, new_call_id
from .object_signing import verify_signature

API_VERSIONS = ("20181201", "20260325")
MAX_BODY_BYTES = 6 * 1024 * 1024
_PATH = re.compile(r"^/(?P<version>\d{8})/functions/(?P<function>[^/?]+)/actions/invoke/?(?:\?.*)?$")
_SIGNATURE_PARAM = re.compile(r'(\w+)="([^"]*)"')
# Response headers that belong to the socket hop or to the FDK, not to the function's answer.
_NOT_FORWARDED = frozenset({"connection", "keep-alive", "content-length", "transfer-encoding", "date", "server"})


class FunctionBusy(Exception):
    """Every instance of the function stayed busy for the time a caller may wait."""


# A function as the endpoint sees it: (body, content type, call id) -> the FDK's raw answer. Raises
# FunctionBusy, FnTimeout or FnUnavailable.
InvokeTarget = Callable[[bytes, str, str], FnAnswer]


class InvokeAnswer(NamedTuple):
    status: int
    headers: list[tuple[str, str]]
    body: bytes


def function_ocid(name: str) -> str:
    """The fake OCID of a local function: the ``FN_FN_ID`` its instances get (fn_runner.function_env)."""
    return f"ocid1.fnfunc.oc1..local{name}"


def is_invoke_path(path: str) -> bool:
    return any(path.startswith(f"/{version}/") for version in API_VERSIONS)


def handle_invoke_request(method: str, path: str, headers: Mapping[str, str], body: bytes,
                          functions: Mapping[str, InvokeTarget], require_signature: bool = False,
                          trusted_keys: Mapping[str, object] | None = None) -> InvokeAnswer:
    """Answer one request to the invoke API. ``functions`` maps names and OCIDs to targets;
    ``headers`` is any mapping with case-insensitive ``get`` (``http.client.HTTPMessage``) or a
    dict with lower-case names. ``trusted_keys`` maps a signature keyId to its RSA public key."""
    request_id = _header(headers, "opc-request-id") or new_call_id()
    match = _PATH.match(path)
    if match is None or match["version"] not in API_VERSIONS:
        return _error(404, "NotAuthorizedOrNotFound", f"no such resource: {path}", request_id)
    if method != "POST":
        return _error(405, "MethodNotAllowed", f"{method} is not allowed; invoke with POST", request_id)
    problem = _signature_problem(method, path, headers, body, require_signature, trusted_keys or {})
    if problem:
        return _error(401, "NotAuthenticated", problem, request_id)
    target = functions.get(match["function"])
    if target is None:
        known = ", ".join(sorted(functions)) or "none"
        message = f"function {match['function']!r} not found or not authorized (local functions: {known})"
        return _error(404, "NotAuthorizedOrNotFound", message, request_id)
    if len(body) > MAX_BODY_BYTES:
        return _error(413, "FunctionInvokeRequestContentTooLarge",
                      f"Request content too large: {len(body)} bytes, at most {MAX_BODY_BYTES}", request_id)
    if (_header(headers, "is-dry-run") or "").lower() == "true":
        return InvokeAnswer(200, [("opc-request-id", request_id)], b"")
    call_id = new_call_id()
    content_type = _header(headers, "content-type") or "application/octet-stream"
    try:
        answer = target(body, content_type, call_id)
    except FunctionBusy:
        return _error(503, "FunctionInvokeServiceUnavailable", "Timed out - server too busy", request_id,
                      [("Retry-After", "1")])
    except FnTimeout:
        return _error(504, "FunctionInvokeTimeout", "Timed out", request_id)
    except FnUnavailable as exc:
        return _error(502, "FunctionInvokeExecutionError", f"error receiving function response: {exc}", request_id)
    if answer.status == 504:
        return _error(504, "FunctionInvokeTimeout", "Timed out", request_id)
    if answer.status != 200:
        return _error(502, "FunctionInvokeExecutionFailed", "function failed", request_id)
    out = [(name, value) for name, value in answer.headers
           if name not in _NOT_FORWARDED and not name.startswith("fn-fdk-")]
    if not any(name == "content-type" for name, _ in out):
        out.append(("content-type", "application/octet-stream"))
    out += [("opc-request-id", request_id), ("fn-call-id", call_id)]
    if (_header(headers, "fn-invoke-type") or "sync").lower() == "detached":
        return InvokeAnswer(202, [("opc-request-id", request_id), ("fn-call-id", call_id)], b"")
    return InvokeAnswer(200, out, answer.body)


def pool_functions(pool, name: str = "cache", busy_wait_s: float = 10.0,
                   call_timeout_s: float = 30.0) -> dict[str, InvokeTarget]:
    """Targets for the instances of one function in a gateway :class:`~.gateway.Pool`, under its
    name and its OCID: an idle instance, one invoke at a time, dead instances out of rotation."""

    def invoke(body: bytes, content_type: str, call_id: str) -> FnAnswer:
        instance = pool.acquire(busy_wait_s)  # raises FnUnavailable when no instance is alive
        if instance is None:
            raise FunctionBusy()
        try:
            answer = instance.client.invoke(body, content_type, call_id=call_id, timeout_s=call_timeout_s)
        except FnUnavailable:
            pool.release(instance, dead=instance.exited_within(0.5))
            raise
        except BaseException:
            pool.release(instance)
            raise
        pool.release(instance)
        return answer

    return {name: invoke, function_ocid(name): invoke}


def _signature_problem(method: str, path: str, headers: Mapping[str, str], body: bytes, required: bool,
                       trusted_keys: Mapping[str, object]) -> str | None:
    """Why the request is not signed as OCI wants (draft-cavage HTTP signatures), or None."""
    authorization = _header(headers, "authorization")
    if authorization is None:
        return "The required information to complete authentication was not provided." if required else None
    params = dict(_SIGNATURE_PARAM.findall(authorization))
    if not authorization.startswith("Signature ") or not {"keyId", "signature", "headers", "algorithm"} <= set(params):
        return "The authorization header is not an OCI request signature."
    signed = params["headers"].split()
    missing = {"date", "(request-target)", "host"} - set(signed)
    if params["algorithm"] != "rsa-sha256" or missing:
        return f"The signature must be rsa-sha256 over date, (request-target) and host (missing {sorted(missing)})."
    if "x-content-sha256" in signed:
        digest = base64.b64encode(hashlib.sha256(body).digest()).decode()
        if _header(headers, "x-content-sha256") != digest:
            return "x-content-sha256 does not match the body."
    if not trusted_keys:
        return None
    public_key = trusted_keys.get(params["keyId"])
    if public_key is None:
        return f"unknown keyId {params['keyId']!r}"
    return verify_signature(public_key, params["signature"], signed, method, path, lambda name: _header(headers, name))


def _header(headers: Mapping[str, str], name: str) -> str | None:
    value = headers.get(name)
    if value is None and isinstance(headers, dict):
        value = next((v for k, v in headers.items() if k.lower() == name), None)
    return value


def _error(status: int, code: str, message: str, request_id: str,
           extra: list[tuple[str, str]] | None = None) -> InvokeAnswer:
    headers = [("content-type", "application/json"), ("opc-request-id", request_id), *(extra or [])]
    return InvokeAnswer(status, headers, orjson.dumps({"code": code, "message": message}))
