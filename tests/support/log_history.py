"""Writing histories of records to a log, and the tables everything must agree on (compaction and
cold-start tests).

Records are encoded with the real codec and appended to a real log adapter, as the cache function
writes them; "the truth" is a plain replica that replayed the whole log from offset 0.
"""

from __future__ import annotations

import itertools
from typing import Iterable

from streamcache.core.records import Delete, Precondition, Put, encode
from streamcache.core.table import Table
from streamcache.replay.fold import apply_records
from streamcache.ports import MutationLog

START_MS = 1_700_000_000_000
_ids = itertools.count()


def put(log: MutationLog, key: str, value: bytes, ts_ms: int = START_MS, ttl_ms: int | None = None,
        precondition: Precondition | None = None, content_type: str = "text/plain", request_id: str | None = None):
    expires = None if ttl_ms is None else ts_ms + ttl_ms
    mutation = Put(key, value, content_type, request_id or f"req-{next(_ids)}", ts_ms, expires, precondition)
    return log.append(key, encode(mutation))


def delete(log: MutationLog, key: str, ts_ms: int = START_MS, precondition: Precondition | None = None):
    return log.append(key, encode(Delete(key, f"req-{next(_ids)}", ts_ms, precondition)))


def foreign(log: MutationLog, key: str) -> None:
    """A record some other producer wrote to the stream: every reader skips it."""
    log.append(key, b"not a streamcache record")


def fill(log: MutationLog, count: int, keys: int = 50, ts_ms: int = START_MS, prefix: str = "k") -> dict[str, bytes]:
    """``count`` puts over ``keys`` keys; returns the last value of each key."""
    latest = {}
    for i in range(count):
        key = f"{prefix}{i % keys}"
        value = f"{prefix}-{i}".encode()
        put(log, key, value, ts_ms + i)
        latest[key] = value
    return latest


def full_replay(log: MutationLog) -> Table:
    """The table of every record the log holds, replayed from its first offsets."""
    table = Table()
    bounds = log.bounds()
    apply_records(table, log.read(dict(bounds.first), dict(bounds.next)), log.partition_for)
    return table


def values(table: Table, now_ms: int, keys: Iterable[str] | None = None) -> dict[str, bytes]:
    """What readers see at ``now_ms``: every live key and its value."""
    if keys is None:
        return {key: entry.value for key, entry in table.scan("", None, now_ms)}
    out = {}
    for key in keys:
        entry = table.get(key, now_ms)
        if entry is not None:
            out[key] = entry.value
    return out
