"""How cold start and memory grow with the number of keys, for both systems, and what a compaction
of that data costs.

For each key count N (100-byte values):

- streamcache: the N records go on a fresh topic and the compactor folds them into a snapshot (an
  SQLite image) in a local directory (timed: compaction from scratch). Then, for each tail of
  :data:`TAILS` (1 % and 10 % of N, overwrites): the tail is appended, a fresh function instance is
  spawned exactly as Fn does (``fdk func.py handler`` on a unix socket) and the clock runs from the
  spawn to the first served read (a GET through Fn's protocol; a ``503 restoring`` answer is
  retried, as a client would); then the compactor folds that tail onto the snapshot (timed: the
  incremental compaction, whose cost should follow the tail and the image copy, not N). The
  instance's memory = its resident memory (VmRSS) minus that of an instance on an empty stream,
  plus any image file it keeps under /tmp. Then :data:`DELTA_CHANGES` more changes are compacted
  twice onto the chain: as a delta (the default) and as a full image (bytes uploaded, time). Up to :data:`STREAM_REPLAY_MAX_KEYS`, an instance that
  replays the whole stream (no snapshot store) is measured too.
- Redis: loaded through a pipeline, ``used_memory`` per key (minus an empty server's), then ``SAVE``;
  a fresh ``redis-server`` on that RDB, timed from the spawn to the first GET that returns the value.

The 1 % tail's cold start and Redis's RDB load are run ``Mode.cold_starts`` times each (3 in full mode:
one run varies by a third on a small VM) and the median is quoted, every run's time beside it.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from dataclasses import fields

from streamcache.settings import Settings
from streamcache_local.fn_runner import start_instance

from .common import VALUE_BYTES, dataset, key_name, peak_rss_bytes, ratio, rss_bytes, value_for
from .context import BenchContext, Skipped
from .datasets import load_redis, load_topic
from .redis_server import RedisServer

FIRST_READ_TIMEOUT_S = 600.0


#: Tails replayed at a cold start, as fractions of the key count: 1 % (what a compactor running on a
#: schedule leaves) and 10 % (a compactor that fell behind). Both are overwrites spread over the keys.
TAILS = (("snapshot_and_tail", 0.01), ("snapshot_and_tail_10pct", 0.10))
#: Replaying the whole stream is measured up to this many keys (at 1M it takes half a minute and
#: says nothing the snapshot path does not).
STREAM_REPLAY_MAX_KEYS = 100_000


def snapshots_available() -> bool:
    """True once issue 3's snapshot store setting and compactor are in the code base."""
    return ("snapshot_url" in {f.name for f in fields(Settings)}
            and importlib.util.find_spec("streamcache.compactor.app") is not None)


def tail_items(keys: int, count: int, first: int, generation: int):
    """``count`` overwrites spread over the keys (7919 is prime: they touch keys all over the range)."""
    return ((key_name((j * 7919) % keys), value_for((j * 7919) % keys, generation=generation))
            for j in range(first, first + count))


def run_size(ctx: BenchContext, keys: int) -> tuple[dict[str, dict], dict | None]:
    """``keys`` puts on a fresh topic, compacted from scratch; then for each tail of :data:`TAILS`:
    the tail appended, a fresh instance cold-started on snapshot + tail, and the tail compacted onto
    the snapshot (timed: the compactor's incremental cost). Then, for small sizes, a cold start that
    replays the whole stream. Returns the cold starts by source and the compactions."""
    topic, url = ctx.new_topic(f"cold{keys}")
    base = ((key_name(i), value_for(i)) for i in range(keys))
    written = load_topic(ctx.broker.bootstrap, topic, ctx.partitions, base) if keys else 0
    runs: dict[str, dict] = {}
    compaction = None
    directory = tempfile.mkdtemp(prefix="sc-bench-snapshots-") if snapshots_available() else None
    try:
        if directory is not None:
            compaction = compact(url, directory)
            compaction["incremental"] = {}
        for generation, (name, fraction) in enumerate(TAILS, start=1):
            count = int(keys * fraction)
            if count:
                written += load_topic(ctx.broker.bootstrap, topic, ctx.partitions,
                                      tail_items(keys, count, 0, generation), first_write=written)
            if directory is None:
                continue
            config = {"STREAMCACHE_LOG_URL": url, "STREAMCACHE_SNAPSHOT_URL": directory}
            # The 1 % tail's cold start is a target: the median of the mode's runs (10 %: one run).
            runs[name] = median_run([cold_start_instance(config, keys)
                                     for _ in range(ctx.mode.cold_starts if generation == 1 else 1)])
            runs[name]["tail_records"] = count
            if keys:
                incremental = compact(url, directory)
                compaction["incremental"][name] = {**incremental, "tail_records": count}
                ctx.say(f"scaling: {keys:,} keys, {count:,} changes compacted onto the snapshot in "
                        f"{incremental['wall_s']:.2f} s ({incremental['phases_ms']})")
        if keys <= STREAM_REPLAY_MAX_KEYS:
            runs["stream_replay"] = cold_start_instance({"STREAMCACHE_LOG_URL": url}, keys)
        if directory is not None and keys:  # last: the replay above measures the same records as before
            compaction["delta_vs_full"] = delta_against_full(ctx, topic, url, directory, written, keys)
    finally:
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)
    return runs, compaction


