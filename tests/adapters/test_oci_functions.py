"""The detached invoke (streamcache.adapters.oci_functions) through the real oci SDK against the local
invoke endpoint in strict mode: every request must carry an OCI signature, verified with the caller's
public key, for the resource principal ``streamcache dev`` gives its instances and for an API-key
profile; the platform's refusals become InvokeFailed with the status and the usual cause."""

from __future__ import annotations

import oci
import orjson
import pytest
from support.invoke_server import strict_invoke_server
from support.oci_fakes import new_rsa_key, write_api_key_profile

from streamcache.adapters.oci_functions import InvokeFailed, invoke_detached
from streamcache_local.broker import free_port
from streamcache_local.fn_protocol import FnAnswer
from streamcache_local.invoke_endpoint import FunctionBusy, function_ocid
from streamcache_local.resource_principal import write_resource_principal

COMPACTOR = function_ocid("compactor")
BODY = orjson.dumps({"action": "compact", "reason": "long_tail", "records_replayed": 9})
NO_RETRIES = oci.retry.NoneRetryStrategy()


@pytest.fixture
def endpoint():
    """A strict endpoint whose compactor records what it is sent."""
    with strict_invoke_server() as server:
        server.calls = []

        def compactor(body: bytes, content_type: str, call_id: str) -> FnAnswer:
            server.calls.append(body)
            return FnAnswer(200, [("content-type", "application/json")], b'{"status": 200, "action": "compact"}')

        server.functions.update({"compactor": compactor, COMPACTOR: compactor})
        yield server


@pytest.fixture
def resource_principal(tmp_path, monkeypatch):
    """The local resource principal of streamcache dev, in this process's environment (the SDK's
    resource-principal signer reads os.environ, as inside OCI Functions)."""
    principal = write_resource_principal(tmp_path)
    for name, value in principal.env.items():
        monkeypatch.setenv(name, value)
    return principal


def test_a_resource_principal_signs_a_detached_invoke_and_the_signature_verifies(endpoint, resource_principal):
    endpoint.trusted_keys[resource_principal.key_id] = resource_principal.public_key
    reference = invoke_detached(COMPACTOR, endpoint.url, BODY)
    assert endpoint.calls == [BODY]
    (headers,) = endpoint.requests
    assert headers["fn-invoke-type"] == "detached" and headers["authorization"].startswith("Signature ")
    assert 'keyId="ST$' in headers["authorization"]
    assert reference == headers["opc-request-id"]  # the SDK names the call; the platform echoes it


def test_an_api_key_profile_signs_outside_oci_functions(endpoint, tmp_path, monkeypatch):
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_VERSION", raising=False)
    profile = write_api_key_profile(tmp_path, "COMPACT")
    endpoint.trusted_keys[profile.key_id] = profile.private_key.public_key()
    invoke_detached("compactor", endpoint.url, BODY, config_file=str(profile.config_file), profile="COMPACT")
    assert endpoint.calls == [BODY]


def test_a_signature_with_another_key_is_refused_and_says_why(endpoint, resource_principal):
    endpoint.trusted_keys[resource_principal.key_id] = new_rsa_key().public_key()
    with pytest.raises(InvokeFailed) as raised:
        invoke_detached(COMPACTOR, endpoint.url, BODY, retry_strategy=NO_RETRIES)
    assert "401 NotAuthenticated" in str(raised.value) and "signature was refused" in str(raised.value)
    assert endpoint.calls == []


def test_an_unknown_function_names_the_policy_it_may_lack(endpoint, resource_principal):
    with pytest.raises(InvokeFailed) as raised:
        invoke_detached("ocid1.fnfunc.oc1..nosuch", endpoint.url, BODY, retry_strategy=NO_RETRIES)
    assert "404 NotAuthorizedOrNotFound" in str(raised.value) and "use fn-invocation" in str(raised.value)


def test_a_busy_compactor_is_a_service_error(endpoint, resource_principal):
    def busy(body, content_type, call_id):
        raise FunctionBusy()

    endpoint.functions[COMPACTOR] = busy
    with pytest.raises(InvokeFailed) as raised:
        invoke_detached(COMPACTOR, endpoint.url, BODY, retry_strategy=NO_RETRIES)
    assert "503 FunctionInvokeServiceUnavailable" in str(raised.value)


def test_nothing_listening_is_an_invoke_failure_not_a_hang(resource_principal):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(InvokeFailed) as raised:
        invoke_detached(COMPACTOR, url, BODY, retry_strategy=NO_RETRIES, timeout=(1.0, 1.0))
    assert "cannot be reached" in str(raised.value)


def test_broken_credentials_are_an_invoke_failure(tmp_path, monkeypatch):
    monkeypatch.delenv("OCI_RESOURCE_PRINCIPAL_VERSION", raising=False)
    with pytest.raises(InvokeFailed) as raised:
        invoke_detached(COMPACTOR, "http://127.0.0.1:1", BODY, config_file=str(tmp_path / "missing"))
    assert "OCI config" in str(raised.value)
