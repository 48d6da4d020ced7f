"""The results and errors of :class:`streamcache.Client` (both re-exported by ``streamcache``).

Errors carry the HTTP status (0 when nothing answered), the API's error code and its message, and
map one to one from the statuses both transports answer: 404 ``not_found`` :class:`NotFound`, 412
:class:`PreconditionFailed`, 503/429 :class:`Unavailable`, 413 :class:`ValueTooLarge`, other 4xx
:class:`BadRequest`, other 5xx :class:`ServerError`; no answer at all :class:`Unreachable`. A write
whose outcome is unknown raises :class:`OutcomeUnknown`: 503 ``outcome_unknown``, a 504 (a timeout on
the way), or :class:`UnansweredWrite` for a write that was sent and got no answer.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

import orjson

RETRYABLE_STATUSES = (429, 503)


# ---- results ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A value read from the cache."""

    key: str
    value: bytes
    content_type: str
    version: str  # PARTITION-OFFSET of the record that wrote it; give it to if_match
    expires_at: datetime | None  # UTC; over HTTP rounded down to the second (the Expires header)
    stale: bool = False  # the instance could not reach the stream and answered from memory

    def text(self) -> str:
        return self.value.decode("utf-8")

    def json(self) -> object:
        return orjson.loads(self.value)


@dataclass(frozen=True)
class WriteResult:
    key: str
    version: str
    expires_at: datetime | None
    created: bool  # True when the key had no value before


@dataclass(frozen=True)
class KeyInfo:
    key: str
    version: str
    size: int
    expires_at: datetime | None


class ChangeKind(StrEnum):
    """What a change record asks for (its CloudEvent ``type``, events/README.md). A subscriber that
    mirrors the cache must tell them apart: an increment carries a delta (``by``), not a value."""

    PUT = "put"
    DELETE = "delete"
    INCREMENT = "increment"
    TOUCH = "touch"  # a new expiry (expires_at; none: removed) for the value held, the value unchanged

    @classmethod
    def of_type(cls, event_type: object) -> "ChangeKind":
        """The kind of an event ``type`` (``io.streamcache.increment.v1`` -> INCREMENT)."""
        kind = _EVENT_TYPES.get(event_type) if isinstance(event_type, str) else None
        if kind is None:
            raise ValueError(f"not a streamcache change record type: {event_type!r}")
        return kind


# The record types of events/README.md: core/records.py's *_TYPE, not imported (it would cost every
# `import streamcache` the codec's import time); tests/client/test_subscribe.py holds them equal.
_EVENT_TYPES = {"io.streamcache.put.v1": ChangeKind.PUT, "io.streamcache.delete.v1": ChangeKind.DELETE,
                "io.streamcache.increment.v1": ChangeKind.INCREMENT, "io.streamcache.touch.v1": ChangeKind.TOUCH}


@dataclass(frozen=True)
class Change:
    """One change record from the feed: its stream position and the CloudEvent as it is on the stream."""

    position: str  # PARTITION-OFFSET
    event: dict
    token: str  # the resume token after this page: give it as ``after`` to go on

    @property
    def key(self) -> str:
        return self.event["subject"]

    @property
    def kind(self) -> ChangeKind:
        return ChangeKind.of_type(self.event.get("type"))

    @property
    def dataref(self) -> str | None:
        """A big value's object name in the cache's bucket (CloudEvents ``dataref``, with ``datasize``
        and ``datadigest`` beside it in :attr:`event`), None when the value is in the event; fetching
        it: docs/api.md, "Big values"."""
        return self.event.get("dataref")

    @property
    def by(self) -> int | None:
        """An increment's delta (what a mirror adds to the counter); None for a put or a delete."""
        data = self.event.get("data")
        return data.get("by") if self.kind is ChangeKind.INCREMENT and isinstance(data, dict) else None


# ---- errors -------------------------------------------------------------------------------------


class CacheError(Exception):
    """An answer that is not a success. ``status`` is the HTTP status (0: no answer at all)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


class NotFound(CacheError):
    """The key has no value."""


class PreconditionFailed(CacheError):
    def __init__(self, status: int, code: str, message: str, current_version: str | None = None) -> None:
        super().__init__(status, code, message)
        self.current_version = current_version  # None: the key has no value


class Unavailable(CacheError):
    """The cache cannot serve now (the stream is away, every instance busy); retry later."""

    def __init__(self, status: int, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(status, code, message)
        self.retry_after = retry_after  # seconds, as the server asked


class Unreachable(Unavailable):
    """No answer: the connection failed or timed out (``status`` 0)."""


class BadRequest(CacheError):
    """The request was refused (a 4xx other than 404/412/413/429): invalid key, TTL, version..."""


class ValueTooLarge(BadRequest):
    """413: the value (or the request) is over the limit."""


class Conflict(BadRequest):
    """409: an increment of a value that is not a counter (``not_a_number``) or past the signed
    64-bit range (``overflow``); nothing changed."""


class QuotaExceeded(CacheError):
    """507: the cache is full (``STREAMCACHE_MAX_BYTES``); nothing was written. Delete keys, use
    shorter TTLs, or raise the quota."""


class ServerError(CacheError):
    """A 5xx other than 503: the function failed or timed out."""


class OutcomeUnknown(Unavailable):
    """A write may or may not have been applied: its record was sent to the stream and the answer was
    lost (503 ``outcome_unknown``; or a 504, a timeout on the way). Never retried by the client: read
    the key with ``consistency="strong"`` and decide (a conditional write may have won, or not). See
    docs/unknown-outcomes.md."""


class UnansweredWrite(Unreachable, OutcomeUnknown):
    """A write sent to the cache that got no answer at all (``status`` 0): it may have run. Both an
    :class:`Unreachable` and an :class:`OutcomeUnknown`."""


def error_for(answer: dict, writes: bool = False) -> CacheError:
    """The typed error for a non-success answer of either transport (``writes``: to a put or delete)."""
    status = int(answer.get("status") or 0)
    code = str(answer.get("error") or f"http_{status}")
    message = str(answer.get("message") or "")
    if status == 404 and code == "not_found":
        return NotFound(status, code, message)
    if code == "outcome_unknown" or (status == 504 and writes):
        return OutcomeUnknown(status, code, message, answer.get("retry_after"))
    if status == 412:
        return PreconditionFailed(status, code, message, answer.get("current_version"))
    if status in RETRYABLE_STATUSES:
        return Unavailable(status, code, message, answer.get("retry_after"))
    if status == 413:
        return ValueTooLarge(status, code, message)
    if status == 507:
        return QuotaExceeded(status, code, message)
    if status == 409 and code in ("not_a_number", "overflow"):
        return Conflict(status, code, message)
    if 400 <= status < 500:
        return BadRequest(status, code, message)  # also a 404 that is not about a key (a wrong URL or function)
    return ServerError(status, code, message)


# ---- transports ---------------------------------------------------------------------------------


class TransportError(Exception):
    """The request got no answer (connection refused or reset, timeout). ``sent`` is False only when
    the request certainly never left (the connection could not be made)."""

    def __init__(self, message: str, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent


class Transport(Protocol):
    """One operation of the direct-invoke API in (``value`` as bytes for a put), its answer out
    (``status`` and the operation's fields; a get's ``value`` as bytes). Raises TransportError.
    A transport that can send many operations in one call also has ``send_batch(ops)``, answering
    a list of answers, or one answer when the call as a whole failed."""

    def send(self, op: dict) -> dict: ...

    def close(self) -> None: ...