def compact(log_url: str, snapshot_dir: str, **settings_env: str) -> dict:
    """One compaction by the compactor's own app (what its function runs), timed; ``settings_env``:
    more of its settings (``SNAPSHOT_MAX_DELTAS="0"``: a full image)."""
    from streamcache.compactor.app import CompactorApp
    from streamcache.replay.progress import SilentProgress

    settings = Settings.from_env({"STREAMCACHE_LOG_URL": log_url, "STREAMCACHE_SNAPSHOT_URL": snapshot_dir,
                                  "STREAMCACHE_INSTANCE_ID": "bench-compactor",
                                  **{f"STREAMCACHE_{k}": v for k, v in settings_env.items()}})
    app = CompactorApp(settings, progress=lambda _task: SilentProgress())
    try:
        started = time.perf_counter()
        answer = app.handle(b'{"action": "compact"}')
        wall_s = time.perf_counter() - started
    finally:
        app.close()
    if answer.get("status") != 200:
        raise RuntimeError(f"the compaction failed: {answer}")
    folded = answer.get("records_folded", 0)
    return {"outcome": answer.get("outcome"), "records_folded": folded, "entries": answer.get("entries"),
            "snapshot_bytes": answer.get("bytes"), "wall_s": round(wall_s, 3),
            "records_per_s": round(folded / wall_s) if wall_s > 0 and folded else None,
            "fold_records_per_s": answer.get("fold_records_per_s"), "phases_ms": answer.get("phases_ms"),
            "kind": answer.get("snapshot_kind"), "chain_length": answer.get("chain_length")}


#: Changes compacted onto N keys to compare a delta's upload with a full image's (issue 24).
DELTA_CHANGES = 10_000


def delta_against_full(ctx: BenchContext, topic: str, url: str, directory: str, written: int, keys: int) -> dict:
    """:data:`DELTA_CHANGES` overwrites appended, then compacted twice onto the same chain: as the
    deployment does (a delta, by the default chain policy) and as a full image (in a copy of the
    store). Bytes uploaded and time, side by side."""
    count = min(DELTA_CHANGES, keys)
    load_topic(ctx.broker.bootstrap, topic, ctx.partitions, tail_items(keys, count, 0, len(TAILS) + 1),
               first_write=written)
    full_dir = directory.rstrip("/") + "-full"
    shutil.copytree(directory, full_dir)
    try:
        full = compact(url, full_dir, SNAPSHOT_MAX_DELTAS="0")
    finally:
        shutil.rmtree(full_dir, ignore_errors=True)
    delta = compact(url, directory)
    ratio_ = (delta["snapshot_bytes"] or 0) / full["snapshot_bytes"] if full.get("snapshot_bytes") else None
    ctx.say(f"scaling: {count:,} changes onto {keys:,} keys: {delta['kind']} of {delta['snapshot_bytes']:,} bytes in "
            f"{delta['wall_s']:.2f} s, a full image {full['snapshot_bytes']:,} bytes in {full['wall_s']:.2f} s")
    return {"changes": count, "delta": delta, "full": full,
            "upload_vs_full": None if ratio_ is None else round(ratio_, 4)}


