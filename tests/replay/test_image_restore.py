"""Restoring a snapshot without a second copy (replay/snapshot_image.fetch_image): read with
``SnapshotStore.read_into`` into memory SQLite then owns, checked against the length and CRC-32 in
the object's name; through the real ``oci`` SDK against the local server with concurrent ranged
GETs, and every way a damaged object shows up (still ``SnapshotCorrupt``, the next older used)."""

from __future__ import annotations

import errno
import itertools
import tracemalloc
from urllib.parse import unquote

import pytest
from support.oci_fakes import api_key, no_retries, object_storage  # noqa: F401  (fixtures)

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.records import Position, Put
from streamcache.core.snapshot import SnapshotCorrupt, checksum, decode_header, encode_snapshot, format_name
from streamcache.core.table import Table
from streamcache.replay import snapshot_image
from streamcache.replay.catalog import SkipReason, load_newest_valid, read_header
from streamcache.replay.snapshot_image import fetch_image

STREAM = "restore"
_buckets = itertools.count()


def image(keys: int, value_bytes: int = 100) -> tuple[bytes, dict[str, bytes]]:
    table = Table()
    for i in range(keys):
        table.apply(Position(i % 3, i // 3), Put(f"k{i:07d}", bytes([i % 251]) * value_bytes, "application/octet-stream",
                                                 f"req-{i}", 1_700_000_000_000 + i))
    data = encode_snapshot(table, STREAM, partitions=3)
    return data, {key: entry.value for key, entry in table.items()}


def name_of(data: bytes) -> str:
    return format_name(decode_header(data), "writer", checksum(data))


def contents(table: Table) -> dict[str, bytes]:
    return {key: entry.value for key, entry in table.items()}


@pytest.fixture
def oci_store(object_storage, api_key):
    bucket = f"restore-{next(_buckets)}"
    object_storage.create_bucket(bucket)
    store = open_snapshot_store(object_storage.url(bucket), oci_endpoint=object_storage.endpoint,
                                oci_config_file=str(api_key.config_file), oci_profile=api_key.profile,
                                oci_connections=4, range_bytes=64 * 1024, **no_retries())
    yield store
    store.close()


def ranged_gets(server, name: str) -> list[str]:
    return [r.headers["range"] for r in server.requests if r.method == "GET" and unquote(r.path).endswith(name)
            and "range" in r.headers]


def test_a_restore_through_the_sdk_reads_the_image_in_concurrent_ranges(oci_store, object_storage):
    data, expected = image(3000)
    name = name_of(data)
    oci_store.put_new(name, data)
    snapshot, size = fetch_image(oci_store, name)
    assert size == len(data) and contents(snapshot.table) == expected
    ranges = ranged_gets(object_storage, name)
    assert len(ranges) == -(-len(data) // (64 * 1024)) > 4  # every range once, more ranges than connections
    snapshot.table.apply(Position(0, 10_000), Put("after", b"x", "text/plain", "req-after", 1_700_000_100_000))
    assert snapshot.table.get("after", 1_700_000_100_000).value == b"x"  # SQLite owns the buffer: it grows
    snapshot.table.close()


def test_a_header_through_the_sdk_is_one_ranged_get_of_its_first_64_kib(oci_store, object_storage):
    data, _ = image(3000)
    name = name_of(data)
    oci_store.put_new(name, data)
    before = len(object_storage.requests)
    assert read_header(oci_store, name) == (decode_header(data), len(data))
    gets = [r for r in object_storage.requests[before:] if r.method == "GET" and unquote(r.path).endswith(name)]
    assert [r.headers.get("range") for r in gets] == [f"bytes=0-{64 * 1024 - 1}"]  # never the whole object


@pytest.mark.parametrize("damage", ["truncated", "longer", "flipped byte", "empty"])
def test_a_damaged_object_is_corrupt_and_the_next_older_snapshot_is_used(oci_store, damage):
    older, older_values = image(500)
    newer, _ = image(1500)
    oci_store.put_new(name_of(older), older)
    damaged = {"truncated": newer[: len(newer) // 2], "longer": newer + b"\0" * 4096,
               "flipped byte": newer[:5000] + bytes([newer[5000] ^ 1]) + newer[5001:], "empty": b""}[damage]
    oci_store.put_new(name_of(newer), damaged)  # under the name the intact image would have
    with pytest.raises(SnapshotCorrupt):
        fetch_image(oci_store, name_of(newer))
    result = load_newest_valid(oci_store, STREAM)
    assert result.snapshot is not None and result.snapshot.name == name_of(older)
    assert contents(result.snapshot.table) == older_values
    assert [(s.name, s.reason) for s in result.skipped] == [(name_of(newer), SkipReason.CORRUPT)]
    result.snapshot.table.close()


def test_the_image_is_never_held_as_a_python_object(tmp_path):
    # The download goes into SQLite's own buffer: Python's allocator sees chunks at most, never the
    # image (the restore before issue 24 held the downloaded bytes and SQLite's copy at once).
    data, expected = image(20_000)
    store = DirectoryStore(tmp_path)
    store.put_new(name_of(data), data)
    tracemalloc.start()
    try:
        snapshot, _ = fetch_image(store, name_of(data), file_min_bytes=None)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(data) > 2_000_000 and peak < len(data) / 4
    assert contents(snapshot.table) == expected
    snapshot.table.close()


def test_without_an_owned_buffer_the_image_is_still_restored(tmp_path, monkeypatch):
    data, expected = image(1000)
    store = DirectoryStore(tmp_path)
    store.put_new(name_of(data), data)
    monkeypatch.setattr(snapshot_image, "owned_buffer", lambda size: None)
    snapshot, _ = fetch_image(store, name_of(data), file_min_bytes=None)
    assert contents(snapshot.table) == expected
    snapshot.table.close()
    store.put_new(name_of(data).replace("-writer-", "-other-"), data[:-1])
    with pytest.raises(SnapshotCorrupt):
        fetch_image(store, name_of(data).replace("-writer-", "-other-"), file_min_bytes=None)


def test_an_image_the_temporary_folder_cannot_hold_is_loaded_in_memory(tmp_path, monkeypatch):
    data, expected = image(1000)
    store = DirectoryStore(tmp_path / "store")
    store.put_new(name_of(data), data)
    (tmp_path / "tmp").mkdir()
    snapshot, _ = fetch_image(store, name_of(data), file_min_bytes=0, tmp_dir=str(tmp_path / "tmp"))
    assert contents(snapshot.table) == expected
    assert snapshot.table.db.execute("PRAGMA database_list").fetchone()[2].startswith(str(tmp_path / "tmp"))
    snapshot.table.close()

    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(snapshot_image.os, "posix_fallocate", full)
    snapshot, _ = fetch_image(store, name_of(data), file_min_bytes=0, tmp_dir=str(tmp_path / "tmp"))
    assert contents(snapshot.table) == expected
    assert not snapshot.table.db.execute("PRAGMA database_list").fetchone()[2].startswith(str(tmp_path))  # memory
    assert list((tmp_path / "tmp").iterdir()) == []  # nothing left behind
    snapshot.table.close()
