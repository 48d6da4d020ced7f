"""Log time (core/log_time.py): what one writer's clock can do to a partition's clock, and that the
table's inlined rule is the rule, across snapshots too."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from streamcache.core.log_time import MAX_CLOCK_STEP_MS, LogClock, next_log_time
from streamcache.core.records import IF_ABSENT, Position, Put
from streamcache.core.snapshot import decode_snapshot, encode_snapshot
from streamcache.core.table import DEDUP_WINDOW_MS, OutcomeKind, Table

T0 = 1_790_000_000_000
MINUTE = 60_000
YEAR = 365 * 24 * 60 * MINUTE


def put(key: str, ts: int, rid: str, expires: int | None = None, pre=None) -> Put:
    return Put(key, b"v", "text/plain", rid, ts, expires, pre)


def feed(table: Table, partition: int, mutations) -> None:
    for mutation in mutations:
        assert table.apply(Position(partition, table.next_offset(partition)), mutation) is not None


# ---- the rule ---------------------------------------------------------------------------------


def log_time_after(*times: int) -> int:
    clock = LogClock()
    for ts in times:
        clock = next_log_time(clock, ts)
    return clock.log_time_ms


def test_the_first_record_sets_log_time_and_a_slower_clock_never_moves_it_back():
    assert log_time_after(T0) == T0
    assert log_time_after(T0, T0 - 5) == T0


def test_a_record_goes_at_most_a_step_past_what_two_consecutive_records_agree_on():
    assert log_time_after(T0, T0 + 10, T0 + 20) == T0 + 20  # ordinary traffic: the largest writer time
    assert log_time_after(T0, T0 + YEAR) == T0 + MAX_CLOCK_STEP_MS
    # Its retries carry its very time: they vouch for nothing, however often it lands.
    assert log_time_after(T0, T0 + YEAR, T0 + YEAR, T0 + YEAR) == T0 + MAX_CLOCK_STEP_MS
    # Nor do several such records with other writers' records in between: those vouch for their own.
    assert log_time_after(T0, T0 + YEAR, T0 + 10, T0 + YEAR, T0 + 20, T0 + 2 * YEAR) == T0 + 20 + MAX_CLOCK_STEP_MS
    # Two different records in a row, both a year ahead, agree: that is a writer vouching for itself.
    assert log_time_after(T0, T0 + YEAR, T0 + YEAR + 1) == T0 + YEAR + 1


def test_a_quiet_partition_keeps_up_with_its_writers():
    """Written every five minutes: log time stands at least at the previous record's time, never
    further behind (a bound on the step alone would fall back by four minutes a record, for good)."""
    table = Table()
    times = [T0 + i * 5 * MINUTE for i in range(50)]
    for i, ts in enumerate(times):
        feed(table, 0, [put(f"k{i}", ts, f"r{i}")])
        assert table.clock_ms(0) >= times[max(i - 1, 0)]


def test_an_idle_partition_is_caught_up_by_its_second_record():
    table = Table()
    feed(table, 0, [put("a", T0, "r0")])
    feed(table, 0, [put("b", T0 + 60 * MINUTE, "r1")])
    assert table.clock_ms(0) == T0 + MAX_CLOCK_STEP_MS
    feed(table, 0, [put("c", T0 + 60 * MINUTE + 500, "r2")])  # vouches for the one before
    assert table.clock_ms(0) == T0 + 60 * MINUTE + 500


# ---- what a record far ahead can do ------------------------------------------------------------


@st.composite
def ordinary_with_one_far_ahead(draw):
    """A partition's records from writers with sane clocks (skewed by seconds, minutes apart at most
    or idle for an hour), TTL keys among them, and one record stamped far ahead, landing once or
    retried (its retries carry its time) anywhere but first."""
    clock, records = T0, []
    for i in range(draw(st.integers(2, 30))):
        clock += draw(st.sampled_from([0, 100, 5_000, MINUTE, 3 * MINUTE, 60 * MINUTE]))
        ts = clock + draw(st.integers(-3_000, 3_000))
        ttl = draw(st.sampled_from([None, 1_000, 10 * MINUTE, 100 * MINUTE, 1_000 * MINUTE]))
        records.append(put(f"k{i}", ts, f"r{i}", None if ttl is None else ts + ttl))
    far = put("far", T0 + draw(st.sampled_from([2 * 60 * MINUTE, YEAR, 100 * YEAR])), "far-request")
    for _ in range(draw(st.integers(1, 3))):  # the record, then its retries, anywhere after the first
        records.insert(draw(st.integers(1, len(records))), far)
    return records, far


@settings(max_examples=200, deadline=None)
@given(ordinary_with_one_far_ahead())
def test_one_record_far_ahead_expires_nothing_that_the_others_times_have_not(case):
    records, far = case
    table = Table()
    feed(table, 0, records)
    others = [r for r in records if r is not far]
    latest = max(r.ts_ms for r in others)
    assert table.clock_ms(0) <= latest + MAX_CLOCK_STEP_MS
    held = dict(table.items())
    for r in others:  # every TTL key whose expiry is a step past the other records' times is held
        if r.expires_at_ms is not None and r.expires_at_ms > latest + MAX_CLOCK_STEP_MS:
            assert r.key in held


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.integers(-2 * YEAR, 2 * YEAR), st.integers(0, 3)), max_size=60))
def test_apply_agrees_with_next_log_time(records):
    """The table's inlined rule is :func:`next_log_time`, for any writer times (a retry included:
    request ids repeat, and a repeated id with the same time is a retry)."""
    table, clocks = Table(), {}
    for partition, delta, rid in records:
        ts = T0 + delta
        clocks[partition] = next_log_time(clocks.get(partition, LogClock()), ts)
        feed(table, partition, [put("k", ts, f"r{rid}")])
        assert table.log_clock(partition) == clocks[partition]
        assert table.clock_ms(partition) == clocks[partition].log_time_ms


# ---- the same clock after a snapshot ------------------------------------------------------------


def test_a_snapshot_keeps_what_the_next_record_is_weighed_against():
    table = Table()
    feed(table, 0, [put("a", T0, "r0"), put("b", T0 + 60 * MINUTE, "r1")])  # log time moved a step
    loaded = decode_snapshot(encode_snapshot(table, "s")).table
    after = put("c", T0 + 61 * MINUTE, "r2")
    for t in (table, loaded):
        feed(t, 0, [after])
        assert t.clock_ms(0) == T0 + 61 * MINUTE  # with the record before the snapshot, it vouches


def test_an_image_without_the_row_weighs_the_next_record_against_log_time():
    table = Table()
    feed(table, 0, [put("a", T0, "r0"), put("b", T0 + 60 * MINUTE, "r1")])
    encode_snapshot(table, "s")
    table.db.execute("DELETE FROM meta WHERE name = 'log_clock'")  # as written by an earlier version
    loaded = Table(connection=table.db)
    assert loaded.log_clock(0) == LogClock(*[T0 + MAX_CLOCK_STEP_MS] * 3)


# ---- what log time decides keeps working --------------------------------------------------------


def test_the_request_table_stays_bounded_after_a_record_far_ahead():
    """The sweep keeps forgetting requests: log time did not stand still a year ahead."""
    table = Table()
    feed(table, 0, [put("start", T0, "start"), put("far", T0 + YEAR, "far")])
    for second in range(1, 1201):  # twenty minutes of one write a second
        feed(table, 0, [put(f"k{second % 7}", T0 + second * 1000, f"r{second}")])
    table.sweep_requests()
    remembered = table.db.execute("SELECT count(*) FROM requests").fetchone()[0]
    # The window, plus the step the far record took log time ahead of the writers.
    assert remembered <= (DEDUP_WINDOW_MS + MAX_CLOCK_STEP_MS) // 1000 + 2


def test_a_conditional_write_after_a_quiet_spell_sees_what_its_writer_reads():
    """A lock taken for ten minutes, then nothing for an hour: the next taker's create-if-absent
    succeeds although log time has not caught up yet (the record decides its key at its own time)."""
    table = Table()
    feed(table, 0, [put("lock", T0, "a", expires=T0 + 10 * MINUTE, pre=IF_ABSENT)])
    outcome = table.apply(Position(0, 1), put("lock", T0 + 60 * MINUTE, "b", expires=T0 + 70 * MINUTE, pre=IF_ABSENT))
    assert table.clock_ms(0) == T0 + MAX_CLOCK_STEP_MS
    assert outcome is not None and outcome.kind is OutcomeKind.CREATED
    assert table.get("lock", T0 + 60 * MINUTE).version == Position(0, 1)


def test_a_retry_after_a_quiet_spell_is_still_recognised_once_log_time_catches_up():
    """The first record after an hour moves log time a step; the next one takes it an hour on. The
    first one's request id is remembered from its own time, so its retry changes nothing."""
    table = Table()
    feed(table, 0, [put("k", T0, "r0")])
    first = put("k", T0 + 60 * MINUTE, "r1")
    created = table.apply(Position(0, 1), first)
    feed(table, 0, [put("other", T0 + 60 * MINUTE + 1_000, "r2")])
    assert table.clock_ms(0) == T0 + 60 * MINUTE + 1_000
    assert table.apply(Position(0, 3), first) == created  # the producer's retry lands
    assert table.get("k", T0 + 60 * MINUTE).version == Position(0, 1)
