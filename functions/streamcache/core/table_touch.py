"""Deciding a touch (:class:`~.records.Touch`): a new expiry for the value a key holds, nothing else.

Kept beside :mod:`.table` (which calls it from ``Table._decide``, after the precondition held) so
the state machine's module stays within its size. The choices, the same on every replica:

- An absent key, or one expired by the time the record is decided, is ``NOT_FOUND`` and stays absent.
- The value, its content type and its **version** do not change: an ETag names a value, and a
  client that cached the value under its ETag still holds the right bytes. ``If-Match`` on a
  later write therefore still matches the version read before the touch.
- The accounted bytes do not change either (the entry keeps its size): a touch never meets the quota.
- The expiry is the record's own (absolute, computed by its writer); ``None`` removes the expiry.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Protocol

from streamcache.core.outcome import Outcome, OutcomeKind
from streamcache.core.records import Touch
from streamcache.core.table_reads import _new_position


class _Table(Protocol):
    """What a touch needs of :class:`~.table.Table` (named here: importing it would be a cycle)."""

    db: sqlite3.Connection
    _partitions: dict[int, Any]

    def _purge(self, partition: int, state: Any) -> None: ...


def decide_touch(table: _Table, mutation: Touch, current: tuple | None) -> Outcome:
    """Apply ``mutation`` to ``current`` (the key's version partition, offset, expiry and size, as
    ``Table._decide`` takes it; ``None``: absent or expired) and return its outcome."""
    key = mutation.key
    if current is None:
        return Outcome(OutcomeKind.NOT_FOUND, key, None, None)
    expires = mutation.expires_at_ms
    table.db.execute("UPDATE entries SET expires_at_ms = ? WHERE key = ?", (expires, key))
    # Expiry is purged by the partition the entry's version belongs to (Table._purge): tell it.
    owner = table._partitions.get(current[0])
    if expires is not None and owner is not None:
        if owner.min_expiry is None or expires < owner.min_expiry:
            owner.min_expiry = expires
        if expires <= owner.clock_ms:
            table._purge(current[0], owner)
    return Outcome(OutcomeKind.TOUCHED, key, _new_position((current[0], current[1])), expires)
