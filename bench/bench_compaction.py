"""Compaction throughput and cold start of a cache instance, on a real Kafka-protocol log (Tansu).

    .venv/bin/python bench/bench_compaction.py              # 100k keys (~30 s)
    .venv/bin/python bench/bench_compaction.py --million    # 100k and 1M keys (~3 minutes)

For N keys (100-byte text values, 3 partitions): N puts are produced, compacted from scratch into a
directory store, then a tail of 10 % of N (overwrites of random keys) is produced, and:

- cold start: a real FDK instance of the cache function is started with the snapshot store and the
  log; the time from starting the process to the first answered read of a key written in the tail
  (so the tail was replayed), with the instance's own /health figures (snapshot load, replay);
- resident memory per key of that instance (its RSS less an instance that restored nothing);
- incremental compaction: newest snapshot + the 10 % tail into a new snapshot;
- the parts: Kafka read rate alone, decode + apply (the fold loop) alone, and compaction from a
  memory log (everything but Kafka);
- snapshot size against the raw keys and values.

Log time advances at ``--writes-per-second`` (1000 by default), so the snapshot remembers the
request ids of the last 120 s of writes (the de-duplication window), as it would in production.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
from streamcache.adapters.directory_store import DirectoryStore
from streamcache.adapters.memory_log import MemoryLog
from streamcache.compactor.compaction import compact
from streamcache.core.records import Put, encode
from streamcache.core.table import Table
from streamcache.replay.fold import apply_records, gc_paused
from streamcache.replay.progress import SilentProgress
from streamcache.settings import Settings
from streamcache_local.broker import start_broker
from streamcache_local.fn_runner import start_instance

START_MS = 1_700_000_000_000
PARTITIONS = 3
BATCH = 20_000


def records(count: int, keys: int, first: int, rng: random.Random, value_bytes: int, step_ms: float,
            overwrite: bool):
    """(key, encoded put) pairs: ``user:%09d`` keys in order, or random existing keys (a tail)."""
    for i in range(first, first + count):
        key = f"user:{rng.randrange(keys) if overwrite else i:09d}"
        value = rng.randbytes(value_bytes // 2 + 1).hex()[:value_bytes].encode()
        yield key, encode(Put(key, value, "text/plain", f"req-{i:010d}", START_MS + int(i * step_ms)))


def produce(log, items, count: int) -> float:
    started = time.perf_counter()
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == BATCH:
            log.append_many(batch)
            batch = []
    if batch:
        log.append_many(batch)
    return count / (time.perf_counter() - started)


def rss_bytes(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process now (VmRSS) or at its peak (VmHWM)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field}")


def cold_start(config: dict, key: str, sockets: str, name: str, expect: int = 200) -> dict:
    """Start an instance; time process start -> first answered read of ``key``."""
    started = time.perf_counter()
    instance = start_instance(name, sockets, config)
    try:
        answer = instance.client.http_call("GET", f"/cache/{key}", timeout_s=300)
        first_read = time.perf_counter() - started
        if answer.status != expect:
            raise RuntimeError(f"first read answered {answer.status}: {answer.body[:300]!r}")
        health = orjson.loads(instance.client.http_call("GET", "/health").body)
        return {"first_read_s": first_read, "health": health, "rss": rss_bytes(instance.pid),
                "peak": rss_bytes(instance.pid, "VmHWM")}
    finally:
        instance.stop()


def row(label: str, value: str) -> None:
    print(f"  {label:<56} {value}", flush=True)


def bench(keys: int, args, broker, workdir: Path) -> None:
    tail = keys // 10
    rng = random.Random(7)
    step_ms = 1000 / args.writes_per_second
    topic = f"bench-{keys}-{os.getpid()}"
    broker.create_topic(topic, PARTITIONS)
    url = broker.log_url(topic)
    log = Settings.from_env({"STREAMCACHE_LOG_URL": url}).open_log()
    store_dir = workdir / f"snapshots-{keys}"
    store = DirectoryStore(store_dir)
    print(f"\n{keys:,} keys, {args.value_bytes}-byte values, tail {tail:,} records, {PARTITIONS} partitions")

    rate = produce(log, records(keys, keys, 0, rng, args.value_bytes, step_ms, overwrite=False), keys)
    row("produce (kafka-python, acks=all, batched)", f"{rate:,.0f} records/s")

    gc.collect()
    cpu = time.process_time()
    first = compact(log, store, topic, keep=3, progress=SilentProgress())
    cpu = time.process_time() - cpu
    phases = first.phases_ms
    row("compaction from scratch (Kafka -> snapshot)",
        f"{keys / first.duration_ms * 1000:,.0f} records/s ({first.duration_ms / 1000:.2f} s: read+fold "
        f"{phases['fold'] / 1000:.2f}, encode {phases['encode'] / 1000:.2f}, write {phases['write'] / 1000:.2f}; "
        f"{keys / cpu:,.0f}/s of this process's CPU)")
    raw = keys * (len("user:000000000") + args.value_bytes)
    row("snapshot size", f"{first.bytes / 1e6:.1f} MB = {first.bytes / raw:.2f} x raw keys+values "
                         f"({raw / 1e6:.1f} MB)")

    rate = produce(log, records(tail, keys, keys, rng, args.value_bytes, step_ms, overwrite=True), tail)
    row("produce the tail", f"{rate:,.0f} records/s")
    last_key = f"user:{rng.randrange(keys):09d}"
    log.append_many([(last_key, encode(Put(last_key, b"the tail was replayed", "text/plain", "req-last",
                                           START_MS + int((keys + tail) * step_ms))))])

    sockets = tempfile.mkdtemp(prefix="sc-b-", dir="/tmp")
    try:
        config = {"STREAMCACHE_LOG_URL": url, "STREAMCACHE_SNAPSHOT_URL": f"file://{store_dir}"}
        empty_topic = f"empty-{keys}-{os.getpid()}"
        broker.create_topic(empty_topic, PARTITIONS)
        baseline = cold_start({"STREAMCACHE_LOG_URL": broker.log_url(empty_topic)}, "none", sockets, "base", expect=404)
        gc.collect()
        started = cold_start(config, last_key, sockets, "fn1")
    finally:
        shutil.rmtree(sockets, ignore_errors=True)
    health = started["health"]
    snapshot = health["snapshot"]
    row("COLD START: process start -> first served read", f"{started['first_read_s']:.2f} s")
    row("  /health cold_start_ms (process start -> restored)", f"{health['cold_start_ms']:,.0f} ms")
    row("  restore: snapshot download + verify + load", f"{snapshot['load_ms']:,.0f} ms ({snapshot['entries']:,} entries, "
                                                         f"{snapshot['bytes'] / 1e6:.1f} MB)")
    row("  restore: tail replay", f"{health['restore_ms'] - snapshot['load_ms']:,.0f} ms "
                                  f"({health['records_replayed']:,} records)")
    per_key = (started["rss"] - baseline["rss"]) / keys
    row("resident memory per key (instance RSS - empty instance)", f"{per_key:,.0f} bytes "
                                                                   f"({started['rss'] / 1e6:,.0f} MB RSS, peak "
                                                                   f"{started['peak'] / 1e6:,.0f} MB during the restore)")

    gc.collect()
    second = compact(log, store, topic, keep=3, progress=SilentProgress())
    row("incremental compaction (snapshot + tail -> snapshot)",
        f"{second.duration_ms / 1000:.2f} s for {second.records_folded:,} records (load "
        f"{second.phases_ms['load'] / 1000:.2f}, read+fold {second.phases_ms['fold'] / 1000:.2f}, encode "
        f"{second.phases_ms['encode'] / 1000:.2f}, write {second.phases_ms['write'] / 1000:.2f})")

    bounds = log.bounds()
    started_read, cpu = time.perf_counter(), time.process_time()
    everything = list(log.read(dict(bounds.first), dict(bounds.next)))
    read_s, cpu = time.perf_counter() - started_read, time.process_time() - cpu
    row("  part: Kafka read alone (kafka-python, all records)", f"{len(everything) / read_s:,.0f} records/s "
                                                                f"({len(everything) / cpu:,.0f}/s of CPU)")
    log.close()
    table = Table()
    gc.collect()
    started_fold, cpu = time.perf_counter(), time.process_time()
    with gc_paused():
        apply_records(table, everything, log.partition_for)
    fold_s, cpu = time.perf_counter() - started_fold, time.process_time() - cpu
    row("  part: decode + apply alone (the fold loop)", f"{len(everything) / fold_s:,.0f} records/s "
                                                        f"({len(everything) / cpu:,.0f}/s of CPU)")
    del table
    memory = MemoryLog(PARTITIONS)
    for record in everything:
        memory.append(record.key.decode(), record.value)
    del everything
    gc.collect()
    cpu = time.process_time()
    in_memory = compact(memory, DirectoryStore(workdir / f"memory-{keys}"), topic, keep=1, progress=SilentProgress())
    cpu = time.process_time() - cpu
    row("  part: compaction from scratch, memory log (no Kafka)",
        f"{in_memory.records_folded / in_memory.duration_ms * 1000:,.0f} records/s ({in_memory.duration_ms / 1000:.2f} s; "
        f"{in_memory.records_folded / cpu:,.0f}/s of CPU)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, action="append", help="key counts (repeatable; default 100000)")
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 keys")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--writes-per-second", type=int, default=1000, help="log time spacing of the writes")
    args = parser.parse_args(argv)
    sizes = args.keys or [100_000]
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {Path(__file__).name}")
    workdir = Path(tempfile.mkdtemp(prefix="sc-bench-"))
    try:
        with start_broker() as broker:
            for keys in sizes:
                bench(keys, args, broker, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
