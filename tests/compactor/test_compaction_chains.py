"""Chains of deltas (core/snapshot_chain.py, core/snapshot_delta.py) through compact() and the
loaders, against the memory log and store: what a compaction writes, and that a chain survives the
faults the snapshot suite injects into full images (a damaged link, a missing link, a compactor
killed between the base and the delta, a partial upload), never giving a wrong table."""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.compactor.compaction import UNCHANGED, WRITTEN, compact
from streamcache.core.retention import RetentionPolicy
from streamcache.core.snapshot import decode_header, parse_name
from streamcache.core.snapshot_chain import ChainPolicy, chain_of
from streamcache.replay.as_of import Moment, table_as_of
from streamcache.core.table import Table
from streamcache.replay.catalog import load_newest_valid
from streamcache.replay.chain import load_snapshot
from streamcache.replay.fold import replay
from support.hooked_store import HookedStore, Killed, killed_at
from support.log_history import START_MS, fill, full_replay, put
import test_compaction as plain
from test_compaction import STREAM, histories, play, restored, snapshots

CHAIN = ChainPolicy(max_deltas=3, max_fraction=100)  # the size rule has its own test


@pytest.fixture
def log():
    return MemoryLog(3)


@pytest.fixture
def store():
    return MemoryStore()


#: Big enough that a delta (a few pages at least, whatever changed) is well under a quarter of the base,
#: which since VACUUM is written with full pages.
BASE_KEYS = 4_000

def grow(log, round_: int, changes: int = 30) -> None:
    """``changes`` puts onto keys the base already holds, later in log time than the last round."""
    fill(log, changes, keys=changes, ts_ms=START_MS + 10_000 * round_, prefix="k")


def _base(log, store, keep=10):
    fill(log, BASE_KEYS, keys=BASE_KEYS)
    first = compact(log, store, STREAM, keep=keep, chain=CHAIN)
    assert first.kind == "full" and first.full_image_reason == "no snapshot to fold onto"
    return first


def test_compactions_write_deltas_onto_the_chain_then_a_full_image_after_max_deltas(log, store):
    base = _base(log, store)
    made = [base]
    for round_ in range(1, 5):
        grow(log, round_)
        made.append(compact(log, store, STREAM, keep=10, chain=CHAIN))
        assert restored(store, log).export_state() == full_replay(log).export_state()
    assert [s.kind for s in made] == ["full", "delta", "delta", "delta", "full"]
    assert "3 deltas since the base" in made[4].full_image_reason
    for previous, summary in zip(made, made[1:4]):
        name = parse_name(summary.object)
        assert name.is_delta and name.parent == parse_name(previous.object).writer
        assert summary.chain == [*previous.chain, summary.object] and summary.base_snapshot == previous.object
        assert summary.bytes < base.bytes / 4  # O(changes), not O(table)
        header = decode_header(store.get(summary.object))
        assert (header.base, header.parent) == (base.object, previous.object)
        assert header.entries == BASE_KEYS
    assert made[4].chain == [made[4].object] and made[4].to_json()["chain_length"] == 1
    assert made[3].to_json()["snapshot_kind"] == "delta" and made[4].to_json()["snapshot_kind"] == "full"
    loaded = load_newest_valid(store, STREAM).snapshot
    assert loaded.name == made[4].object and loaded.chain == [made[4].object]


def test_a_full_image_once_the_deltas_add_up_to_the_fraction_of_the_base(log, store):
    base = _base(log, store)
    grow(log, 1, changes=1_500)  # most of the table changes: a delta would be most of an image
    summary = compact(log, store, STREAM, keep=5, chain=ChainPolicy(max_deltas=10, max_fraction=0.25))
    assert summary.kind == "full" and "STREAMCACHE_SNAPSHOT_DELTA_PERCENT" in summary.full_image_reason
    assert summary.base_snapshot == base.object
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_without_deltas_every_compaction_writes_a_full_image(log, store):
    fill(log, 200)
    compact(log, store, STREAM, keep=3)
    grow(log, 1)
    summary = compact(log, store, STREAM, keep=3)  # the default policy: full images only
    assert summary.kind == "full" and "STREAMCACHE_SNAPSHOT_MAX_DELTAS=0" in summary.full_image_reason


def _three_deltas(log, store):
    made = [_base(log, store)]
    for round_ in range(1, 4):
        grow(log, round_)
        made.append(compact(log, store, STREAM, keep=10, chain=ChainPolicy(max_deltas=5, max_fraction=100)))
    assert [s.kind for s in made] == ["full", "delta", "delta", "delta"]
    return [s.object for s in made]


