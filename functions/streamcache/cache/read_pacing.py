"""How often this instance reads the log, learnt from the broker's throttling.

OCI Streaming allows 5 read requests (Fetch, ListOffsets) per partition per second, and every
instance reads every partition without a consumer group: how OCI counts such readers is not
published, and if they share one budget a fleet that catches up once a second per instance is
throttled from a handful of instances on. A throttled answer comes late (the broker holds it) and
says so (``throttle_time_ms``), and the client then holds its connection as long again.

:class:`ReadPacer` keeps the shortest interval between this instance's catch-ups, and adapts it the
way TCP shares a link (additive increase, multiplicative decrease of the rate): a catch-up that met
a throttled answer doubles the interval (up to :data:`MAX_INTERVAL_S`); one that met none takes
:data:`STEP_S` off it, down to the staleness bound. ``N`` instances each doing so converge on
sharing the budget without knowing ``N``. While the interval is above the bound, a default read
whose data is older than the bound but younger than the interval is answered from memory, marked
stale with its age (see :mod:`streamcache.cache.service`); strong reads and conditional writes still
read the log (they wait for the budget, the broker holds them).

An **episode** runs from the first throttled answer until the interval is back at the bound and no
answer was throttled for :data:`QUIET_S` (an instance that probes its way back to the bound and is
throttled again stays in its episode instead of flapping): a WARNING when it starts, an INFO when it
ends, never a line per request; ``/health`` shows it (:meth:`ReadPacer.health`).
"""

from __future__ import annotations

import logging
import math
import time
from typing import Callable

from streamcache.core.records import format_time

log = logging.getLogger("streamcache.cache.read_pacing")

#: The longest interval between catch-ups the back-off reaches: default reads are never staler
#: than this plus a catch-up because of throttling.
MAX_INTERVAL_S = 30.0
#: What a catch-up that met no throttling takes off the interval (the additive part).
STEP_S = 0.25
#: The smallest interval a throttled instance backs off to (a staleness bound of 0 doubles from here).
MIN_BACKOFF_S = 0.2
#: An episode ends this long after its last throttled answer (once the interval is back at the bound).
QUIET_S = 10.0
#: While backing off, a default read that misses catches up again (a key written a moment ago
#: elsewhere is found) only when the last catch-up is older than this share of the interval...
MISS_RECHECK_SHARE = 0.25
#: ... and than this (when not backing off, every miss is checked: the README's promise).
MISS_RECHECK_S = 0.25


class ReadPacer:
    """The interval between catch-ups, and the throttling episode. Called under the replica's lock."""

    def __init__(self, bound_s: float, monotonic: Callable[[], float] | None = None,
                 clock: Callable[[], float] | None = None, max_interval_s: float = MAX_INTERVAL_S) -> None:
        self.bound_s = bound_s
        self.max_interval_s = max(max_interval_s, bound_s)
        self.interval_s = bound_s
        # None: looked up at each call, so that freezegun can control them in tests.
        self._monotonic = monotonic
        self._clock = clock
        self.throttled_total = 0  # throttled answers seen, over the instance's life
        self.episodes = 0
        self.since_ms: int | None = None  # wall time the current episode began (None: not throttled)
        self._since_mono: float | None = None
        self._last_throttled = 0.0  # monotonic: the last throttled answer
        self._episode_throttled = 0

    def set_bound(self, bound_s: float) -> None:
        """The staleness bound: the interval when not throttled (the service sets it from its limits)."""
        self.bound_s = self.interval_s = bound_s
        self.max_interval_s = max(self.max_interval_s, bound_s)

    @property
    def throttled(self) -> bool:
        return self.since_ms is not None

    @property
    def backing_off(self) -> bool:
        """True while the interval is above the staleness bound."""
        return self.interval_s > self.bound_s

    def due(self, age_s: float | None) -> bool:
        """May a default read catch up now, its data being ``age_s`` old (None: never caught up)?"""
        return age_s is None or age_s >= self.interval_s

    def miss_recheck_due(self, age_s: float | None) -> bool:
        """May a default read that missed catch up again, its data being ``age_s`` old? Always, unless
        backing off: a miss-heavy load would otherwise read the log on every request."""
        if not self.backing_off or age_s is None:
            return True
        return age_s >= max(MISS_RECHECK_S, self.interval_s * MISS_RECHECK_SHARE)

    def retry_after_s(self) -> int:
        """What to tell a client that cannot be answered now: the interval, in whole seconds."""
        return max(1, math.ceil(self.interval_s))

    def record(self, throttled: int) -> None:
        """After a log read: ``throttled`` answers of it were throttled (0: none)."""
        if throttled > 0:
            self.throttled_total += throttled
            self._episode_throttled += throttled
            self._last_throttled = self._now()
            before = self.interval_s
            self.interval_s = min(self.max_interval_s, max(2 * self.interval_s, MIN_BACKOFF_S))
            if self.since_ms is None:
                self._begin(before)
            return
        if self.interval_s > self.bound_s:
            self.interval_s = max(self.bound_s, self.interval_s - STEP_S)
        if self.since_ms is not None and not self.backing_off and self._now() - self._last_throttled >= QUIET_S:
            self._end()

    def _now(self) -> float:
        return (self._monotonic or time.monotonic)()

    def _begin(self, before: float) -> None:
        self.episodes += 1
        self.since_ms = int((self._clock or time.time)() * 1000)
        self._since_mono = self._now()
        log.warning("the stream throttles this instance's reads (its read limit per partition is used up): "
                    "catching up at most every %.2f s instead of %.2f s; default reads older than the "
                    "staleness bound are answered from memory, marked Streamcache-Stale, until it passes",
                    self.interval_s, before,
                    extra={"fields": {"event": "log_reads_throttled", "interval_ms": round(self.interval_s * 1000),
                                      "episodes": self.episodes}})

    def _end(self) -> None:
        lasted = self._now() - (self._since_mono or 0.0)
        log.info("the stream no longer throttles this instance's reads: back to catching up every %.2f s "
                 "(throttled for %.1f s, %d throttled answers)", self.interval_s, lasted, self._episode_throttled,
                 extra={"fields": {"event": "log_reads_unthrottled", "lasted_ms": round(lasted * 1000),
                                   "throttled": self._episode_throttled}})
        self.since_ms = self._since_mono = None
        self._episode_throttled = 0

    def health(self) -> dict:
        """The ``/health`` field ``log_reads``."""
        return {
            "throttled": self.throttled,
            "since": None if self.since_ms is None else format_time(self.since_ms),
            "interval_ms": round(self.interval_s * 1000),
            "bound_ms": round(self.bound_s * 1000),
            "throttled_total": self.throttled_total,
            "episodes": self.episodes,
        }
