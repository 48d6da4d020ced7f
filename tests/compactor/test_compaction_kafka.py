"""compact() against a real Kafka-protocol log (Tansu) and a directory store: what the compactor
function and ``streamcache compact`` do in ``streamcache dev``. Reads go in several chunks."""

from __future__ import annotations
from streamcache.adapters.urls import open_snapshot_store
from streamcache.compactor.compaction import UNCHANGED, WRITTEN, compact
from streamcache.core.snapshot import decode_snapshot, newest_first, stream_prefix
from streamcache.settings import Settings
from support.log_history import START_MS, delete, fill, foreign, full_replay, values


def test_compaction_over_kafka_into_a_directory(kafka_topic, tmp_path):
    settings = Settings.from_env({"STREAMCACHE_LOG_URL": kafka_topic(3)})
    log = settings.open_log()
    store = open_snapshot_store(f"file://{tmp_path}/snapshots")
    stream = settings.stream_id
    try:
        latest = fill(log, 400, keys=120)
        delete(log, "k3", START_MS + 10_000)
        foreign(log, "k4")
        first = compact(log, store, stream, keep=2, chunk_records=90)  # several reads per partition
        assert first.outcome == WRITTEN and first.records_folded == 402 and first.records_skipped == 1
        assert first.positions_after == log.bounds().next
        table = decode_snapshot(store.get(first.object)).table
        del latest["k3"]
        assert values(table, START_MS) == latest
        assert table.export_state() == full_replay(log).export_state()
        assert (tmp_path / "snapshots" / first.object).is_file()

        assert compact(log, store, stream, keep=2).outcome == UNCHANGED
        fill(log, 25, ts_ms=START_MS + 20_000, prefix="tail-")
        second = compact(log, store, stream, keep=1, chunk_records=10)
        assert second.base_snapshot == first.object and second.records_folded == 25
        assert newest_first(store.list(stream_prefix(stream)), stream) == [second.object]
        assert decode_snapshot(store.get(second.object)).table.export_state() == full_replay(log).export_state()
    finally:
        log.close()
        store.close()
