"""What the table holds and what applying a record did: the values every replica computes alike.

:class:`Entry` is a live value (its version is the position of the record that last wrote it);
:class:`Outcome` is what one record did, the same on every replica and the compactor, and what a
write is answered with (``streamcache.statuses`` maps each :class:`OutcomeKind` to a status).
"""

from __future__ import annotations

from enum import Enum
from typing import NamedTuple

from streamcache.core.quota import QuotaState
from streamcache.core.records import Position


class Entry(NamedTuple):
    """A live value in the table."""

    value: bytes
    content_type: str
    version: Position
    expires_at_ms: int | None

    def live_at(self, now_ms: int) -> bool:
        return self.expires_at_ms is None or now_ms < self.expires_at_ms


class OutcomeKind(str, Enum):
    CREATED = "created"
    REPLACED = "replaced"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    PRECONDITION_FAILED = "precondition_failed"
    QUOTA_EXCEEDED = "quota_exceeded"
    NOT_A_NUMBER = "not_a_number"  # an increment of a value that is not a signed 64-bit integer's text
    OVERFLOW = "overflow"  # an increment that would leave the signed 64-bit range
    TOUCHED = "touched"  # a touch changed the expiry of a live value (its version stays)


class Outcome(NamedTuple):
    """What applying one record did. ``version`` is the key's version after the record (the record's
    own position when it wrote, the current version when a precondition or the quota refused it,
    ``None`` if absent). ``quota`` says how full the partition was when the quota refused a put."""

    kind: OutcomeKind
    key: str
    version: Position | None
    expires_at_ms: int | None = None
    quota: QuotaState | None = None
