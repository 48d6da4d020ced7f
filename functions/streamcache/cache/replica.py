"""One instance's replica of the table, kept up to date by reading the mutation log.

The replica is the only owner of "how far this instance has applied": the table's per-partition
next offsets. It moves forward in three ways only:

- :meth:`Replica.catch_up`: every partition, to the log end as of the call (bounded-staleness and
  strong reads);
- :meth:`Replica.apply_own`: this instance's own write. When everything before the record's offset in
  its partition is applied already, the record this instance holds is applied directly, with no
  read; otherwise (someone else's records lie in between) :meth:`Replica.apply_through` reads the
  partition through that position. Either way the write's outcome is the outcome of applying that
  very record in log order (read-your-writes);
- :meth:`Replica.install`: the table a restore built (a snapshot plus the replayed tail; see
  :mod:`streamcache.cache.cold_start`), at cold start and after a **reload**;
- nothing else. Catching up happens inside requests (OCI may freeze a container between
  invocations); only restores run in a thread.

Every read of the log tells :attr:`Replica.pacer` whether the broker throttled it (an adapter that
can be throttled counts its throttled answers in ``throttled_responses``; see
:mod:`streamcache.cache.read_pacing`): the service then spaces default reads' catch-ups out, and the
periodic look at the log backs off with them.

A reload replaces the table when the replica cannot go on from where it stands: the log proved it
went backwards (:mod:`streamcache.cache.log_watch`: a short end is only a suspicion until a fetch at
the applied position finds the record gone or different), or retention dropped records it has not
applied yet. The replica then never replays the log itself: it asks for a reload
(:attr:`Replica.reloader`, the cold start's background restore: the newest snapshot of this log plus
the tail) and, until :meth:`install`, answers every operation that needs the log with
:class:`~streamcache.core.errors.Restoring` at once (the service serves default reads from the old
table, marked stale). A partition count that changed under the running process makes it refuse
(:class:`~streamcache.core.errors.LogMismatch`) until it is replaced.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Mapping

from streamcache.core.errors import LogMismatch, LogTruncated, PositionNotReached, RecordError, Restoring
from streamcache.core.records import Mutation, Position, decode
from streamcache.core.quota import Quota
from streamcache.core.table import Outcome, Table
from streamcache.replay.fold import FoldStats, apply_records
from streamcache.replay.identity import check_table
from streamcache.cache.log_watch import (CHECK_EVERY_S, LogWatch, check_log_regression, own_write_regression,
                                        partitions_changed)
from streamcache.cache.read_pacing import ReadPacer
from streamcache.ports import MutationLog

log = logging.getLogger("streamcache.cache.replica")

#: A tail longer than this (seen by the periodic look at the log) is not read inside a request: a
#: request's read of the log has a deadline (the Kafka adapter's READ_DEADLINE_S) and a longer tail
#: would miss it in every request, throwing its progress away each time. It is reloaded in the
#: background instead (the newest snapshot plus the tail), with default reads served stale meanwhile.
RELOAD_TAIL_RECORDS = 100_000


class Replica:
    """A table plus the position it has applied. Thread-safe; operations are serialised."""

    def __init__(self, mutation_log: MutationLog, monotonic: Callable[[], float] | None = None,
                 max_bytes: int = 0) -> None:
        #: The memory quota every replica and the compactor apply alike (None: no bound).
        self.quota = Quota(max_bytes, mutation_log.partitions) if max_bytes > 0 else None
        self.table = Table(self.quota)
        self._log = mutation_log
        # None: time.monotonic, looked up at each call so that freezegun can control it in tests.
        self._monotonic = monotonic or (lambda: time.monotonic())
        self._lock = threading.RLock()
        self._last_catch_up: float | None = None
        self.records_applied = 0
        self.records_skipped = 0
        self.records_misplaced = 0  # of the skipped: records in another partition than their key's
        self.catch_ups = 0  # full catch-ups so far: tells a caller whether one ran during its request
        # Per partition, the largest log end this instance knows of (the end a restore captured, what
        # catch-ups and its own writes reached): lag is measured against it without asking the broker.
        self.known_end: dict[int, int] = {}
        self.watch = LogWatch()  # notices a log that went backwards (recreated, or a broker that lost it)
        #: How often catch-ups may happen, learnt from the broker's throttling; the service sets its
        #: bound (the staleness bound) from its limits.
        self.pacer = ReadPacer(1.0, monotonic=self._monotonic)
        #: Why the table is being reloaded (``None``: it is not); set until :meth:`install`.
        self.reloading: str | None = None
        #: Starts the background reload (the cold start's :meth:`~streamcache.cache.cold_start.ColdStart.reload`);
        #: called again by every operation while one is due, so a reload that failed is retried.
        self.reloader: Callable[[str], None] | None = None
        self.reload_tail_records = RELOAD_TAIL_RECORDS
        #: Why this process refuses to answer (the log's partition count changed under it), or ``None``.
        self.refused: str | None = None
        # Own writes applied from the record held (no read) and by reading the log back (see apply_own).
        self.own_direct = 0
        self.own_read_back = 0

    @property
    def log(self) -> MutationLog:
        return self._log

    def positions(self) -> dict[int, int]:
        """Next offset to apply, for every partition of the log."""
        applied = self.table.next_offsets()
        return {p: applied.get(p, 0) for p in range(self._log.partitions)}

    def monotonic(self) -> float:
        """This replica's clock (the one staleness is measured with)."""
        return self._monotonic()

    def lag_records(self) -> int:
        """Records known to exist beyond what this replica applied (as of its last look at the log)."""
        positions = self.table.next_offsets()
        return sum(max(0, end - positions.get(p, 0)) for p, end in self.known_end.items())

    def install(self, table: Table, end: dict[int, int], began_at: float, stats: FoldStats) -> None:
        """Replace the table with the one a restore built up to ``end`` (the log end captured at
        ``began_at``, this replica's clock): it counts as a full catch-up that began then."""
        with self._lock:
            self.table = table
            self.reloading = None
            self.known_end = dict(end)
            self._last_catch_up = began_at
            self.catch_ups += 1
            self.records_applied += stats.applied
            self.records_skipped += stats.skipped
            self.records_misplaced += stats.misplaced

    def seconds_since_catch_up(self) -> float | None:
        """Monotonic seconds since the last full catch-up began, ``None`` if there was none yet."""
        if self._last_catch_up is None:
            return None
        return self._monotonic() - self._last_catch_up

    def catch_up(self) -> int:
        """Apply every record up to the log end as of now. Returns how many records were applied."""
        with self._lock:
            self.ensure_serving(strong=True)
            started = self._monotonic()
            throttled = self._throttled()
            try:
                # The periodic look costs a few read requests per partition: it backs off with the pacer.
                self.watch.check_every_s = max(CHECK_EVERY_S, 5 * self.pacer.interval_s)
                if self.watch.due():
                    self._check_log()
                count = self._apply_all(self._read(self.positions()))
            except BaseException:
                self._note_throttling(throttled)  # a failed catch-up never speeds the pace up
                raise
            self.pacer.record(self._throttled() - throttled)
            self._last_catch_up = started
            self.catch_ups += 1
            return count

    def _throttled(self) -> int:
        """Read answers the broker throttled so far (0 for a log that is never throttled)."""
        return int(getattr(self._log, "throttled_responses", 0))

    def apply_past(self, after: Mapping[int, int]) -> None:
        """Make sure every position in ``after`` (partition -> offset) is applied: read the partitions
        that are behind, to the log end, and nothing when none is (a session's read-your-writes).
        Raises :class:`PositionNotReached` for a position beyond the log's end, or in a partition the
        log does not have."""
        with self._lock:
            # The old table's positions are of a log that may be gone: no session is judged by them.
            self.ensure_serving(strong=True)
            applied = self.positions()
            behind = {p: applied[p] for p, offset in after.items() if p in applied and applied[p] <= offset}
            if behind:
                self._paced_apply(behind)
                applied = self.positions()
            missing = {p: o for p, o in after.items() if p not in applied or applied[p] <= o}
            if missing:
                ends = ", ".join(f"partition {p} ends at {applied[p] - 1}" if applied.get(p) else
                                 f"partition {p} holds nothing" if p in applied else f"there is no partition {p}"
                                 for p in sorted(missing))
                wanted = ",".join(f"{p}-{o}" for p, o in sorted(missing.items()))
                raise PositionNotReached(f"position {wanted} lies beyond the stream's end ({ends}): not a position "
                                         "of this stream (recreated?), or one no write of it was answered with")

    def catch_up_if_older_than(self, max_age_s: float) -> bool:
        """Catch up unless the last full catch-up began less than ``max_age_s`` ago."""
        age = self.seconds_since_catch_up()
        if age is not None and age < max_age_s:
            return False
        self.catch_up()
        return True

    def apply_own(self, position: Position, record: bytes | Mutation, request_id: str) -> Outcome:
        """The outcome of this instance's own append of ``record`` (the encoded bytes, or what
        :func:`~streamcache.core.records.decode` made of them) at ``position``.

        The fast path is only taken when this replica's next offset in the partition is exactly
        ``position.offset``: then no record, ours or anyone's, lies between what was applied and
        ours, so applying it now is applying it in log order. The bytes are decoded as every other
        replica decodes them from the log, so all of them compute the same outcome. Anything else
        (foreign records in between, an offset already passed, a record that does not decode) reads
        the log, where :meth:`apply_through` also notices a log that went backwards."""
        with self._lock:
            self.ensure_serving(strong=True)  # a reload began since the append: the outcome is the new table's
            partition = position.partition
            state_next = self.table.next_offset(partition)
            if state_next == position.offset:
                try:
                    mutation = decode(record) if isinstance(record, bytes) else record
                except RecordError:
                    mutation = None  # every replica skips it; apply_through reports it
                if mutation is not None and mutation.request_id == request_id:
                    outcome = self.table.apply(position, mutation)
                    if outcome is not None:
                        self.records_applied += 1
                        self.own_direct += 1
                        if position.offset + 1 > self.known_end.get(partition, 0):
                            self.known_end[partition] = position.offset + 1
                        return outcome
            self.own_read_back += 1
            return self.apply_through(position, request_id)

    def apply_through(self, position: Position, request_id: str) -> Outcome:
        """Apply ``position``'s partition up to and including ``position`` and return the outcome of
        the request ``request_id`` that was appended there (the first outcome, if it was a retry)."""
        with self._lock:
            self.ensure_serving(strong=True)
            partition = position.partition
            start = {partition: self.positions()[partition]}
            if start[partition] <= position.offset:
                self._paced_apply(start, {partition: position.offset + 1})
            outcome = self.table.outcome_for(partition, request_id)
            suspicion = None if outcome is not None else own_write_regression(position, start[partition])
            if suspicion is not None:
                self._confirm(suspicion, self._log.bounds())  # raises Restoring once proven
            if outcome is None:
                raise RecordError(f"the record at {position} was not read back as request {request_id}")
            return outcome

    def ensure_serving(self, strong: bool) -> None:
        """Raise what an operation must be answered with instead: :class:`LogMismatch` while this
        process refuses, :class:`Restoring` while a reload runs (``strong``: for operations that need
        the log or the new table; a default read is served from the old table, marked stale)."""
        if self.refused is not None:
            raise LogMismatch(self.refused)
        if strong and self.reloading is not None:
            self._ask_reload(self.reloading)
            raise Restoring(f"reloading the table ({self.reloading})")

    def _check_log(self) -> None:
        """The periodic look at the log (see log_watch): its partition count, then its end."""
        changed = partitions_changed(self._log.partitions, self._log.current_partitions())
        if changed is not None:
            self.refused = changed
            log.error(changed, extra={"fields": {"event": "partition_count_changed"}})
            raise LogMismatch(changed)
        bounds = self._log.bounds()
        applied = self.positions()
        suspicion = check_log_regression(applied, bounds)
        if suspicion is not None:
            self._confirm(suspicion, bounds)
        tail = sum(max(0, end - applied.get(p, 0)) for p, end in bounds.next.items())
        if tail > self.reload_tail_records:
            raise self._begin_reload(f"a tail of {tail:,} records is longer than a request reads "
                                     f"({self.reload_tail_records:,}): reloaded in the background")

    def _confirm(self, suspicion: str, bounds) -> None:
        """A short end (or an own write at an applied offset) is only a suspicion: fetch the record
        this table applied last in each partition. Gone or another one: the log went backwards, report
        it and reload (raises :class:`Restoring`). Found: the end answer was short, nothing changes."""
        identity = check_table(self._log, self.table, bounds)
        if not identity.other_log:
            self.watch.refuted(suspicion, identity.describe())
            return
        problem = self.watch.report(f"{suspicion}; proof: {identity.describe()}")
        raise self._begin_reload(problem)

    def _begin_reload(self, reason: str) -> Restoring:
        """Ask for a reload; the error to answer the operation that found the need with."""
        self.reloading = reason
        self._ask_reload(reason)
        return Restoring(f"reloading the table ({reason})")

    def _ask_reload(self, reason: str) -> None:
        if self.reloader is not None:
            self.reloader(reason)

    def _read(self, start: dict[int, int], end: dict[int, int] | None = None):
        """Read the log. If retention already dropped records this instance never applied, reload
        (the newest snapshot may cover the gap; if none does, the reload reports the loss)."""
        try:
            return self._log.read(start, end)
        except LogTruncated as exc:
            raise self._begin_reload(f"this instance fell behind the stream's retention: {exc}") from exc

    def _paced_apply(self, start: dict[int, int], end: dict[int, int] | None = None) -> None:
        """Read and apply a part of the log outside a catch-up; throttling met on the way slows the
        catch-ups down (reads that went through unthrottled are no news: only catch-ups speed up)."""
        throttled = self._throttled()
        try:
            self._apply_all(self._read(start, end))
        finally:
            self._note_throttling(throttled)

    def _note_throttling(self, before: int) -> None:
        """Slow the pace down if answers were throttled since the count was ``before``."""
        if self._throttled() > before:
            self.pacer.record(self._throttled() - before)

    def _apply_all(self, records) -> int:
        stats = apply_records(self.table, records, self._log.partition_for)
        self.records_applied += stats.applied
        self.records_skipped += stats.skipped
        self.records_misplaced += stats.misplaced
        known = self.known_end
        for p, offset in self.table.next_offsets().items():
            if offset > known.get(p, 0):
                known[p] = offset
        return stats.applied
