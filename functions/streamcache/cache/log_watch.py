"""Noticing that the mutation log went backwards: it now ends below what this instance applied.

That happens when the stream was deleted and recreated under the same name, or when a broker that
keeps its log in memory (the local Tansu) restarted: every record is gone and offsets start again
at 0. A replica that carried on would skip the new records up to its old offsets (its answers
would mix the lost stream with the new one) and would not find its own new writes at all. So the
replica asks :class:`LogWatch` and, on a regression, drops its table and replays the stream as it
is now: every instance then answers what the stream says, as a fresh instance would. The loss
itself cannot be undone; it is reported loudly instead: an ERROR log line and ``/health``
(``log_regressions``, ``log_regression``) until the instance is replaced.

Two exact signals, no guessing:

- :func:`check_log_regression`: the log's bounds end below the applied positions (the adapter's
  ``bounds()`` must be exact: a cached high watermark from before a broker restart is not);
- :func:`own_write_regression`: this instance's own append came back at an offset it had already
  applied, without it ever having seen that request: the offsets were reused.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping

from streamcache.core.records import Position, format_time
from streamcache.ports import LogBounds

log = logging.getLogger("streamcache.cache.replica")

#: How often a catch-up asks the log for its bounds to compare (a ListOffsets round trip).
CHECK_EVERY_S = 5.0


def check_log_regression(applied: Mapping[int, int], bounds: LogBounds) -> str | None:
    """What went backwards, or None: ``applied`` (next offset per partition, as the replica holds
    it) above ``bounds.next``, or partitions that the log no longer has."""
    problems = []
    for partition in sorted(applied):
        done = applied[partition]
        if done <= 0:
            continue
        end = bounds.next.get(partition)
        if end is None:
            problems.append(f"partition {partition} is gone (this instance had applied offsets up to {done - 1})")
        elif end < done:
            problems.append(f"partition {partition} ends at offset {end} but this instance had applied up to {done - 1}")
    if not problems:
        return None
    return "the stream went backwards: " + "; ".join(problems)


def own_write_regression(position: Position, applied_next: int) -> str | None:
    """What went backwards, or None, when this instance's own append landed at ``position`` and the
    record was not found among those it applied (``applied_next``: its next offset there)."""
    if position.offset >= applied_next:
        return None
    return (f"the stream went backwards: this instance's write landed at {position}, an offset of "
            f"partition {position.partition} it had already applied (up to {applied_next - 1}) with other records")


class LogWatch:
    """When to look, and what was found. Thread-safe enough: the replica calls it under its lock."""

    def __init__(self, check_every_s: float = CHECK_EVERY_S, monotonic: Callable[[], float] | None = None,
                 clock: Callable[[], float] | None = None) -> None:
        self.check_every_s = check_every_s
        # None: looked up at each call so that freezegun can control them in tests.
        self._monotonic = monotonic
        self._clock = clock
        self._last_check: float | None = None
        self.regressions = 0
        self.last_problem: str | None = None
        self.last_at_ms: int | None = None

    def due(self) -> bool:
        """True when the last comparison with the log's bounds is older than ``check_every_s``."""
        now = (self._monotonic or time.monotonic)()
        if self._last_check is not None and now - self._last_check < self.check_every_s:
            return False
        self._last_check = now
        return True

    def check(self, applied: Mapping[int, int], bounds: LogBounds) -> str | None:
        """Compare; report and return the problem if the log went backwards."""
        problem = check_log_regression(applied, bounds)
        if problem:
            self.report(problem)
        return problem

    def check_own_write(self, position: Position, applied_next: int) -> str | None:
        problem = own_write_regression(position, applied_next)
        if problem:
            self.report(problem)
        return problem

    def report(self, problem: str) -> None:
        self.regressions += 1
        self.last_problem = problem
        self.last_at_ms = int((self._clock or time.time)() * 1000)
        log.error("%s; the records this instance had applied are gone from the stream. Dropping the "
                  "table and replaying the stream as it is now: writes acknowledged before are lost.",
                  problem, extra={"fields": {"event": "log_regression", "regressions": self.regressions}})

    def health(self) -> dict:
        """The ``/health`` fields: how many regressions this instance saw, and the last one."""
        last = None
        if self.last_problem is not None:
            last = {"message": self.last_problem, "detected_at": format_time(self.last_at_ms or 0)}
        return {"log_regressions": self.regressions, "log_regression": last}
