"""Snapshot size against the raw data and the Redis RDB, snapshot write and load throughput, the
resident memory of a table loaded from a snapshot, and compaction throughput once the compactor
exists (issue 3).

The method is ``bench/bench_snapshot.py``'s (best of two codec runs, RSS growth of a decoded table),
but on the very data the Redis half stores (:func:`.common.dataset`, folded: N keys), so the snapshot
and the RDB file can be set side by side (the RDB sizes come from :mod:`.scaling`).
"""

from __future__ import annotations

import gc
import shutil
import json
import subprocess
import sys
import tempfile
import time

from bench_snapshot import best_of  # bench/ is on sys.path (see run.py)

from .common import dataset
from .context import BenchContext, Skipped
from .datasets import BASE_TS_MS, CONTENT_TYPE, WRITES_PER_SECOND, load_topic, partition_for



def build_table(keys: int, partitions: int):
    """The table an instance holds after replaying :func:`.common.dataset` (``keys`` entries)."""
    from streamcache.core.records import Position, Put
    from streamcache.core.table import Table

    table = Table()
    offsets = [0] * partitions
    for count, (key, value) in enumerate(dataset(keys), start=1):
        partition = partition_for(key, partitions)
        put = Put(key, value, CONTENT_TYPE, f"bench-{count}", BASE_TS_MS + count * 1000 // WRITES_PER_SECOND)
        table.apply(Position(partition, offsets[partition]), put)
        offsets[partition] += 1
    return table


def measure_snapshot(ctx: BenchContext) -> dict:
    try:
        from streamcache.core.snapshot import decode_snapshot, encode_snapshot
    except ImportError as exc:
        raise Skipped(f"the snapshot codec (issue 3) is not available: {exc}") from None
    out = {}
    for keys in ctx.mode.snapshot_keys:
        started = time.perf_counter()
        table = build_table(keys, ctx.partitions)
        built_s = time.perf_counter() - started
        raw = sum(len(key.encode()) + len(entry.value) for key, entry in table.items())
        write_s, data = best_of(2, lambda: encode_snapshot(table, "bench"))
        del table
        load_s, snapshot = best_of(2, lambda: decode_snapshot(data))
        held = snapshot.header.entries
        del snapshot
        table_rss = loaded_table_rss(data)
        size = len(data)
        out[str(keys)] = {"keys": keys, "raw_bytes": raw, "snapshot_bytes": size, "size_vs_raw": round(size / raw, 3),
                          "write_s": round(write_s, 4), "write_mb_s": round(size / 1e6 / write_s, 1),
                          "load_s": round(load_s, 4), "load_keys_s": round(keys / load_s),
                          "entries_loaded": held, "loaded_table_rss_per_key_bytes": round(table_rss / keys, 1),
                          "table_build_s": round(built_s, 2)}
        ctx.say(f"snapshot: {keys:,} keys, {size / 1e6:.1f} MB ({size / raw:.2f} x raw), "
                f"write {out[str(keys)]['write_mb_s']} MB/s, load {out[str(keys)]['load_keys_s']:,} keys/s, "
                f"a loaded table holds {table_rss / keys:.0f} B/key")
        del data
        gc.collect()
    return out


_LOAD_IN_CHILD = """
import gc, json, os, sys
from streamcache.core.snapshot import decode_snapshot
def rss():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
data = open(sys.argv[1], "rb").read()
gc.collect()
before = rss()
snapshot = decode_snapshot(data)
print(json.dumps({"before": before, "after": rss()}))
"""


def loaded_table_rss(data: bytes) -> int:
    """Resident memory a table decoded from ``data`` takes, measured in a fresh process (in this one,
    memory freed by earlier work would be reused and hide part of it)."""
    with tempfile.NamedTemporaryFile(prefix="sc-bench-snapshot-") as file:
        file.write(data)
        file.flush()
        done = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, file.name], capture_output=True, text=True,
                              timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"loading the snapshot in a child process failed: {done.stderr[-800:]}")
    answer = json.loads(done.stdout)
    return answer["after"] - answer["before"]


def measure_compaction(ctx: BenchContext) -> dict:
    """Records folded per second by the compactor. The scaling measurement compacts every key count
    it prepares (cold start from a snapshot needs one); without it, one compaction here."""
    from .scaling import compact, snapshots_available

    if not snapshots_available():
        raise Skipped("the compactor (issue 3) is not in this build")
    if ctx.shared.get("compaction"):
        return ctx.shared["compaction"]
    keys = ctx.mode.scaling_keys[0]
    topic, url = ctx.new_topic("compact")
    load_topic(ctx.broker.bootstrap, topic, ctx.partitions, dataset(keys))
    directory = tempfile.mkdtemp(prefix="sc-bench-snapshots-")
    try:
        return {str(keys): compact(url, directory)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)
