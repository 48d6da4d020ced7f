"""The snapshot format: the table's SQLite image, exact round trips, every kind of damage detected
through the checksum its name carries, names that sort in log order, and format-1 objects converted."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest

from streamcache.core.records import IF_ABSENT, Delete, Position, Put, if_match
from streamcache.core.schema import APPLICATION_ID, SCHEMA_VERSION
from streamcache.core.snapshot import (
    HEADER_PROBE_BYTES,
    Checksum,
    SnapshotCorrupt,
    SnapshotName,
    UnsupportedSnapshotVersion,
    checksum,
    decode_header,
    decode_snapshot,
    encode_snapshot,
    format_name,
    newest_first,
    parse_name,
    stream_prefix,
)
from streamcache.core.snapshot_legacy import LegacyPartition, encode_legacy
from streamcache.core.table import Entry, Outcome, OutcomeKind, Table, request_hash


def sample_table() -> Table:
    """Two partitions; unicode and odd keys, expiries, deletes and every kind of remembered outcome."""
    table = Table()
    apply = table.apply
    apply(Position(0, 0), Put("plain", b"hello", "text/plain", "r0", 1_000))
    apply(Position(0, 1), Put("caf\u00e9/\U0001f600", b"\x00\xff" * 10, "application/octet-stream", "r1", 1_001, 90_000))
    apply(Position(0, 4), Put("empty", b"", "application/json", "r2", 1_002))  # offsets may have gaps
    apply(Position(0, 5), Put("plain", b"again", "text/plain", "r3", 1_003, precondition=IF_ABSENT))  # fails
    apply(Position(1, 0), Put("gone", b"x", "text/plain", "r4", 900))
    apply(Position(1, 1), Delete("gone", "r5", 950))
    apply(Position(1, 2), Delete("never", "r6", 960))
    apply(Position(1, 3), Put("lone\u2603", b"y", "text/plain; charset=utf-8", "r7", 970, 5_000))
    apply(Position(1, 4), Put("plain2", b"z", "text/plain", "r8", 980, precondition=if_match(Position(1, 3))))
    table.skip(Position(1, 9))  # a foreign record advances the position and nothing else
    return table


def named(data: bytes, writer: str = "w1") -> str:
    return format_name(decode_header(data), writer, checksum(data))


def test_round_trip_is_exact():
    table = sample_table()
    data = encode_snapshot(table, "orders")

    snapshot = decode_snapshot(data, named(data))

    assert snapshot.table.export_state() == table.export_state()
    kinds = [o.kind for _, _, o in snapshot.table.export_state()[1][0].requests]
    assert OutcomeKind.PRECONDITION_FAILED in kinds
    header = snapshot.header
    assert header.stream == "orders"
    assert header.next_offsets == {0: 6, 1: 10}
    assert header.log_time_ms == {0: 1_003, 1: 980}
    assert header.as_of_ms == 1_003
    assert (header.entries, header.requests) == (4, 9)
    assert encode_snapshot(snapshot.table, "orders") == data  # deterministic: same state, same bytes


def test_an_empty_table_round_trips():
    snapshot = decode_snapshot(encode_snapshot(Table(), "s"))
    assert snapshot.table.export_state() == ({}, {})
    assert (snapshot.header.next_offsets, snapshot.header.as_of_ms, snapshot.header.entries) == ({}, 0, 0)


def test_a_loaded_image_goes_on_applying_and_snapshotting():
    data = encode_snapshot(sample_table(), "orders")
    table = decode_snapshot(data, named(data)).table
    assert table.apply(Position(0, 6), Put("new", b"n", "text/plain", "r9", 1_004)).kind is OutcomeKind.CREATED
    retried = table.apply(Position(0, 7), Put("plain", b"hello", "text/plain", "r0", 1_005))  # a retry of r0
    assert retried == Outcome(OutcomeKind.CREATED, "plain", Position(0, 0))
    again = decode_snapshot(encode_snapshot(table, "orders"))
    assert again.table.export_state() == table.export_state() and again.header.next_offsets == {0: 8, 1: 10}


def test_every_flipped_byte_is_detected():
    data = encode_snapshot(sample_table(), "orders")
    name = named(data)
    for at in [*range(0, 200), *range(200, len(data), 97)]:
        damaged = bytearray(data)
        damaged[at] ^= 0x5A
        with pytest.raises(SnapshotCorrupt):
            decode_snapshot(bytes(damaged), name)


def test_every_truncation_and_any_trailing_garbage_is_detected():
    data = encode_snapshot(sample_table(), "orders")
    name = named(data)
    for length in [*range(0, 120), *range(120, len(data), 211), len(data) - 1]:
        with pytest.raises(SnapshotCorrupt):
            decode_snapshot(data[:length], name)
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data + b"\x00", name)


@pytest.mark.parametrize("data", [b"", b"{}", b"PK\x03\x04" + bytes(100), bytes(4096)])
def test_something_else_entirely_is_corrupt(data):
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data, format_name(decode_header(encode_snapshot(Table(), "s")), "w", checksum(data)))


def rewritten(data: bytes, sql: str) -> bytes:
    """The image after ``sql`` (an intact object someone else wrote)."""
    conn = sqlite3.connect(":memory:")
    conn.deserialize(data)
    conn.executescript(sql)
    return conn.serialize()


def test_an_intact_image_of_a_newer_schema_is_unsupported_not_corrupt():
    data = rewritten(encode_snapshot(sample_table(), "orders"), f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(UnsupportedSnapshotVersion) as caught:
        decode_snapshot(data, named(data))
    assert not isinstance(caught.value, SnapshotCorrupt)
    assert f"schema version {SCHEMA_VERSION + 1}" in str(caught.value)


@pytest.mark.parametrize("sql", ["PRAGMA application_id = 7", "DROP TABLE meta", "DELETE FROM meta WHERE name = 'stream'",
                                 "UPDATE meta SET value = NULL WHERE name = 'entries'"])
def test_an_intact_image_that_is_not_ours_is_corrupt_not_a_crash(sql):
    data = rewritten(encode_snapshot(sample_table(), "orders"), sql)
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data, f"snapshots/orders/{0:016x}-{0:016x}-w-{len(data):012x}-{checksum(data).crc32:08x}.db")


def test_the_header_reads_from_a_prefix_of_the_image():
    table = Table()
    for i in range(3000):
        table.apply(Position(i % 3, i // 3), Put(f"key-{i}", b"v" * 100, "text/plain", f"r{i}", 1_000 + i))
    data = encode_snapshot(table, "orders")
    assert len(data) > 4 * HEADER_PROBE_BYTES
    assert decode_header(data[:HEADER_PROBE_BYTES]) == decode_snapshot(data).header
    with pytest.raises(SnapshotCorrupt):
        decode_header(data[:4096])  # page 1 only: the meta table lies beyond


@pytest.mark.skipif(shutil.which("sqlite3") is None, reason="the sqlite3 shell (Debian package sqlite3) is not installed")
def test_a_plain_sqlite3_shell_opens_an_image(tmp_path):
    data = encode_snapshot(sample_table(), "orders")
    path = tmp_path / "snap.db"
    path.write_bytes(data)
    out = subprocess.run(["sqlite3", str(path), "select key, length(value) from entries order by key limit 5"],
                         capture_output=True, text=True, check=True).stdout
    assert out.splitlines() == ["caf\u00e9/\U0001f600|20", "empty|0", "lone\u2603|1", "plain|5"]
    pragmas = subprocess.run(["sqlite3", str(path), "pragma application_id; pragma user_version; pragma integrity_check;"
                              "select value from meta where name = 'stream'"],
                             capture_output=True, text=True, check=True).stdout.split()
    assert pragmas == [str(APPLICATION_ID), str(SCHEMA_VERSION), "ok", "orders"]


# ---- format 1 (.snap) objects are converted -----------------------------------------------------


def test_a_format_1_snapshot_is_converted_with_its_dedup_window():
    entries = {"a": Entry(b"1", "text/plain", Position(0, 3), None), "b\u00e9": Entry(b"", "x/y", Position(1, 0), 9_999)}
    outcome = Outcome(OutcomeKind.CREATED, "a", Position(0, 3), None)
    partitions = {0: LegacyPartition(4, 2_000, [(2_000, "req-a", outcome)]), 1: LegacyPartition(1, 1_500, [])}
    data = encode_legacy(entries, partitions, "orders")

    snapshot = decode_snapshot(data, "snapshots/orders/0000000000000005-00000000000007d0-w1.snap")

    assert snapshot.header.format_version == 1 and snapshot.header.next_offsets == {0: 4, 1: 1}
    table = snapshot.table
    assert dict(table.items()) == entries
    assert table.outcome_for(0, "req-a") == outcome  # a retry after the conversion is still recognised
    assert table.export_state()[1][0].requests == [(2_000, request_hash(0, "req-a"), outcome)]
    assert table.apply(Position(0, 4), Put("a", b"2", "text/plain", "req-a", 2_001)) == outcome
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data[:-1])


# ---- names ------------------------------------------------------------------------------------


def header_at(offsets: dict[int, int], as_of_ms: int, stream: str = "orders"):
    table = Table()
    for partition, next_offset in offsets.items():
        if next_offset:
            table.apply(Position(partition, next_offset - 1), Delete("k", f"r{partition}", as_of_ms))
    return decode_snapshot(encode_snapshot(table, stream)).header


SUM = Checksum(40960, 0xDEADBEEF)


def test_names_round_trip_and_name_order_is_log_order():
    low = format_name(header_at({0: 9, 1: 0}, 5), "w1", SUM)
    high = format_name(header_at({0: 9, 1: 7}, 5), "w1", SUM)  # 16 > 9: lexical order must still agree
    assert low == "snapshots/orders/0000000000000009-0000000000000005-w1-00000000a000-deadbeef.db"
    assert parse_name(high) == SnapshotName(16, 5, 2, "w1", "orders", SUM)
    assert str(parse_name(high)) == high
    assert sorted([high, low]) == [low, high]


def test_format_1_names_still_parse_and_sort_below_an_image_of_the_same_positions():
    legacy = "snapshots/orders/0000000000000009-0000000000000005-zz.snap"
    assert parse_name(legacy) == SnapshotName(9, 5, 1, "zz", "orders", None) and str(parse_name(legacy)) == legacy
    image = format_name(header_at({0: 9}, 5), "aa", SUM)
    assert newest_first([image, legacy], "orders") == [image, legacy]


def test_the_same_positions_written_twice_get_different_names():
    header = header_at({0: 3}, 7)
    assert format_name(header, "aaaa", SUM) != format_name(header, "bbbb", SUM)


def test_any_stream_identity_becomes_one_safe_path_segment():
    stream = "ocid1.stream.oc1.iad/x:y z%"
    name = format_name(header_at({0: 1}, 1, stream), "w", SUM)
    assert name.startswith(stream_prefix(stream)) and name.count("/") == 2
    assert parse_name(name).stream == stream


@pytest.mark.parametrize(
    "name",
    [
        "snapshots/orders/0000000000000009-0000000000000005-w1.snap.tmp",
        "snapshots/orders/000000000000009-0000000000000005-w1.snap",
        "snapshots/orders/0000000000000009-0000000000000005-W1.snap",
        "snapshots/orders/0000000000000009-0000000000000005-.snap",
        "snapshots/%6Frders/0000000000000009-0000000000000005-w1.snap",  # not canonically encoded
        "other/orders/0000000000000009-0000000000000005-w1.snap",
        "snapshots/orders/0000000000000009-0000000000000005-w1-00000000a000-deadbeef.db.tmp",
        "snapshots/orders/0000000000000009-0000000000000005-w1-a000-deadbeef.db",
        "snapshots/orders/0000000000000009-0000000000000005-w1-00000000a000-DEADBEEF.db",
        "snapshots/orders/0000000000000009-0000000000000005-w1.db",
    ],
)
def test_parse_name_refuses_anything_else(name):
    with pytest.raises(ValueError):
        parse_name(name)


@pytest.mark.parametrize("writer", ["", "UPPER", "with-dash", "x" * 33])
def test_writer_ids_are_checked(writer):
    with pytest.raises(ValueError):
        format_name(header_at({0: 1}, 1), writer, SUM)


def test_newest_first_keeps_only_the_streams_snapshots_newest_first():
    old = format_name(header_at({0: 2}, 10), "a", SUM)
    tie_older = format_name(header_at({0: 2, 1: 3}, 10), "a", SUM)
    tie_newer = format_name(header_at({0: 4, 1: 1}, 11), "a", SUM)
    other = format_name(header_at({0: 99}, 99, "payments"), "a", SUM)
    names = [tie_older, "snapshots/orders/README", other, old, tie_newer]
    assert newest_first(names, "orders") == [tie_newer, tie_older, old]
