"""One contract for every SnapshotStore adapter: memory, a directory, and OCI Object Storage through
the real ``oci`` SDK against the local server (signatures verified, pagination forced with 3 names a page)."""

from __future__ import annotations

import itertools
import os
import threading

import pytest
from support.oci_fakes import api_key, no_retries, object_storage  # noqa: F401  (fixtures)

from streamcache.adapters.memory_store import MemoryStore
from streamcache.adapters.urls import open_snapshot_store
from streamcache.core.records import Position, Put
from streamcache.core.snapshot import checksum, decode_snapshot, encode_snapshot, format_name, newest_first, stream_prefix
from streamcache.core.table import Table
from streamcache.ports import InvalidSnapshotName, SnapshotExists, SnapshotNotFound

_numbers = itertools.count()


@pytest.fixture(params=["memory", "directory", "oci"])
def store(request, tmp_path):
    number = next(_numbers)
    if request.param == "memory":
        opened = open_snapshot_store(f"memory://contract-{number}")
    elif request.param == "directory":
        opened = open_snapshot_store(str(tmp_path / "snapshots"))
    else:
        server = request.getfixturevalue("object_storage")
        key = request.getfixturevalue("api_key")
        bucket = f"contract-{number}"
        server.create_bucket(bucket)
        opened = open_snapshot_store(
            server.url(bucket, "some/prefix"),
            oci_endpoint=server.endpoint,
            oci_config_file=str(key.config_file),
            oci_profile=key.profile,
            page_size=3,
            range_bytes=1 << 20,  # reads of a few MB take several ranged GETs, run concurrently
            multipart_min_bytes=1 << 20, part_bytes=256 * 1024,  # and writes of 1 MB and more go in parts
            **no_retries(),
        )
    yield opened
    opened.close()
    MemoryStore.forget(f"contract-{number}")


def test_put_new_then_get_returns_the_same_bytes(store):
    every_byte = bytes(range(256)) * 3
    large = os.urandom(2 * 1024 * 1024 + 7)
    store.put_new("snapshots/s/every-byte.snap", every_byte)
    store.put_new("snapshots/s/large.snap", large)
    store.put_new("snapshots/s/empty.snap", b"")
    assert store.get("snapshots/s/every-byte.snap") == every_byte
    assert store.get("snapshots/s/large.snap") == large
    assert store.get("snapshots/s/empty.snap") == b""


def test_get_of_a_missing_name_raises_not_found(store):
    with pytest.raises(SnapshotNotFound):
        store.get("snapshots/s/missing.snap")


def test_put_new_never_overwrites_other_bytes(store):
    store.put_new("snapshots/s/a.snap", b"first")
    with pytest.raises(SnapshotExists):
        store.put_new("snapshots/s/a.snap", b"second")
    assert store.get("snapshots/s/a.snap") == b"first"


def test_put_new_of_the_same_bytes_again_succeeds(store):
    # What a retried request sees when its first attempt landed.
    store.put_new("snapshots/s/a.snap", b"same")
    store.put_new("snapshots/s/a.snap", b"same")
    assert store.get("snapshots/s/a.snap") == b"same"
    assert store.list() == ["snapshots/s/a.snap"]


def test_list_is_complete_sorted_by_code_point_and_filtered_by_prefix(store):
    names = [f"snapshots/s/{i:04x}.snap" for i in range(11)] + [
        "snapshots/s/Z.snap",
        "snapshots/s/z.snap",
        "snapshots/s/\u00e9t\u00e9.snap",
        "snapshots/s2/other.snap",
        "elsewhere/x",
    ]
    for name in reversed(names):
        store.put_new(name, name.encode())
    assert store.list() == sorted(names)
    assert store.list("snapshots/s/") == sorted(n for n in names if n.startswith("snapshots/s/"))
    assert store.list("snapshots/s") == sorted(n for n in names if n.startswith("snapshots/"))  # not a folder
    assert store.list("snapshots/s/000") == [f"snapshots/s/{i:04x}.snap" for i in range(11)]
    assert store.list("nothing/here/") == []
    assert store.list("../") == []


def test_delete_removes_and_is_idempotent(store):
    store.put_new("snapshots/s/a.snap", b"a")
    store.put_new("snapshots/s/b.snap", b"b")
    store.delete("snapshots/s/a.snap")
    store.delete("snapshots/s/a.snap")
    store.delete("snapshots/s/never-existed.snap")
    assert store.list() == ["snapshots/s/b.snap"]
    with pytest.raises(SnapshotNotFound):
        store.get("snapshots/s/a.snap")
    store.put_new("snapshots/s/a.snap", b"again")  # a deleted name can be created anew
    assert store.get("snapshots/s/a.snap") == b"again"


@pytest.mark.parametrize("size", [1000, 300_000], ids=["small", "in-parts"])
def test_of_concurrent_writers_of_one_name_exactly_one_wins(store, size):
    writers = 6
    barrier = threading.Barrier(writers)
    results: dict[int, str] = {}

    def write(i: int) -> None:
        barrier.wait()
        try:
            store.put_new("snapshots/s/contested.snap", f"writer {i}".encode() * size)
            results[i] = "won"
        except SnapshotExists:
            results[i] = "exists"

    threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    winners = [i for i, result in results.items() if result == "won"]
    assert len(results) == writers and len(winners) == 1
    assert store.get("snapshots/s/contested.snap") == f"writer {winners[0]}".encode() * size
    assert store.list() == ["snapshots/s/contested.snap"]


