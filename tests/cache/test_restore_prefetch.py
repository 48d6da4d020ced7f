"""The cold start's fast path (restore_prefetch.py): the tail read while the image loads is exactly
the tail the ordinary path replays, and anything but the plain case is left to the ordinary path."""

from __future__ import annotations

import contextlib
import time
import uuid

import pytest

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.compactor.compaction import compact
from streamcache.core.snapshot import HEADER_PROBE_BYTES
from streamcache.replay.fold import apply_decoded
from streamcache.cache import restore_prefetch
from streamcache.cache.restore_prefetch import load_with_tail
from support.log_history import START_MS, fill, foreign, full_replay

STREAM = "orders"


@pytest.fixture(autouse=True)
def any_size(monkeypatch):
    """These images are small: take the fast path whatever their size."""
    monkeypatch.setattr(restore_prefetch, "FAST_MIN_BYTES", 0)


def test_the_plain_case_loads_the_newest_image_with_exactly_its_tail():
    log, store = MemoryLog(3), MemoryStore()
    fill(log, 60, keys=20)
    written = compact(log, store, STREAM, keep=3).object
    fill(log, 24, keys=20, ts_ms=START_MS + 5_000, prefix="late-")
    foreign(log, "late-3")  # not ours: skipped alike on both paths

    fast = load_with_tail(store, STREAM, log, time.monotonic)

    assert fast is not None and fast.loaded.name == written and len(fast.records) == 25
    assert fast.plan.start == fast.loaded.header.next_offsets and fast.plan.end == log.bounds().next
    table = fast.loaded.table
    stats = apply_decoded(table, fast.records)
    assert (stats.read, stats.skipped) == (25, 1)
    assert table.export_state() == full_replay(log).export_state()


def test_no_snapshot_or_a_damaged_newest_one_is_left_to_the_ordinary_path():
    log, store = MemoryLog(3), MemoryStore()
    fill(log, 10)
    assert load_with_tail(store, STREAM, log, time.monotonic) is None  # nothing to load
    newest = compact(log, store, STREAM, keep=3).object
    intact = store.get(newest)
    store.delete(newest)
    store.put_new(newest, intact[:-1] + bytes([intact[-1] ^ 1]))  # the header still reads, the CRC fails
    assert load_with_tail(store, STREAM, log, time.monotonic) is None


def test_a_snapshot_ahead_of_the_log_is_left_to_the_ordinary_path():
    log, store = MemoryLog(3), MemoryStore()
    fill(log, 10)
    compact(log, store, STREAM, keep=3)
    assert load_with_tail(store, STREAM, MemoryLog(3), time.monotonic) is None  # a recreated stream


def test_a_store_failing_mid_load_leaves_no_reader_behind():
    import threading

    import pytest

    from streamcache.ports import SnapshotStoreUnavailable
    from support.hooked_store import HookedStore

    log, store = MemoryLog(3), MemoryStore()
    fill(log, 10)
    compact(log, store, STREAM, keep=3)
    fill(log, 5, ts_ms=START_MS + 1_000, prefix="late-")

    released = threading.Event()

    class SlowLog:  # the tail read is still going on when the store fails
        def __getattr__(self, name):
            return getattr(log, name)

        def read(self, *args):
            released.wait(10)
            return log.read(*args)

    def unavailable(name, *args):
        released.set()
        raise SnapshotStoreUnavailable("the store went away")

    with pytest.raises(SnapshotStoreUnavailable):
        load_with_tail(HookedStore(store, read_into=unavailable), STREAM, SlowLog(), time.monotonic)
    assert not [t for t in threading.enumerate() if t.name in ("streamcache-tail", "streamcache-image")]


