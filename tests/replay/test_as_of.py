"""``table_as_of`` against a memory log and a memory store: which snapshot a moment starts from, where
a time stops each partition, and the quota, folded as every instance folds them."""

from __future__ import annotations

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.compactor.compaction import compact
from streamcache.core.quota import Quota
from streamcache.core.table import Table
from streamcache.replay.as_of import Moment, table_as_of
from streamcache.replay.fold import replay
from support.log_history import START_MS, fill, put

STREAM = "as-of"


def folded_to(log: MemoryLog, end: dict[int, int], max_bytes: int = 0) -> dict:
    """Every entry of the table an instance (with quota ``max_bytes``) has folded up to ``end``."""
    table = Table(Quota(max_bytes, log.partitions) if max_bytes else None)
    replay(table, log, dict(log.bounds().first), end)
    return dict(table.items())


def test_positions_start_from_the_newest_intact_snapshot_within_them(caplog):
    log, store = MemoryLog(3), MemoryStore()
    fill(log, 30)
    oldest = compact(log, store, STREAM, 5).object
    fill(log, 30, ts_ms=START_MS + 1_000, prefix="b")
    within = compact(log, store, STREAM, 5).object
    moment = dict(log.bounds().next)
    fill(log, 30, ts_ms=START_MS + 2_000, prefix="c")
    compact(log, store, STREAM, 5)  # past the positions
    good = store.get(within)
    store.delete(within)
    store.put_new(within, good[:-10] + bytes(b ^ 0xFF for b in good[-10:]))  # damaged in place: its header still reads

    state = table_as_of(store, log, STREAM, Moment(positions=moment))
    assert state.snapshot == oldest and state.positions == moment
    assert dict(state.table.items()) == folded_to(log, moment)
    assert f"snapshot {within} skipped" in caplog.text


def test_a_time_stops_each_partition_where_its_log_time_passes_the_moment():
    log = MemoryLog(1)
    put(log, "before", b"1", START_MS - 10)
    put(log, "after", b"2", START_MS + 10)  # log time passes the moment here,
    put(log, "behind", b"3", START_MS - 5)  # so a writer whose clock is behind comes after it too
    state = table_as_of(None, log, STREAM, Moment(time_ms=START_MS))
    assert [key for key, _ in state.table.items()] == ["before"]
    assert state.positions == {0: 1} and state.records_replayed == 1


def test_the_quota_decides_as_on_every_instance_from_a_snapshot_and_from_none():
    log, store = MemoryLog(1), MemoryStore()
    put(log, "a", b"a" * 500)
    put(log, "b", b"b" * 500)  # past the quota of 1,000 accounted bytes: refused everywhere
    compact(log, store, STREAM, 3, max_bytes=1_000)
    put(log, "c", b"c" * 500)  # refused in the tail
    end = dict(log.bounds().next)
    for source in (store, None):
        state = table_as_of(source, log, STREAM, Moment(), max_bytes=1_000)
        assert dict(state.table.items()) == folded_to(log, end, 1_000)
        assert [key for key, _ in state.table.items()] == ["a"]


def test_a_touch_is_folded_as_of_its_time_and_kept_by_a_snapshot():
    from streamcache.core.records import Touch, encode

    log, store = MemoryLog(1), MemoryStore()
    put(log, "k", b"v", START_MS - 100)
    log.append("k", encode(Touch("k", "touch-1", START_MS - 50, START_MS + 3_600_000)))
    compact(log, store, STREAM, 5)  # the touch's expiry goes into the snapshot
    log.append("k", encode(Touch("k", "touch-2", START_MS + 10, None)))  # after the moment: no expiry
    before = table_as_of(store, log, STREAM, Moment(time_ms=START_MS)).table.get("k", START_MS)
    after = table_as_of(store, log, STREAM, Moment(positions=dict(log.bounds().next))).table.get("k", START_MS)
    assert (before.value, before.expires_at_ms) == (b"v", START_MS + 3_600_000)
    assert (after.value, after.version, after.expires_at_ms) == (b"v", before.version, None)
