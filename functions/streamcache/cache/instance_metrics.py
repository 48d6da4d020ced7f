"""What a cache instance tells OCI Monitoring, recorded once each request is answered.

:class:`InstanceMetrics` reads what the request did from its answer (operation, status, the
``Streamcache-Stale`` flag) and from the replica's counters (catch-ups, the age of the last
catch-up), and reads the slower levels (phase, quota) only when a batch is posted, at most once a
minute. :class:`TimedLog` measures each append to the stream. The names and dimensions are listed
in docs/metrics.md; nothing here carries a key or an instance id.

The request path only adds to plain tallies (a few dictionary updates, no lock: an instance answers
one request at a time); the tallies go into the :class:`~streamcache.core.metrics.Aggregator` when
their minute ends or a batch is posted. Measured in ``make bench`` (``metrics``).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from streamcache.cache.health import Phase
from streamcache.cache.http_api import is_health_path
from streamcache.metrics import Metrics

if TYPE_CHECKING:
    from streamcache.cache.cold_start import ColdStart
    from streamcache.cache.replica import Replica
    from streamcache.ports import MutationLog

_READS = frozenset({"GET", "HEAD"})
_CLASSES = {1: "1xx", 2: "2xx", 3: "3xx", 4: "4xx", 5: "5xx"}
#: Tally keys: (metric name, its extra dimensions as keyword arguments).
_Key = tuple[str, tuple[tuple[str, str], ...]]


class TimedLog:
    """The mutation log, with each append's duration observed as ``StreamWriteMs``; everything else
    passes through untouched."""

    def __init__(self, log: "MutationLog", observed: "InstanceMetrics | None" = None) -> None:
        self._log, self.observed = log, observed

    def append(self, key: str, value: bytes):
        started = time.perf_counter()
        try:
            return self._log.append(key, value)
        finally:
            if self.observed is not None:
                self.observed.observe(("StreamWriteMs", ()), (time.perf_counter() - started) * 1000)

    def __getattr__(self, name: str):
        return getattr(self._log, name)


class InstanceMetrics:
    def __init__(self, metrics: Metrics, replica: "Replica", cold_start: "ColdStart", prefix: str) -> None:
        self.metrics, self.replica, self.cold_start, self.prefix = metrics, replica, cold_start, prefix
        self._catch_ups = replica.catch_ups
        self._throttled = replica.pacer.throttled_total
        self._cold_start_said = False
        self._counts: dict[_Key, float] = {}
        self._observed: dict[_Key, list] = {}  # key -> [n, total, largest]
        self._minute_end = 0.0  # the tallies belong to the minute that ends here
        self._keys: dict[tuple[str, int], tuple[_Key, _Key]] = {}

    def http(self, method: str, url: str, status: int, headers: dict, started: float) -> None:
        """One HTTP request answered (``started``: its time.perf_counter())."""
        path, method = url.split("?", 1)[0].rstrip("/"), method.upper()
        if "://" in path:  # a full URL: keep the path
            path = "/" + path.split("://", 1)[1].partition("/")[2]
        under_cache = path.startswith(self.prefix + "/")  # a key: /cache/health is the key "health"
        if under_cache:
            operation = "get" if method in _READS else method.lower()
        elif is_health_path(path, self.prefix):
            operation = "health"
        elif method in _READS:
            operation = "list" if path == self.prefix else "changes" if path.endswith("/changes") else "other"
        else:
            operation = method.lower()
        self._answered(operation, status, started, headers.get("Streamcache-Stale") == "true")

    def invoke(self, statuses: list, started: float) -> None:
        """One direct invoke answered (a batch counts each answer)."""
        for status in statuses:
            self._answered("invoke", status if isinstance(status, int) else 500, started, False)

    def count(self, key: _Key, n: float = 1) -> None:
        self._counts[key] = self._counts.get(key, 0) + n

    def observe(self, key: _Key, value: float) -> None:
        tally = self._observed.get(key)
        if tally is None:
            self._observed[key] = [1, value, value]
        else:
            tally[0] += 1
            tally[1] += value
            if value > tally[2]:
                tally[2] = value

    def _answered(self, operation: str, status: int, started: float, stale: bool) -> None:
        keys = self._keys.get((operation, status))
        if keys is None:
            klass = _CLASSES.get(status // 100, "other")
            keys = self._keys[(operation, status)] = (
                ("Requests", (("operation", operation), ("statusClass", klass))), ("RequestMs", (("operation", operation),)))
        now = self.metrics.now()
        if now >= self._minute_end:
            self._hand_over(now)
        self.count(keys[0])
        self.observe(keys[1], (time.perf_counter() - started) * 1000)
        if (operation == "get" or operation == "list") and status < 500:
            if operation == "get":
                self.count(("CacheHits", ()) if status == 200 or status == 304 else
                           ("CacheMisses", ()) if status == 404 else ("ReadErrors", ()))
            age = self.replica.seconds_since_catch_up()
            if age is not None:
                self.observe(("ReadStalenessMs", ()), age * 1000)
            if stale:
                self.count(("StaleReads", ()))
        if self.replica.catch_ups != self._catch_ups:
            self.count(("CatchUps", ()), self.replica.catch_ups - self._catch_ups)
            self._catch_ups = self.replica.catch_ups
        if self.replica.pacer.throttled_total != self._throttled:
            self.count(("ThrottledLogReads", ()), self.replica.pacer.throttled_total - self._throttled)
            self._throttled = self.replica.pacer.throttled_total
        if not self._cold_start_said and self.cold_start.done:
            self._said_cold_start()
        if self.metrics.due(pending=True):
            self.metrics.flush(self._levels)

    def _said_cold_start(self) -> None:
        self._cold_start_said = True
        self.count(("ColdStarts", ()))
        if self.cold_start.cold_start_ms is not None:
            self.observe(("ColdStartMs", ()), self.cold_start.cold_start_ms)
        self.count(("RecordsReplayed", ()), self.cold_start.records_replayed)

    def _hand_over(self, now: float) -> None:
        """Move the tallies into the aggregator, dated in their own minute."""
        at = self._minute_end - 1
        metrics, counts, observed = self.metrics, self._counts, self._observed
        self._counts, self._observed = {}, {}
        self._minute_end = (now // 60 + 1) * 60
        for (name, dims), n in counts.items():
            metrics.aggregator.count(name, at, n, **dict(dims))
        for (name, dims), (n, total, largest) in observed.items():
            metrics.aggregator.observe_many(name, n, total, largest, at, **dict(dims))

    def _levels(self) -> None:
        """Before a post: the tallies so far, and the levels, read once per post: whether this
        instance is degraded, how full the quota is."""
        now = self.metrics.now()
        self._minute_end = min(self._minute_end, now + 1)  # date this minute's tallies in it
        self._hand_over(now)
        cold, replica = self.cold_start, self.replica
        # Anything but serving once restored: degraded, recovering (a reload), refusing (a log mismatch).
        degraded = cold.phase in (Phase.DEGRADED, Phase.RECOVERING, Phase.REFUSING) or replica.refused is not None \
            or bool(replica.watch.health().get("log_regressions"))
        self.metrics.gauge("DegradedInstances", 1.0 if degraded else 0.0)
        self.metrics.gauge("LogReadIntervalMs", replica.pacer.interval_s * 1000)
        if replica.quota is not None and replica.quota.max_bytes and cold.done:
            self.metrics.gauge("QuotaUsedPercent", 100.0 * replica.table.used_bytes() / replica.quota.max_bytes)
