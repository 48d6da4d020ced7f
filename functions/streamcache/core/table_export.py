"""A table's whole state as plain values, for comparing two tables (tests, the legacy converter).

Two tables with equal exports answer every read and decide every future record alike: the entries,
and per partition the next offset, the log time, the fingerprint of the last record applied
(:mod:`.identity`) and the requests remembered for de-duplication.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from streamcache.core.identity import Fingerprint
from streamcache.core.outcome import Entry, Outcome


class PartitionExport(NamedTuple):
    """One partition's part of :func:`export_state`."""

    next_offset: int
    clock_ms: int
    requests: list[tuple[int, int, Outcome]]
    last: Fingerprint | None = None
    log_clock: tuple | None = None  # the partition's whole LogClock (core/log_time.py)


def export_state(table: Any, window_ms: int) -> tuple[dict[str, Entry], dict[int, PartitionExport]]:
    """The entries of ``table`` (a :class:`~.table.Table`) and, per partition, next offset, log time,
    the last record's fingerprint, its whole log clock and the requests remembered within ``window_ms`` of log time, as
    ``(log time when applied, request hash, outcome)``, by log time then hash."""
    entries = dict(table.items())
    partitions = {}
    for p, s in sorted(table._partitions.items()):
        rows = table.db.execute(
            "SELECT seen_ms, id, kind, key, version_partition, version_offset, expires_at_ms, quota_used, "
            "quota_needed FROM requests "
            "WHERE partition = ? AND seen_ms >= ? ORDER BY seen_ms, id", (p, s.clock_ms - window_ms))
        requests = [(row[0], row[1], table._stored_outcome(p, row[2:])) for row in rows]
        partitions[p] = PartitionExport(s.next_offset, s.clock_ms, requests, table.fingerprint(p), table.log_clock(p))
    return entries, partitions
