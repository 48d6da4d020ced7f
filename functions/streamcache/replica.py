"""One instance's replica of the table, kept up to date by reading the mutation log.

The replica is the only owner of "how far this instance has applied": the table's per-partition
next offsets. It moves forward in three ways only:

- :meth:`Replica.catch_up`: every partition, to the log end as of the call (bounded-staleness and
  strong reads, cold start);
- :meth:`Replica.apply_through`: one partition, through the position of this instance's own write
  (read-your-writes; the write's outcome is the outcome of applying that very record);
- nothing else. There are no background threads: OCI may freeze a container between invocations,
  so all catching up happens inside a request.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

from .core.errors import RecordError
from .core.records import Position, decode
from .core.table import Outcome, Table
from .ports import LogRecord, MutationLog

log = logging.getLogger("streamcache.replica")


class Replica:
    """A table plus the position it has applied. Thread-safe; operations are serialised."""

    def __init__(self, mutation_log: MutationLog, monotonic: Callable[[], float] | None = None) -> None:
        self.table = Table()
        self._log = mutation_log
        # None: time.monotonic, looked up at each call so that freezegun can control it in tests.
        self._monotonic = monotonic or (lambda: time.monotonic())
        self._lock = threading.RLock()
        self._last_catch_up: float | None = None
        self.records_applied = 0
        self.records_skipped = 0
        self.catch_ups = 0  # full catch-ups so far: tells a caller whether one ran during its request

    @property
    def log(self) -> MutationLog:
        return self._log

    def positions(self) -> dict[int, int]:
        """Next offset to apply, for every partition of the log."""
        applied = self.table.next_offsets()
        return {p: applied.get(p, 0) for p in range(self._log.partitions)}

    def seconds_since_catch_up(self) -> float | None:
        """Monotonic seconds since the last full catch-up began, ``None`` if there was none yet."""
        if self._last_catch_up is None:
            return None
        return self._monotonic() - self._last_catch_up

    def catch_up(self) -> int:
        """Apply every record up to the log end as of now. Returns how many records were applied."""
        with self._lock:
            started = self._monotonic()
            count = self._apply_all(self._log.read(self.positions()))
            self._last_catch_up = started
            self.catch_ups += 1
            return count

    def catch_up_if_older_than(self, max_age_s: float) -> bool:
        """Catch up unless the last full catch-up began less than ``max_age_s`` ago."""
        age = self.seconds_since_catch_up()
        if age is not None and age < max_age_s:
            return False
        self.catch_up()
        return True

    def apply_through(self, position: Position, request_id: str) -> Outcome:
        """Apply ``position``'s partition up to and including ``position`` and return the outcome of
        the request ``request_id`` that was appended there (the first outcome, if it was a retry)."""
        with self._lock:
            partition = position.partition
            start = {partition: self.positions()[partition]}
            if start[partition] <= position.offset:
                self._apply_all(self._log.read(start, {partition: position.offset + 1}))
            outcome = self.table.outcome_for(partition, request_id)
            if outcome is None:
                raise RecordError(f"the record at {position} was not read back as request {request_id}")
            return outcome

    def _apply_all(self, records) -> int:
        count = 0
        for record in records:
            if self._apply(record) is not None:
                count += 1
        return count

    def _apply(self, record: LogRecord) -> Outcome | None:
        try:
            mutation = decode(record.value)
        except RecordError as exc:
            # A foreign or corrupt record must not stop the replica; every replica skips it alike.
            self.table.skip(record.position)
            self.records_skipped += 1
            log.warning("skipped record at %s: %s", record.position, exc)
            return None
        outcome = self.table.apply(record.position, mutation)
        if outcome is not None:
            self.records_applied += 1
        return outcome
