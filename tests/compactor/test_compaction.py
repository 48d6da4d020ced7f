"""compact() against the memory log and the memory snapshot store: what it writes, prunes, skips and
refuses, and that a crash at any step or a second compactor at the same time never loses anything."""

from __future__ import annotations

import threading
import uuid

import pytest
from freezegun import freeze_time
from hypothesis import HealthCheck, given, settings, strategies as st

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.compactor.compaction import REFUSED, UNCHANGED, WRITTEN, compact
from streamcache.core.data_loss import decode_loss, is_loss_name
from streamcache.core.records import IF_ABSENT, IF_EXISTS, if_match
from streamcache.core.retention import RetentionPolicy
from streamcache.core.snapshot import (checksum, decode_snapshot, encode_snapshot, newest_first, parse_name,
                                       stream_prefix)
from streamcache.core.table import DEDUP_WINDOW_MS, Table
from streamcache.replay.catalog import load_newest_valid
from support.hooked_store import HookedStore, Killed, killed_at
from support.log_history import START_MS, delete, fill, foreign, full_replay, put, values

STREAM = "orders"


def snapshots(store) -> list[str]:
    return newest_first(store.list(stream_prefix(STREAM)), STREAM)


def restored(store, log) -> Table:
    """What a cold start builds: the newest valid snapshot, then the log from its positions."""
    from streamcache.core.restore import plan_restore
    from streamcache.replay.fold import replay

    loaded = load_newest_valid(store, STREAM).snapshot
    plan = plan_restore(loaded.header if loaded else None, log.bounds())
    table = loaded.table if loaded and plan.snapshot else Table()
    replay(table, log, plan.start, plan.end)
    return table


@pytest.fixture
def log():
    return MemoryLog(3)


@pytest.fixture
def store():
    return MemoryStore()


# ---- the basics ---------------------------------------------------------------------------------


def test_a_first_compaction_folds_the_whole_log_into_one_snapshot(log, store):
    latest = fill(log, 300, keys=40)
    delete(log, "k7", START_MS + 1000)
    foreign(log, "k8")
    summary = compact(log, store, STREAM, keep=3)
    assert summary.outcome == WRITTEN and summary.base_snapshot is None
    assert (summary.records_folded, summary.records_applied, summary.records_skipped) == (302, 301, 1)
    assert summary.positions_before == {} and summary.positions_after == log.bounds().next == summary.log_end
    assert snapshots(store) == [summary.object]
    data = store.get(summary.object)
    assert summary.bytes == len(data) and summary.entries == 39
    table = decode_snapshot(data).table
    del latest["k7"]
    assert values(table, START_MS) == latest
    assert table.export_state() == full_replay(log).export_state()
    json = summary.to_json()
    assert json["outcome"] == "written" and json["object"] == summary.object and json["positions_after"] == {
        str(p): o for p, o in log.bounds().next.items()}


def test_with_nothing_new_to_fold_nothing_is_written(log, store):
    assert compact(log, store, STREAM, keep=3).outcome == UNCHANGED  # an empty log: nothing at all
    assert store.list() == []
    fill(log, 20)
    first = compact(log, store, STREAM, keep=3)
    again = compact(log, store, STREAM, keep=3)
    assert again.outcome == UNCHANGED and again.object is None and again.records_folded == 0
    assert again.base_snapshot == first.object and snapshots(store) == [first.object]


