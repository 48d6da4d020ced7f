"""Bulk-import throughput: a JSON Lines object of N lines loaded into a real Tansu stream.

    .venv/bin/python bench/bench_import.py                    # 100k lines, ~100-byte JSON values
    .venv/bin/python bench/bench_import.py --lines 20000 --value-bytes 1000 --store oci

The object sits in a directory store (``--store directory``, default) or in the local Object Storage
server read through the real OCI SDK (``--store oci``). The import goes through
``importer.handle_object_event`` exactly as the compactor calls it; the figure is records appended
and acknowledged (acks=all) per second, end to end: streaming the object, parsing, encoding, batched
appends. Afterwards the stream's record count is checked against the answer, and a second delivery
of the same event is timed (skipped by its completion marker).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

import orjson

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.compactor.importer import handle_object_event
from streamcache.compactor.object_events import object_created_event
from streamcache.settings import Settings
from streamcache_local.broker import start_broker


def jsonl(lines: int, value_bytes: int, seed: int = 7) -> bytes:
    rng = random.Random(seed)
    out = bytearray()
    for i in range(lines):
        token = rng.randbytes(value_bytes // 2).hex()[: max(1, value_bytes - 40)]
        out += orjson.dumps({"key": f"user:{i:09d}", "value": {"id": i, "token": token}}) + b"\n"
    return bytes(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lines", type=int, default=100_000)
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--store", choices=["directory", "oci"], default="directory")
    args = parser.parse_args(argv)

    data = jsonl(args.lines, args.value_bytes)
    name = "imports/bench.jsonl"
    with tempfile.TemporaryDirectory() as folder, start_broker() as broker:
        broker.create_topic("bench-import", args.partitions)
        log_url = broker.log_url("bench-import")
        settings = Settings.from_env({"STREAMCACHE_LOG_URL": log_url})
        open_store, server = _store(args.store, Path(folder), name, data)
        log = KafkaLog(broker.bootstrap, "bench-import")
        try:
            event = object_created_event("bench", "bucket", name, "etag-1", len(data))
            started = time.perf_counter()
            answer = handle_object_event(event, settings, log, open_store=open_store)
            elapsed = time.perf_counter() - started
            again = time.perf_counter()
            duplicate = handle_object_event(event, settings, log, open_store=open_store)
            again = time.perf_counter() - again
            on_stream = sum(log.bounds().next.values())
        finally:
            log.close()
            if server is not None:
                server.stop()
    if answer["status"] != 200 or answer["imported"] != args.lines or on_stream != args.lines:
        print(f"FAILED: {answer} (records on the stream: {on_stream})", file=sys.stderr)
        return 1
    print(f"import of {args.lines} lines ({len(data) / 1e6:.1f} MB, store {args.store}, "
          f"{args.partitions} partitions, Tansu)")
    print(f"  {elapsed:.2f} s  {args.lines / elapsed:,.0f} records/s  {len(data) / elapsed / 1e6:.1f} MB/s")
    print(f"  redelivered event: skipped_duplicate={duplicate['skipped_duplicate']} in {again * 1000:.0f} ms")
    return 0


def _store(kind: str, folder: Path, name: str, data: bytes):
    from streamcache.adapters.urls import open_snapshot_store

    if kind == "directory":
        url = folder.as_uri()
        open_snapshot_store(url).put_new(name, data)
        return (lambda obj, settings: open_snapshot_store(url)), None
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
    from support.oci_fakes import write_api_key_profile  # a real signing key the SDK uses

    from streamcache_local.object_storage import start_object_storage

    server = start_object_storage(buckets=("bucket",))
    key = write_api_key_profile(folder)

    def opener(obj, settings):
        return open_snapshot_store(server.url("bucket"), oci_endpoint=server.endpoint,
                                   oci_config_file=str(key.config_file), oci_profile=key.profile)

    opener(None, None).put_new(name, data)
    return opener, server


if __name__ == "__main__":
    sys.exit(main())
