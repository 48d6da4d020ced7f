"""The table as it was at a moment: the newest kept snapshot at or before it, plus the log up to it.

Used by ``streamcache export --as-of`` and ``streamcache restore --as-of`` (and, without a moment, by
``export`` for the table as it is now). A moment is either

- a time (RFC 3339): per partition, every record up to the first one whose writer time is later;
  that is where the partition's *log time* (the state machine's clock) passes the moment, so the
  answer is the same whoever computes it, whatever the partitions' interleaving; or
- positions, ``P-O[,P-O...]`` for every partition: the next offset per partition, as
  ``streamcache watch`` prints them (the records before those offsets are in).

A moment that neither the kept snapshots nor the stream's retention covers is refused with
:class:`Unreachable`, which names the earliest moment that can be reached.

The table is folded exactly as every instance and the compactor fold it: the same quota
(``max_bytes``, ``STREAMCACHE_MAX_BYTES``), the shared fold of :mod:`.fold`, and, for a time, the state
machine's own rule for log time (:func:`~streamcache.core.table.next_log_time`). It starts from a
snapshot that is a prefix of the answer: for a time, the newest whose as-of time (its partitions'
largest log time) is not after it; for positions, the newest that covers no partition past them (by
coverage, never by as-of time: a writer whose clock was behind gives a newer snapshot an as-of time
that is not later).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Mapping

from streamcache.core.errors import InvalidRequest, LogMismatch, LogTruncated, RecordError
from streamcache.core.quota import Quota
from streamcache.core.records import Position, format_time, parse_time
from streamcache.core.snapshot import SnapshotError, parse_name
from streamcache.core.table import Table, next_log_time
from streamcache.ports import MutationLog, SnapshotNotFound, SnapshotStore
from streamcache.replay.catalog import LoadedSnapshot, list_catalog, load_newest_valid, read_header
from streamcache.replay.fold import FoldStats, apply_decoded, decode_records, replay
from streamcache.replay.identity import check_header
from streamcache.replay.snapshot_image import fetch_image

logger = logging.getLogger("streamcache.snapshots")

#: Offsets read per request while replaying up to a moment.
CHUNK_RECORDS = 50_000


class Unreachable(InvalidRequest):
    """Neither the kept snapshots nor the stream's retention reach back to the moment asked for."""

    code = "moment_unreachable"


@dataclass(frozen=True)
class Moment:
    """A time (ms, log time) or the next offset of every partition; neither: the log's end now."""

    time_ms: int | None = None
    positions: Mapping[int, int] | None = None

    def describe(self) -> str:
        if self.time_ms is not None:
            return format_time(self.time_ms)
        if self.positions is not None:
            return ",".join(f"{p}-{o}" for p, o in sorted(self.positions.items()))
        return "now"


def parse_moment(text: str) -> Moment:
    """``2026-11-26T09:00:00Z`` (any RFC 3339 time with a zone) or ``0-120,1-98,2-77``."""
    text = text.strip()
    if "T" in text:
        try:
            return Moment(time_ms=parse_time(text))
        except ValueError:
            raise InvalidRequest(f"--as-of {text!r} is not an RFC 3339 time such as 2026-11-26T09:00:00Z") from None
    positions: dict[int, int] = {}
    for part in text.split(","):
        p, sep, o = part.strip().partition("-")
        if not sep or not p.isdigit() or not o.isdigit() or int(p) in positions:
            raise InvalidRequest(f"--as-of {text!r}: expected an RFC 3339 time (2026-11-26T09:00:00Z) or positions "
                                 "P-O[,P-O...] with the next offset of every partition, as watch prints them")
        positions[int(p)] = int(o)
    return Moment(positions=positions)


@dataclass
class TableAsOf:
    table: Table
    moment: Moment
    snapshot: str | None  # the snapshot it started from
    positions: dict[int, int] = field(default_factory=dict)  # the next offset per partition, once replayed
    records_replayed: int = 0


def table_as_of(store: SnapshotStore | None, log: MutationLog, stream: str, moment: Moment = Moment(),
                max_bytes: int = 0) -> TableAsOf:
    """The table at ``moment`` (see the module docstring) under the deployment's quota ``max_bytes``
    (``STREAMCACHE_MAX_BYTES``; 0: none). Raises :class:`Unreachable`."""
    bounds = log.bounds()
    partitions = range(log.partitions)
    if moment.positions is not None:
        missing = sorted(set(partitions) - set(moment.positions))
        beyond = {p: o for p, o in moment.positions.items() if p not in partitions or o > bounds.next.get(p, 0)}
        if missing or beyond:
            raise InvalidRequest(f"positions must name every partition (missing: {missing}) and lie within the "
                                 f"stream (beyond its end: {beyond})")
    loaded = None
    if store is not None:
        if moment.positions is not None:
            loaded = _load_within(store, stream, moment.positions)
        else:
            loaded = load_newest_valid(store, stream, as_of_ms=moment.time_ms).snapshot
    if loaded is not None and _of_another_log(log, loaded, bounds):
        loaded.table.close()
        loaded = None  # as a cold start does: the snapshot is not this log's, only the log counts
    table = loaded.table if loaded is not None else Table()
    # Before any record is applied: the quota decides outcomes, alike on every replica and the compactor.
    table.quota = Quota(max_bytes, log.partitions) if max_bytes > 0 else None
    start = {p: (loaded.header.next_offsets.get(p, 0) if loaded is not None else 0) for p in partitions}
    gone = {p: bounds.first.get(p, 0) for p in partitions if bounds.first.get(p, 0) > start[p]}
    end = dict(moment.positions) if moment.positions is not None else {p: bounds.next.get(p, 0) for p in partitions}
    if any(start[p] < end[p] for p in gone):
        raise Unreachable(_earliest(store, stream, moment, gone))
    for p, offset in start.items():  # where this table stands, even in a partition replay skips
        if offset > 0:
            table.skip(Position(p, offset - 1))
    try:
        if moment.time_ms is None:
            stats = replay(table, log, start, end)
        else:
            stats = _replay_until(table, log, start, end, moment.time_ms)
    except LogTruncated as exc:
        raise Unreachable(f"the stream dropped records while they were read: {exc}") from None
    return TableAsOf(table, moment, loaded.name if loaded is not None else None, table.next_offsets(), stats.applied)


