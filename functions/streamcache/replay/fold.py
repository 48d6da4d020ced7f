"""Folding log records into a table: the one loop a cold start, a catch-up and the compactor share.

Every record is decoded and applied in log order; a record that is not ours (undecodable) is skipped
alike everywhere, so that every replica and every snapshot agree on the table. :func:`replay` reads a
range of the log in chunks, so that memory stays bounded and progress can be reported on big ranges.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable, Iterable, Mapping

from streamcache.core.errors import RecordError
from streamcache.core.records import Mutation, Position, decode
from streamcache.core.snapshot import gc_paused
from streamcache.core.table import Table
from streamcache.ports import LogRecord, MutationLog
from streamcache.replay.progress import Progress

log = logging.getLogger("streamcache.cache.replica")

#: Records per read of a chunked replay (all partitions together). Large enough that the Kafka
#: adapter's re-fetch at a chunk boundary (up to one poll of 2,000 records) costs a few percent.
CHUNK_RECORDS = 200_000
#: At most this many skipped records are logged one by one per fold; the rest are only counted.
MAX_SKIP_WARNINGS = 20


@dataclass
class FoldStats:
    """What a fold did: records read, applied (new), and skipped (not ours)."""

    read: int = 0
    applied: int = 0
    skipped: int = 0
    misplaced: int = 0  # of the skipped: valid records in another partition than their key's

    def add(self, other: "FoldStats") -> None:
        self.read += other.read
        self.applied += other.applied
        self.skipped += other.skipped
        self.misplaced += other.misplaced


def decode_placed(record: LogRecord, partition_for: Callable[[str], int]) -> Mutation:
    """The record's mutation, if it is ours and in its key's partition. Raises :class:`RecordError`
    otherwise. A record another producer put in another partition than the key's (kcat's default
    partitioner, a Kafka key that is not the subject) would make the key's value depend on how a
    replica interleaved two partitions: every replica and the compactor skip it, alike."""
    mutation = decode(record.value)
    if partition_for(mutation.key) != record.position.partition:
        raise MisplacedRecord(f"the record for key {mutation.key[:80]!r} is in partition {record.position.partition}; "
                              f"its key's partition is {partition_for(mutation.key)}")
    return mutation


class MisplacedRecord(RecordError):
    """A valid record in another partition than its key's: not ours to apply."""


def apply_records(table: Table, records: Iterable[LogRecord], partition_for: Callable[[str], int]) -> FoldStats:
    """Apply ``records`` to ``table`` in order; ``partition_for`` is the log's (see
    :func:`decode_placed`). The hot loop of every replay: locals only."""
    return apply_decoded(table, decode_records(records, partition_for))


def decode_records(records: Iterable[LogRecord],
                   partition_for: Callable[[str], int]) -> list[tuple[Position, Mutation | RecordError]]:
    """Each record's position and its mutation (or why it is not ours), for :func:`apply_decoded`:
    lets a thread decode while another does something else (the cold start's fast path)."""
    out: list[tuple[Position, Mutation | RecordError]] = []
    append = out.append
    for record in records:
        try:
            append((record.position, decode_placed(record, partition_for)))
        except RecordError as exc:
            append((record.position, exc))
    return out


def apply_decoded(table: Table, decoded: Iterable[tuple[Position, Mutation | RecordError]]) -> FoldStats:
    """Apply what :func:`decode_records` decoded; records that are not ours are skipped, counted and
    logged (the first :data:`MAX_SKIP_WARNINGS` of a fold)."""
    apply, skip = table.apply, table.skip
    read = applied = skipped = misplaced = 0
    for position, mutation in decoded:
        read += 1
        if isinstance(mutation, RecordError):
            skip(position)
            skipped += 1
            misplaced += isinstance(mutation, MisplacedRecord)
            if skipped <= MAX_SKIP_WARNINGS:
                log.warning("skipped record at %s: %s", position, mutation,
                            extra={"fields": {"event": "record_skipped", "misplaced": isinstance(mutation, MisplacedRecord)}})
            continue
        if apply(position, mutation) is not None:
            applied += 1
    if skipped > MAX_SKIP_WARNINGS:
        log.warning("skipped %d records that are not streamcache records (first %d logged)", skipped, MAX_SKIP_WARNINGS)
    return FoldStats(read, applied, skipped, misplaced)


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
            stats.add(apply_records(table, records, mutation_log.partition_for))
        del records
        cursor = {p: u for p, u in upto.items() if u < end[p]}
        if progress is not None:
            progress.update(stats.read)
    return stats