def test_later_compactions_fold_only_the_tail_and_keep_the_newest_n(log, store):
    fill(log, 100)
    written = [compact(log, store, STREAM, keep=2).object]
    for round_ in range(3):
        fill(log, 10, ts_ms=START_MS + 10_000 * (round_ + 1), prefix=f"r{round_}-")
        summary = compact(log, store, STREAM, keep=2)
        assert summary.records_folded == 10 and summary.base_snapshot == written[-1]
        written.append(summary.object)
    assert snapshots(store) == written[::-1][:2]  # newest first; older ones pruned
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_pruning_keeps_every_snapshot_of_the_window_then_one_a_day(log, store):
    day, hour = 86_400_000, 3_600_000
    midnight = (START_MS // day + 1) * day
    now = midnight + 10 * day
    policy = RetentionPolicy(keep_newest=1, keep_all_for_ms=day, daily_for_days=2)
    made = {}
    for label, at in (("6d+1h", 6 * day + hour), ("7d+1h", 7 * day + hour), ("8d+1h", 8 * day + hour),
                      ("8d+2h", 8 * day + 2 * hour), ("9d+2h", 9 * day + 2 * hour), ("10d-1m", 10 * day - 60_000)):
        # The snapshot's as-of time is its newest record's: a day after the last one, it takes two
        # records in a row to vouch for it (a record alone moves log time a minute: core/log_time.py).
        put(log, f"tick-{label}", b"v", ts_ms=midnight + at - 1)
        put(log, f"key-{label}", b"v", ts_ms=midnight + at)
        made[label] = compact(log, store, STREAM, policy, clock=lambda: now / 1000).object
    # The window (the last day): 9d+2h and 10d-1m. Before it, for two days, the newest of each day:
    # 8d+2h (not 8d+1h, the same day) and 7d+1h. 6d+1h is older than the window and two days.
    assert set(snapshots(store)) == {made[k] for k in ("10d-1m", "9d+2h", "8d+2h", "7d+1h")}


def test_expired_entries_are_dropped_once_log_time_passes_them():
    log, store = MemoryLog(1), MemoryStore()
    put(log, "short", b"1", START_MS, ttl_ms=1_000)
    put(log, "long", b"2", START_MS, ttl_ms=60_000)
    put(log, "later", b"3", START_MS + 5_000)  # log time moves past "short"'s expiry
    summary = compact(log, store, STREAM, keep=1)
    table = decode_snapshot(store.get(summary.object)).table
    assert summary.entries == 2 and sorted(key for key, _ in table.items()) == ["later", "long"]


# ---- the property, at the level of the system --------------------------------------------------

KEYS = ["a", "b", "c/é", "d"]


@st.composite
def histories(draw):
    steps = []
    now = START_MS
    for _ in range(draw(st.integers(0, 30))):
        now += draw(st.sampled_from([0, 1, 500, 2_000, DEDUP_WINDOW_MS + 1, -300]))
        kind = draw(st.sampled_from(["put", "put", "put", "delete", "foreign", "retry"]))
        key = draw(st.sampled_from(KEYS))
        ttl = draw(st.sampled_from([None, None, 1, 1_000, 100_000]))
        condition = draw(st.sampled_from([None, None, "absent", "exists", "match"]))
        steps.append((kind, key, now, ttl, condition, draw(st.binary(max_size=4))))
    cuts = sorted(draw(st.lists(st.integers(0, len(steps)), max_size=3)))
    return steps, cuts


def play(log, step, positions: dict) -> None:
    kind, key, now, ttl, condition, value = step
    pre = {"absent": IF_ABSENT, "exists": IF_EXISTS, None: None}.get(condition)
    if condition == "match":
        pre = if_match(positions.get(key) or next(iter(positions.values()), None) or _origin())
    if kind == "put":
        positions[key] = put(log, key, value, now, ttl_ms=ttl, precondition=pre)
    elif kind == "delete":
        delete(log, key, now, pre)
    elif kind == "retry":  # the same request id appended again, as a producer retry does
        put(log, key, value, now, ttl_ms=ttl, request_id="retried-request")
    else:
        foreign(log, key)


def _origin():
    from streamcache.core.records import Position

    return Position(0, 0)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(histories())
def test_compacting_at_any_points_then_replaying_the_rest_equals_replaying_everything(history):
    steps, cuts = history
    log, store = MemoryLog(2), MemoryStore()
    positions: dict = {}
    done = 0
    for cut in cuts:
        for step in steps[done:cut]:
            play(log, step, positions)
        done = cut
        compact(log, store, STREAM, keep=2)
    for step in steps[done:]:
        play(log, step, positions)
    truth = full_replay(log)
    table = restored(store, log)
    assert table.export_state() == truth.export_state()
    for now in (START_MS, START_MS + 1_500, START_MS + 10**7):
        assert values(table, now) == values(truth, now)


# ---- damaged snapshots, lost records, a recreated stream ----------------------------------------


def test_a_corrupt_newest_snapshot_is_skipped_for_an_older_one_and_reported(log, store):
    fill(log, 50)
    older = compact(log, store, STREAM, keep=5).object
    fill(log, 10, ts_ms=START_MS + 9_000, prefix="x")
    newest = compact(log, store, STREAM, keep=5).object
    good = store.get(newest)
    store.delete(newest)
    store.put_new(newest, good[:-10] + bytes(b ^ 0xFF for b in good[-10:]))  # damaged in place (same name, other bytes)
    fill(log, 5, ts_ms=START_MS + 20_000, prefix="y")
    summary = compact(log, store, STREAM, keep=1)
    assert summary.base_snapshot == older
    assert [(s.name, s.reason) for s in summary.skipped_snapshots] == [(newest, "corrupt")]
    assert summary.records_folded == 15 and summary.outcome == WRITTEN
    # The corrupt one did not count towards keep=1: the new one and nothing else valid is kept,
    # the corrupt one is older than it and goes.
    assert snapshots(store) == [summary.object]
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_a_snapshot_of_another_stream_under_this_name_is_skipped(log, store):
    fill(log, 20)
    real = compact(log, store, STREAM, keep=3).object
    impostor_table = Table()
    data = encode_snapshot(impostor_table, "someone-else")
    sums = checksum(data)
    name = f"{stream_prefix(STREAM)}{parse_name(real).offsets_total + 1:016x}-{0:016x}-impostor-{sums.size_bytes:012x}-{sums.crc32:08x}.db"
    store.put_new(name, data)
    loaded = load_newest_valid(store, STREAM)
    assert loaded.snapshot.name == real and [s.reason for s in loaded.skipped] == ["other_stream"]


def test_a_truncated_tail_is_recorded_as_data_loss_and_the_snapshot_covers_the_gap(log, store, caplog):
    fill(log, 30)
    first = compact(log, store, STREAM, keep=3)
    fill(log, 30, ts_ms=START_MS + 1_000, prefix="lost-")
    fill(log, 9, ts_ms=START_MS + 2_000, prefix="kept-")
    end = log.bounds().next
    for p in range(3):  # retention drops everything but the last three records of each partition
        log.truncate_before(p, end[p] - 3)
    summary = compact(log, store, STREAM, keep=3)
    assert summary.outcome == WRITTEN and summary.data_loss is not None
    assert summary.data_loss.lost == {p: (first.positions_after[p], end[p] - 3) for p in range(3)}
    assert summary.data_loss.snapshot_before == first.object and summary.data_loss.snapshot_after == summary.object
    assert summary.positions_after == end  # covered: the next restore does not trip over the gap again
    record = decode_loss(store.get(summary.data_loss_record))
    assert record == summary.data_loss and is_loss_name(summary.data_loss_record, STREAM)
    assert summary.unacknowledged_losses == [summary.data_loss_record]
    assert any("DATA LOSS" in r.getMessage() and r.levelname == "ERROR" for r in caplog.records)
    # Later runs keep saying so until an operator deletes the record; pruning never touches it.
    fill(log, 3, ts_ms=START_MS + 3_000, prefix="more-")
    later = compact(log, store, STREAM, keep=1)
    assert later.data_loss is None and later.unacknowledged_losses == [summary.data_loss_record]
    assert summary.data_loss_record in store.list()


def test_snapshots_ahead_of_the_log_make_the_compactor_refuse(log, store):
    fill(log, 40)
    written = compact(log, store, STREAM, keep=3).object
    recreated = MemoryLog(3)  # the stream was deleted and created again under the same identity
    fill(recreated, 5)
    before = store.list()
    summary = compact(recreated, store, STREAM, keep=1)
    assert summary.outcome == REFUSED and "SNAPSHOT OF ANOTHER LOG" in summary.problem
    assert store.list() == before and snapshots(store) == [written]  # nothing written, nothing pruned
    assert summary.to_json()["problem"] == summary.problem


def test_a_snapshot_of_a_lost_log_is_not_folded_onto_a_longer_new_one(log, store):
    """Finding 2 of the log-identity issue: the new log holds more records than the snapshot covered,
    so "snapshot offsets <= log end" holds; the record at the snapshot's last offset is another one."""
    fill(log, 30, prefix="old")
    written = compact(log, store, STREAM, keep=3).object
    recreated = MemoryLog(3)  # a broker that lost its log, a stream recreated under the same identity
    fill(recreated, 90, prefix="new")
    assert all(o <= recreated.bounds().next[p] for p, o in load_newest_valid(store, STREAM).snapshot.header.next_offsets.items())
    summary = compact(recreated, store, STREAM, keep=1)
    assert summary.outcome == REFUSED and "SNAPSHOT OF ANOTHER LOG" in summary.problem
    assert "is another one than the table applied" in summary.problem
    assert snapshots(store) == [written]


def test_the_same_log_is_recognised_record_by_record_and_folded(log, store):
    fill(log, 30)
    compact(log, store, STREAM, keep=3)
    fill(log, 10, prefix="more")
    summary = compact(log, store, STREAM, keep=3)
    assert summary.outcome == WRITTEN
    header = load_newest_valid(store, STREAM).snapshot.header
    assert header.partition_count == 3 and header.max_bytes == 0 and header.dedup_window_ms == DEDUP_WINDOW_MS
    assert set(header.fingerprints) == {p for p, o in header.next_offsets.items() if o > 0}


def test_a_log_whose_partition_count_changed_makes_the_compactor_refuse(log, store):
    fill(log, 30)
    written = compact(log, store, STREAM, keep=3).object
    grown = MemoryLog(4)  # the same records, then partitions added (Kafka allows it; OCI does not)
    for record in log.read({0: 0, 1: 0, 2: 0}):
        grown._records[record.position.partition].append(record)
    summary = compact(grown, store, STREAM, keep=1)
    assert summary.outcome == REFUSED and "PARTITION COUNT CHANGED" in summary.problem
    assert "placed over 3 partitions, the log now has 4" in summary.problem
    assert snapshots(store) == [written]


def test_a_compactor_with_another_quota_than_the_snapshot_says_so(log, store):
    fill(log, 30)
    compact(log, store, STREAM, keep=3, max_bytes=1 << 20)
    fill(log, 5, prefix="more")
    summary = compact(log, store, STREAM, keep=3, max_bytes=2 << 20)
    assert summary.outcome == WRITTEN
    assert "STREAMCACHE_MAX_BYTES=1048576" in summary.settings_changed and "applies 2097152" in summary.settings_changed


# ---- concurrency and crashes --------------------------------------------------------------------


def test_two_compactors_at_once_both_succeed_and_nothing_regresses(log, store):
    fill(log, 60)
    base = compact(log, store, STREAM, keep=1).object
    fill(log, 20, ts_ms=START_MS + 5_000, prefix="n")
    both_folded = threading.Barrier(2, timeout=10)
    written = {}

    def meet(name, data):
        written[name] = data
        both_folded.wait()

    hooked = HookedStore(store, put_new=meet)
    results = []
    threads = [threading.Thread(target=lambda: results.append(compact(log, hooked, STREAM, keep=1))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [r.outcome for r in results] == [WRITTEN, WRITTEN]
    assert {r.base_snapshot for r in results} == {base}
    assert results[0].object != results[1].object  # same coverage, different writers
    assert written[results[0].object] == written[results[1].object]  # deterministic bytes
    # Each pruned to keep=1 (plus its own): of two equal snapshots, either may be gone, never both.
    assert base not in snapshots(store) and set(snapshots(store)) <= set(written) and snapshots(store)
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_a_slow_compactor_that_writes_after_a_newer_one_does_not_regress_anything(log, store):
    fill(log, 40)
    compact(log, store, STREAM, keep=1)
    fill(log, 10, ts_ms=START_MS + 1_000, prefix="a")
    folded, proceed = threading.Event(), threading.Event()

    def hold(name, data):
        folded.set()
        assert proceed.wait(10)

    slow_result = []
    slow = threading.Thread(target=lambda: slow_result.append(
        compact(log, HookedStore(store, put_new=hold), STREAM, keep=1)))
    slow.start()
    assert folded.wait(10)
    fill(log, 10, ts_ms=START_MS + 2_000, prefix="b")
    fast = compact(log, store, STREAM, keep=1)  # folds more, writes, prunes, while the slow one waits
    proceed.set()
    slow.join(10)
    (slow_summary,) = slow_result
    assert parse_name(slow_summary.object) < parse_name(fast.object)
    assert snapshots(store)[0] == fast.object  # the newest stays the newest
    assert restored(store, log).export_state() == full_replay(log).export_state()


@pytest.mark.parametrize("step", ["write", "prune-list", "prune-delete"])
def test_a_compactor_killed_at_any_step_leaves_snapshots_valid_and_the_next_run_recovers(log, store, step):
    fill(log, 50)
    compact(log, store, STREAM, keep=1)
    fill(log, 10, ts_ms=START_MS + 1_000, prefix="x")
    compact(log, store, STREAM, keep=5)  # two snapshots now
    fill(log, 10, ts_ms=START_MS + 2_000, prefix="y")
    before = snapshots(store)
    hooked = killed_at(store, step)
    with pytest.raises(Killed):
        compact(log, hooked, STREAM, keep=1)
    for name in snapshots(store):
        decode_snapshot(store.get(name))  # every object there is complete and valid
    assert set(before) <= set(snapshots(store))
    recovered = compact(log, store, STREAM, keep=1)
    assert recovered.outcome == (WRITTEN if step == "write" else UNCHANGED)
    assert snapshots(store) == [recovered.object or recovered.base_snapshot]
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_killed_between_the_data_loss_record_and_the_snapshot_the_loss_stays_recorded(log, store):
    fill(log, 30)
    compact(log, store, STREAM, keep=3)
    fill(log, 30, ts_ms=START_MS + 1_000, prefix="lost-")
    end = log.bounds().next
    for p in range(3):
        log.truncate_before(p, end[p] - 2)

    def kill_snapshot_write(name, data):
        if name.endswith(".db"):
            raise Killed("after the data-loss record")

    with pytest.raises(Killed):
        compact(log, HookedStore(store, put_new=kill_snapshot_write), STREAM, keep=3)
    assert [n for n in store.list() if is_loss_name(n, STREAM)]
    again = compact(log, store, STREAM, keep=3)
    assert again.outcome == WRITTEN and len(again.unacknowledged_losses) == 2  # recorded twice, never hidden


def test_a_compaction_needs_keep_of_at_least_one(log, store):
    with pytest.raises(ValueError):
        compact(log, store, STREAM, keep=0)


# ---- time -----------------------------------------------------------------------------------------


def test_ttls_hold_across_a_snapshot_and_a_restore():
    from streamcache.cache.app import CacheApp
    from streamcache.settings import Settings

    name = f"ttl-{uuid.uuid4().hex}"
    log = MemoryLog.named(name, 2)
    store = MemoryStore.named(name)
    try:
        env = {"STREAMCACHE_LOG_URL": f"memory://{name}", "STREAMCACHE_SNAPSHOT_URL": f"memory://{name}"}
        with freeze_time("2030-01-01T00:00:00Z") as frozen:
            writer = CacheApp(Settings.from_env(env))
            writer.service.put("session", b"s", ttl_seconds=60)
            writer.service.put("forever", b"f")
            assert compact(log, store, name, keep=1).entries == 2
            frozen.tick(59)
            fresh = CacheApp(Settings.from_env(env))
            fresh.ensure_started()
            assert fresh.cold_start.snapshot is not None and fresh.cold_start.records_replayed == 0
            assert fresh.service.get("session").entry.value == b"s"
            frozen.tick(2)
            assert fresh.service.get("session").entry is None  # expired by the wall clock of the read
            assert fresh.service.get("forever").entry.value == b"f"
            later = CacheApp(Settings.from_env(env))
            later.ensure_started()
            assert later.service.get("session").entry is None
    finally:
        MemoryLog.forget(name)
        MemoryStore.forget(name)


# ---- reading headers without downloading snapshots -------------------------------------------------


def test_a_header_is_read_from_the_first_bytes_of_a_snapshot(log, store, tmp_path):
    from streamcache.adapters.directory_store import DirectoryStore
    from streamcache.core.snapshot import HEADER_PROBE_BYTES, decode_header
    from streamcache.replay.catalog import read_header

    for i in range(3000):
        put(log, f"key-{i}", bytes([65 + i % 26]) * 100, START_MS + i)
    names = {}
    for target in (store, DirectoryStore(tmp_path)):
        name = names[id(target)] = compact(log, target, STREAM, keep=1).object
        data = target.get(name)
        assert len(data) > 200_000  # far more than the probe
        counted = HookedStore(target)
        assert read_header(counted, name) == (decode_header(data), len(data))
        assert [call for call, _ in counted.calls] == ["read_into"]  # no whole-object get
        assert len(counted.calls[0][1][1]) == HEADER_PROBE_BYTES

    class GetOnly:  # a store without streaming reads
        get = staticmethod(store.get)

    assert read_header(GetOnly(), names[id(store)])[1] == len(store.get(names[id(store)]))


# ---- snapshots of the earlier format (.snap) ------------------------------------------------------


def test_a_format_1_snapshot_is_converted_by_the_next_compaction(log, store):
    from streamcache.core.snapshot_legacy import LegacyPartition, encode_legacy

    fill(log, 50, keys=10)
    truth = full_replay(log)
    partitions = {p: LegacyPartition(o, truth.clock_ms(p), []) for p, o in truth.next_offsets().items()}
    legacy = encode_legacy(dict(truth.items()), partitions, STREAM)
    name = f"{stream_prefix(STREAM)}{sum(truth.next_offsets().values()):016x}-{0:016x}-old.snap"
    store.put_new(name, legacy)

    summary = compact(log, store, STREAM, keep=3)  # nothing new in the log, but the base is format 1

    assert summary.outcome == WRITTEN and summary.base_snapshot == name and summary.records_folded == 0
    assert summary.object.endswith(".db") and snapshots(store) == [summary.object, name]
    assert dict(restored(store, log).items()) == dict(truth.items())
    assert compact(log, store, STREAM, keep=3).outcome == UNCHANGED  # converted once
