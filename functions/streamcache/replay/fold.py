"""Folding log records into a table: the one loop a cold start, a catch-up and the compactor share.

Every record is decoded and applied in log order; a record that is not ours (undecodable) is skipped
alike everywhere, so that every replica and every snapshot agree on the table. :func:`replay` reads a
range of the log in chunks, so that memory stays bounded and progress can be reported on big ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterable, Mapping

from streamcache.core.errors import RecordError
from streamcache.core.records import Mutation, Position, decode
from streamcache.core.snapshot import gc_paused
from streamcache.core.table import Table
from streamcache.ports import LogRecord, MutationLog
from streamcache.replay.progress import Progress

log = logging.getLogger("streamcache.cache.replica")

#: Records per read of a chunked replay (all partitions together). Large enough that the Kafka
#: adapter's re-fetch at a chunk boundary (up to one poll of 10,000 records) costs a few percent.
CHUNK_RECORDS = 200_000
#: At most this many skipped records are logged one by one per fold; the rest are only counted.
MAX_SKIP_WARNINGS = 20


@dataclass
class FoldStats:
    """What a fold did: records read, applied (new), and skipped (not ours)."""

    read: int = 0
    applied: int = 0
    skipped: int = 0

    def add(self, other: "FoldStats") -> None:
        self.read += other.read
        self.applied += other.applied
        self.skipped += other.skipped


def apply_records(table: Table, records: Iterable[LogRecord]) -> FoldStats:
    """Apply ``records`` to ``table`` in order. The hot loop of every replay: locals only."""
    apply, skip, decode_value = table.apply, table.skip, decode
    read = applied = skipped = 0
    for record in records:
        read += 1
        try:
            mutation = decode_value(record.value)
        except RecordError as exc:
            # A foreign or corrupt record must not stop anything; every replica skips it alike.
            skip(record.position)
            skipped += 1
            if skipped <= MAX_SKIP_WARNINGS:
                log.warning("skipped record at %s: %s", record.position, exc)
            continue
        if apply(record.position, mutation) is not None:
            applied += 1
    if skipped > MAX_SKIP_WARNINGS:
        log.warning("skipped %d records that are not streamcache records (first %d logged)", skipped, MAX_SKIP_WARNINGS)
    return FoldStats(read, applied, skipped)


def decode_records(records: Iterable[LogRecord]) -> list[tuple[Position, Mutation | RecordError]]:
    """Each record's position and its mutation (or why it is not ours), for :func:`apply_decoded`:
    lets a thread decode while another does something else (the cold start's fast path)."""
    out: list[tuple[Position, Mutation | RecordError]] = []
    append, decode_value = out.append, decode
    for record in records:
        try:
            append((record.position, decode_value(record.value)))
        except RecordError as exc:
            append((record.position, exc))
    return out


def apply_decoded(table: Table, decoded: Iterable[tuple[Position, Mutation | RecordError]]) -> FoldStats:
    """:func:`apply_records` for records :func:`decode_records` decoded already."""
    apply, skip = table.apply, table.skip
    read = applied = skipped = 0
    for position, mutation in decoded:
        read += 1
        if isinstance(mutation, RecordError):
            skip(position)
            skipped += 1
            if skipped <= MAX_SKIP_WARNINGS:
                log.warning("skipped record at %s: %s", position, mutation)
            continue
        if apply(position, mutation) is not None:
            applied += 1
    if skipped > MAX_SKIP_WARNINGS:
        log.warning("skipped %d records that are not streamcache records (first %d logged)", skipped, MAX_SKIP_WARNINGS)
    return FoldStats(read, applied, skipped)


def replay(
    table: Table,
    mutation_log: MutationLog,
    start: Mapping[int, int],
    end: Mapping[int, int],
    progress: Progress | None = None,
    chunk_records: int = CHUNK_RECORDS,
) -> FoldStats:
    """Apply every record of ``[start[p], end[p])`` to ``table``, reading at most ``chunk_records``
    offsets per read. Partitions missing from ``end`` are not read."""
    cursor = {p: s for p, s in start.items() if p in end and s < end[p]}
    stats = FoldStats()
    per_partition = max(1_000, chunk_records // max(1, len(cursor)))
    while cursor:
        upto = {p: min(c + per_partition, end[p]) for p, c in cursor.items()}
        records = mutation_log.read(dict(cursor), upto)
        with gc_paused(), table.batch():
            stats.add(apply_records(table, records))
        del records
        cursor = {p: u for p, u in upto.items() if u < end[p]}
        if progress is not None:
            progress.update(stats.read)
    return stats
