"""Snapshot size against the raw data and the Redis RDB, snapshot write and load throughput, the
resident memory of a table loaded from a snapshot, and compaction throughput once the compactor
exists (issue 3).

The method is ``bench/bench_snapshot.py``'s (best of two codec runs, RSS growth of a decoded table),
but on the very data the Redis half stores (:func:`.common.dataset`, folded: N keys), so the snapshot
and the RDB file can be set side by side (the RDB sizes come from :mod:`.scaling`).
"""

from __future__ import annotations

import gc
import os
import shutil
import json
import subprocess
import sys
import tempfile
import time

from bench_snapshot import best_of  # bench/ is on sys.path (see run.py)

from .common import dataset
from .parallel_download import measure_parallel_download
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
        from streamcache.core.snapshot import checksum, decode_header, decode_snapshot, encode_snapshot, format_name
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
        ways = load_both_ways(data, keys)
        download = measure_parallel_download(data, format_name(decode_header(data), "bench", checksum(data)))
        table_rss = ways["memory"]["rss_per_key_bytes"] * keys
        size = len(data)
        out[str(keys)] = {"keys": keys, "raw_bytes": raw, "snapshot_bytes": size, "size_vs_raw": round(size / raw, 3),
                          "write_s": round(write_s, 4), "write_mb_s": round(size / 1e6 / write_s, 1),
                          "load_s": round(load_s, 4), "load_keys_s": round(keys / load_s),
                          "entries_loaded": held, "loaded_table_rss_per_key_bytes": round(table_rss / keys, 1),
                          "table_build_s": round(built_s, 2), "load_ways": ways,
                          "download_capped": download}
        ctx.say(f"snapshot: {keys:,} keys, {size / 1e6:.1f} MB ({size / raw:.2f} x raw), "
                f"write {out[str(keys)]['write_mb_s']} MB/s, load {out[str(keys)]['load_keys_s']:,} keys/s, "
                f"a loaded table holds {table_rss / keys:.0f} B/key; "
                + "; ".join(f"{mode}: open {w['verify_and_open_s']:.3f} s, {w['held_per_key_bytes']:.0f} B/key held, "
                            f"peak {w['peak_per_key_bytes']:.0f} B/key"
                            for mode, w in ways.items())
                + f"; download at {download['cap_mb_s']:.0f} MB/s a connection: "
                + ", ".join(f"{c} connection(s) {download[str(c)]['seconds']:.2f} s" for c in (1, 4)))
        del data
        gc.collect()
    return out


_LOAD_IN_CHILD = """
import gc, json, os, random, sys, time
from streamcache.adapters.directory_store import DirectoryStore
from streamcache.core.table import Table
from streamcache.replay.snapshot_image import fetch_image, load_image
def rss(field="VmRSS"):
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith(field + ":"))
root, name, mode, tmp = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
store = DirectoryStore(root)
Table()  # imports and SQLite initialised before the baseline
gc.collect()
before = rss()
with open("/proc/self/clear_refs", "w") as refs:
    refs.write("5")  # the peak (VmHWM) starts again from here
started = time.perf_counter()
if mode == "copy":  # the restore before issue 24: the download whole, then deserialize's copy of it
    data = store.get(name)
    snapshot = load_image(data, name, file_min_bytes=None)
    del data
else:
    snapshot, _ = fetch_image(store, name, file_min_bytes=0 if mode == "file" else None, tmp_dir=tmp)
opened = time.perf_counter()
peak = rss("VmHWM")
table = snapshot.table
table.get("user:000000000", 0)
first = time.perf_counter()
keys = [f"user:{random.randrange(snapshot.header.entries):09d}" for _ in range(20_000)]
t0 = time.perf_counter()
for key in keys:
    table.get(key, 0)
touched = time.perf_counter()
files = 0
for fd in os.listdir("/proc/self/fd"):
    try:
        if "streamcache-" in os.readlink(f"/proc/self/fd/{fd}"):
            files += os.stat(f"/proc/self/fd/{fd}").st_size
    except OSError:
        pass  # the descriptor listdir itself used
print(json.dumps({"read_and_open_s": opened - started, "first_get_ms": (first - opened) * 1000,
                  "random_get_us": (touched - t0) / len(keys) * 1e6, "rss_growth": rss() - before,
                  "peak_growth": peak - before, "file_bytes": files}))
"""

#: How a snapshot is restored: read into memory SQLite owns (fetch_image, the default), downloaded
#: whole and deserialized (the copy the restore made before issue 24), or written under /tmp and
#: memory-mapped.
LOAD_MODES = ("memory", "copy", "file")


def load_both_ways(data: bytes, keys: int) -> dict:
    """Restore ``data`` from a directory store each way in a fresh process (in this one, memory freed
    by earlier work would be reused and hide part of it): time to read, verify and open, first and
    random lookups (20k, pages loading), resident growth and its peak during the restore, and bytes
    of image file kept under the temporary folder."""
    from streamcache.core.snapshot import checksum, decode_header, format_name

    out = {}
    tmp = tempfile.mkdtemp(prefix="sc-bench-image-")
    try:
        name = "snapshots/bench/" + format_name(decode_header(data), "bench", checksum(data)).rsplit("/", 1)[1]
        path = os.path.join(tmp, "store", name)
        os.makedirs(os.path.dirname(path))
        with open(path, "wb") as file:
            file.write(data)
        for mode in LOAD_MODES:
            done = subprocess.run([sys.executable, "-c", _LOAD_IN_CHILD, os.path.join(tmp, "store"), name, mode, tmp],
                                  capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise RuntimeError(f"loading the snapshot in a child process failed: {done.stderr[-800:]}")
            m = json.loads(done.stdout)
            out[mode] = {"verify_and_open_s": round(m["read_and_open_s"], 4),
                         "first_get_ms": round(m["first_get_ms"], 3), "random_get_us": round(m["random_get_us"], 2),
                         "rss_per_key_bytes": round(m["rss_growth"] / keys, 1),
                         "peak_per_key_bytes": round(m["peak_growth"] / keys, 1),
                         "peak_vs_held": round(m["peak_growth"] / max(1, m["rss_growth"]), 2),
                         "held_per_key_bytes": round((m["rss_growth"] + m["file_bytes"]) / keys, 1)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


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
