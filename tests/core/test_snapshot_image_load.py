"""Loading a stored image (snapshot_image.py): deserialized into memory or written under a temporary
folder and memory-mapped, by size; both verify first and hold the same table; the file is gone from
the folder as soon as it is open."""

from __future__ import annotations

import os

import pytest

from streamcache.core.records import Position, Put
from streamcache.core.snapshot import SnapshotCorrupt, checksum, decode_header, encode_snapshot, format_name
from streamcache.core.table import OutcomeKind, Table
from streamcache.replay.snapshot_image import load_image


def image() -> tuple[bytes, str, Table]:
    table = Table()
    for i in range(500):
        table.apply(Position(i % 2, i // 2), Put(f"k{i:04d}", b"v" * 50, "text/plain", f"r{i}", 1_000 + i))
    data = encode_snapshot(table, "orders")
    return data, format_name(decode_header(data), "w", checksum(data)), table


@pytest.mark.parametrize("threshold", [None, 0, 10**9], ids=["never-a-file", "always-a-file", "too-small-for-a-file"])
def test_both_ways_hold_the_same_table_and_go_on_applying(tmp_path, threshold):
    data, name, original = image()

    snapshot = load_image(data, name, file_min_bytes=threshold, tmp_dir=str(tmp_path))

    assert os.listdir(tmp_path) == []  # unlinked once open (or never written)
    table = snapshot.table
    assert table.export_state() == original.export_state()
    assert table.apply(Position(0, 250), Put("new", b"n", "text/plain", "r-new", 2_000)).kind is OutcomeKind.CREATED
    assert table.get("new", 2_000).value == b"n" and len(table) == 501
    again = encode_snapshot(table, "orders")
    assert load_image(again, format_name(decode_header(again), "w", checksum(again))).table.export_state() == table.export_state()


def test_a_damaged_image_is_refused_before_anything_is_written(tmp_path):
    data, name, _ = image()
    with pytest.raises(SnapshotCorrupt):
        load_image(data[:-1] + bytes([data[-1] ^ 1]), name, file_min_bytes=0, tmp_dir=str(tmp_path))
    assert os.listdir(tmp_path) == []
