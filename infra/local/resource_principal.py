"""A resource principal for the local function instances, as OCI Functions injects one.

On OCI a function's container gets ``OCI_RESOURCE_PRINCIPAL_VERSION=2.2`` with a session token
(RPST) and a private key in its environment; the ``oci`` SDK's resource-principal signer signs with
that key under the keyId ``ST$<token>``. ``streamcache dev`` gives its cache instances the same
variables, pointing at files it writes here, so the functions' own code path runs unchanged: the
detached invoke of the compactor after a long tail goes through the real SDK, signed, to the local
invoke endpoint. The token is not signed by anyone real (the SDK reads its claims without verifying
it); the local endpoint accepts any well-formed signature (``invoke_endpoint.py``), and
:attr:`LocalResourcePrincipal.key_id` with ``public_key`` lets a strict one verify it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import jwt  # PyJWT, a dependency of the oci SDK
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

REGION = "us-ashburn-1"
TENANCY = "ocid1.tenancy.oc1..localtenancy"
#: Long enough for any dev run: the SDK re-reads an expired token file and would get the same one.
LIFETIME_S = 30 * 24 * 3600


@dataclass(frozen=True)
class LocalResourcePrincipal:
    env: dict[str, str]  # the OCI_RESOURCE_PRINCIPAL_* variables an instance gets
    key_id: str  # what the SDK puts in the signature's keyId
    public_key: rsa.RSAPublicKey


def write_resource_principal(folder: str | Path) -> LocalResourcePrincipal:
    """Write a fresh key and session token under ``folder`` (private to the user); return the
    environment that makes the SDK sign with them."""
    folder = Path(folder)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {"iat": now, "exp": now + LIFETIME_S, "res_tenant": TENANCY, "res_compartment": TENANCY,
              "res_type": "fnfunc", "sub": "ocid1.fnfunc.oc1..localcache"}
    token = jwt.encode(claims, "streamcache-dev-local-resource-principal", algorithm="HS256")
    token_file, key_file = folder / "rpst", folder / "rp.pem"
    token_file.write_text(token)
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                           serialization.NoEncryption()))
    token_file.chmod(0o600)
    key_file.chmod(0o600)
    env = {"OCI_RESOURCE_PRINCIPAL_VERSION": "2.2", "OCI_RESOURCE_PRINCIPAL_RPST": str(token_file),
           "OCI_RESOURCE_PRINCIPAL_PRIVATE_PEM": str(key_file), "OCI_RESOURCE_PRINCIPAL_REGION": REGION}
    return LocalResourcePrincipal(env, "ST$" + token, key.public_key())
