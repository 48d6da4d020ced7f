"""Read pacing over the in-memory log (the real broker's throttling: tests/front/test_read_budget.py).

A log whose reads are throttled while ``throttle`` is set (counted as KafkaLog counts them): the
pacer doubles the interval between catch-ups on each throttled one and takes STEP_S off it on each
clean one; default reads inside the interval are answered from memory, marked stale with their age;
a miss re-checks the stream only a few times per interval; strong reads always read the log, and one
that cannot while throttled is a LogThrottled (503 log_throttled, Retry-After), never a stale answer.
The episode is logged once (a WARNING when it begins, an INFO when it ends). Clocks are injected.
"""

from __future__ import annotations

import logging

import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.errors import LogThrottled, LogUnavailable
from streamcache.cache.read_pacing import MAX_INTERVAL_S, QUIET_S, STEP_S, ReadPacer
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService, Limits
from streamcache.statuses import for_error
from support.clock import Clock

WALL_START = 1_790_000_000.0


class ThrottledLog(MemoryLog):
    """Every read while ``throttle`` is set comes back throttled (one answer per read)."""

    def __init__(self, partitions: int) -> None:
        super().__init__(partitions)
        self.throttle = False
        self.throttled_responses = 0
        self.reads = 0

    def read(self, start, end=None):
        self.reads += 1
        if self.throttle:
            self.throttled_responses += 1
        return super().read(start, end)


@pytest.fixture
def mono() -> Clock:
    return Clock(100.0)


@pytest.fixture
def log() -> ThrottledLog:
    return ThrottledLog(partitions=3)


@pytest.fixture
def service(log, mono) -> CacheService:
    return CacheService(Replica(log, monotonic=mono), Limits(staleness_ms=1000), clock=Clock(WALL_START))


def test_the_pacer_doubles_on_throttling_and_steps_back_to_the_bound():
    mono = Clock(0.0)
    pacer = ReadPacer(1.0, monotonic=mono, clock=Clock(WALL_START))
    pacer.record(throttled=1)
    pacer.record(throttled=3)
    assert pacer.interval_s == 4.0 and pacer.throttled and pacer.throttled_total == 4
    for _ in range(int(3.0 / STEP_S) - 1):
        pacer.record(throttled=0)
    assert pacer.throttled and pacer.interval_s == 1.0 + STEP_S
    pacer.record(throttled=0)
    assert pacer.interval_s == 1.0 and pacer.throttled  # back at the bound, but throttled a moment ago
    pacer.record(throttled=1)  # probing back to the bound and throttled again: the same episode
    for _ in range(4):
        pacer.record(throttled=0)
    mono.now += QUIET_S - 0.1
    pacer.record(throttled=0)
    assert pacer.interval_s == 1.0 and pacer.throttled and pacer.episodes == 1
    mono.now += 0.1
    pacer.record(throttled=0)
    assert not pacer.throttled and pacer.episodes == 1
    for _ in range(20):
        pacer.record(throttled=1)
    assert pacer.interval_s == MAX_INTERVAL_S and pacer.retry_after_s() == 30


def test_a_zero_bound_still_backs_off():
    pacer = ReadPacer(0.0)
    pacer.record(throttled=1)
    assert pacer.interval_s > 0 and pacer.backing_off


def test_a_throttled_instance_answers_default_reads_from_memory_marked_stale_with_their_age(service, log, mono):
    service.put("k", b"v1")
    service.get("k")  # the first catch-up
    log.throttle = True
    mono.now += 1.5
    assert not service.get("k").stale  # beyond the bound: caught up, and met a throttled answer
    assert service.replica.pacer.throttled and service.replica.pacer.interval_s == 2.0
    reads = log.reads
    mono.now += 1.5  # beyond the bound, inside the interval
    result = service.get("k")
    assert result.stale and result.age_ms == 1500 and result.entry.value == b"v1"
    assert log.reads == reads  # answered from memory: no read of the log
    page = service.list()
    assert page.stale and page.age_ms == 1500
    mono.now += 0.6  # past the interval: catches up again (throttled again: 4 s)
    assert not service.get("k").stale and log.reads == reads + 1
    assert service.replica.pacer.interval_s == 4.0


