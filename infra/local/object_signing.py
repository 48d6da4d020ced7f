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
    lines = []
    for name in params["headers"].split():
        if name == "(request-target)":
            lines.append(f"(request-target): {method.lower()} {path}")
        else:
            lines.append(f"{name}: {headers.get(name, '')}")
    try:
        signature = base64.b64decode(params["signature"])
        public_key.verify(signature, "\n".join(lines).encode(), padding.PKCS1v15(), hashes.SHA256())  # type: ignore
    except (InvalidSignature, ValueError):
        return "The signature does not verify."
    return None
