"""Noticing a log that went backwards (cache/log_watch.py), and what the replica does about it: a short
end answer is only a suspicion; a fetch at the applied positions proves it (record gone or another
one: report loudly, ask for a reload) or refutes it (nothing changes). The reload itself, through the
cold start's restore, is test_reload.py; the same fault against a real broker, test_broker_restart.py."""

from __future__ import annotations

import logging

import pytest

from streamcache.core.errors import OutcomeUnknown, Restoring
from streamcache.core.records import Position
from streamcache.adapters.memory_log import MemoryLog
from streamcache.cache.log_watch import LogWatch, check_log_regression, own_write_regression, partitions_changed
from streamcache.ports import LogBounds
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService
from support.log_history import put


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


def test_a_changed_partition_count_is_said_and_an_unchanged_one_is_not():
    assert partitions_changed(3, 3) is None
    assert "placed over 3 partitions, the log now has 4" in partitions_changed(3, 4)


def test_the_watch_looks_at_most_every_interval_and_reports_loudly(caplog):
    now = [100.0]
    watch = LogWatch(check_every_s=5, monotonic=lambda: now[0], clock=lambda: 1_700_000_000.0)
    assert watch.due() and not watch.due()
    now[0] += 4.9
    assert not watch.due()
    now[0] += 0.2
    assert watch.due()
    assert watch.health() == {"log_regressions": 0, "log_regression": None}

    with caplog.at_level(logging.WARNING, logger="streamcache.cache.replica"):
        watch.refuted(check_log_regression({0: 3}, bounds({0: 1})), "partition 0: offset 2 holds the record")
        assert caplog.records[-1].levelno == logging.WARNING and "went backwards" not in caplog.text
        problem = watch.report("the stream went backwards: partition 0 ends at offset 1; proof: gone")
    assert caplog.records[-1].levelno == logging.ERROR and problem in caplog.records[-1].getMessage()
    assert watch.health() == {"log_regressions": 1, "log_regression": {
        "message": problem, "detected_at": "2023-11-14T22:13:20.000Z"}}


# ---- the replica's answer ----------------------------------------------------------------------


class ShortEnds:
    """A memory log whose end answers are short, as Tansu's ListOffsets is when the last batch holds
    several records (and the fetch that corrects it did not answer in time)."""

    def __init__(self, short_by: int = 3) -> None:
        self.current = MemoryLog(partitions=2)
        self.short_by = short_by
        self.closed = 0

    def bounds(self) -> LogBounds:
        real = self.current.bounds()
        return LogBounds(real.first, {p: max(real.first[p], n - self.short_by) for p, n in real.next.items()})

    def __getattr__(self, name):
        return getattr(self.current, name)

    @property
    def partitions(self) -> int:
        return self.current.partitions

    def close(self) -> None:
        self.closed += 1


@pytest.fixture
def service():
    log = ShortEnds()
    replica = Replica(log, monotonic=lambda: 0.0)
    replica.watch = LogWatch(check_every_s=0)  # look at every catch-up
    reloads: list[str] = []
    replica.reloader = reloads.append
    return CacheService(replica), log, reloads


def test_a_short_end_answer_with_the_records_there_changes_nothing(service, caplog):
    """Finding 1: one short end answer took an instance down. Fails before the change: the replica
    took the short answer as a regression (an ERROR line) and started over."""
    service, log, reloads = service
    keys = [f"k{n}" for n in range(8)]
    for key in keys:
        service.put(key, b"v")
    with caplog.at_level(logging.INFO):
        answers = [service.get(key, strong=True) for key in keys]
    assert all(a.entry is not None and a.entry.value == b"v" and not a.stale for a in answers)
    watch = service.replica.watch
    assert watch.regressions == 0 and watch.suspicions_refuted >= 1 and reloads == []
    assert service.replica.reloading is None and log.closed == 0
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or "went backwards" in r.getMessage()]


def test_a_short_end_with_the_record_gone_is_proven_and_asks_for_a_reload(service, caplog):
    service, log, reloads = service
    for n in range(6):
        service.put(f"old-{n}", b"old")
    log.current.lose_everything()
    with caplog.at_level(logging.ERROR), pytest.raises(Restoring):
        service.get("old-0", strong=True)
    assert service.replica.watch.regressions == 1 and len(reloads) == 1
    assert "went backwards" in reloads[0] and "holds no record at offset" in reloads[0]
    assert any("went backwards" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    # a default read is served from the old table, marked stale; a strong one is refused at once
    answer = service.get("old-0")
    assert answer.entry is not None and answer.entry.value == b"old" and answer.stale
    with pytest.raises(Restoring):
        service.get("old-0", strong=True)
    with pytest.raises(Restoring):
        service.get("old-0", after={0: 0})
    with pytest.raises(Restoring):
        service.put("during", b"x")
    assert log.current.bounds().next == {0: 0, 1: 0}  # the write appended nothing
    assert len(reloads) >= 2  # every refused operation asks again (a failed reload is retried)


def test_a_short_end_with_another_record_there_is_proven_too(service):
    service, log, reloads = service
    for n in range(6):
        service.put(f"old-{n}", b"old")
    before = service.replica.positions()
    log.current.lose_everything()
    for p, n in before.items():  # as many records as before, other ones: only the fetch can tell
        key = next(k for k in (f"other-{i}" for i in range(1000)) if log.partition_for(k) == p)
        for _ in range(n):
            put(log.current, key, b"new")
    with pytest.raises(Restoring):
        service.replica.catch_up()
    assert "is another one than the table applied" in reloads[0]


def test_an_own_write_at_an_applied_offset_is_proven_before_anything_happens(service):
    service, log, reloads = service
    for n in range(6):
        service.put(f"k{n}", b"old")
    service.replica.watch = LogWatch(check_every_s=3600)  # the periodic look is not what notices it
    service.replica.watch.due()
    log.current.lose_everything()
    with pytest.raises(OutcomeUnknown) as answer:  # the record landed; its outcome is the new table's
        service.put("k0", b"new")
    assert answer.value.position == Position(log.partition_for("k0"), 0)
    assert service.replica.watch.regressions == 1 and "write landed at" in reloads[0]
