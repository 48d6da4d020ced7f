"""Determinism, the property everything rests on: tables fed the same records per partition, in any
interleaving of partitions and with records re-delivered, reach the same entries and report the
same outcomes, and so does a table that went on from a snapshot. Histories mix TTLs, deletes, every
kind of precondition, retried appends (duplicated request ids), offset gaps, clock jumps past the
dedup window, clock skew between writers and writers whose clock is far ahead.
"""

from __future__ import annotations

from typing import NamedTuple

from hypothesis import given, settings, strategies as st

from streamcache.core.records import Increment, IF_ABSENT, IF_EXISTS, Delete, Mutation, Position, Put, Touch, if_match
from streamcache.core.snapshot import decode_snapshot, encode_snapshot
from streamcache.core.table import DEDUP_WINDOW_MS, Outcome, Table

T0 = 1_790_000_000_000
KEYS = ["a", "b", "c", "d", "e"]


class Record(NamedTuple):
    position: Position
    mutation: Mutation


class History(NamedTuple):
    streams: dict[int, list[Record]]  # per partition, in offset order
    end_ms: int


@st.composite
def histories(draw) -> History:
    partitions = draw(st.integers(1, 3))
    # A key always lives in one partition (the log partitions by key); which one is drawn.
    home = {key: draw(st.integers(0, partitions - 1)) for key in KEYS}
    # One clock offset per writer: seconds of skew, and now and then a clock a day or years ahead.
    skews = draw(st.lists(st.one_of(st.integers(-3000, 3000), st.sampled_from([86_400_000, 10**11])), min_size=1, max_size=3))
    clock = T0
    streams: dict[int, list[Record]] = {}
    for partition in range(partitions):
        keys = [k for k in KEYS if home[k] == partition]
        records: list[Record] = []
        offset = draw(st.integers(0, 3))
        for i in range(draw(st.integers(0, 20)) if keys else 0):
            clock += draw(st.sampled_from([0, 100, 700, 4000, DEDUP_WINDOW_MS // 2, DEDUP_WINDOW_MS + 1]))
            if records and draw(st.integers(0, 5)) == 0:
                # A producer retry: the very same record lands again, later in the partition.
                mutation = draw(st.sampled_from(records)).mutation
            else:
                mutation = _mutation(draw, partition, i, keys, records, clock + draw(st.sampled_from(skews)))
            records.append(Record(Position(partition, offset), mutation))
            offset += draw(st.sampled_from([1, 1, 1, 2, 5]))  # offsets may have gaps
        streams[partition] = records
    return History(streams, clock)


def _mutation(draw, partition, i, keys, earlier, ts) -> Mutation:
    key = draw(st.sampled_from(keys))
    choice = draw(st.sampled_from(["none"] * 5 + ["exists", "absent", "match-earlier", "match-earlier", "match-unknown"]))
    if choice == "match-earlier" and earlier:
        pre = if_match(draw(st.sampled_from(earlier)).position)  # may or may not be the key's version
    elif choice == "match-unknown":
        pre = if_match(Position(draw(st.integers(0, 3)), draw(st.integers(0, 50))))
    else:
        pre = {"exists": IF_EXISTS, "absent": IF_ABSENT}.get(choice)
    # Mostly fresh ids; sometimes one of a tiny pool, so that unrelated records share an id too; and
    # lines of two bulk imports (one de-duplication row per object and partition: core/import_dedup.py).
    roll = draw(st.integers(0, 7))
    rid = draw(st.sampled_from(["x", "y"])) if roll == 0 else f"import-o{roll % 2}-{i}" if roll < 3 else f"{partition}-{i}"
    if draw(st.integers(0, 3)) == 0:
        return Delete(key, rid, ts, pre)
    if draw(st.integers(0, 3)) == 0:  # counters: deltas, decided at apply time (text and overflow refuse)
        by = draw(st.sampled_from([1, -1, 7, 2**63 - 1, -(2**63)]))
        return Increment(key, by, rid, ts, None if draw(st.booleans()) else ts + draw(st.integers(-1000, 10_000)), pre)
    if draw(st.integers(0, 3)) == 0:  # touches: the expiry alone, set (even in the past) or removed
        return Touch(key, rid, ts, None if draw(st.booleans()) else ts + draw(st.integers(-1000, 10_000)), pre)
    expires = None if draw(st.booleans()) else ts + draw(st.integers(-1000, 10_000))
    return Put(key, draw(st.sampled_from([b"1", b"2", b"\xff"])), "text/plain", rid, ts, expires, pre)


@st.composite
def interleavings(draw, history: History, redeliver: bool = False) -> list[Record]:
    """The records of every partition, each partition in order, partitions interleaved at random;
    with ``redeliver``, earlier records are delivered again here and there (a consumer re-reading)."""
    order = draw(st.permutations([p for p, records in history.streams.items() for _ in records]))
    cursors = dict.fromkeys(history.streams, 0)
    delivered: list[Record] = []
    for partition in order:
        delivered.append(history.streams[partition][cursors[partition]])
        cursors[partition] += 1
        if redeliver and draw(st.integers(0, 4)) == 0:
            delivered.append(draw(st.sampled_from(delivered)))
    return delivered


def replay(records: list[Record], snapshot_at: int | None = None) -> tuple[Table, dict[Position, Outcome]]:
    """Apply ``records``; with ``snapshot_at``, go on from a snapshot of the table taken there."""
    table, outcomes = Table(), {}
    for index, record in enumerate(records):
        if index == snapshot_at:
            table = decode_snapshot(encode_snapshot(table, "s")).table
        outcome = table.apply(record.position, record.mutation)
        if record.position in outcomes:
            assert outcome is None, f"{record.position} applied twice"
        else:  # a copy of an imported line already applied is no-op at a new position too
            assert outcome is not None or record.mutation.request_id.startswith("import-")
            outcomes[record.position] = outcome
    return table, outcomes


def observable(table: Table, history: History) -> dict:
    """Everything a client or the compactor could observe of a table."""
    readers = [T0 - 1, T0 + 5000, history.end_ms, history.end_ms + 10**9]
    partitions = list(history.streams)
    return {
        "entries": dict(table.items()),
        "next": table.next_offsets(),
        "clock": {p: table.log_clock(p) for p in partitions},
        "reads": {now: {k: table.get(k, now) for k in KEYS} for now in readers},
        "scans": {now: list(table.scan("", None, now)) for now in readers},
        "remembered": {
            (p, r.mutation.request_id): table.outcome_for(p, r.mutation.request_id)
            for p, records in history.streams.items()
            for r in records
        },
    }


@settings(max_examples=150, deadline=None)
@given(st.data())
def test_any_interleaving_reaches_the_same_state_and_outcomes(data):
    history = data.draw(histories())
    in_partition_order = [r for records in history.streams.values() for r in records]
    reference, reference_outcomes = replay(in_partition_order)
    expected = observable(reference, history)
    for redeliver in (False, True):
        table, outcomes = replay(data.draw(interleavings(history, redeliver)))
        assert outcomes == reference_outcomes
        assert observable(table, history) == expected


@settings(max_examples=60, deadline=None)
@given(histories())
def test_a_partition_alone_decides_its_own_outcomes(history):
    """Outcomes in one partition never depend on the other partitions' records."""
    _, together = replay([r for records in history.streams.values() for r in records])
    for records in history.streams.values():
        table, alone = replay(records)
        assert alone == {r.position: together[r.position] for r in records}


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_a_snapshot_taken_anywhere_changes_nothing(data):
    """Encoding and decoding the table in the middle of any interleaving, then going on, gives what a
    straight replay gives: everything the next records are weighed against is in the image."""
    history = data.draw(histories())
    reference, reference_outcomes = replay([r for records in history.streams.values() for r in records])
    delivered = data.draw(interleavings(history, redeliver=True))
    table, outcomes = replay(delivered, snapshot_at=data.draw(st.integers(0, len(delivered))))
    assert outcomes == reference_outcomes
    assert observable(table, history) == observable(reference, history)
