"""Atomic counters: what an increment record amounts to, decided when it is applied, in log order.

An increment carries its delta, never its result, so increments through different instances never
lose one: every replica and the compactor add the same deltas in the same order. A counter is the
decimal text of a signed 64-bit integer (what ``GET`` answers); an increment of an absent key starts
from 0 and creates it as ``text/plain`` (with the increment's expiry, if any); an existing key keeps
its content type and expiry. A value that is not such an integer's text (``not_a_number``) or a sum
outside the signed 64-bit range (``overflow``) changes nothing.
"""

from __future__ import annotations

import re

from streamcache.core.outcome import OutcomeKind
from streamcache.core.records import COUNTER_MAX, COUNTER_MIN, Increment, Put

#: A counter's text: an optional minus and digits (the range is checked after parsing).
_INTEGER = re.compile(rb"-?[0-9]{1,20}")
COUNTER_CONTENT_TYPE = "text/plain"


def count_up(increment: Increment, stored: tuple[bytes, str, int | None] | None) -> Put | OutcomeKind:
    """The put ``increment`` amounts to, given the key's ``(value, content type, expiry)`` or
    ``None``; or the :class:`OutcomeKind` that says why it changes nothing."""
    if stored is None:
        old, content_type, expires = 0, COUNTER_CONTENT_TYPE, increment.expires_at_ms
    else:
        value, content_type, expires = stored
        if not _INTEGER.fullmatch(value) or not COUNTER_MIN <= int(value) <= COUNTER_MAX:
            return OutcomeKind.NOT_A_NUMBER
        old = int(value)
    new = old + increment.by
    if not COUNTER_MIN <= new <= COUNTER_MAX:
        return OutcomeKind.OVERFLOW
    return Put(increment.key, str(new).encode("ascii"), content_type, increment.request_id, increment.ts_ms, expires)
