"""Reading the Kafka auth token from OCI Vault: the real SDK against a local Secrets server that
verifies every request's signature, then the settings wiring that fills the SASL password from it."""

from __future__ import annotations

import base64
import functools
import re
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

import oci
import orjson
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding
from support.oci_fakes import new_rsa_key, private_pem, session_token, write_api_key_profile

from streamcache.adapters.oci_secrets import SECRET_SETTINGS, SecretUnavailable, read_secret, with_secrets
from streamcache.core.errors import ConfigError
from streamcache.settings import Settings

SECRET = "ocid1.vaultsecret.oc1.iad.amaaaaaafakesecret"
_SIGNATURE_PARAM = re.compile(r'(\w+)="([^"]*)"')


class LocalSecrets:
    """GET /20190301/secretbundles/{secretId}, as oci.secrets.SecretsClient.get_secret_bundle sends it.
    Answers only requests signed by a trusted key (else 401), like the real service."""

    def __init__(self) -> None:
        self.contents: dict[str, str] = {}  # secret OCID -> base64 content of the CURRENT version
        self.trusted: dict[str, object] = {}  # keyId -> RSA public key
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.failures: list[tuple[int, str]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=5)


def _handler_for(state: LocalSecrets):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            with state.lock:
                state.seen.append((self.path, headers))
                failure = state.failures.pop(0) if state.failures else None
            problem = self._signature_problem()
            if problem:
                return self._answer(401, {"code": "NotAuthenticated", "message": problem})
            if failure:
                return self._answer(failure[0], {"code": failure[1], "message": "injected"})
            path = urlsplit(self.path).path
            if not path.startswith("/20190301/secretbundles/"):
                return self._answer(404, {"code": "NotFound", "message": f"no API {path}"})
            secret_id = unquote(path.rsplit("/", 1)[1])
            if secret_id not in state.contents:
                return self._answer(404, {"code": "NotAuthorizedOrNotFound", "message": "Authorization failed or requested resource not found."})
            self._answer(200, {
                "secretId": secret_id, "versionNumber": 3, "stages": ["CURRENT", "LATEST"],
                "timeCreated": "2026-01-01T00:00:00.000Z",
                "secretBundleContent": {"contentType": "BASE64", "content": state.contents[secret_id]},
            })

        def _signature_problem(self) -> str | None:
            params = dict(_SIGNATURE_PARAM.findall(self.headers.get("authorization", "")))
            key = state.trusted.get(params.get("keyId", ""))
            if key is None:
                return f"unknown or missing keyId {params.get('keyId')!r}"
            lines = [f"(request-target): get {self.path}" if name == "(request-target)" else f"{name}: {self.headers.get(name, '')}"
                     for name in params["headers"].split()]
            try:
                key.verify(base64.b64decode(params["signature"]), "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())
            except (InvalidSignature, ValueError):
                return "the signature does not verify"
            return None

        def _answer(self, status: int, body: dict) -> None:
            data = orjson.dumps(body)
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("opc-request-id", "REQ-" + str(len(state.seen)))
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    return Handler


@pytest.fixture
def vault():
    server = LocalSecrets()
    yield server
    server.stop()


@pytest.fixture
def api_key(vault, tmp_path):
    key = write_api_key_profile(tmp_path)
    vault.trusted[key.key_id] = key.private_key.public_key()
    return key


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def read_with_key(vault, key, secret_id=SECRET, **options):
    return read_secret(secret_id, environ={}, config_file=str(key.config_file), endpoint=vault.endpoint,
                       retry_strategy=oci.retry.NoneRetryStrategy(), **options)


def test_reads_the_current_version_signed_with_the_profile_key(vault, api_key):
    vault.contents[SECRET] = b64("Ab3:x(token)\n")  # pasted with its newline

    assert read_with_key(vault, api_key) == "Ab3:x(token)"
    path, headers = vault.seen[-1]
    assert path == f"/20190301/secretbundles/{SECRET}"  # no stage/version: the CURRENT version
    assert f'keyId="{api_key.key_id}"' in headers["authorization"]


def test_inside_oci_functions_it_signs_with_the_resource_principal(vault, monkeypatch, tmp_path):
    key, token = new_rsa_key(), session_token()
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_VERSION", "2.2")
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_RPST", token)
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM", private_pem(key).decode())
    monkeypatch.setenv("OCI_RESOURCE_PRINCIPAL_REGION", "us-phoenix-1")
    vault.trusted[f"ST${token}"] = key.public_key()
    vault.contents[SECRET] = b64("rp-token")

    # No config file exists at this path: only the resource principal can have signed the request.
    assert read_secret(SECRET, config_file=str(tmp_path / "absent"), endpoint=vault.endpoint,
                       retry_strategy=oci.retry.NoneRetryStrategy()) == "rp-token"
    assert f'keyId="ST${token}"' in vault.seen[-1][1]["authorization"]


def test_an_unknown_secret_names_the_likely_cause(vault, api_key):
    with pytest.raises(SecretUnavailable) as caught:
        read_with_key(vault, api_key, "ocid1.vaultsecret.oc1.iad.amaaaaaaother")
    message = caught.value.problems[0]
    assert "404 NotAuthorizedOrNotFound" in message and "REQ-1" in message and "read secret-bundles" in message
    assert not caught.value.transient  # retrying changes nothing until the OCID or the policy is fixed


def test_a_refused_signature_is_reported_as_such(vault, api_key, tmp_path):
    vault.contents[SECRET] = b64("t")
    (tmp_path / "other").mkdir()
    stranger = write_api_key_profile(tmp_path / "other")  # a valid key the service does not know
    with pytest.raises(SecretUnavailable, match="401 NotAuthenticated.*signature"):
        read_with_key(vault, stranger)


def test_service_failures_and_an_unreachable_service_are_unavailable(vault, api_key):
    vault.contents[SECRET] = b64("t")
    vault.failures.append((503, "ServiceUnavailable"))
    with pytest.raises(SecretUnavailable, match="503 ServiceUnavailable.*tries again") as caught:
        read_with_key(vault, api_key)
    assert caught.value.transient

    with socket.socket() as probe:  # a port that was free a moment ago: nothing listens there
        probe.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{probe.getsockname()[1]}"
    with pytest.raises(SecretUnavailable, match="cannot be reached") as caught:
        read_secret(SECRET, environ={}, config_file=str(api_key.config_file), endpoint=closed,
                    retry_strategy=oci.retry.NoneRetryStrategy(), timeout=(2.0, 2.0))
    assert caught.value.transient


@pytest.mark.parametrize("content, problem", [("", "empty"), (b64("  \n"), "empty"), ("%%%", "not base64"),
                                              (base64.b64encode(b"\xff\xfe").decode(), "not base64 of UTF-8")])
def test_unusable_content_is_refused(vault, api_key, content, problem):
    vault.contents[SECRET] = content
    with pytest.raises(SecretUnavailable, match=problem):
        read_with_key(vault, api_key)


def test_missing_credentials_are_reported(tmp_path):
    with pytest.raises(SecretUnavailable, match="OCI config"):
        read_secret(SECRET, environ={}, config_file=str(tmp_path / "absent"))


# ---- the wiring: settings get the password from the secret ------------------------------------------

OCI_ENV = {
    "STREAMCACHE_LOG_URL": "kafka://cell-1.streaming.us-ashburn-1.oci.oraclecloud.com:9092/streamcache",
    "STREAMCACHE_KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
    "STREAMCACHE_KAFKA_SASL_USERNAME": "acme/Default/streamcache-kafka/ocid1.streampool.oc1.iad.amaaaaaapool",
    "STREAMCACHE_KAFKA_SASL_PASSWORD_SECRET_ID": SECRET,
}


def test_settings_built_through_with_secrets_carry_the_token_from_vault(vault, api_key):
    vault.contents[SECRET] = b64("the-auth-token")
    read = functools.partial(read_secret, environ={}, config_file=str(api_key.config_file),
                             endpoint=vault.endpoint, retry_strategy=oci.retry.NoneRetryStrategy())

    settings = Settings.from_env(with_secrets(OCI_ENV, read))

    assert settings.kafka_sasl_password == "the-auth-token"
    assert len(vault.seen) == 1  # read once, when the settings are built


def test_without_a_secret_id_the_environment_is_used_as_it_is():
    env = {"STREAMCACHE_LOG_URL": "memory://x"}
    assert with_secrets(env, read=lambda _: pytest.fail("no secret is named")) is env


def test_a_password_and_its_secret_together_are_refused():
    env = {**OCI_ENV, "STREAMCACHE_KAFKA_SASL_PASSWORD": "plain"}
    with pytest.raises(ConfigError, match="not both"):
        with_secrets(env, read=lambda _: "token")


def test_an_unreadable_secret_stops_the_settings_with_its_reason(vault, api_key):
    read = functools.partial(read_secret, environ={}, config_file=str(api_key.config_file),
                             endpoint=vault.endpoint, retry_strategy=oci.retry.NoneRetryStrategy())
    with pytest.raises(ConfigError, match="read secret-bundles"):
        Settings.from_env(with_secrets(OCI_ENV, read))


def test_every_secret_setting_fills_a_real_setting():
    assert set(SECRET_SETTINGS.values()) <= set(Settings.env_names())
