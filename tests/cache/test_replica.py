"""Replica over the in-memory log: catching up, applying through one's own write, retried appends,
foreign records and an unreachable log. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import itertools

import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.errors import LogUnavailable, RecordError, Restoring
from streamcache.core.records import Delete, Position, Put, encode
from streamcache.core.table import OutcomeKind
from streamcache.cache.log_watch import LogWatch
from streamcache.cache.replica import Replica

T0 = 1_790_000_000_000
_ids = itertools.count()


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def keys_in(log: MemoryLog, partition: int, count: int) -> list[str]:
    """``count`` keys that the log puts in ``partition``."""
    found = (f"key-{i}" for i in range(10_000))
    return [k for k in found if log.partition_for(k) == partition][:count]


def write(log: MemoryLog, key: str, value: bytes = b"v", rid: str | None = None, **kw) -> tuple[Position, str]:
    rid = rid or f"req-{next(_ids)}"
    return log.append(key, encode(Put(key, value, "text/plain", rid, T0, **kw))), rid


@pytest.fixture
def log() -> MemoryLog:
    return MemoryLog(partitions=2)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def replica(log, clock) -> Replica:
    return Replica(log, monotonic=clock)


def test_a_new_replica_stands_at_zero_in_every_partition(replica):
    assert replica.positions() == {0: 0, 1: 0}
    assert replica.seconds_since_catch_up() is None and len(replica.table) == 0


def test_catch_up_applies_everything_up_to_the_log_end(log, replica):
    a, b = keys_in(log, 0, 1)[0], keys_in(log, 1, 1)[0]
    write(log, a), write(log, a, b"2"), write(log, b)
    assert replica.catch_up() == 3
    assert replica.positions() == log.bounds().next == {0: 2, 1: 1}
    assert replica.table.get(a, T0).value == b"2" and replica.table.get(b, T0).value == b"v"
    assert replica.catch_up() == 0 and replica.records_applied == 3


def test_catch_up_age_is_measured_from_when_it_began(replica, clock):
    clock.now = 10.0
    replica.catch_up()
    clock.now = 10.4
    assert replica.seconds_since_catch_up() == pytest.approx(0.4)


def test_catch_up_if_older_than_respects_the_bound(log, replica, clock):
    assert replica.catch_up_if_older_than(1.0) is True  # never caught up: must
    write(log, "k")
    clock.now += 0.999
    assert replica.catch_up_if_older_than(1.0) is False and replica.table.get("k", T0) is None
    clock.now += 0.001
    assert replica.catch_up_if_older_than(1.0) is True and replica.table.get("k", T0) is not None


def test_an_unreachable_log_fails_the_catch_up_and_keeps_the_last_time(log, replica, clock):
    replica.catch_up()
    write(log, "k")
    log.available = False
    clock.now += 5
    with pytest.raises(LogUnavailable):
        replica.catch_up()
    assert replica.seconds_since_catch_up() == pytest.approx(5)
    assert replica.positions() == {0: 0, 1: 0}
    log.available = True
    assert replica.catch_up_if_older_than(1.0) is True and replica.table.get("k", T0) is not None


def test_apply_through_applies_one_partition_up_to_the_position(log, replica):
    first, second, third = keys_in(log, 0, 3)
    other = keys_in(log, 1, 1)[0]
    write(log, first)
    position, rid = write(log, second)
    write(log, third)
    write(log, other)
    outcome = replica.apply_through(position, rid)
    assert outcome.kind is OutcomeKind.CREATED and outcome.version == position == Position(0, 1)
    assert replica.positions() == {0: 2, 1: 0}
    assert replica.table.get(first, T0) is not None and replica.table.get(third, T0) is None
    assert replica.table.get(other, T0) is None


def test_apply_through_an_applied_position_needs_no_log(log, replica):
    position, rid = write(log, "k")
    first = replica.apply_through(position, rid)
    log.available = False
    assert replica.apply_through(position, rid) == first


def test_apply_through_the_wrong_request_is_an_error(log, replica):
    position, _ = write(log, "k")
    with pytest.raises(RecordError):
        replica.apply_through(position, "someone-else")


def test_a_retried_append_answers_with_the_first_outcome(log, replica):
    record = encode(Put("k", b"v", "text/plain", "req-1", T0))
    first = log.append("k", record)
    second = log.append("k", record)  # the producer retried after a lost acknowledgement
    outcome = replica.apply_through(second, "req-1")
    assert outcome.kind is OutcomeKind.CREATED and outcome.version == first
    assert replica.table.get("k", T0).version == first


def test_foreign_records_are_skipped_alike_by_every_replica(log, clock):
    write(log, "k", b"1")
    log.append("k", b"not a streamcache record")
    log.append("k", b'{"specversion": "1.0", "type": "com.example.other"}')
    write(log, "k", b"2")
    replicas = [Replica(log, monotonic=clock) for _ in range(2)]
    for replica in replicas:
        assert replica.catch_up() == 2
        assert replica.records_skipped == 2
        assert replica.positions()[log.partition_for("k")] == 4
        assert replica.table.get("k", T0).value == b"2"
    assert dict(replicas[0].table.items()) == dict(replicas[1].table.items())


def test_a_foreign_record_where_our_write_should_be_is_an_error_not_a_crash(log, replica):
    position = log.append("k", b"garbage")
    with pytest.raises(RecordError):
        replica.apply_through(position, "req-1")
    later, rid = write(log, "k")
    assert replica.apply_through(later, rid).kind is OutcomeKind.CREATED


def test_replicas_converge_on_deletes_and_expiry(log, clock):
    key, doomed = keys_in(log, 1, 2)
    write(log, key, expires_at_ms=T0 + 10)
    write(log, doomed)
    log.append(doomed, encode(Delete(doomed, "req-del", T0 + 20)))
    early, late = Replica(log, monotonic=clock), Replica(log, monotonic=clock)
    early.catch_up()
    write(log, "extra")
    late.catch_up()
    early.catch_up()
    assert dict(early.table.items()) == dict(late.table.items())
    assert early.table.get(key, T0 + 10) is None and early.table.get(doomed, T0) is None


def test_an_instance_that_fell_behind_retention_asks_for_a_reload_and_skips_nothing(log):
    """Finding 4: the replica used to skip to the log's first offset (losing what a snapshot may
    cover). Now it asks for a reload (see test_reload.py) and applies nothing meanwhile."""
    replica = Replica(log)
    reloads: list[str] = []
    replica.reloader = reloads.append
    [early, lost, kept] = keys_in(log, 0, 3)
    write(log, early, b"1")
    replica.catch_up()
    write(log, lost, b"2")  # offset 1: dropped by retention before this replica reads it
    write(log, kept, b"3")  # offset 2
    log.truncate_before(0, 2)
    with pytest.raises(Restoring):
        replica.catch_up()
    assert replica.positions()[0] == 1 and replica.table.get(kept, T0) is None
    assert replica.reloading is not None and "retention" in reloads[0]
    with pytest.raises(Restoring):  # until the reload installs a table, nothing reads the log
        replica.apply_past({0: 2})


def test_a_tail_longer_than_a_request_reads_is_reloaded_in_the_background(log, replica):
    """Finding 1's five minutes of 503s: a long tail read inside every request, each missing the read
    deadline. Fails before the change: the catch-up read the whole tail in the request."""
    reloads: list[str] = []
    replica.reloader = reloads.append
    replica.reload_tail_records = 5
    for n in range(4):
        write(log, f"k{n}")
    assert replica.catch_up() == 4  # a short tail is read in the request
    replica.watch = LogWatch(check_every_s=0)
    for n in range(6):
        write(log, f"k{n}")
    with pytest.raises(Restoring):
        replica.catch_up()
    assert sum(replica.positions().values()) == 4  # nothing of the long tail was read
    assert "a tail of 6 records" in reloads[0]
