"""SASL as OCI Streaming's front end answers it: SaslHandshake and SaslAuthenticate, PLAIN (what OCI
uses, with an auth token as the password) and SCRAM-SHA-512/256 (RFC 5802, RFC 7677), for one
configured user.

The local broker cannot authenticate (runtime-facts.md 3.4: PLAIN is not offered, SCRAM users are
never stored), so the front end does it and speaks plaintext to the broker. A failed exchange is
answered with SASL_AUTHENTICATION_FAILED and the connection is closed, as Kafka does.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import os
import struct

from kafka.protocol.metadata import ApiVersionsResponse
from kafka.protocol.sasl import (SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
                                 SaslHandshakeResponse)

SASL_HANDSHAKE, SASL_AUTHENTICATE, API_VERSIONS = 17, 36, 18
SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM, ILLEGAL_SASL_STATE = 58, 33, 34
SCRAM_ITERATIONS = 4096
_HASHES = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}
MECHANISMS = ("PLAIN", *_HASHES)


class Phase(enum.Enum):
    """Where a connection is in its authentication."""

    NEW = "new"  # no handshake yet: only ApiVersions and SaslHandshake are allowed
    HANDSHAKEN = "handshaken"  # a mechanism was chosen: SaslAuthenticate rounds follow
    SCRAM_SENT = "scram_sent"  # SCRAM: the server's first message was sent
    DONE = "done"  # authenticated: everything is forwarded


class SaslServer:
    """One connection's side of the exchange. :meth:`answer` takes a request frame (its API is
    SaslHandshake or SaslAuthenticate) and returns the answer frame and whether to close after it."""

    def __init__(self, mechanism: str, user: str, password: str) -> None:
        if mechanism not in MECHANISMS:
            raise ValueError(f"SASL mechanism must be one of {', '.join(MECHANISMS)}")
        self.mechanism, self.user, self.password = mechanism, user, password
        self.phase = Phase.NEW
        self._scram: dict[str, bytes | str] = {}

    def answer(self, frame: bytes) -> tuple[bytes, bool]:
        api_key, version, correlation = struct.unpack(">hhi", frame[4:12])
        if api_key == SASL_HANDSHAKE:
            request = SaslHandshakeRequest.decode(frame[4:], version=version, header=True)
            ok = self.phase is Phase.NEW and request.mechanism == self.mechanism
            if ok:
                self.phase = Phase.HANDSHAKEN
            code = 0 if ok else (ILLEGAL_SASL_STATE if self.phase is not Phase.NEW else UNSUPPORTED_SASL_MECHANISM)
            response = SaslHandshakeResponse(error_code=code, mechanisms=[self.mechanism])
            return _frame(response, version, correlation), not ok
        request = SaslAuthenticateRequest.decode(frame[4:], version=version, header=True)
        try:
            challenge = self._step(bytes(request.auth_bytes))
        except _Refused as refused:
            response = SaslAuthenticateResponse(error_code=SASL_AUTHENTICATION_FAILED, error_message=str(refused),
                                                auth_bytes=b"", session_lifetime_ms=0)
            return _frame(response, version, correlation), True
        response = SaslAuthenticateResponse(error_code=0, error_message=None, auth_bytes=challenge,
                                            session_lifetime_ms=0)
        return _frame(response, version, correlation), False

    def _step(self, token: bytes) -> bytes:
        if self.phase is Phase.HANDSHAKEN and self.mechanism == "PLAIN":
            parts = token.split(b"\0")
            if len(parts) != 3 or not _same(parts[1], self.user.encode()) or not _same(parts[2], self.password.encode()):
                raise _Refused("Authentication failed: invalid credentials with SASL mechanism PLAIN")
            self.phase = Phase.DONE
            return b""
        if self.phase is Phase.HANDSHAKEN:
            return self._scram_first(token.decode("utf-8", "replace"))
        if self.phase is Phase.SCRAM_SENT:
            return self._scram_final(token.decode("utf-8", "replace"))
        raise _Refused("Authentication failed: unexpected SaslAuthenticate")

    def _scram_first(self, message: str) -> bytes:
        if not message.startswith("n,,"):
            raise _Refused("Authentication failed: channel binding is not supported")
        bare = message[3:]
        attributes = dict(part.split("=", 1) for part in bare.split(",") if "=" in part)
        if attributes.get("n") != self.user or not attributes.get("r"):
            raise _Refused(f"Authentication failed during authentication due to invalid credentials with "
                           f"SASL mechanism {self.mechanism}")
        salt = os.urandom(16)
        nonce = attributes["r"] + base64.b64encode(os.urandom(18)).decode()
        first = f"r={nonce},s={base64.b64encode(salt).decode()},i={SCRAM_ITERATIONS}"
        self._scram = {"bare": bare, "first": first, "nonce": nonce, "salt": salt}
        self.phase = Phase.SCRAM_SENT
        return first.encode()

    def _scram_final(self, message: str) -> bytes:
        name = _HASHES[self.mechanism]
        without_proof, _, proof_part = message.rpartition(",p=")
        attributes = dict(part.split("=", 1) for part in without_proof.split(",") if "=" in part)
        salted = hashlib.pbkdf2_hmac(name, self.password.encode(), bytes(self._scram["salt"]),  # type: ignore[arg-type]
                                     SCRAM_ITERATIONS)
        client_key = hmac.new(salted, b"Client Key", name).digest()
        stored_key = hashlib.new(name, client_key).digest()
        auth_message = f"{self._scram['bare']},{self._scram['first']},{without_proof}".encode()
        signature = hmac.new(stored_key, auth_message, name).digest()
        try:
            proof = base64.b64decode(proof_part, validate=True)
        except ValueError:
            proof = b""
        recovered = bytes(a ^ b for a, b in zip(proof, signature))
        if (attributes.get("r") != self._scram["nonce"] or len(proof) != len(signature)
                or not _same(hashlib.new(name, recovered).digest(), stored_key)):
            raise _Refused(f"Authentication failed during authentication due to invalid credentials with "
                           f"SASL mechanism {self.mechanism}")
        server_key = hmac.new(salted, b"Server Key", name).digest()
        self.phase = Phase.DONE
        return b"v=" + base64.b64encode(hmac.new(server_key, auth_message, name).digest())


def admit_sasl_apis(frame: bytes, version: int) -> bytes:
    """The broker's ApiVersions answer, listing SaslHandshake (v0-1) and SaslAuthenticate (v0-2)
    when it does not: the front end answers them, whatever the broker behind supports."""
    (correlation,) = struct.unpack(">i", frame[4:8])
    response = ApiVersionsResponse.decode(frame[4:], version=version, header=True)
    listed = {entry.api_key for entry in response.api_keys}
    missing = [(key, top) for key, top in ((SASL_HANDSHAKE, 1), (SASL_AUTHENTICATE, 2)) if key not in listed]
    if response.error_code or not missing:
        return frame
    response.api_keys.extend(ApiVersionsResponse.ApiVersion(api_key=key, min_version=0, max_version=top)
                             for key, top in missing)
    return _frame(response, version, correlation)


class _Refused(Exception):
    """The exchange failed: the answer says why and the connection closes."""


def _same(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)


def _frame(response, version: int, correlation: int) -> bytes:
    response._header = None  # the version setter writes into a header, which only a request's has
    response.API_VERSION = version
    response.with_header(correlation_id=correlation)
    return response.encode(header=True, framed=True)
