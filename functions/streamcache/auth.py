"""Optional API keys for the HTTP API: who may call the cache function, in addition to whatever
authentication API Gateway does in front of it.

Turned on by setting ``STREAMCACHE_API_KEYS`` to a comma-separated list of key *digests*, never the
keys themselves (function config is readable by anyone who may read the function)::

    STREAMCACHE_API_KEYS=sha256:<64 hex digits>,sha256:<64 hex digits>:ro

``:ro`` marks a read-only key (``:rw``, the default, may read and write). ``streamcache hash-key``
prints the entry for a key (:func:`hash_key_command`). Empty or unset: no check at all.

A request presents its key as ``X-Api-Key: <key>`` or ``Authorization: Bearer <key>``. X-Api-Key
wins when both are present, because a gateway that does its own JWT authentication keeps
``Authorization`` for that token. Without a key, or with a key that matches no entry: 401 with
``WWW-Authenticate: Bearer``. A read-only key may ``GET`` and ``HEAD`` (values, listings); any other
method is 403. Both are refused before anything else happens, so a refused request changes nothing.

Keys are random (:func:`new_key`, 256 bits), so a plain SHA-256 of the key is as good as a slow
password hash here. The presented key's digest is compared with every entry with
:func:`hmac.compare_digest`, all of them every time, so timing tells nothing about which or how
much of an entry matched.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import IO, Mapping, NamedTuple

SCHEME = "sha256"
READ_METHODS = frozenset({"GET", "HEAD"})
MAX_KEY_CHARS = 4096  # longer is not a key we issued; no point hashing megabytes of header
KEY_PREFIX = "sck_"
CHALLENGE = 'Bearer realm="streamcache"'


class ApiKey(NamedTuple):
    """One entry of ``STREAMCACHE_API_KEYS``: the SHA-256 digest of a key and what it may do."""

    digest: bytes
    read_only: bool

    @property
    def key_id(self) -> str:
        """A short, non-secret name for logs: the first 8 hex digits of the digest."""
        return self.digest.hex()[:8]

    def entry(self) -> str:
        return f"{SCHEME}:{self.digest.hex()}{':ro' if self.read_only else ''}"


class Denied(NamedTuple):
    """Why a request is refused, ready to become an HTTP error answer."""

    status: int  # 401 or 403
    code: str  # "unauthorized" or "forbidden"
    message: str
    headers: dict[str, str]


def hash_key(key: str, read_only: bool = False) -> str:
    """The ``STREAMCACHE_API_KEYS`` entry for ``key``: ``sha256:<hex>`` (``:ro`` if read-only)."""
    return ApiKey(_digest(key), read_only).entry()


def new_key() -> str:
    """A fresh random API key (256 bits, URL-safe)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def parse_api_keys(raw: str) -> tuple[ApiKey, ...]:
    """Parse ``STREAMCACHE_API_KEYS``. Raises ValueError naming the bad entry (by position only:
    a key pasted by mistake must not end up in an error message)."""
    keys = []
    for number, item in enumerate((part.strip() for part in raw.split(",")), start=1):
        if not item:
            continue
        scheme, _, rest = item.partition(":")
        hex_digest, _, mode = rest.partition(":")
        if scheme != SCHEME or mode not in ("", "ro", "rw"):
            raise ValueError(f"entry {number} is not sha256:<64 hex digits>[:ro|:rw] "
                             "(store the output of `streamcache hash-key`, not the key)")
        if len(hex_digest) != 64 or not all(c in "0123456789abcdefABCDEF" for c in hex_digest):
            raise ValueError(f"entry {number}: the digest must be 64 hex digits")
        keys.append(ApiKey(bytes.fromhex(hex_digest), mode == "ro"))
    return tuple(keys)


def presented_key(headers: Mapping[str, str]) -> str | None:
    """The key a request presents (``headers`` with lower-case names), or None."""
    key = headers.get("x-api-key")
    if key is None:
        scheme, _, token = (headers.get("authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return None
        key = token
    key = key.strip()
    return key or None


class ApiKeys:
    """The configured keys; :meth:`check` decides one request. No keys: everything is allowed."""

    def __init__(self, keys: tuple[ApiKey, ...] | list[ApiKey] = ()) -> None:
        self.keys = tuple(keys)

    @property
    def enabled(self) -> bool:
        return bool(self.keys)

    def identify(self, headers: Mapping[str, str]) -> ApiKey | None:
        """The entry the presented key matches, or None. Compares with every entry, every time."""
        key = presented_key(headers)
        if key is None or len(key) > MAX_KEY_CHARS:
            return None
        digest = _digest(key)
        found = None
        for entry in self.keys:
            if hmac.compare_digest(digest, entry.digest) and found is None:
                found = entry
        return found

    def check(self, method: str, headers: Mapping[str, str]) -> Denied | None:
        """None if the request may go on; else why not (401 no or unknown key, 403 read-only)."""
        if not self.keys:
            return None
        if presented_key(headers) is None:
            return Denied(401, "unauthorized",
                          "an API key is required: send it as X-Api-Key or Authorization: Bearer",
                          {"WWW-Authenticate": CHALLENGE})
        entry = self.identify(headers)
        if entry is None:
            return Denied(401, "unauthorized", "the API key is not valid",
                          {"WWW-Authenticate": f'{CHALLENGE}, error="invalid_token"'})
        if entry.read_only and method.upper() not in READ_METHODS:
            return Denied(403, "forbidden", f"this API key may only read (GET, HEAD), not {method.upper()}", {})
        return None


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).digest()


def hash_key_command(key: str | None, read_only: bool, generate: bool, stdin: IO[str], stdout: IO[str],
                     stderr: IO[str]) -> int:
    """``streamcache hash-key [--read-only] [--new | KEY | -]``: print the settings entry for a key.

    With ``--new`` a key is generated and printed first (hand it to the caller; it is not stored
    anywhere), then its entry. With ``-`` or no KEY, the key is read from the first line of stdin,
    which keeps it out of the shell's history."""
    if generate:
        key = new_key()
        print(key, file=stdout)
    elif key is None or key == "-":
        key = stdin.readline().rstrip("\r\n")
    if not key:
        print("streamcache hash-key: no key given (pass KEY, - to read it from stdin, or --new)", file=stderr)
        return 2
    print(hash_key(key, read_only), file=stdout)
    return 0
