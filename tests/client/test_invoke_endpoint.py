"""The local OCI Functions invoke API (infra/local/invoke_endpoint.py) on its own, in strict mode:
the real SDK's signatures are verified with the caller's public key for each way the client gets
credentials, and the platform's failures come back as OCI's errors, which the client maps."""

from __future__ import annotations

import http.client

import oci
import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from support.invoke_server import strict_invoke_server
from support.oci_fakes import REGION, new_rsa_key, private_pem, session_token, write_api_key_profile

from streamcache import BadRequest, Client, ServerError, Unavailable
from streamcache_local.fn_protocol import FnAnswer, FnTimeout, FnUnavailable
from streamcache_local.gateway import Pool
from streamcache_local.invoke_endpoint import (FunctionBusy, function_ocid, handle_invoke_request,
                                               is_invoke_path, pool_functions)

HEALTHY = b'{"status": 200, "health": {"status": "serving", "instance": "echo"}}'


@pytest.fixture
def endpoint():
    """A strict invoke endpoint whose ``cache`` function records its calls and answers ``HEALTHY``."""
    with strict_invoke_server() as server:
        server.calls = []

        def cache(body: bytes, content_type: str, call_id: str) -> FnAnswer:
            server.calls.append((body, content_type, call_id))
            return FnAnswer(200, [("content-type", "application/json"), ("x-handler", "yes"),
                                  ("fn-fdk-version", "fdk-python/0.1.128")], HEALTHY)

        server.functions.update({"cache": cache, function_ocid("cache"): cache})
        yield server


def test_an_api_key_profile_signs_and_the_signature_verifies(endpoint, tmp_path):
    profile = write_api_key_profile(tmp_path, "CACHE")
    endpoint.trusted_keys[profile.key_id] = profile.private_key.public_key()
    with Client.for_function("cache", endpoint.url, config_file=str(profile.config_file), profile="CACHE") as client:
        assert client.health() == {"status": "serving", "instance": "echo"}
    body, content_type, _ = endpoint.calls[0]
    assert orjson.loads(body) == {"operation": "health"}
    # Another key under the same keyId: the signature must not verify.
    endpoint.trusted_keys[profile.key_id] = new_rsa_key().public_key()
    with Client.for_function("cache", endpoint.url, config_file=str(profile.config_file), profile="CACHE") as client:
        with pytest.raises(BadRequest) as raised:
            client.health()
    assert (raised.value.status, raised.value.code) == (401, "NotAuthenticated")
    assert len(endpoint.calls) == 1


def test_resource_principals_sign_with_the_session_token(endpoint, tmp_path, monkeypatch):
    token, key = session_token(), new_rsa_key()
    (tmp_path / "rpst").write_text(token)
    (tmp_path / "rp.pem").write_bytes(private_pem(key))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", str(tmp_path / "rpst"))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", str(tmp_path / "rp.pem"))
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", REGION)
    endpoint.trusted_keys["ST$" + token] = key.public_key()
    with Client.for_function(function_ocid("cache"), endpoint.url) as client:
        assert client.health()["instance"] == "echo"


def test_an_explicit_signer(endpoint):
    key = new_rsa_key()
    endpoint.trusted_keys["ST$token-1"] = key.public_key()
    signer = oci.auth.signers.SecurityTokenSigner(token="token-1", private_key=key)
    with Client.for_function("cache", endpoint.url, config={"region": REGION}, signer=signer) as client:
        assert client.health()["instance"] == "echo"


def _post(endpoint, path: str, headers: dict, method: str = "POST", body: bytes = b"{}"):
    conn = http.client.HTTPConnection(*endpoint.server_address[:2], timeout=10)
    try:
        conn.request(method, path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), orjson.loads(response.read() or b"null")
    finally:
        conn.close()


@pytest.mark.parametrize("authorization", [None, "Bearer abc", 'Signature keyId="k",signature="s"',
                                           'Signature version="1",keyId="k",algorithm="rsa-sha256",'
                                           'headers="host",signature="c2lnbg=="'])