def measure_scaling(ctx: BenchContext) -> dict:
    mode = ctx.mode
    began = time.monotonic()
    result: dict = {"value_bytes": VALUE_BYTES, "tails": dict(TAILS), "streamcache": {}, "redis": {},
                    "compaction": {}, "skipped_sizes": {}}
    if not snapshots_available():
        result["snapshot_and_tail"] = "skipped: snapshots (issue 3) are not in this build"
    baseline = run_size(ctx, 0)[0]
    result["streamcache_empty_instance"] = baseline
    redis_baseline = None
    try:
        ctx.require_redis()
        redis_available = True
    except Skipped as exc:
        result["redis"] = {"skipped": str(exc)}
        redis_available = False
    previous: tuple[int, float] | None = None  # (keys, seconds that size took)
    for keys in mode.all_scaling_keys:
        if keys in mode.optional_keys and previous is not None:
            estimate = previous[1] * keys / previous[0] * 1.2
            spent = time.monotonic() - began
            if spent + estimate > mode.scaling_budget_s:
                reason = (f"skipped: {keys:,} keys would take about {estimate:.0f} s, past this mode's budget "
                          f"of {mode.scaling_budget_s:.0f} s ({spent:.0f} s spent)")
                result["skipped_sizes"][str(keys)] = reason
                ctx.say(f"scaling: {reason}")
                continue
        size_started = time.monotonic()
        runs, compaction = run_size(ctx, keys)
        if compaction is not None:
            result["compaction"][str(keys)] = compaction
            ctx.say(f"scaling: {keys:,} keys, compaction folded {compaction['records_folded']:,} records in "
                    f"{compaction['wall_s']:.2f} s")
        for name, run in runs.items():
            # What the instance holds: resident growth over an empty instance, plus any image file
            # it keeps under /tmp (OCI counts /tmp against the function's memory).
            held = run["rss_bytes"] - baseline[name]["rss_bytes"] + run["tmp_image_bytes"]
            run["rss_per_key_bytes"] = round(held / keys, 1)
            # What decides capacity is the peak (OCI stops a function at its memory limit), not the table.
            if run.get("peak_rss_bytes"):
                peak = run["peak_rss_bytes"] - baseline[name]["rss_bytes"] + run["tmp_image_bytes"]
                run["peak_per_key_bytes"] = round(peak / keys, 1)
                run["peak_vs_held"] = round(peak / max(1, held), 2)
                run["keys_in_3gb"] = keys_a_function_holds(3072, baseline[name]["rss_bytes"], peak / keys)
            result["streamcache"].setdefault(name, {})[str(keys)] = run
            ctx.say(f"scaling: {keys:,} keys, {name}: first read after {run['first_read_s']:.2f} s, "
                    f"{run['rss_per_key_bytes']:.0f} B/key resident")
        if redis_available:
            if redis_baseline is None:
                redis_baseline = redis_empty_memory(ctx)
            run = redis_size(ctx, keys, redis_baseline)
            result["redis"][str(keys)] = run
            ctx.say(f"scaling: {keys:,} keys, Redis: first read after {run['first_read_s']:.3f} s from the RDB, "
                    f"{run['used_memory_per_key_bytes']:.0f} B/key")
        previous = (keys, time.monotonic() - size_started)
    ctx.shared["compaction"] = result["compaction"]
    if redis_available:
        result["ratios"] = _ratios(result)
    return result


#: Headroom kept below a function's memory limit when computing how many keys it holds.
HEADROOM = 0.10


def keys_a_function_holds(memory_mb: int, empty_rss_bytes: int, peak_bytes_per_key: float) -> int:
    """Keys whose restore peaks within ``memory_mb`` less :data:`HEADROOM`, over an empty instance."""
    room = memory_mb * 2**20 * (1 - HEADROOM) - empty_rss_bytes
    return max(0, int(room / peak_bytes_per_key)) if peak_bytes_per_key > 0 else 0


