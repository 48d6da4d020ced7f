"""Deltas (core/snapshot_delta.py): a base image plus the deltas of later folds, loaded in order, is
the table the full fold of the same log gives, for any history (the determinism everything rests on).
And a delta is a plain SQLite image that no reader takes for a whole table."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings, strategies as st

from streamcache.core import schema
from streamcache.core.records import Delete, Position, Put
from streamcache.core.snapshot import (SnapshotCorrupt, UnsupportedSnapshotVersion, checksum, decode_header,
                                       decode_snapshot, encode_snapshot, format_name, read_header)
from streamcache.core.snapshot_delta import apply_delta, changes, delta_header, encode_delta, track_changes
from streamcache.core.table import DEDUP_WINDOW_MS, Table
from test_determinism import History, Record, histories, interleavings, observable, replay

STREAM = "s"


def _name(table: Table, data: bytes, writer: str, parent: str | None = None) -> str:
    return format_name(read_header(table.db), writer, checksum(data), parent)


def _request_rows(table: Table) -> list:
    return table.db.execute("SELECT * FROM requests ORDER BY partition, id").fetchall()


def _restore(base: tuple[str, bytes], deltas: list[tuple[str, bytes]]) -> Table:
    """What a cold start does with a chain: the base, then each delta in order."""
    table = decode_snapshot(base[1], base[0]).table
    for name, data in deltas:
        header = delta_header(data, name)
        assert header.base == base[0]
        table = apply_delta(table, data)
    return table


@settings(max_examples=120, deadline=None)
@given(st.data())
def test_a_base_and_its_deltas_are_the_full_fold_of_the_same_log(data):
    history: History = data.draw(histories())
    reference, reference_outcomes = replay([r for records in history.streams.values() for r in records])
    delivered: list[Record] = data.draw(interleavings(history, redeliver=True))
    cuts = sorted(set(data.draw(st.lists(st.integers(0, len(delivered)), min_size=1, max_size=5))))
    table, outcomes = Table(), {}
    base: tuple[str, bytes] | None = None
    deltas: list[tuple[str, bytes]] = []
    parent = None
    for index in range(len(delivered) + 1):
        if index in cuts:
            # A compaction: the first writes the base, each later one a delta onto the previous link;
            # the next compaction starts from what a cold start loads (the chain), never from memory.
            if base is None:
                image = encode_snapshot(table, STREAM)
                base = parent = (_name(table, image, "base"), image)
            else:
                delta = encode_delta(table, STREAM, None, base[0], parent[0])
                parent = (_name(table, delta, f"d{index}", parent[0].rsplit("-", 3)[0].rsplit("-", 1)[1]), delta)
                deltas.append(parent)
            folded = table.export_state()
            rows = _request_rows(table)  # swept by the encode's flush
            table = _restore(base, deltas)
            assert table.export_state() == folded  # base + deltas == the fold it was written from
            assert _request_rows(table) == rows  # and no de-duplication row the fold had swept
            track_changes(table)
        if index == len(delivered):
            break
        record = delivered[index]
        outcome = table.apply(record.position, record.mutation)
        if record.position not in outcomes:
            outcomes[record.position] = outcome
    # And going on from the chain decides every later record as the straight replay did.
    assert outcomes == reference_outcomes
    assert observable(table, history) == observable(reference, history)


def _put(table: Table, offset: int, key: str, value: bytes, ts: int, expires: int | None = None) -> None:
    table.apply(Position(0, offset), Put(key, value, "text/plain", f"r{offset}", ts, expires))


def test_a_delta_holds_only_what_changed_and_a_plain_sqlite_shell_reads_it(tmp_path):
    t0 = 1_790_000_000_000
    table = Table()
    for i in range(2000):
        _put(table, i, f"k{i:03}", b"v" * 50, t0)
    image = encode_snapshot(table, STREAM)
    base = _name(table, image, "base")
    table = decode_snapshot(image, base).table
    track_changes(table)
    _put(table, 2000, "k001", b"new", t0 + 1)
    table.apply(Position(0, 2001), Delete("k002", "r2001", t0 + 2))
    _put(table, 2002, "fresh", b"x", t0 + 3, expires=t0 + 10)
    _put(table, 2003, "k003", b"y", t0 + DEDUP_WINDOW_MS + 20)  # log time passes the expiry: "fresh" is purged
    assert changes(table) > 0
    delta = encode_delta(table, STREAM, 1, base, base)
    assert len(delta) < len(image) / 5  # nine pages of tables, a few of rows
    path = tmp_path / "delta.db"
    path.write_bytes(delta)
    conn = sqlite3.connect(path)  # what `sqlite3 delta.db` shows
    assert [r[0] for r in conn.execute("SELECT key FROM entries ORDER BY key")] == ["k001", "k003"]
    assert sorted(r[0] for r in conn.execute("SELECT key FROM deleted_keys")) == ["fresh", "k002"]
    meta = dict(conn.execute("SELECT name, value FROM meta"))
    assert (meta["kind"], meta["base"], meta["parent"], meta["entries"]) == ("delta", base, base, 1999)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.DELTA_VERSION
    conn.close()
    # The header of a delta is the state at its end; it is never opened as a whole table.
    header = decode_header(delta)
    assert header.parent == base and header.next_offsets == {0: 2004} and header.entries == 1999
    with pytest.raises(UnsupportedSnapshotVersion):
        decode_snapshot(delta)
    restored = apply_delta(decode_snapshot(image, base).table, delta)
    assert restored.export_state() == table.export_state()


def test_a_damaged_delta_is_refused_before_anything_is_applied():
    table = Table()
    _put(table, 0, "a", b"1", 1_790_000_000_000)
    image = encode_snapshot(table, STREAM)
    base = _name(table, image, "base")
    table = decode_snapshot(image, base).table
    track_changes(table)
    _put(table, 1, "b", b"2", 1_790_000_000_001)
    delta = encode_delta(table, STREAM, None, base, base)
    name = _name(table, delta, "d1", "base")
    damaged = bytearray(delta)
    damaged[len(damaged) // 2] ^= 0xFF
    with pytest.raises(SnapshotCorrupt):
        delta_header(bytes(damaged), name)
    with pytest.raises(SnapshotCorrupt):
        delta_header(delta[:-10], name)
    with pytest.raises(SnapshotCorrupt):  # a full image under a delta's name is not a delta
        delta_header(image, format_name(read_header(table.db), "x", checksum(image), "base"))