def _damage(store, name):
    damaged = bytearray(store.get(name))
    damaged[len(damaged) // 2] ^= 0xFF  # damaged in place (same name, other bytes)
    store.delete(name)
    store.put_new(name, bytes(damaged))


@pytest.mark.parametrize("fault", ["corrupt", "missing"])
def test_a_bad_delta_falls_back_to_the_longest_valid_prefix_of_its_chain_then_the_tail(log, store, fault):
    base, d1, d2, d3 = _three_deltas(log, store)
    grow(log, 9)  # a tail after the chain
    if fault == "corrupt":
        _damage(store, d2)
    else:
        store.delete(d2)
    result = load_newest_valid(store, STREAM)
    assert result.snapshot.name == d1 and result.snapshot.chain == [base, d1]
    reasons = {s.name: s.reason for s in result.skipped}
    assert reasons[d3] == "missing_link"
    assert reasons.get(d2) == ("corrupt" if fault == "corrupt" else None)
    # The cold start's table: the prefix, then a longer tail; never a table without d2's changes.
    assert restored(store, log).export_state() == full_replay(log).export_state()
    # The next compaction starts a fresh full image, and the broken links are pruned in time.
    summary = compact(log, store, STREAM, keep=1, chain=CHAIN)
    assert summary.kind == "full" and summary.base_snapshot == d1
    assert d3 not in snapshots(store) and snapshots(store)[0] == summary.object
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_a_damaged_base_takes_its_whole_chain_down_to_an_older_full_image(log, store):
    older = _base(log, store).object
    grow(log, 1)
    full = compact(log, store, STREAM, keep=10, chain=ChainPolicy(0)).object  # a full image
    grow(log, 2)
    delta = compact(log, store, STREAM, keep=10, chain=CHAIN).object
    assert chain_of(delta, snapshots(store)) == [full, delta]
    _damage(store, full)
    result = load_newest_valid(store, STREAM)
    assert result.snapshot.name == older
    assert {s.name: s.reason for s in result.skipped} == {delta: "missing_link", full: "corrupt"}
    assert restored(store, log).export_state() == full_replay(log).export_state()


@pytest.mark.parametrize("how", ["before the upload", "mid-upload"])
def test_a_compactor_killed_between_the_base_and_the_delta_leaves_a_consistent_store(log, store, how):
    base = _base(log, store).object
    grow(log, 1)

    def kill(name, data):
        if how == "mid-upload":  # a store that let a partial object through: the name's CRC catches it
            store.put_new(name, data[: len(data) // 2])
        raise Killed(how)

    with pytest.raises(Killed):
        compact(log, HookedStore(store, put_new=kill), STREAM, keep=1, chain=CHAIN)
    assert base in snapshots(store)
    assert load_newest_valid(store, STREAM).snapshot.name == base
    assert restored(store, log).export_state() == full_replay(log).export_state()
    recovered = compact(log, store, STREAM, keep=1, chain=CHAIN)
    assert recovered.outcome == WRITTEN
    assert recovered.kind == ("delta" if how == "before the upload" else "full")  # after a skip: a full image
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_retention_never_deletes_a_link_a_kept_delta_needs(log, store):
    base, d1, d2, d3 = _three_deltas(log, store)
    grow(log, 7)
    newest = compact(log, store, STREAM, keep=1, chain=ChainPolicy(max_deltas=5, max_fraction=100))
    assert newest.kind == "delta"
    assert snapshots(store) == [newest.object, d3, d2, d1, base]  # keep=1, and everything it needs
    policy = RetentionPolicy(keep_newest=1, keep_all_for_ms=0, daily_for_days=0)
    grow(log, 8)
    full = compact(log, store, STREAM, keep=policy, chain=ChainPolicy(0))
    assert snapshots(store) == [full.object]  # once no kept delta needs them, they go
    assert compact(log, store, STREAM, keep=policy, chain=CHAIN).outcome == UNCHANGED


def test_as_of_reads_and_their_positions_start_from_a_chain(log, store):
    base, d1, d2, d3 = _three_deltas(log, store)
    moment = dict(load_newest_valid(store, STREAM).snapshot.header.next_offsets)  # d3's end
    grow(log, 7)
    state = table_as_of(store, log, STREAM, Moment(positions=moment))
    assert state.snapshot == d3 and state.records_replayed == 0
    truth = Table()
    replay(truth, log, dict(log.bounds().first), moment)
    assert state.table.export_state() == truth.export_state()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(histories())
def test_compacting_into_chains_at_any_points_then_replaying_the_rest_equals_replaying_everything(history):
    steps, cuts = history
    log, store = MemoryLog(2), MemoryStore()
    positions: dict = {}
    done = 0
    for cut in cuts + [len(steps)]:
        for step in steps[done:cut]:
            play(log, step, positions)
        done = cut
        compact(log, store, STREAM, keep=2, chain=ChainPolicy(max_deltas=2, max_fraction=1000))
        assert restored(store, log).export_state() == full_replay(log).export_state()


# ---- the snapshot suite's concurrency and crash faults, with every compaction onto a chain a delta ----


def _on_a_chain(test):
    """``test`` of test_compaction.py run with compact() writing deltas by default."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        defaults = compact.__kwdefaults__
        before = defaults["chain"]
        defaults["chain"] = CHAIN
        try:
            return test(*args, **kwargs)
        finally:
            defaults["chain"] = before

    return run


test_a_slow_compactor_writing_a_delta_after_a_newer_one = _on_a_chain(
    plain.test_a_slow_compactor_that_writes_after_a_newer_one_does_not_regress_anything)
test_killed_between_the_loss_record_and_a_delta = _on_a_chain(
    plain.test_killed_between_the_data_loss_record_and_the_snapshot_the_loss_stays_recorded)
test_a_recreated_stream_is_refused_onto_a_chain = _on_a_chain(plain.test_snapshots_ahead_of_the_log_make_the_compactor_refuse)
test_a_lost_log_is_not_folded_onto_a_chain = _on_a_chain(plain.test_a_snapshot_of_a_lost_log_is_not_folded_onto_a_longer_new_one)


@pytest.mark.parametrize("step", ["write", "prune-list", "prune-delete"])
def test_a_compactor_killed_at_any_step_of_a_delta_leaves_every_chain_loadable(log, store, step):
    fill(log, 500, keys=500)
    compact(log, store, STREAM, keep=1, chain=CHAIN)
    grow(log, 1)
    compact(log, store, STREAM, keep=5, chain=ChainPolicy(0))
    grow(log, 2)
    compact(log, store, STREAM, keep=5, chain=CHAIN)  # a full image, then another and its delta
    grow(log, 3)
    before = snapshots(store)
    hooked = killed_at(store, step)
    with pytest.raises(Killed):
        compact(log, hooked, STREAM, keep=1, chain=CHAIN)
    names = snapshots(store)
    for name in names:  # every object there loads, with its whole chain
        load_snapshot(store, name, names).table.close()
    assert set(before) <= set(names)
    recovered = compact(log, store, STREAM, keep=1, chain=CHAIN)
    assert recovered.outcome == (WRITTEN if step == "write" else UNCHANGED)
    newest = recovered.object or recovered.base_snapshot
    assert snapshots(store) == sorted(chain_of(newest, snapshots(store)), key=parse_name, reverse=True)
    assert restored(store, log).export_state() == full_replay(log).export_state()


def test_two_compactors_writing_deltas_at_once_write_the_same_bytes_and_keep_the_base(log, store):
    import threading

    base = _base(log, store, keep=1).object
    grow(log, 1)
    both_folded = threading.Barrier(2, timeout=10)
    written = {}

    def meet(name, data):
        written[name] = data
        both_folded.wait()

    hooked = HookedStore(store, put_new=meet)
    results = []
    threads = [threading.Thread(target=lambda: results.append(compact(log, hooked, STREAM, keep=1, chain=CHAIN)))
               for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert [(r.outcome, r.kind, r.base_snapshot) for r in results] == [(WRITTEN, "delta", base)] * 2
    assert results[0].object != results[1].object  # same coverage and parent, different writers
    assert written[results[0].object] == written[results[1].object]  # deterministic bytes
    # Each pruned to keep=1 (plus its own): either delta may be gone, never both, and never the base.
    kept = snapshots(store)
    assert base in kept and set(kept) - {base} <= set(written) and len(kept) >= 2
    assert restored(store, log).export_state() == full_replay(log).export_state()



def test_a_full_image_keeps_only_the_windows_request_rows_and_packs_their_pages(store):
    # 30,000 puts 24 ms apart: the last 5,000 are inside the two-minute de-duplication window. The
    # rows past it are swept before VACUUM, not after (which left the requests pages 40 % empty).
    log = MemoryLog(3)
    for i in range(30_000):
        put(log, f"k{i}", b"v" * 20, START_MS + 24 * i)
    written = compact(log, store, STREAM, keep=10, chain=CHAIN)
    image = load_snapshot(store, written.chain[-1], snapshots(store)).table.db
    assert image.execute("SELECT count(*) FROM requests").fetchone()[0] in range(5_000, 5_003)
    used, pages = image.execute("SELECT sum(pgsize - unused), sum(pgsize) FROM dbstat WHERE name = 'requests'").fetchone()
    assert used / pages > 0.9, f"requests pages {used / pages:.0%} full"
