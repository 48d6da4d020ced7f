"""Snapshot (SQLite image) write and load throughput, and snapshot size against the raw data.

    .venv/bin/python bench/bench_snapshot.py                 # 100k keys
    .venv/bin/python bench/bench_snapshot.py --million       # 100k and 1M keys (~1 minute)
    .venv/bin/python bench/bench_snapshot.py --stores        # also through the directory store and the
                                                             # OCI SDK against the local Object Storage server

The table is filled by applying put records directly (timestamps spread at ``--writes-per-second``,
so the dedup window holds a realistic number of request ids). Each codec figure is the best of
``--repeat`` runs. "raw" is the bytes of keys plus values; "MB/s" counts snapshot bytes. "load" is
verify (CRC-32 from the name) + deserialize, or verify + write under /tmp + open memory-mapped.
"""

from __future__ import annotations

import argparse
import gc
import os
import random
import sys
import tempfile
import time
from pathlib import Path

from streamcache.core.records import Position, Put
from streamcache.core.snapshot import checksum, decode_header, encode_snapshot, format_name
from streamcache.core.table import Table
from streamcache.replay.snapshot_image import load_image


def build_table(keys: int, value_bytes: int, values: str, partitions: int, writes_per_second: int) -> Table:
    rng = random.Random(7)
    table = Table()
    step_ms = 1000 / writes_per_second
    for i in range(keys):
        key = f"user:{i:09d}"
        if values == "random":
            value = rng.randbytes(value_bytes)
        else:  # JSON text with a random token: compresses about 2x, like typical cached documents
            head = f'{{"id":{i},"name":"user {i}","score":{rng.random():.6f},"token":"'
            token = rng.randbytes(value_bytes).hex()[: max(0, value_bytes - len(head) - 2)]
            value = (head + token + '"}').encode()[:value_bytes]
        put = Put(key, value, "application/json", f"req-{i:09d}", 1_700_000_000_000 + int(i * step_ms))
        table.apply(Position(i % partitions, i // partitions), put)
    return table


def rss_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def best_of(repeat: int, action):
    best, result = float("inf"), None
    for _ in range(repeat):
        gc.collect()
        started = time.perf_counter()
        result = action()
        best = min(best, time.perf_counter() - started)
    return best, result


def bench(keys: int, args: argparse.Namespace) -> None:
    started = time.perf_counter()
    table = build_table(keys, args.value_bytes, args.values, args.partitions, args.writes_per_second)
    raw = sum(len(k.encode()) + len(e.value) for k, e in table.items())
    print(f"\n{keys:,} keys, {args.value_bytes}-byte {args.values} values, {args.partitions} partitions "
          f"(built in {time.perf_counter() - started:.1f} s; raw data {raw / 1e6:.1f} MB)")
    print(f"  {'variant':<22}{'size MB':>9}{'vs raw':>8}{'write s':>9}{'MB/s':>7}{'load s':>8}{'MB/s':>7}"
          f"{'keys/s':>11}")
    write_s, data = best_of(args.repeat, lambda: encode_snapshot(table, "bench"))
    name = format_name(decode_header(data), "bench", checksum(data))
    mb = len(data) / 1e6
    for label, threshold in (("deserialized (default)", None), ("mmap file under /tmp", 0)):
        load_s, snapshot = best_of(args.repeat, lambda: load_image(data, name, file_min_bytes=threshold))
        print(f"  {label:<22}{mb:>9.1f}{len(data) / raw:>8.2f}{write_s:>9.2f}{mb / write_s:>7.0f}"
              f"{load_s:>8.2f}{mb / load_s:>7.0f}{keys / load_s:>11,.0f}")
        requests = snapshot.header.requests
        snapshot.table.close()
        del snapshot
    print(f"  request ids remembered in the snapshot: {requests:,}")
    del table
    gc.collect()
    before = rss_bytes()
    loaded = load_image(data, name, file_min_bytes=None)
    print(f"  resident memory of a loaded table: {(rss_bytes() - before) / keys:.0f} bytes/key")
    if args.stores:
        bench_stores(data, name)
    del loaded


def bench_stores(data: bytes, name: str) -> None:
    from streamcache.adapters.directory_store import DirectoryStore

    with tempfile.TemporaryDirectory() as folder:
        store = DirectoryStore(folder)
        put_s, _ = best_of(1, lambda: store.put_new(name, data))
        get_s, _ = best_of(3, lambda: store.get(name))
        print(f"  directory store: put {put_s:.2f} s (with fsync), get {get_s:.2f} s")
    try:
        import oci
        from cryptography.hazmat.primitives.asymmetric import rsa

        from streamcache.adapters.oci_object_store import OciObjectStore
        from streamcache_local.object_storage import start_object_storage
    except ImportError as exc:
        print(f"  OCI SDK store: skipped ({exc})")
        return
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    signer = oci.auth.signers.SecurityTokenSigner(token="bench", private_key=key)
    with start_object_storage() as server:
        store = OciObjectStore.from_url(server.url("snapshots"), endpoint=server.endpoint, signer=signer,
                                        retry_strategy=oci.retry.NoneRetryStrategy(), timeout=(5, 120))
        put_s, _ = best_of(1, lambda: store.put_new(name, data))
        get_s, _ = best_of(3, lambda: store.get(name))
        store.close()
    print(f"  OCI SDK -> local server (loopback): put {put_s:.2f} s, get {get_s:.2f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keys", type=int, action="append", help="key counts (repeatable; default 100000)")
    parser.add_argument("--million", action="store_true", help="also run 1,000,000 keys")
    parser.add_argument("--value-bytes", type=int, default=100)
    parser.add_argument("--values", choices=["text", "random"], default="text")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--writes-per-second", type=int, default=1000, help="log time spacing of the writes")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--stores", action="store_true", help="also time the directory and OCI SDK stores")
    args = parser.parse_args(argv)
    sizes = args.keys or [100_000]
    if args.million and 1_000_000 not in sizes:
        sizes.append(1_000_000)
    print(f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs, {Path(__file__).name}")
    for keys in sizes:
        bench(keys, args)


if __name__ == "__main__":
    main()
