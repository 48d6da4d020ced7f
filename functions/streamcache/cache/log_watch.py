"""Noticing that the mutation log went backwards, or changed its partition count, under a running instance.

A log goes backwards when the stream was deleted and recreated under the same name, or when a broker
that keeps its log in memory (the local Tansu) restarted: the records are gone and offsets start
again at 0. A replica that carried on would skip the new records up to its old offsets (its answers
would mix the lost stream with the new one) and would not find its own new writes at all.

Two signals raise the **suspicion**, and neither is acted on alone:

- :func:`check_log_regression`: the log's bounds end below the applied positions. An end answer can
  be short without anything being lost (Tansu's ListOffsets answers the base offset of the last
  batch plus one, and the fetch that corrects it may time out);
- :func:`own_write_regression`: this instance's own append came back at an offset it had already
  applied, without it ever having seen that request.

The **proof** is a fetch of the log itself at the applied positions
(:func:`streamcache.replay.identity.check_table`: the record this table applied last in each
partition, gone or another one). Only then does the replica report the regression loudly (an ERROR
line and ``/health``: ``log_regressions``, ``log_regression``, until the instance is replaced) and
reload its table through the newest snapshot of the log as it now is (see
:mod:`streamcache.cache.replica`). A suspicion the fetch refutes is a WARNING and changes nothing.

The same periodic look asks the log for its partition count from fresh metadata
(``MutationLog.current_partitions``): a count that is not the one this process places keys with
(:func:`partitions_changed`) means keys now hash elsewhere, and the instance refuses to answer.
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
REGRESSION_PREFIX = "the stream went backwards: "


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
    return REGRESSION_PREFIX + "; ".join(problems)


def partitions_changed(placed: int, current: int) -> str | None:
    """What changed, or None, when this process places keys over ``placed`` partitions and the log
    now has ``current``."""
    if placed == current:
        return None
    return (f"PARTITION COUNT CHANGED under a running instance: its data was placed over {placed} partitions, the "
            f"log now has {current}. Keys hash to other partitions now, so no answer would be right: every "
            "request but /health is refused. Operator: give the stream its "
            f"{placed} partitions back (recreate it), or start a new stream and seed it from the last snapshot "
            "(see infra/README.md, 'The stream was recreated').")


def own_write_regression(position: Position, applied_next: int) -> str | None:
    """What went backwards, or None, when this instance's own append landed at ``position`` and the
    record was not found among those it applied (``applied_next``: its next offset there)."""
    if position.offset >= applied_next:
        return None
    return (f"{REGRESSION_PREFIX}this instance's write landed at {position}, an offset of "
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
        self.suspicions_refuted = 0  # short end answers that a fetch showed were wrong
        self.last_problem: str | None = None
        self.last_at_ms: int | None = None

    def due(self) -> bool:
        """True when the last comparison with the log's bounds is older than ``check_every_s``."""
        now = (self._monotonic or time.monotonic)()
        if self._last_check is not None and now - self._last_check < self.check_every_s:
            return False
        self._last_check = now
        return True

    def report(self, problem: str) -> str:
        """A regression the log proved: count it, keep it for /health, say it loudly."""
        self.regressions += 1
        self.last_problem = problem
        self.last_at_ms = int((self._clock or time.time)() * 1000)
        log.error("%s. The records this instance had applied are gone from the stream: reloading the table from "
                  "the newest snapshot of the stream as it is now; writes acknowledged before may be lost.",
                  problem, extra={"fields": {"event": "log_regression", "regressions": self.regressions}})
        return problem

    def refuted(self, suspicion: str, proof: str) -> None:
        """A suspicion the log refuted (its end answer was short, the records are there): say so quietly."""
        self.suspicions_refuted += 1
        log.warning("the stream's end was answered short (%s), but a fetch found the records this instance "
                    "applied (%s): nothing was lost, nothing changes", suspicion.removeprefix(REGRESSION_PREFIX),
                    proof, extra={"fields": {"event": "short_log_end", "refuted": self.suspicions_refuted}})

    def health(self) -> dict:
        """The ``/health`` fields: how many regressions this instance saw, and the last one."""
        last = None
        if self.last_problem is not None:
            last = {"message": self.last_problem, "detected_at": format_time(self.last_at_ms or 0)}
        return {"log_regressions": self.regressions, "log_regression": last}
