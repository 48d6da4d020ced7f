"""The property snapshots exist for (issue 3): for every k, a snapshot of records[:k] (through the real
codec) plus a replay of records[k:] equals a replay of all records: same outcomes, same state, same
reads. Records include TTLs (some already expired), deletes, touches, conditional writes, retried request
ids (also after the dedup window), foreign records, gaps in offsets and writers' clocks going back."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamcache.core.records import IF_ABSENT, IF_EXISTS, Delete, Mutation, Position, Put, Touch, if_match
from streamcache.core.snapshot import decode_snapshot, encode_snapshot
from streamcache.core.table import DEDUP_WINDOW_MS, Table

KEYS = ["a", "b", "c/\u00e9", "d"]
START_MS = 1_700_000_000_000


@dataclass(frozen=True)
class Foreign:
    """A record that is not ours: the replica skips it."""


@st.composite
def logs(draw) -> list[tuple[Position, Mutation | Foreign]]:
    partitions = draw(st.integers(1, 3))
    home = {key: draw(st.integers(0, partitions - 1)) for key in KEYS}  # a key stays in one partition
    next_offset = dict.fromkeys(range(partitions), 0)
    now = START_MS
    records: list[tuple[Position, Mutation | Foreign]] = []
    request_ids: list[str] = []
    for i in range(draw(st.integers(0, 28))):
        key = draw(st.sampled_from(KEYS))
        partition = home[key]
        offset = next_offset[partition] + draw(st.sampled_from([0, 0, 0, 1, 3]))
        next_offset[partition] = offset + 1
        position = Position(partition, offset)
        now += draw(st.sampled_from([0, 1, 40, 1_000, -500, 30_000, DEDUP_WINDOW_MS + 1]))
        kind = draw(st.sampled_from(["put", "put", "put", "delete", "touch", "foreign"]))
        if kind == "foreign":
            records.append((position, Foreign()))
            continue
        retry = request_ids and draw(st.integers(0, 4)) == 0
        request_id = draw(st.sampled_from(request_ids)) if retry else f"req-{i}"
        request_ids.append(request_id)
        known_versions = [p for p, m in records if not isinstance(m, Foreign)] or [Position(0, 0)]
        precondition = draw(
            st.sampled_from([None, None, IF_ABSENT, IF_EXISTS])
            | st.sampled_from(known_versions).map(if_match)
        )
        if kind == "put":
            ttl = draw(st.sampled_from([None, None, 1, 50, 2_000, 200_000, -10]))
            value = draw(st.binary(max_size=6))
            content_type = draw(st.sampled_from(["text/plain", "application/json", "application/octet-stream"]))
            expires = None if ttl is None else now + ttl
            records.append((position, Put(key, value, content_type, request_id, now, expires, precondition)))
        elif kind == "touch":  # a new expiry (or none) for the value held, whatever the codec makes of it
            ttl = draw(st.sampled_from([None, 1, 50, 200_000, -10]))
            records.append((position, Touch(key, request_id, now, None if ttl is None else now + ttl, precondition)))
        else:
            records.append((position, Delete(key, request_id, now, precondition)))
    return records


def replay(table: Table, records) -> list:
    outcomes = []
    for position, mutation in records:
        if isinstance(mutation, Foreign):
            table.skip(position)
            outcomes.append("skipped")
        else:
            outcomes.append(table.apply(position, mutation))
    return outcomes


def reads(table: Table, records) -> list:
    """What readers see at a spread of times, by key and by listing."""
    times = sorted({START_MS, *(m.ts_ms for _, m in records if not isinstance(m, Foreign))})
    probes = [t + d for t in times for d in (-1, 0, 60, 3_000, 300_000)]
    return [
        ([table.get(key, now) for key in KEYS], list(table.scan("", None, now)), list(table.scan("c", "b", now)))
        for now in probes
    ]


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(logs())
def test_snapshot_plus_tail_replay_equals_full_replay(records):
    full = Table()
    full_outcomes = replay(full, records)
    expected_state, expected_reads = full.export_state(), reads(full, records)

    for k in range(len(records) + 1):
        prefix = Table()
        replay(prefix, records[:k])
        data = encode_snapshot(prefix, "stream")
        snapshot = decode_snapshot(data)
        covered = snapshot.header.next_offsets
        tail = records[k:]
        # The restore replays from the snapshot's positions, and those are exactly where the tail begins.
        assert all(position.offset >= covered.get(position.partition, 0) for position, _ in tail)
        assert all(position.offset < covered[position.partition] for position, _ in records[:k])

        assert replay(snapshot.table, tail) == full_outcomes[k:]
        assert snapshot.table.export_state() == expected_state
        assert reads(snapshot.table, records) == expected_reads


@settings(max_examples=100, deadline=None)
@given(logs())
def test_a_restored_table_snapshots_to_the_same_bytes(records):
    table = Table()
    replay(table, records)
    data = encode_snapshot(table, "stream")
    assert encode_snapshot(decode_snapshot(data).table, "stream") == data