def cold_start_instance(config: dict[str, str], keys: int) -> dict:
    """Spawn a fresh instance; time spawn -> socket ready -> first served read."""
    socket_dir = tempfile.mkdtemp(prefix="sc-b", dir="/tmp")  # short: unix socket paths are limited
    instance = None
    try:
        probe = f"/cache/{key_name(max(0, keys - 1))}"
        expected = 200 if keys else 404
        started = time.perf_counter()
        instance = start_instance("cold", socket_dir, config)
        ready = time.perf_counter()
        deadline = ready + FIRST_READ_TIMEOUT_S
        attempts = 0
        while True:  # a request waits for the restore within its budget, then gets 503 restoring
            attempts += 1
            answer = instance.client.http_call("GET", probe, timeout_s=FIRST_READ_TIMEOUT_S)
            if answer.status != 503 or time.perf_counter() > deadline:
                break
            time.sleep(0.01)  # the client's retry pause; bounded by the deadline
        first_read = time.perf_counter()
        if answer.status != expected:
            raise RuntimeError(f"the first read answered {answer.status}, not {expected}: {answer.body[:300]!r}")
        health = _json(instance.client.http_call("GET", "/health").body)
        return {"keys": keys, "records": health.get("records_replayed", health.get("records_applied")),
                "socket_ready_s": round(ready - started, 4), "first_read_s": round(first_read - started, 4),
                "first_read_attempts": attempts, "app_cold_start_ms": health.get("cold_start_ms"),
                "keys_held": health.get("keys"), "snapshot": (health.get("snapshot") or {}).get("name"),
                "rss_bytes": rss_bytes(instance.pid), "peak_rss_bytes": peak_rss_bytes(instance.pid),
                "tmp_image_bytes": tmp_image_bytes(instance.pid)}
    finally:
        if instance is not None:
            instance.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def median_run(runs: list[dict]) -> dict:
    """The run whose first read is the median one, with every run's first read beside it."""
    ordered = sorted(runs, key=lambda run: run["first_read_s"])
    return {**ordered[(len(ordered) - 1) // 2], "first_read_samples_s": [run["first_read_s"] for run in runs]}


def tmp_image_bytes(pid: int) -> int:
    """Bytes of the image files (``streamcache-*.db``, unlinked or not) the process holds open."""
    total = 0
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
                if "streamcache-" in target and ".db" in target:
                    total += os.stat(f"/proc/{pid}/fd/{fd}").st_size
            except OSError:
                continue
    except OSError:
        return 0
    return total


def redis_empty_memory(ctx: BenchContext) -> int:
    with RedisServer(ctx.require_redis()) as server:
        client = server.client()
        try:
            return int(client.info("memory")["used_memory"])
        finally:
            client.close()


def redis_size(ctx: BenchContext, keys: int, empty_used: int) -> dict:
    binary = ctx.require_redis()
    directory = tempfile.mkdtemp(prefix="sc-bench-rdb-")
    try:
        config = {"dbfilename": "dump.rdb"}
        with RedisServer(binary, config, directory) as server:
            client = server.client(timeout_s=120)
            try:
                load_redis(client, dataset(keys))
                memory = client.info("memory")
                saved = time.perf_counter()
                client.save()
                save_s = time.perf_counter() - saved
            finally:
                client.close()
        rdb_bytes = os.path.getsize(os.path.join(directory, "dump.rdb"))
        samples = []
        for _ in range(ctx.mode.cold_starts):  # as many as streamcache's, the median quoted alike
            fresh = RedisServer(binary, config, directory).spawn()
            try:
                samples.append(round(fresh.wait_until_serving(key=key_name(keys - 1), timeout_s=FIRST_READ_TIMEOUT_S), 4))
            finally:
                fresh.stop()
        return {"keys": keys, "first_read_s": sorted(samples)[(len(samples) - 1) // 2], "first_read_samples_s": samples,
                "rdb_bytes": rdb_bytes,
                "save_s": round(save_s, 3), "used_memory": int(memory["used_memory"]),
                "used_memory_rss": int(memory["used_memory_rss"]),
                "used_memory_per_key_bytes": round((int(memory["used_memory"]) - empty_used) / keys, 1)}
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _ratios(result: dict) -> dict:
    out = {}
    for name, sizes in result["streamcache"].items():
        for keys, ours in sizes.items():
            theirs = result["redis"].get(keys)
            if theirs:
                out[f"{name}.{keys}"] = {
                    "cold_start_x": ratio(ours["first_read_s"], theirs["first_read_s"]),
                    "memory_per_key_x": ratio(ours["rss_per_key_bytes"], theirs["used_memory_per_key_bytes"]),
                }
    return out


def _json(body: bytes) -> dict:
    import orjson

    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return {}
