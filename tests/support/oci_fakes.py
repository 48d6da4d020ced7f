"""Fake OCI credentials that the real SDK accepts and signs with, and the local Object Storage server.

Nothing here is mocked: the SDK builds and signs real requests with a freshly generated RSA key, and
the local server verifies those signatures with the matching public key (runtime-facts.md 4.1).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from pathlib import Path

import jwt
import oci
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from streamcache_local.object_storage import LocalObjectStorage, start_object_storage

TENANCY = "ocid1.tenancy.oc1..aaaaaaaafaketenancy"
USER = "ocid1.user.oc1..aaaaaaaafakeuser"
REGION = "us-ashburn-1"


@dataclass
class FakeApiKey:
    """An API-key profile in an OCI config file, as ``oci setup config`` would write it."""

    config_file: Path
    profile: str
    key_id: str  # what the SDK puts in keyId: "<tenancy>/<user>/<fingerprint>"
    private_key: rsa.RSAPrivateKey


def new_rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )


def write_api_key_profile(folder: Path, profile: str = "DEFAULT", key: rsa.RSAPrivateKey | None = None) -> FakeApiKey:
    """Write ``folder/config`` (appending a profile) and the key file; return what identifies it."""
    key = key or new_rsa_key()
    key_file = folder / f"{profile.lower()}-key.pem"
    key_file.write_bytes(private_pem(key))
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    digest = hashlib.md5(der).hexdigest()
    fingerprint = ":".join(digest[i : i + 2] for i in range(0, 32, 2))
    config_file = folder / "config"
    with config_file.open("a") as config:
        config.write(
            f"[{profile}]\nuser={USER}\nfingerprint={fingerprint}\nkey_file={key_file}\n"
            f"tenancy={TENANCY}\nregion={REGION}\n\n"
        )
    return FakeApiKey(config_file, profile, f"{TENANCY}/{USER}/{fingerprint}", key)


def session_token(lifetime_s: int = 3600) -> str:
    """A resource-principal session token (RPST) shaped like the one OCI Functions injects. The SDK
    reads its claims without verifying it; the server checks the request signature instead."""
    now = int(time.time())
    claims = {"iat": now, "exp": now + lifetime_s, "res_tenant": TENANCY, "res_compartment": TENANCY}
    return jwt.encode(claims, "not-a-real-secret-but-long-enough-for-hs256", algorithm="HS256")


def no_retries() -> dict:
    """SDK options for tests: fail at once instead of the default 10-minute backoff."""
    return {"retry_strategy": oci.retry.NoneRetryStrategy()}


@pytest.fixture(scope="module")
def object_storage() -> LocalObjectStorage:
    """A local Object Storage server for the test module (tests use their own buckets)."""
    with start_object_storage() as server:
        yield server


@pytest.fixture(scope="module")
def api_key(object_storage: LocalObjectStorage, tmp_path_factory) -> FakeApiKey:
    """An API-key profile in a fresh config file, trusted by the module's server."""
    key = write_api_key_profile(tmp_path_factory.mktemp("oci"))
    object_storage.trust_key(key.key_id, key.private_key.public_key())
    return key
