"""Pipelined batches (issue 22): through the local gateway, in one run, 100 PUTs as one batch
(``POST /cache {"operations": [...]}``, its records appended together) against 100 sequential PUTs
and against one PUT: p50/p99 of each and the PUTs per second. The target: the batch within 3x one
PUT, so at least 20x the sequential throughput.
"""

from __future__ import annotations

import base64
import http.client
from urllib.parse import urlsplit

import orjson

from streamcache_local.dev import DevStack

from .common import summarize, timed_loop, value_for
from .context import BenchContext

BATCH = 100
TARGET_RATIO = 3.0


def measure_batch(ctx: BenchContext) -> dict:
    mode = ctx.mode
    _, url = ctx.new_topic("batch")
    with DevStack(port=0, instances=2, log_url=url) as stack:
        parts = urlsplit(stack.url)
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=60)

        def call(method: str, path: str, body: bytes, headers: dict) -> int:
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            response.read()
            return response.status

        values = [value_for(i, 7) for i in range(BATCH)]
        octets = {"content-type": "application/octet-stream"}

        def one(i: int) -> int:
            return call("PUT", f"/cache/b1:{i % 1000}", values[i % BATCH], octets)

        def sequential(i: int) -> bool:
            return all(call("PUT", f"/cache/bs:{n}", values[n], octets) in (200, 201) for n in range(BATCH))

        bodies = [orjson.dumps({"operations": [
            {"operation": "put", "key": f"bb:{n}", "value_base64": base64.b64encode(values[n]).decode(),
             "content_type": "application/octet-stream"} for n in range(BATCH)]})]

        def batch(i: int) -> int:
            return call("POST", "/cache", bodies[0], {"content-type": "application/json"})

        rounds = max(3, mode.put_requests // 10)
        single = summarize(timed_loop(one, mode.put_requests, mode.path_budget_s, 10, ok=lambda s: s in (200, 201)))
        batched = summarize(timed_loop(batch, rounds, mode.path_budget_s, 2, ok=lambda s: s == 200))
        one_by_one = summarize(timed_loop(sequential, max(3, rounds // 4), mode.path_budget_s, 1, ok=bool))
        conn.close()
    result: dict = {"batch_size": BATCH, "one_put": single, "batch_of_100": batched, "sequential_100": one_by_one}
    if single.get("p50_ms") and batched.get("p50_ms") and one_by_one.get("p50_ms"):
        result["batch_over_one_put_p50"] = round(batched["p50_ms"] / single["p50_ms"], 2)
        result["within_target"] = result["batch_over_one_put_p50"] <= TARGET_RATIO
        result["puts_per_s"] = {"one_put": round(1000 / single["p50_ms"], 1),
                                "batch_of_100": round(BATCH * 1000 / batched["p50_ms"], 1),
                                "sequential_100": round(BATCH * 1000 / one_by_one["p50_ms"], 1)}
        result["batch_over_sequential_throughput"] = round(one_by_one["p50_ms"] / batched["p50_ms"], 1)
    ctx.say(f"batch: one PUT p50 {single.get('p50_ms')} ms, 100 as a batch {batched.get('p50_ms')} ms, "
            f"100 sequential {one_by_one.get('p50_ms')} ms (batch/one {result.get('batch_over_one_put_p50')})")
    return result
