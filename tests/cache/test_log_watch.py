"""Noticing a log that went backwards (functions/streamcache/log_watch.py), and what the replica
does about it: report, drop the table, replay the log as it is now. The same fault against a real
broker and real instances is test_broker_restart.py."""

from __future__ import annotations

import logging

import pytest

from streamcache.core.records import Position
from streamcache.core.table import OutcomeKind
from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.log_watch import LogWatch, check_log_regression, own_write_regression
from streamcache.ports import LogBounds
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService


def bounds(nxt: dict[int, int]) -> LogBounds:
    return LogBounds({p: 0 for p in nxt}, nxt)


def test_a_log_at_or_beyond_the_applied_positions_is_fine():
    assert check_log_regression({0: 5, 1: 0}, bounds({0: 5, 1: 0})) is None
    assert check_log_regression({0: 5, 1: 2}, bounds({0: 9, 1: 2})) is None
    assert check_log_regression({}, bounds({0: 0})) is None


def test_a_log_that_ends_below_the_applied_positions_went_backwards():
    problem = check_log_regression({0: 5, 1: 7, 2: 1}, bounds({0: 5, 1: 2, 2: 0}))
    assert problem.startswith("the stream went backwards")
    assert "partition 1 ends at offset 2 but this instance had applied up to 6" in problem
    assert "partition 2 ends at offset 0" in problem and "partition 0" not in problem


def test_a_partition_that_disappeared_is_a_regression_an_unused_one_is_not():
    assert "partition 2 is gone" in check_log_regression({0: 1, 2: 3}, bounds({0: 1, 1: 0}))
    assert check_log_regression({0: 1, 2: 0}, bounds({0: 1})) is None


def test_an_own_write_below_the_applied_offset_went_backwards():
    assert own_write_regression(Position(1, 7), 7) is None
    assert "landed at 1-3" in own_write_regression(Position(1, 3), 7)


def test_the_watch_looks_at_most_every_interval_and_reports_loudly(caplog):
    now = [100.0]
    watch = LogWatch(check_every_s=5, monotonic=lambda: now[0], clock=lambda: 1_700_000_000.0)
    assert watch.due() and not watch.due()
    now[0] += 4.9
    assert not watch.due()
    now[0] += 0.2
    assert watch.due()
    assert watch.health() == {"log_regressions": 0, "log_regression": None}

    assert watch.check({0: 3}, bounds({0: 3})) is None
    with caplog.at_level(logging.ERROR, logger="streamcache.cache.replica"):
        problem = watch.check({0: 3}, bounds({0: 1}))
    assert problem and caplog.records[-1].levelno == logging.ERROR and problem in caplog.records[-1].getMessage()
    assert watch.health() == {"log_regressions": 1, "log_regression": {
        "message": problem, "detected_at": "2023-11-14T22:13:20.000Z"}}


# ---- the replica's answer (needs the hook in replica.py: see the report of issue 7) -------------


class SwappableLog:
    """A memory log that can be replaced under the replica, as a broker that lost its log is."""

    def __init__(self) -> None:
        self.current = MemoryLog(partitions=2)
        self.closed = 0

    def lose_everything(self) -> None:
        self.current = MemoryLog(partitions=2)

    def __getattr__(self, name):
        return getattr(self.current, name)

    @property
    def partitions(self) -> int:
        return self.current.partitions

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def service():
    log = SwappableLog()
    replica = Replica(log, monotonic=lambda: 0.0)
    replica.watch = LogWatch(check_every_s=0)  # look at every catch-up
    return CacheService(replica), log


def test_a_catch_up_on_a_log_that_went_backwards_starts_over_from_it(service):
    service, log = service
    for n in range(6):
        service.put(f"old-{n}", b"old")
    log.lose_everything()
    log.current.append("new", b"not a record: skipped")  # the new log has one foreign record
    service.replica.catch_up()
    assert service.replica.watch.regressions == 1
    assert [service.get(f"old-{n}").entry for n in range(6)] == [None] * 6  # as a fresh instance sees it
    assert service.replica.positions() == {0: 0, 1: 0} | {log.partition_for("new"): 1}
    assert log.closed >= 1  # the adapter dropped what it cached about the old log


def test_an_own_write_on_a_log_that_went_backwards_gets_its_own_outcome(service):
    service, log = service
    for n in range(6):
        service.put(f"k{n}", b"old")
    log.lose_everything()
    outcome = service.put("k0", b"new")  # k0 existed in the lost log: now it is created
    assert (outcome.kind, outcome.version.offset) == (OutcomeKind.CREATED, 0)
    assert service.replica.watch.regressions == 1
    assert service.get("k0").entry.value == b"new" and service.get("k1").entry is None
