"""Big values by reference (issue 22): a 5 MB value's PUT and GET p50 against a 100-byte value's, and
the resident memory of an instance holding 1,000 of them by reference against holding them inline.

Latency: two cache instances in this process (in the handler, as ``warm``'s first path) over one
topic, their values in the local Object Storage server through the real ``oci`` SDK, signed with a
local resource principal. The server runs in this process too (a thread: it competes for the GIL
with the handler, so the big-value figures are upper bounds for a loopback store). A PUT of 5 MB
hashes the value, uploads it, then appends a ~400-byte record; a GET is answered from the writer's
LRU (``get_cached``) or downloaded and checked by an instance that keeps nothing
(``STREAMCACHE_VALUE_CACHE_BYTES=0``: ``get_fetched``). Every PUT writes new bytes (a counter in the
first 8 bytes), so each one really uploads.

Memory: fresh instances (the real FDK, their own processes) cold-start from topics holding (a) nothing,
(b) 1,000 keys whose records carry references to 5 MB values, (c) N keys of 256 KiB values inline
(the most a record carries). A 5 MB value can no longer be held inline (its record would pass the
stream's 1 MB), so holding 1,000 of them inline is estimated from (c): the base instance plus 1,000 ×
5 MiB × the resident bytes (c) took per value byte. Only the probe key's object exists in (b) (the
instance fetches a value when it is read, never when it holds the reference); its first read
downloads it, and the 5 MiB it keeps in its LRU are part of the figure.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time

from kafka import KafkaProducer

from streamcache.adapters.kafka_partitioner import key_partition
from streamcache.adapters.urls import open_snapshot_store
from streamcache.cache.app import CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.core import records
from streamcache.core.value_refs import REF_CONTENT_TYPE, ValueRef, ref_for, values_prefix
from streamcache.settings import Settings
from streamcache_local.object_storage import start_object_storage
from streamcache_local.resource_principal import write_resource_principal

from .common import key_name, summarize, timed_loop
from .context import BenchContext
from .datasets import load_topic
from .scaling import cold_start_instance

BIG = 5 * 1024 * 1024
SMALL = 100
HELD = 1000  # big values an instance holds in the memory comparison
INLINE_VALUE = 256 * 1024
COUNTS = {"tiny": (4, 40, 20), "quick": (10, 200, 60), "full": (30, 1000, 200)}  # big ops, small ops, inline keys


def blob(seed: int, size: int) -> bytes:
    """``size`` deterministic, incompressible bytes of hex text (common.value_for is quadratic at MiB)."""
    return hashlib.shake_256(seed.to_bytes(8, "big")).hexdigest((size + 1) // 2).encode()[:size]


def measure_big_values(ctx: BenchContext) -> dict:
    big_ops, small_ops, inline_keys = COUNTS[ctx.mode.name]
    saved = dict(os.environ)
    with tempfile.TemporaryDirectory() as folder, start_object_storage(buckets=("data",)) as storage:
        rp = write_resource_principal(folder)
        os.environ.update(rp.env)  # the SDK's signer reads os.environ
        try:
            store_url = storage.url("data", "cache")
            base = {"STREAMCACHE_SNAPSHOT_URL": store_url, "STREAMCACHE_OCI_ENDPOINT": storage.endpoint}
            latency = _latency(ctx, base, big_ops, small_ops)
            memory = _memory(ctx, {**base, **rp.env}, inline_keys)
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return {"value_bytes": BIG, "small_value_bytes": SMALL, **latency, "memory": memory}


def _latency(ctx: BenchContext, base: dict, big_ops: int, small_ops: int) -> dict:
    _, url = ctx.new_topic("bigvalues")
    writer = CacheApp(Settings.from_env({**base, "STREAMCACHE_LOG_URL": url, "STREAMCACHE_INSTANCE_ID": "bench-big-w"}))
    reader = CacheApp(Settings.from_env({**base, "STREAMCACHE_LOG_URL": url, "STREAMCACHE_INSTANCE_ID": "bench-big-r",
                                         "STREAMCACHE_VALUE_CACHE_BYTES": "0"}))
    big, small = blob(0, BIG), blob(0, SMALL)
    try:
        for app in (writer, reader):
            app.ensure_started(300)

        def put(size: str, value: bytes):
            def run(i: int) -> int:
                body = (i % 2**63).to_bytes(8, "big", signed=True) + value[8:]  # new bytes each time: a real upload
                return writer.handle(HttpRequest("PUT", f"/cache/{size}:{i % 8}", {"content-type": "image/png"}, body)).status
            return run

        def get(app: CacheApp, size: str):
            return lambda i: app.handle(HttpRequest("GET", f"/cache/{size}:{i % 8}", {}, b"")).status

        ok_put, ok_get = (lambda s: s in (200, 201)), (lambda s: s == 200)
        budget = max(ctx.mode.path_budget_s, 10.0)
        out = {
            "put_big": summarize(timed_loop(put("big", big), big_ops, budget, warmup=8, ok=ok_put)),
            "put_small": summarize(timed_loop(put("small", small), small_ops, budget, warmup=8, ok=ok_put)),
            "get_big_cached": summarize(timed_loop(get(writer, "big"), big_ops * 4, budget, warmup=8, ok=ok_get)),
            "get_big_fetched": summarize(timed_loop(get(reader, "big"), big_ops, budget, warmup=2, ok=ok_get)),
            "get_small": summarize(timed_loop(get(writer, "small"), small_ops, budget, warmup=8, ok=ok_get)),
        }
        out["objects_written"] = len(writer.service.values.store().list(values_prefix(writer.stream_id)))
        return out
    finally:
        for app in (writer, reader):
            app.replica.log.close()


def _memory(ctx: BenchContext, base: dict, inline_keys: int) -> dict:
    empty_topic, empty_url = ctx.new_topic("bigvalues-empty")
    refs_topic, refs_url = ctx.new_topic("bigvalues-refs")
    inline_topic, inline_url = ctx.new_topic("bigvalues-inline")
    double_topic, double_url = ctx.new_topic("bigvalues-inline2")
    probe = blob(HELD - 1, BIG)
    store = open_snapshot_store(base["STREAMCACHE_SNAPSHOT_URL"], oci_endpoint=base["STREAMCACHE_OCI_ENDPOINT"])
    probe_ref = ref_for(refs_topic, probe, "image/png")
    store.put_new(probe_ref.name, probe)  # the one value the cold start's probe reads
    started = time.monotonic()
    _load_refs(ctx, refs_topic, probe_ref)
    load_topic(ctx.broker.bootstrap, inline_topic, ctx.partitions,
               ((key_name(i), blob(i, INLINE_VALUE)) for i in range(inline_keys)))
    load_topic(ctx.broker.bootstrap, double_topic, ctx.partitions,
               ((key_name(i), blob(i, INLINE_VALUE)) for i in range(2 * inline_keys)))
    ctx.say(f"big_values: topics loaded in {time.monotonic() - started:.1f} s")
    runs = {
        "empty": cold_start_instance({**base, "STREAMCACHE_LOG_URL": empty_url}, 0),
        "by_reference": cold_start_instance({**base, "STREAMCACHE_LOG_URL": refs_url}, HELD),
        "inline_256k": cold_start_instance({**base, "STREAMCACHE_LOG_URL": inline_url}, inline_keys),
        "inline_256k_double": cold_start_instance({**base, "STREAMCACHE_LOG_URL": double_url}, 2 * inline_keys),
    }
    rss = {name: run["rss_bytes"] for name, run in runs.items()}
    # The slope between N and 2N values: what one more value byte costs, without what any replay
    # costs once (fetch buffers, the decoder's garbage). Never below 1: the table holds every byte.
    per_value_byte = (rss["inline_256k_double"] - rss["inline_256k"]) / (inline_keys * INLINE_VALUE)
    return {
        "held": HELD, "inline_keys": inline_keys, "inline_value_bytes": INLINE_VALUE,
        "rss_bytes": rss,
        "by_reference_over_empty_bytes": rss["by_reference"] - rss["empty"],
        "inline_bytes_per_value_byte": round(per_value_byte, 3),
        "inline_floor_bytes": rss["empty"] + HELD * BIG,
        "inline_estimate_bytes": round(rss["empty"] + HELD * BIG * max(1.0, per_value_byte)),
    }


def _load_refs(ctx: BenchContext, topic: str, probe: ValueRef) -> None:
    """``HELD`` put records carrying references to 5 MiB values (the last one the probe's, whose
    object exists), as a cache instance writes them."""
    producer = KafkaProducer(bootstrap_servers=ctx.broker.bootstrap, acks="all", linger_ms=20,
                             metrics_enabled=False, client_id="streamcache-bench-refs")
    prefix = values_prefix(topic)
    try:
        for i in range(HELD):
            hex_digest = f"{i:064x}"
            ref = probe if i == HELD - 1 else ValueRef(f"{prefix}{hex_digest}", BIG, f"sha256:{hex_digest}", "image/png")
            key = key_name(i)
            put = records.Put(key, ref.encode(), REF_CONTENT_TYPE, f"bench-ref-{i}", 1_700_000_000_000 + i)
            producer.send(topic, key=key.encode(), value=records.encode(put), partition=key_partition(key, ctx.partitions))
        producer.flush(timeout=60)
    finally:
        producer.close(timeout=5)


def markdown(result: dict) -> list[str]:
    """The section of latest.md."""
    out = ["### Big values by reference: a 5 MiB value against a 100-byte one (in the handler, loopback Object Storage)", ""]
    if "skipped" in result or "error" in result:
        return out + [f"Not measured: {result.get('skipped') or result.get('error')}", ""]

    def ms(row: dict) -> str:
        return f"{row['p50_ms']:.2f} ms" if "p50_ms" in row else "-"

    out += ["| request | 100 B p50 | 5 MiB p50 | 5 MiB p90 |", "|---|---|---|---|",
            f"| PUT | {ms(result['put_small'])} | {ms(result['put_big'])} | {result['put_big'].get('p90_ms', 0):.2f} ms |",
            f"| GET (the instance's LRU) | {ms(result['get_small'])} | {ms(result['get_big_cached'])} | "
            f"{result['get_big_cached'].get('p90_ms', 0):.2f} ms |",
            f"| GET (downloaded, digest checked) | {ms(result['get_small'])} | {ms(result['get_big_fetched'])} | "
            f"{result['get_big_fetched'].get('p90_ms', 0):.2f} ms |", ""]
    mem = result["memory"]
    rss = mem["rss_bytes"]
    mib = 1024 * 1024
    out += [f"Resident memory of an instance: empty {rss['empty'] / mib:.0f} MiB; holding {mem['held']:,} 5 MiB values by "
            f"reference {rss['by_reference'] / mib:.0f} MiB (+{mem['by_reference_over_empty_bytes'] / mib:.1f} MiB, one of "
            f"them read and cached); {mem['inline_keys']} and {2 * mem['inline_keys']} values of 256 KiB inline "
            f"{rss['inline_256k'] / mib:.0f} and {rss['inline_256k_double'] / mib:.0f} MiB, "
            f"{mem['inline_bytes_per_value_byte']} resident bytes per further value byte, so {mem['held']:,} 5 MiB values inline "
            f"would take about {mem['inline_estimate_bytes'] / mib / 1024:.1f} GiB, and never less than "
            f"{mem['inline_floor_bytes'] / mib / 1024:.1f} GiB (the bytes themselves; an estimate: a record no longer "
            "carries 5 MiB).", ""]
    return out
