"""The snapshot format: exact round trips, every kind of damage detected, and names that sort in log order."""

from __future__ import annotations

import struct
import zlib

import orjson
import pytest

from streamcache.core.records import IF_ABSENT, Delete, Position, Put, if_match
from streamcache.core.snapshot import (
    HEADER_PROBE_BYTES,
    PREAMBLE,
    SnapshotCorrupt,
    SnapshotName,
    UnsupportedSnapshotVersion,
    decode_header,
    decode_snapshot,
    encode_snapshot,
    format_name,
    newest_first,
    parse_name,
    stream_prefix,
)
from streamcache.core.table import OutcomeKind, Table


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
    apply(Position(1, 3), Put("lone\ud800", b"y", "text/plain; charset=utf-8", "r7", 970, 5_000))
    apply(Position(1, 4), Put("plain2", b"z", "text/plain", "r8", 980, precondition=if_match(Position(1, 3))))
    table.skip(Position(1, 9))  # a foreign record advances the position and nothing else
    return table


def test_round_trip_is_exact():
    table = sample_table()
    data = encode_snapshot(table, "orders")

    snapshot = decode_snapshot(data)

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


def test_compressed_values_round_trip_and_shrink_compressible_data():
    table = Table()
    for i in range(200):
        table.apply(Position(0, i), Put(f"k{i}", b"compressible " * 8, "text/plain", f"r{i}", i))
    raw = encode_snapshot(table, "s")
    packed = encode_snapshot(table, "s", compress_values=True)
    assert len(packed) < len(raw) / 3
    assert decode_snapshot(packed).table.export_state() == decode_snapshot(raw).table.export_state()


def test_every_flipped_byte_is_detected():
    data = encode_snapshot(sample_table(), "orders")
    for at in range(len(data)):
        damaged = bytearray(data)
        damaged[at] ^= 0x5A
        with pytest.raises(SnapshotCorrupt):
            decode_snapshot(bytes(damaged))


def test_every_truncation_and_any_trailing_garbage_is_detected():
    data = encode_snapshot(sample_table(), "orders")
    for length in range(len(data)):
        with pytest.raises(SnapshotCorrupt):
            decode_snapshot(data[:length])
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data + b"\x00")


@pytest.mark.parametrize("data", [b"", b"{}", b"PK\x03\x04" + bytes(100), bytes(4096)])
def test_something_else_entirely_is_corrupt(data):
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data)


def reseal(data: bytes, *, version: int | None = None, header_changes: dict | None = None) -> bytes:
    """Rewrite the preamble/header as documented in the format, with valid checksums."""
    magic, old_version, flags, header_len, _ = PREAMBLE.unpack_from(data)
    header = orjson.loads(data[PREAMBLE.size : PREAMBLE.size + header_len])
    header.update(header_changes or {})
    header_bytes = orjson.dumps(header)
    body = data[PREAMBLE.size + header_len : -4]
    preamble = struct.pack("<8sHHI", magic, old_version if version is None else version, flags, len(header_bytes))
    head = preamble + struct.pack("<I", zlib.crc32(header_bytes, zlib.crc32(preamble))) + header_bytes
    return head + body + struct.pack("<I", zlib.crc32(body, zlib.crc32(head)))


def test_resealing_unchanged_gives_the_same_bytes():
    data = encode_snapshot(sample_table(), "orders")
    assert reseal(data) == data


def test_an_intact_object_in_a_newer_format_is_unsupported_not_corrupt():
    data = reseal(encode_snapshot(sample_table(), "orders"), version=2)
    with pytest.raises(UnsupportedSnapshotVersion) as caught:
        decode_snapshot(data)
    assert not isinstance(caught.value, SnapshotCorrupt)
    assert "format version 2" in str(caught.value)


@pytest.mark.parametrize(
    "changes",
    [{"entries": 6}, {"requests": 3}, {"next_offsets": {"0": 6}}, {"next_offsets": "nope"}, {"stream": None}],
)
def test_a_checksummed_but_inconsistent_object_is_corrupt_not_a_crash(changes):
    data = reseal(encode_snapshot(sample_table(), "orders"), header_changes=changes)
    with pytest.raises(SnapshotCorrupt):
        decode_snapshot(data)


def test_the_header_reads_from_a_prefix_of_the_object():
    data = encode_snapshot(sample_table(), "orders")
    header_end = PREAMBLE.size + PREAMBLE.unpack_from(data)[3]
    assert header_end < HEADER_PROBE_BYTES
    assert decode_header(data[:header_end]) == decode_snapshot(data).header
    with pytest.raises(SnapshotCorrupt):
        decode_header(data[: header_end - 1])


# ---- names ------------------------------------------------------------------------------------


def header_at(offsets: dict[int, int], as_of_ms: int, stream: str = "orders"):
    table = Table()
    for partition, next_offset in offsets.items():
        if next_offset:
            table.apply(Position(partition, next_offset - 1), Delete("k", f"r{partition}", as_of_ms))
    return decode_snapshot(encode_snapshot(table, stream)).header


def test_names_round_trip_and_name_order_is_log_order():
    low = format_name(header_at({0: 9, 1: 0}, 5), "w1")
    high = format_name(header_at({0: 9, 1: 7}, 5), "w1")  # 16 > 9: lexical order must still agree
    assert low == "snapshots/orders/0000000000000009-0000000000000005-w1.snap"
    assert parse_name(high) == SnapshotName(16, 5, "w1", "orders")
    assert str(parse_name(high)) == high
    assert sorted([high, low]) == [low, high]


def test_the_same_positions_written_twice_get_different_names():
    header = header_at({0: 3}, 7)
    assert format_name(header, "aaaa") != format_name(header, "bbbb")


def test_any_stream_identity_becomes_one_safe_path_segment():
    stream = "ocid1.stream.oc1.iad/x:y z%"
    name = format_name(header_at({0: 1}, 1, stream), "w")
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
    ],
)
def test_parse_name_refuses_anything_else(name):
    with pytest.raises(ValueError):
        parse_name(name)


@pytest.mark.parametrize("writer", ["", "UPPER", "with-dash", "x" * 33])
def test_writer_ids_are_checked(writer):
    with pytest.raises(ValueError):
        format_name(header_at({0: 1}, 1), writer)


def test_newest_first_keeps_only_the_streams_snapshots_newest_first():
    old = format_name(header_at({0: 2}, 10), "a")
    tie_older = format_name(header_at({0: 2, 1: 3}, 10), "a")
    tie_newer = format_name(header_at({0: 4, 1: 1}, 11), "a")
    other = format_name(header_at({0: 99}, 99, "payments"), "a")
    names = [tie_older, "snapshots/orders/README", other, old, tie_newer]
    assert newest_first(names, "orders") == [tie_newer, tie_older, old]