@pytest.mark.parametrize(
    "name", ["", "/a", "a/", "a//b", "../a", "a/../b", "a/./b", ".hidden", "a/.tmp-1", "a\\b", "a\nb"]
)
def test_invalid_names_are_refused_by_every_operation(store, name):
    with pytest.raises(InvalidSnapshotName):
        store.put_new(name, b"x")
    with pytest.raises(InvalidSnapshotName):
        store.get(name)
    with pytest.raises(InvalidSnapshotName):
        store.delete(name)
    assert store.list() == []


def test_a_snapshot_travels_through_the_store_by_its_name(store):
    table = Table()
    table.apply(Position(0, 0), Put("k", b"v", "text/plain", "r1", 1_000))
    older = encode_snapshot(table, "orders")
    table.apply(Position(0, 1), Put("k", b"w", "text/plain", "r2", 2_000))
    newer = encode_snapshot(table, "orders")
    for data, writer in ((older, "a1"), (newer, "b2")):
        store.put_new(format_name(decode_snapshot(data).header, writer, checksum(data)), data)
    store.put_new(stream_prefix("orders") + "notes.txt", b"not a snapshot")

    names = newest_first(store.list(stream_prefix("orders")), "orders")

    assert len(names) == 2
    restored = decode_snapshot(store.get(names[0]), names[0]).table
    assert restored.get("k", 0).value == b"w"


def test_open_stream_yields_the_bytes_in_bounded_chunks(store):
    data = os.urandom(300_000) + b"\n" + bytes(range(256)) * 10
    store.put_new("imports/big.jsonl", data)
    store.put_new("imports/empty.jsonl", b"")
    chunks = list(store.open_stream("imports/big.jsonl", chunk_bytes=64 * 1024))
    assert b"".join(chunks) == data
    assert len(chunks) >= 5 and all(0 < len(c) <= 64 * 1024 for c in chunks)
    assert list(store.open_stream("imports/empty.jsonl")) == []


def test_open_stream_of_a_missing_name_raises_not_found_at_the_call(store):
    with pytest.raises(SnapshotNotFound):
        store.open_stream("imports/missing.jsonl")
    with pytest.raises(InvalidSnapshotName):
        store.open_stream("imports/../x")


def test_a_stream_closed_early_ends_and_leaves_the_store_usable(store):
    store.put_new("imports/a.jsonl", b"x" * 200_000)
    for _ in range(20):  # more than a connection pool holds: closed streams must give theirs back
        stream = store.open_stream("imports/a.jsonl", chunk_bytes=1000)
        assert next(stream) == b"x" * 1000
        stream.close()
        with pytest.raises(StopIteration):
            next(stream)
    assert store.get("imports/a.jsonl") == b"x" * 200_000


def test_read_into_fills_the_buffer_and_tells_the_whole_size(store):
    # The restore's path: the object's bytes land in memory the caller owns, at their offsets, and
    # the returned size lets it see a truncated or a longer object than its name says.
    data = os.urandom(3 * 1024 * 1024 + 11)
    store.put_new("snapshots/s/big.db", data)
    whole = bytearray(len(data))
    assert store.read_into("snapshots/s/big.db", memoryview(whole)) == len(data)
    assert whole == data
    longer = bytearray(len(data) + 5)  # the object ends first: the rest is left as it was
    assert store.read_into("snapshots/s/big.db", memoryview(longer)) == len(data)
    assert longer[: len(data)] == data and longer[len(data) :] == bytes(5)
    part = bytearray(1000)
    assert store.read_into("snapshots/s/big.db", memoryview(part), offset=len(data) - 500) == len(data)
    assert part[:500] == data[-500:]
    assert store.read_into("snapshots/s/big.db", memoryview(bytearray(10)), offset=len(data)) == len(data)
    store.put_new("snapshots/s/empty.db", b"")
    assert store.read_into("snapshots/s/empty.db", memoryview(bytearray(10))) == 0
    with pytest.raises(SnapshotNotFound):
        store.read_into("snapshots/s/missing.db", memoryview(bytearray(10)))


def test_a_big_object_is_created_once(store):
    # Above the oci adapter's multipart threshold: create-only still holds (if-none-match on the commit).
    data = os.urandom(3 * 1024 * 1024 + 5)
    store.put_new("snapshots/s/big.db", data)
    store.put_new("snapshots/s/big.db", data)  # a retry whose first attempt landed
    other = bytearray(data)
    other[-1] ^= 1  # differs in its very last byte: found by comparing every range
    with pytest.raises(SnapshotExists):
        store.put_new("snapshots/s/big.db", bytes(other))
    assert store.get("snapshots/s/big.db") == data
    assert store.list("snapshots/s/") == ["snapshots/s/big.db"]
