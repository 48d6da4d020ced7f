"""The memory quota (core/quota.py): accounted from records, decided at apply time per partition,
refusing only growth, and the same decision on every replica whatever it has seen before."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from streamcache.core.quota import ENTRY_OVERHEAD_BYTES, Quota, QuotaState
from streamcache.core.records import Delete, Position, Put
from streamcache.core.snapshot import decode_snapshot, encode_snapshot
from streamcache.core.table import Outcome, OutcomeKind, Table

T0 = 1_790_000_000_000


def size(key: str, value: bytes) -> int:
    return len(key.encode()) + len(value) + ENTRY_OVERHEAD_BYTES


def test_a_put_past_the_quota_is_refused_changes_nothing_and_says_how_full():
    limit = size("a", b"x" * 100) + size("b", b"y" * 50)
    table = Table(Quota(limit))
    assert table.apply(Position(0, 0), Put("a", b"x" * 100, "text/plain", "r1", T0)).kind is OutcomeKind.CREATED
    assert table.apply(Position(0, 1), Put("b", b"y" * 50, "text/plain", "r2", T0)).kind is OutcomeKind.CREATED
    assert table.quota_state(0) == QuotaState(limit, limit)

    refused = table.apply(Position(0, 2), Put("c", b"z", "text/plain", "r3", T0))

    assert refused == Outcome(OutcomeKind.QUOTA_EXCEEDED, "c", None, None, QuotaState(limit, limit, size("c", b"z")))
    assert table.get("c", T0) is None and len(table) == 2 and table.used_bytes() == limit
    assert table.next_offsets() == {0: 3}  # the record is applied (decided), it just changes nothing
    # a retry of the refused put is refused again; the replica finds the outcome by request id
    assert table.apply(Position(0, 3), Put("c", b"z", "text/plain", "r3", T0)).kind is OutcomeKind.QUOTA_EXCEEDED
    assert table.outcome_for(0, "r3") == refused  # what the replica answers the writer with


def test_replacing_by_a_value_no_bigger_always_succeeds_and_a_bigger_one_is_refused():
    table = Table(Quota(size("a", b"x" * 10)))
    table.apply(Position(0, 0), Put("a", b"x" * 10, "text/plain", "r1", T0))
    assert table.apply(Position(0, 1), Put("a", b"y" * 10, "text/plain", "r2", T0)).kind is OutcomeKind.REPLACED
    assert table.apply(Position(0, 2), Put("a", b"short", "text/plain", "r3", T0)).kind is OutcomeKind.REPLACED
    refused = table.apply(Position(0, 3), Put("a", b"y" * 11, "text/plain", "r4", T0))
    assert refused.kind is OutcomeKind.QUOTA_EXCEEDED and refused.version == Position(0, 2)
    assert table.get("a", T0).value == b"short"


def test_deletes_and_expiry_purged_by_log_time_free_room():
    one = size("k0", b"v" * 20)
    table = Table(Quota(2 * one))
    table.apply(Position(0, 0), Put("k0", b"v" * 20, "text/plain", "r0", T0, T0 + 1_000))
    table.apply(Position(0, 1), Put("k1", b"v" * 20, "text/plain", "r1", T0))
    assert table.apply(Position(0, 2), Put("k2", b"v" * 20, "text/plain", "r2", T0 + 999)).kind is OutcomeKind.QUOTA_EXCEEDED
    # log time reaches k0's expiry with this very record: the purge comes before the decision
    assert table.apply(Position(0, 3), Put("k2", b"v" * 20, "text/plain", "r3", T0 + 1_000)).kind is OutcomeKind.CREATED
    assert table.apply(Position(0, 4), Delete("k1", "r4", T0 + 1_001)).kind is OutcomeKind.DELETED
    assert table.used_bytes() == one
    assert table.apply(Position(0, 5), Put("k3", b"v" * 20, "text/plain", "r5", T0 + 1_002)).kind is OutcomeKind.CREATED


def test_the_quota_is_split_between_partitions():
    one = size("p0", b"v")
    table = Table(Quota(2 * one, partitions=2))
    assert table.apply(Position(0, 0), Put("p0", b"v", "text/plain", "r0", T0)).kind is OutcomeKind.CREATED
    assert table.apply(Position(0, 1), Put("q0", b"v", "text/plain", "r1", T0)).kind is OutcomeKind.QUOTA_EXCEEDED
    assert table.apply(Position(1, 0), Put("p1", b"v", "text/plain", "r2", T0)).kind is OutcomeKind.CREATED
    assert table.quota_state(1) == QuotaState(one, one)


def test_accounted_bytes_survive_a_snapshot_and_count_utf8_bytes():
    table = Table(Quota(10_000))
    table.apply(Position(0, 0), Put("caf\u00e9", b"12345", "text/plain", "r0", T0))
    assert table.used_bytes() == 5 + 5 + ENTRY_OVERHEAD_BYTES
    loaded = decode_snapshot(encode_snapshot(table, "s")).table
    assert loaded.used_bytes() == table.used_bytes() and loaded.quota is None  # the quota is a setting
    loaded.quota = Quota(table.used_bytes())
    assert loaded.apply(Position(0, 1), Put("x", b"", "text/plain", "r1", T0)).kind is OutcomeKind.QUOTA_EXCEEDED


records = st.lists(
    st.tuples(st.integers(0, 1), st.sampled_from(["a", "b", "c", "d"]), st.integers(0, 60), st.booleans(),
              st.sampled_from([None, 500, 5_000])),
    max_size=40,
)


@settings(max_examples=150, deadline=None)
@given(records, st.integers(0, 20))
def test_every_replica_decides_the_same_whatever_it_loaded_and_interleaved(ops, cut):
    """A replica that applied everything in one interleaving, one that applied partition 1 first,
    and one that loaded a snapshot of a prefix and replayed the rest report the same outcomes per
    partition (keys stay in one partition, as the log guarantees)."""
    home = {"a": 0, "b": 0, "c": 1, "d": 1}
    streams: dict[int, list] = {0: [], 1: []}
    for i, (_, key, length, is_delete, ttl) in enumerate(ops):
        p = home[key]
        ts = T0 + i * 300
        mutation = (Delete(key, f"r{i}", ts) if is_delete
                    else Put(key, b"v" * length, "text/plain", f"r{i}", ts, None if ttl is None else ts + ttl))
        streams[p].append((Position(p, len(streams[p])), mutation))
    quota = Quota(2 * (1 + 40 + ENTRY_OVERHEAD_BYTES), partitions=2)
    interleaved = sorted(streams[0] + streams[1], key=lambda r: r[1].ts_ms)

    def outcomes(table, records):
        return {pos: table.apply(pos, m) for pos, m in records}

    counted = Table(quota)
    assert len(counted) == 0  # from here on the count is kept by apply, not scanned
    first = outcomes(counted, interleaved)
    assert len(counted) == counted.db.execute("SELECT count(*) FROM entries").fetchone()[0]
    assert counted.used_bytes() == counted.db.execute(
        f"SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value) + {ENTRY_OVERHEAD_BYTES}), 0) FROM entries").fetchone()[0]
    second = outcomes(Table(quota), streams[1] + streams[0])
    prefix_table = Table(quota)
    outcomes(prefix_table, interleaved[:cut])
    loaded = decode_snapshot(encode_snapshot(prefix_table, "s")).table
    loaded.quota = quota
    third = {**{pos: first[pos] for pos, _ in interleaved[:cut]}, **outcomes(loaded, interleaved[cut:])}
    assert first == second == third
