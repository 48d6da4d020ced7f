"""What a cache instance tells OCI Monitoring, recorded once each request is answered.

:class:`InstanceMetrics` reads what the request did from its answer (operation, status, the
``Streamcache-Stale`` flag) and from the replica's counters (catch-ups, the age of the last
catch-up), and reads the slower levels (phase, quota) only when a batch is posted, at most once a
minute. :class:`TimedLog` measures each append to the stream. The names and dimensions are listed
in docs/metrics.md; nothing here carries a key or an instance id.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from streamcache.cache.health import Phase
from streamcache.cache.http_api import is_health_path
from streamcache.core.metrics import status_class
from streamcache.metrics import Metrics

if TYPE_CHECKING:
    from streamcache.cache.cold_start import ColdStart
    from streamcache.cache.replica import Replica
    from streamcache.ports import MutationLog

_READS = frozenset({"GET", "HEAD"})


class TimedLog:
    """The mutation log, with each append's duration observed as ``StreamWriteMs``; everything else
    passes through untouched."""

    def __init__(self, log: "MutationLog", metrics: Metrics) -> None:
        self._log, self._metrics = log, metrics

    def append(self, key: str, value: bytes):
        started = time.perf_counter()
        try:
            return self._log.append(key, value)
        finally:
            self._metrics.observe("StreamWriteMs", (time.perf_counter() - started) * 1000)

    def __getattr__(self, name: str):
        return getattr(self._log, name)


class InstanceMetrics:
    def __init__(self, metrics: Metrics, replica: "Replica", cold_start: "ColdStart", prefix: str) -> None:
        self.metrics, self.replica, self.cold_start, self.prefix = metrics, replica, cold_start, prefix
        self._catch_ups = replica.catch_ups
        self._cold_start_said = False

    def http(self, method: str, url: str, status: int, headers: dict, started: float) -> None:
        """One HTTP request answered (``started``: its time.perf_counter())."""
        path = urlsplit(url).path.rstrip("/")
        method = method.upper()
        under_cache = path.startswith(self.prefix + "/")  # a key: /cache/health is the key "health"
        if not under_cache and is_health_path(path, self.prefix):
            operation = "health"
        elif method in _READS:
            operation = ("get" if under_cache else "list" if path == self.prefix
                         else "changes" if path.endswith("/changes") else "other")
        else:
            operation = method.lower()
        self._answered(operation, status, started, stale=headers.get("Streamcache-Stale") == "true")

    def invoke(self, statuses: list, started: float) -> None:
        """One direct invoke answered (a batch counts each answer)."""
        for status in statuses:
            self._answered("invoke", status if isinstance(status, int) else 500, started, stale=False)

    def _answered(self, operation: str, status: int, started: float, stale: bool) -> None:
        metrics = self.metrics
        metrics.count("Requests", operation=operation, statusClass=status_class(status))
        metrics.observe("RequestMs", (time.perf_counter() - started) * 1000, operation=operation)
        if operation in ("get", "list") and status < 500:
            if operation == "get":
                metrics.count("CacheHits" if status in (200, 304) else "CacheMisses" if status == 404 else "ReadErrors")
            age = self.replica.seconds_since_catch_up()
            if age is not None:
                metrics.observe("ReadStalenessMs", age * 1000)
            if stale:
                metrics.count("StaleReads")
        catch_ups = self.replica.catch_ups
        if catch_ups != self._catch_ups:
            metrics.count("CatchUps", catch_ups - self._catch_ups)
            self._catch_ups = catch_ups
        if not self._cold_start_said and self.cold_start.done:
            self._cold_start_said = True
            metrics.count("ColdStarts")
            if self.cold_start.cold_start_ms is not None:
                metrics.observe("ColdStartMs", self.cold_start.cold_start_ms)
            metrics.count("RecordsReplayed", self.cold_start.records_replayed)
        metrics.flush_if_due(self._levels)

    def _levels(self) -> None:
        """The levels, read once per post: whether this instance is degraded, how full the quota is."""
        cold, replica = self.cold_start, self.replica
        degraded = cold.phase is Phase.DEGRADED or bool(replica.tail_losses) or bool(
            replica.watch.health().get("log_regressions"))
        self.metrics.gauge("DegradedInstances", 1.0 if degraded else 0.0)
        if replica.quota is not None and replica.quota.max_bytes and cold.done:
            self.metrics.gauge("QuotaUsedPercent", 100.0 * replica.table.used_bytes() / replica.quota.max_bytes)