def test_clean_catch_ups_bring_the_interval_back_and_the_episode_is_logged_once(service, log, mono, caplog):
    caplog.set_level(logging.INFO, logger="streamcache.cache.read_pacing")
    service.get("k")
    log.throttle = True
    for _ in range(3):  # three throttled catch-ups: 2, 4, 8 s
        mono.now += service.replica.pacer.interval_s
        service.get("k", strong=True)
    log.throttle = False
    while service.replica.pacer.throttled:
        mono.now += service.replica.pacer.interval_s
        service.get("k")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "streamcache.cache.read_pacing"]
    assert [level for level, _ in lines] == ["WARNING", "INFO"], lines
    assert "throttles" in lines[0][1] and "no longer throttles" in lines[1][1]
    health = service.replica.pacer.health()
    assert health["throttled"] is False and health["episodes"] == 1 and health["throttled_total"] == 3
    assert health["interval_ms"] == 1000


def test_a_miss_rechecks_the_stream_every_time_unless_backing_off_then_a_few_times_per_interval(service, log, mono):
    service.get("absent")
    reads = log.reads
    for n in range(3):  # not throttled: every miss is checked against the stream
        mono.now += 0.02
        assert service.get("absent").entry is None and log.reads == reads + n + 1
    log.throttle = True
    mono.now += 1.5
    service.get("absent")  # throttled: 2 s, a miss re-checks once 0.5 s passed
    reads = log.reads
    for _ in range(10):  # ten misses inside a quarter of the interval: no read
        mono.now += 0.04
        assert service.get("absent").entry is None
    assert log.reads == reads
    mono.now += 0.1  # 0.5 s since the catch-up: a miss checks the stream again
    service.get("absent")
    assert log.reads == reads + 1


def test_a_strong_read_while_throttled_reads_the_log_and_is_right(service, log, mono):
    other = CacheService(Replica(log, monotonic=mono), clock=Clock(WALL_START))
    other.put("k", b"old")
    service.get("k")
    log.throttle = True
    mono.now += 1.5
    service.get("k")  # throttled: the interval is now 2 s
    other.put("k", b"new")
    mono.now += 1.5
    stale = service.get("k")  # default, beyond the bound, inside the interval: from memory, said to be stale
    assert stale.entry.value == b"old" and stale.stale and stale.age_ms == 1500
    assert service.get("k", strong=True).entry.value == b"new"
    assert service.replica.pacer.interval_s == 4.0  # the strong read's catch-up was throttled too


def test_a_strong_read_that_cannot_read_the_log_while_throttled_is_a_503_with_retry_after(service, log, mono):
    service.get("k")
    log.throttle = True
    mono.now += 1.5
    service.get("k")
    mono.now += 1.5
    service.get("k")  # 4 s now
    log.available = False
    with pytest.raises(LogThrottled) as raised:
        service.get("k", strong=True)
    problem = for_error(raised.value)
    assert (problem.status, problem.code, problem.headers()) == (503, "log_throttled", {"Retry-After": "4"})
    log.available, log.throttle = True, False
    while service.replica.pacer.throttled:  # clean catch-ups end the episode
        mono.now += service.replica.pacer.interval_s
        service.get("k")
    log.available = False
    with pytest.raises(LogUnavailable) as plain:  # not throttled: the plain unavailable answer
        service.get("k", strong=True)
    assert not isinstance(plain.value, LogThrottled)


def test_a_miss_answered_from_older_memory_is_marked_too(service, log, mono):
    other = CacheService(Replica(log, monotonic=mono), clock=Clock(WALL_START))
    service.get("k")
    log.throttle = True
    mono.now += 1.5
    service.get("k")  # throttled: 2 s
    other.put("k", b"new")
    mono.now += 1.5
    result = service.get("k")  # absent from this memory, 1.5 s old: said to be
    assert result.entry is None and result.stale and result.age_ms == 1500
