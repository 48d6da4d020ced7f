"""Checking the request signatures the ``oci`` SDK makes (draft-cavage HTTP signatures, RSA-SHA256),
for the local Object Storage server."""

from __future__ import annotations

import base64
import re
from typing import Callable, Mapping

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

_SIGNATURE_PARAM = re.compile(r'(\w+)="([^"]*)"')


def signature_problem(headers: Mapping[str, str], method: str, path: str,
                      key_for: Callable[[str], object | None] | None) -> str | None:
    """Why the request is not authenticated, or ``None``. Every request must be signed;
    ``key_for(key_id)`` (``None``: trust any signer) gives the public key to verify it with."""
    authorization = headers.get("authorization", "")
    params = dict(_SIGNATURE_PARAM.findall(authorization))
    if not authorization.startswith("Signature ") or not {"keyId", "signature", "headers"} <= set(params):
        return "The request carries no signature."
    if key_for is None:
        return None
    public_key = key_for(params["keyId"])
    if public_key is None:
        return f"unknown keyId {params['keyId']!r}"
    return verify_signature(public_key, params["signature"], params["headers"].split(), method, path,
                            lambda name: headers.get(name, ""))


def verify_signature(public_key, signature_b64: str, signed: list[str], method: str, path: str,
                     header: Callable[[str], str | None]) -> str | None:
    """Check ``signature_b64`` over the signing string of the ``signed`` header names (``header(name)``
    reads one): ``None``, or why it does not verify. Shared by the local stand-ins that check OCI
    signatures (this server, the functions' invoke endpoint)."""
    lines = [f"(request-target): {method.lower()} {path}" if name == "(request-target)"
             else f"{name}: {header(name) or ''}" for name in signed]
    try:
        signature = base64.b64decode(signature_b64)
        public_key.verify(signature, "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore
    except (InvalidSignature, ValueError):
        return "The signature does not verify."
    return None