def test_the_image_loads_while_the_log_is_asked_for_its_bounds():
    """The download starts before the log's round trips (bounds, identity, tail), not after them: a
    log that answers its bounds only once the image is being read still gets through."""
    import threading

    from support.hooked_store import HookedStore

    log, store = MemoryLog(3), MemoryStore()
    fill(log, 30, keys=10)
    compact(log, store, STREAM, keep=3)
    fill(log, 4, keys=4, ts_ms=START_MS + 1_000, prefix="late-")
    reading = threading.Event()

    class WaitingLog:  # its bounds wait for the image's download to have begun
        def __getattr__(self, name):
            return getattr(log, name)

        def bounds(self):
            assert reading.wait(10), "the log was asked for its bounds before the image started loading"
            return log.bounds()

    fast = load_with_tail(HookedStore(store, read_into=lambda *_: reading.set()), STREAM, WaitingLog(), time.monotonic)
    assert fast is not None and len(fast.records) == 4


@contextlib.contextmanager
def cold_started(monkeypatch, store_wrapper=lambda store: store):
    """A cache app cold-started on a snapshot of 40 records and a 12-record tail; yields the app, the
    log and what each call of ``load_with_tail`` returned."""
    from streamcache.cache.app import CacheApp
    from streamcache.settings import Settings

    name = f"prefetch-{uuid.uuid4().hex}"
    log, store = MemoryLog.named(name, 3), MemoryStore.named(name)
    try:
        fill(log, 40, keys=15)
        compact(log, store, name, keep=3)
        fill(log, 12, keys=15, ts_ms=START_MS + 5_000, prefix="late-")
        wrapped = store_wrapper(store)
        app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": f"memory://{name}",
                                          "STREAMCACHE_SNAPSHOT_URL": f"memory://{name}"}),
                       store_factory=lambda: wrapped)
        taken: list = []
        real = restore_prefetch.load_with_tail
        monkeypatch.setattr("streamcache.cache.cold_start.load_with_tail", lambda *a: taken.append(real(*a)) or taken[-1])
        app.ensure_started()
        yield app, log, taken
    finally:
        MemoryLog.forget(name)
        MemoryStore.forget(name)


def assert_equals_a_full_replay(app, log) -> None:
    assert app.cold_start.records_replayed == 12 and app.cold_start.phase == "serving"
    assert app.replica.table.export_state() == full_replay(log).export_state()
    assert app.replica.positions() == log.bounds().next


def test_a_tail_too_long_to_hold_is_replayed_in_chunks_onto_the_image_loaded_ahead(monkeypatch):
    from support.hooked_store import HookedStore

    monkeypatch.setattr(restore_prefetch, "PREFETCH_MAX_RECORDS", 5)
    reads: list[int] = []  # the buffers' sizes (the restore releases its buffer's view afterwards)

    def hooked(store):
        return HookedStore(store, read_into=lambda name, buffer, offset=0: reads.append(len(buffer)))

    with cold_started(monkeypatch, hooked) as (app, log, taken):
        assert taken and taken[0] is not None and taken[0].records is None  # the image loaded ahead, no tail held
        assert reads[0] == HEADER_PROBE_BYTES and len(reads) == 2  # the header's probe, then the image once
        assert_equals_a_full_replay(app, log)


def test_a_cold_start_on_the_fast_path_equals_a_full_replay(monkeypatch):
    with cold_started(monkeypatch) as (app, log, taken):
        assert taken and taken[0] is not None  # the fast path it was
        assert_equals_a_full_replay(app, log)


def test_a_chain_takes_the_fast_path_base_then_deltas_with_exactly_its_tail():
    from streamcache.core.snapshot_chain import ChainPolicy

    log, store = MemoryLog(3), MemoryStore()
    policy = ChainPolicy(max_deltas=4, max_fraction=100)
    fill(log, 60, keys=20)
    base = compact(log, store, STREAM, keep=3, chain=policy).object
    fill(log, 9, keys=9, ts_ms=START_MS + 5_000, prefix="mid-")
    delta = compact(log, store, STREAM, keep=3, chain=policy)
    assert delta.kind == "delta"
    fill(log, 6, keys=6, ts_ms=START_MS + 9_000, prefix="late-")

    fast = load_with_tail(store, STREAM, log, time.monotonic)

    assert fast is not None and fast.loaded.name == delta.object and fast.loaded.chain == [base, delta.object]
    assert len(fast.records) == 6 and fast.plan.start == delta.positions_after
    table = fast.loaded.table
    apply_decoded(table, fast.records)
    assert table.export_state() == full_replay(log).export_state()
