"""A dev data folder from the earlier version (format-1 ``.snap`` snapshots) still seeds the next run:
the snapshot is converted, not skipped in silence, and a newer run's image wins over it."""

from __future__ import annotations

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.records import Position
from streamcache.core.snapshot import checksum, encode_snapshot, format_name, read_header
from streamcache.core.snapshot_legacy import LegacyPartition, encode_legacy
from streamcache.core.table import Entry, Table
from streamcache_local.data_dir import find_restore_source, new_run_id, reseed, run_stream_id

TOPIC = "streamcache"


def test_a_format_1_snapshot_of_an_earlier_run_is_converted_and_reseeded(tmp_path):
    stream = run_stream_id(TOPIC, new_run_id())
    entries = {f"k{i}": Entry(b"v%d" % i, "text/plain", Position(0, i), None) for i in range(5)}
    data = encode_legacy(entries, {0: LegacyPartition(5, 1_000, [])}, stream)
    DirectoryStore(tmp_path).put_new(f"snapshots/{stream}/{5:016x}-{1_000:016x}-old.snap", data)
    warnings: list[str] = []

    source = find_restore_source(tmp_path, TOPIC, warnings.append)

    assert warnings == [] and source is not None and source.header.format_version == 1
    assert dict(source.table.items()) == entries
    log = MemoryLog(2)
    assert reseed(log, source.table, now_ms=2_000) == 5


def test_a_newer_run_with_an_image_is_preferred(tmp_path):
    older, newer = run_stream_id(TOPIC, "20250101T000000.000Z-aaaaaa"), run_stream_id(TOPIC, "20260101T000000.000Z-bbbbbb")
    legacy = encode_legacy({}, {0: LegacyPartition(0, 0, [])}, older)
    store = DirectoryStore(tmp_path)
    store.put_new(f"snapshots/{older}/{0:016x}-{0:016x}-old.snap", legacy)
    table = Table()
    image = encode_snapshot(table, newer)
    store.put_new(format_name(read_header(table.db), "new", checksum(image)), image)

    source = find_restore_source(tmp_path, TOPIC, lambda message: None)

    assert source.stream == newer and source.name.endswith(".db")
