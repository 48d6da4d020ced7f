"""What a function records and when it posts: a :class:`~streamcache.core.metrics.Aggregator`, a
clock, and a poster that never delays the caller.

Both functions hold one :class:`Metrics` (built from the settings by :func:`open_metrics`): record
calls are a dictionary update under a lock; :meth:`Metrics.flush_if_due`, called once a request is
answered, hands the minute's aggregates to the poster (a short-lived daemon thread, see
:class:`~streamcache.adapters.oci_monitoring.BackgroundPoster`) at most once per interval.
:data:`OFF` records nothing (metrics not configured): the request path then pays one attribute test.

Which metrics exist, their dimensions and what each alarm reads: docs/metrics.md.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Sequence

from streamcache.core.metrics import Aggregator, Point, minute_ms

#: Minutes older than this are dropped while posts cannot go out (OCI refuses points over 2 h old).
MAX_KEPT_S = 7200

if TYPE_CHECKING:
    from streamcache.settings import Settings


class Metrics:
    """One process's metrics. ``clock`` is wall-clock seconds (``None``: time.time at each call, so
    that freezegun can stop it); ``submit`` takes a batch and must not block (returns False if it
    dropped it)."""

    enabled = True

    def __init__(self, base: dict[str, str], submit: Callable[[Sequence[Point]], bool], interval_s: float = 60.0,
                 clock: Callable[[], float] | None = None, ready: Callable[[], bool] = lambda: True) -> None:
        self.aggregator = Aggregator(base)
        self._submit, self.interval_s, self._clock, self._ready = submit, interval_s, clock, ready
        self._lock = threading.Lock()
        self._last_flush: float | None = None  # None: the first batch goes out as soon as there is one

    def now(self) -> float:
        return (self._clock or time.time)()

    def count(self, name: str, n: float = 1, **dims: str) -> None:
        with self._lock:
            self.aggregator.count(name, self.now(), n, **dims)

    def observe(self, name: str, value: float, **dims: str) -> None:
        with self._lock:
            self.aggregator.observe(name, value, self.now(), **dims)

    def gauge(self, name: str, value: float, **dims: str) -> None:
        with self._lock:
            self.aggregator.gauge(name, value, self.now(), **dims)

    def due(self, pending: bool = False) -> bool:
        """Whether a post is due: something gathered (``pending``: the caller holds tallies not yet
        handed to the aggregator) and the interval passed since the last post."""
        last = self._last_flush
        return (pending or len(self.aggregator) > 0) and (last is None or self.now() - last >= self.interval_s)

    def flush_if_due(self, before: Callable[[], None] | None = None) -> bool:
        """Post what was gathered if the interval has passed; ``before`` records the levels read
        only at posting time (gauges). Returns whether a batch was handed over."""
        if not self.due():
            return False
        return self.flush(before)

    def flush(self, before: Callable[[], None] | None = None) -> bool:
        """Post what was gathered now, whatever the interval (the compactor, after each invoke)."""
        if not self._ready():  # the last post is still in flight: keep gathering, bounded by age
            with self._lock:
                self.aggregator.drop_before(minute_ms(self.now() - MAX_KEPT_S))
            return False
        if before is not None:
            before()
        with self._lock:
            self._last_flush = self.now()
            points = self.aggregator.take()
        return bool(points) and self._submit(points)


class _Off(Metrics):
    """Metrics not configured: every call does nothing."""

    enabled = False

    def __init__(self) -> None:
        super().__init__({}, lambda points: False)

    def count(self, name: str, n: float = 1, **dims: str) -> None:
        pass

    def observe(self, name: str, value: float, **dims: str) -> None:
        pass

    def gauge(self, name: str, value: float, **dims: str) -> None:
        pass

    def flush_if_due(self, before: Callable[[], None] | None = None) -> bool:
        return False

    def flush(self, before: Callable[[], None] | None = None) -> bool:
        return False


OFF: Metrics = _Off()


def open_metrics(settings: "Settings", function: str, clock: Callable[[], float] | None = None) -> Metrics:
    """The metrics of ``function`` (``cache`` or ``compactor``) as the settings configure them:
    :data:`OFF` without ``STREAMCACHE_METRICS_NAMESPACE``."""
    if not settings.metrics_namespace:
        return OFF
    from streamcache.adapters.oci_monitoring import BackgroundPoster, MonitoringSink

    sink = MonitoringSink(settings.metrics_namespace, settings.metrics_compartment_id,
                          settings.metrics_endpoint or None, profile=settings.oci_profile or None,
                          config_file=settings.oci_config_file or None)
    poster = BackgroundPoster(sink.post)
    metrics = Metrics({"function": function, "deployment": settings.metrics_deployment or settings.stream_id},
                      poster.submit, settings.metrics_interval_s, clock, ready=poster.ready)
    metrics.poster = poster  # type: ignore[attr-defined]  # the compactor waits for its post
    return metrics
