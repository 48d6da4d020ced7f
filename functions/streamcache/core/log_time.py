"""Log time: the state machine's clock, one per partition, decided from the partition's records alone.

A record carries its writer's clock (``ts_ms``), and writers' clocks can be wrong. Log time decides
what every replica must agree on: which expired entries are purged (their memory and quota freed),
how long a request id is remembered (:data:`~.table.DEDUP_WINDOW_MS`), a snapshot's as-of time. So it
is a function of the log only, never of a wall clock, and a single wrong clock must not drag it far.

The rule (:func:`next_log_time`), applied to each record of a partition in order:

- two consecutive records stamped with different times *vouch* for the earlier of their times (a
  retry is the same record again, with the same time: it vouches for nothing);
- a record moves log time up to its own time, but never more than :data:`MAX_CLOCK_STEP_MS` past the
  latest time vouched for; log time never goes back;
- the partition's first record sets it (there is nothing to weigh it against, and nothing to purge).

So log time is never more than one step ahead of a time that two consecutive records agree on. What
that buys and costs:

- A record stamped far ahead takes log time at most one step past the other records' times, however
  often it lands, and so do any number of them as long as no two land one right after the other:
  they purge early only entries within a minute of their expiry, and every request id from the last
  minute is still remembered (producers retry for 30 s; the window is 120 s).
- A writer whose clock is far ahead and that writes twice in a row to a partition vouches for
  itself: records carry no writer identity, so two of its records look like two writers agreeing.
  It then expires the partition's entries by its clock. Bounding that would need a clock the writers
  do not control (the stream's own append time).
- A partition idle for an hour catches up at its second record: the first one after the gap moves
  log time by one step, and the next one vouches for the first one's time (and, if it comes within a
  step, takes log time to its own). Written every few minutes, log time stands at least at the
  previous record's time. (A bound on the step alone would fall behind for good in a quiet partition:
  written every two minutes, log time would move one minute per two.) Decisions do not wait for it: a
  record is decided and remembered as of its own writer's time when that is later (see
  :class:`~.table.Table`): a conditional write or an increment sees an entry expired by then as
  absent, as a read at its writer's instance would, and its request id is remembered from then, so
  its retry is still recognised once log time catches up. What lags, by a record, is the purge of
  other entries (memory, quota). The price: a record stamped far ahead decides its own key by its
  writer's clock, and its request id stays (one row) until log time reaches its time.

The step and the rule are part of the log's semantics, like the dedup window: every replica and the
compactor must use the same value. Pure: no clock, no I/O.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple

import orjson

#: How far past the latest time two consecutive records agree on a record may move log time. A
#: minute: larger than the skew of synchronised clocks and than the spacing of records in a busy
#: partition (where the rule then is the plain maximum of writer times), and small enough that one
#: wrong record purges little early and leaves the 120 s dedup window at least the 30 s producers
#: retry for. Part of the log's semantics: every replica must use the same value.
MAX_CLOCK_STEP_MS = 60_000

#: The ``meta`` row that keeps, per partition, the rest of :class:`LogClock` (the time vouched for and
#: the last record's time), so that a table loaded from a snapshot moves its clock as one that applied
#: every record does. A row, not a column: the schema version stays 2.
CLOCK_ROW = "log_clock"


class LogClock(NamedTuple):
    """Where a partition's clock stands: its log time and what the next record is weighed against."""

    log_time_ms: int = 0  # 0: no record applied yet
    vouched_ms: int = 0  # the latest time two consecutive records (of different times) agree on
    previous_ts_ms: int = 0  # the writer time of the last record applied (0: none)


def next_log_time(clock: LogClock, record_ts_ms: int) -> LogClock:
    """A partition's clock after applying a record its writer stamped ``record_ts_ms``.
    :meth:`~.table.Table.apply` inlines this rule; everything else that needs to know where log time
    stands (as-of moments, tools) starts from :meth:`~.table.Table.log_clock` and calls this."""
    log_time, vouched, previous = clock
    if record_ts_ms != previous:
        vouched = max(vouched, min(record_ts_ms, previous))
    if record_ts_ms > log_time:
        log_time = record_ts_ms if log_time == 0 else max(log_time, min(record_ts_ms, vouched + MAX_CLOCK_STEP_MS))
    return LogClock(log_time, vouched, record_ts_ms)


def encode_clocks(clocks: Mapping[int, LogClock]) -> str:
    """The :data:`CLOCK_ROW` value: ``{"<partition>": [vouched_ms, previous_ts_ms]}``."""
    return orjson.dumps({str(p): [c.vouched_ms, c.previous_ts_ms] for p, c in sorted(clocks.items())}).decode()


def decode_clocks(value: object) -> dict[int, tuple[int, int]]:
    """``(vouched_ms, previous_ts_ms)`` per partition from a :data:`CLOCK_ROW` value. ``None`` (no row:
    an image of an earlier version) holds none; the table then takes each partition's log time for both."""
    if value is None:
        return {}
    raw = orjson.loads(value if isinstance(value, (str, bytes)) else str(value))
    return {int(p): (int(v), int(t)) for p, (v, t) in raw.items()}