def test_an_unsigned_request_is_401_in_strict_mode(endpoint, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    status, _, body = _post(endpoint, "/20181201/functions/cache/actions/invoke", headers)
    assert status == 401 and body["code"] == "NotAuthenticated" and not endpoint.calls


def test_plain_curl_works_unless_strict_but_a_bad_signature_never_does():
    calls = []
    functions = {"cache": lambda body, ct, cid: calls.append(body) or FnAnswer(200, [], b"ok")}
    path = "/20181201/functions/cache/actions/invoke"
    answer = handle_invoke_request("POST", path, {}, b"{}", functions)
    assert (answer.status, answer.body) == (200, b"ok")
    assert dict(answer.headers)["content-type"] == "application/octet-stream"
    bad = handle_invoke_request("POST", path, {"authorization": "Bearer x"}, b"{}", functions)
    assert bad.status == 401 and calls == [b"{}"]


def test_a_body_that_does_not_match_its_signed_digest_is_401():
    signature = ('Signature version="1",keyId="k",algorithm="rsa-sha256",'
                 'headers="date (request-target) host content-length content-type x-content-sha256",signature="c2ln"')
    headers = {"authorization": signature, "x-content-sha256": "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="}
    functions = {"cache": lambda *a: FnAnswer(200, [], b"")}
    path = "/20181201/functions/cache/actions/invoke"
    assert handle_invoke_request("POST", path, headers, b"", functions).status == 200  # the digest of b""
    assert handle_invoke_request("POST", path, headers, b"tampered", functions).status == 401


@pytest.mark.parametrize("method, path, status, code", [
    ("GET", "/20181201/functions/cache/actions/invoke", 405, "MethodNotAllowed"),
    ("POST", "/20181201/functions/nope/actions/invoke", 404, "NotAuthorizedOrNotFound"),
    ("POST", "/20181201/functions/cache/actions/other", 404, "NotAuthorizedOrNotFound"),
    ("POST", "/20990101/functions/cache/actions/invoke", 404, "NotAuthorizedOrNotFound"),
])
def test_wrong_methods_paths_and_functions(method, path, status, code):
    answer = handle_invoke_request(method, path, {}, b"{}", {"cache": lambda *a: FnAnswer(200, [], b"")})
    assert answer.status == status and orjson.loads(answer.body)["code"] == code


def test_what_the_function_answers_is_passed_on_and_the_fdks_headers_are_not(endpoint):
    key = new_rsa_key()
    endpoint.trusted_keys["ST$t"] = key.public_key()
    sdk = oci.functions.FunctionsInvokeClient({"region": REGION}, service_endpoint=endpoint.url,
                                              signer=oci.auth.signers.SecurityTokenSigner("t", key),
                                              retry_strategy=oci.retry.NoneRetryStrategy())
    response = sdk.invoke_function("cache", invoke_function_body=b'{"operation": "health"}')
    assert response.status == 200 and response.data.content == HEALTHY
    assert response.headers["x-handler"] == "yes" and "fn-fdk-version" not in response.headers
    assert response.headers["fn-call-id"] == endpoint.calls[0][2] and response.headers["opc-request-id"]
    dry = sdk.invoke_function("cache", invoke_function_body=b"{}", is_dry_run=True)
    detached = sdk.invoke_function("cache", invoke_function_body=b"{}", fn_invoke_type="detached")
    assert (dry.status, dry.data.content, detached.status, detached.data.content) == (200, b"", 202, b"")
    assert len(endpoint.calls) == 2  # the dry run did not run the function
    sdk.base_client.session.close()


@pytest.mark.parametrize("failure, status, code", [
    (FunctionBusy(), 503, "FunctionInvokeServiceUnavailable"),
    (FnTimeout("slow"), 504, "FunctionInvokeTimeout"),
    (FnUnavailable("the instance died"), 502, "FunctionInvokeExecutionError"),
    (FnAnswer(502, [], b"kaboom"), 502, "FunctionInvokeExecutionFailed"),
    (FnAnswer(504, [], b"timeout"), 504, "FunctionInvokeTimeout"),
])
def test_platform_failures_are_ocis_errors_and_typed_for_the_client(endpoint, failure, status, code, sleeps):
    def failing(body, content_type, call_id):
        if isinstance(failure, Exception):
            raise failure
        return failure

    endpoint.functions["cache"] = failing
    key = new_rsa_key()
    endpoint.trusted_keys["ST$t"] = key.public_key()
    signer = oci.auth.signers.SecurityTokenSigner("t", key)
    with Client.for_function("cache", endpoint.url, config={"region": REGION}, signer=signer, retries=1,
                             sleep=sleeps) as client:
        with pytest.raises(Unavailable if status == 503 else ServerError) as raised:
            client.health()
    assert (raised.value.status, raised.value.code) == (status, code)
    assert len(sleeps.delays) == (1 if status == 503 else 0)  # only the platform's 503 is retried


def test_a_body_over_6_mb_is_413_without_running_the_function():
    calls = []
    answer = handle_invoke_request("POST", "/20260325/functions/cache/actions/invoke", {}, b"x" * (6 * 1024 * 1024 + 1),
                                   {"cache": lambda *a: calls.append(a)})
    assert answer.status == 413 and orjson.loads(answer.body)["code"] == "FunctionInvokeRequestContentTooLarge"
    assert calls == []


def test_pool_functions_answer_busy_and_dead_pools():
    held = object()
    pool = Pool([held])
    functions = pool_functions(pool, "cache", busy_wait_s=0.05)
    assert set(functions) == {"cache", "ocid1.fnfunc.oc1..localcache"}
    assert pool.acquire(1) is held  # the only instance is busy
    with pytest.raises(FunctionBusy):
        functions["cache"](b"{}", "application/json", "call")
    with pytest.raises(FnUnavailable):
        pool_functions(Pool([]))["cache"](b"{}", "application/json", "call")


def test_invoke_paths():
    assert is_invoke_path("/20181201/functions/x/actions/invoke")
    assert is_invoke_path("/20260325/functions/x/actions/invoke")
    assert not is_invoke_path("/cache/20181201") and not is_invoke_path("/health")


def test_the_public_key_helper_matches(tmp_path):
    # The key file the SDK reads is the one whose public half the endpoint trusts (guards the fixtures).
    profile = write_api_key_profile(tmp_path)
    pem = (tmp_path / "default-key.pem").read_bytes()
    loaded = serialization.load_pem_private_key(pem, password=None)
    assert loaded.public_key().public_numbers() == profile.private_key.public_key().public_numbers()