def _of_another_log(log: MutationLog, loaded: LoadedSnapshot, bounds) -> bool:
    """True when ``loaded`` is a snapshot of another log (:mod:`streamcache.replay.identity`). A log
    whose partition count is not the snapshot's cannot be read at all: :class:`LogMismatch`."""
    header = loaded.header
    if header.partition_count is not None and header.partition_count != log.partitions:
        raise LogMismatch(f"the snapshot {loaded.name} was made of a log with {header.partition_count} partitions; "
                          f"the stream has {log.partitions}: keys hash to other partitions now, no table can be right")
    check = check_header(log, header, bounds)
    if check.other_log:
        logger.warning("snapshot %s is of another log (%s): not used", loaded.name, check.describe(),
                       extra={"fields": {"kind": "snapshot_of_another_log", "name": loaded.name}})
    return check.other_log


def _load_within(store: SnapshotStore, stream: str, positions: Mapping[int, int]) -> LoadedSnapshot | None:
    """The newest snapshot of ``stream`` that verifies and covers no partition past ``positions``, or
    ``None``. Chosen by coverage (the header), then that very object is downloaded and verified
    against the checksum in its name; a damaged or vanished one gives way to the next older one."""
    for name in list_catalog(store, stream).snapshots:
        covered = _covered(store, name)
        if covered is None or any(covered.get(p, 0) > positions.get(p, 0) for p in covered):
            continue
        try:
            snapshot, size = fetch_image(store, name)
        except SnapshotNotFound:
            continue  # pruned since the listing: the ones that replace it cover more, not less
        except SnapshotError as exc:
            logger.error("snapshot %s skipped: %s; trying an older one", name, exc,
                      extra={"fields": {"kind": "snapshot_skipped", "name": name, "detail": str(exc)}})
            continue
        if snapshot.header.stream != stream or any(
                snapshot.header.next_offsets.get(p, 0) > positions.get(p, 0) for p in snapshot.header.next_offsets):
            snapshot.table.close()
            continue
        return LoadedSnapshot(name, snapshot.header, snapshot.table, size, 0.0)  # load time: not timed here
    return None


def _replay_until(table: Table, log: MutationLog, start: dict[int, int], end: dict[int, int],
                  time_ms: int) -> FoldStats:
    """Apply each partition's records in ``[start, end)`` up to the first one at which the partition's
    log time passes ``time_ms`` (the state machine's own rule, :func:`next_log_time`), through the
    shared fold. Per partition: where one stops depends only on that partition's records."""
    stats = FoldStats()
    for partition in sorted(start):
        offset, clock = start[partition], table.log_clock(partition)
        while offset < end.get(partition, 0):
            upto = min(offset + CHUNK_RECORDS, end[partition])
            decoded = decode_records(log.read({partition: offset}, {partition: upto}), log.partition_for)
            cut = len(decoded)
            for index, (_, mutation) in enumerate(decoded):
                if isinstance(mutation, RecordError):
                    continue  # not ours: skipped alike everywhere, and it moves no clock
                clock = next_log_time(clock, mutation.ts_ms)
                if clock.log_time_ms > time_ms:
                    cut = index  # the partition's log time passes the moment here
                    break
            with table.batch():
                stats.add(apply_decoded(table, decoded[:cut]))
            if cut < len(decoded):
                break
            offset = upto
    return stats


def _covered(store: SnapshotStore, name: str) -> dict[int, int] | None:
    try:
        return dict(read_header(store, name)[0].next_offsets)
    except Exception:  # unreadable: not a candidate
        return None


def _earliest(store: SnapshotStore | None, stream: str, moment: Moment, gone: dict[int, int]) -> str:
    oldest = None
    if store is not None:
        snapshots = list_catalog(store, stream).snapshots
        if snapshots:
            oldest = parse_name(snapshots[-1]).as_of_ms
    lost = ", ".join(f"partition {p} before offset {o}" for p, o in sorted(gone.items()))
    reach = (f"the earliest moment that can be reached is {format_time(oldest)} (the oldest snapshot kept)"
             if oldest is not None else "no snapshot is kept, so only the stream's own records can be replayed")
    return (f"{moment.describe()} cannot be reached: the stream no longer holds the records it needs "
            f"({lost}); {reach}")

