"""What an acknowledged write costs.

streamcache answers a PUT only after the stream acknowledged the record with acks=all (on OCI
Streaming: replicated before the answer) and the instance applied it. Redis answers a SET from
memory; its durable configurations are the append-only file with ``appendfsync everysec`` (up to a
second of acknowledged writes lost on a crash) and ``appendfsync always`` (an fsync per write, on this
machine's disk). Measured sequentially, one client, 100-byte values.

Note: the local Tansu broker keeps its log in memory, so its acks=all costs a network round trip and
no disk write; the README says so next to the numbers.
"""

from __future__ import annotations

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.cache.app import CacheApp
from streamcache.core import records
from streamcache.core.records import Put
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings

from .common import key_name, ratio, summarize, timed_loop, value_for
from .context import BenchContext, Skipped
from .datasets import CONTENT_TYPE
from .redis_server import RedisServer, wait_for_aof_rewrite

REDIS_VARIANTS = {
    "no_persistence": {"appendonly": "no"},
    "aof_everysec": {"appendonly": "yes", "appendfsync": "everysec"},
    "aof_always": {"appendonly": "yes", "appendfsync": "always"},
}


def measure_durability(ctx: BenchContext) -> dict:
    count, budget = ctx.mode.durable_writes, ctx.mode.path_budget_s
    topic, url = ctx.new_topic("durable")
    ours = {"append_acks_all": _append_only(ctx.broker.bootstrap, topic, count, budget),
            "put_in_handler": _put_in_handler(url, count, budget)}
    ctx.say(f"durability: append acks=all p50 {ours['append_acks_all'].get('p50_ms')} ms, "
            f"PUT in the handler p50 {ours['put_in_handler'].get('p50_ms')} ms")
    result: dict = {"streamcache": ours, "broker_storage": "memory (local Tansu)"}
    try:
        binary = ctx.require_redis()
    except Skipped as exc:
        result["redis"] = {"skipped": str(exc)}
        return result
    theirs = {}
    for name, config in REDIS_VARIANTS.items():
        with RedisServer(binary, config) as server:
            client = server.client()
            try:
                wait_for_aof_rewrite(client)  # the first AOF is written in the background at start
                theirs[name] = summarize(timed_loop(lambda i: client.set(key_name(i % 1000), value_for(i)),
                                                    count, budget, warmup=10, ok=bool))
            finally:
                client.close()
        ctx.say(f"durability: Redis SET {name} p50 {theirs[name].get('p50_ms')} ms")
    result["redis"] = theirs
    put = ours["put_in_handler"]
    result["ratios"] = {name: {"p50_x": ratio(put.get("p50_ms"), theirs[name].get("p50_ms")),
                               "p99_x": ratio(put.get("p99_ms"), theirs[name].get("p99_ms"))}
                        for name in theirs}
    return result


def _append_only(bootstrap: str, topic: str, count: int, budget_s: float) -> dict:
    """The broker's part alone: KafkaLog.append (acks=all), no apply, no HTTP."""
    log = KafkaLog(bootstrap, topic)
    try:
        encoded = [records.encode(Put(key_name(i), value_for(i), CONTENT_TYPE, f"append-{i}", 0)) for i in range(64)]
        return summarize(timed_loop(lambda i: log.append(key_name(i % 64), encoded[i % 64]), count, budget_s,
                                    warmup=5))
    finally:
        log.close()


def _put_in_handler(url: str, count: int, budget_s: float) -> dict:
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": url, "STREAMCACHE_INSTANCE_ID": "bench-durable"}))
    headers = {"content-type": CONTENT_TYPE}
    try:
        app.ensure_started(300)  # the cold start (/health would not wait for it)
        return summarize(timed_loop(
            lambda i: app.handle(HttpRequest("PUT", f"/cache/{key_name(i % 1000)}", headers, value_for(i))).status,
            count, budget_s, warmup=5, ok=lambda status: status in (200, 201)))
    finally:
        app.replica.log.close()
