"""Pipelined batches (issue 22): through the local gateway, in one run, 100 PUTs as one batch
(``POST /cache {"operations": [...]}``, its records appended together) against 100 sequential PUTs
and against one PUT: p50/p99 of each and the PUTs per second. The target: the batch within 3x one
PUT, so at least 20x the sequential throughput.

Twice: against the broker on loopback, and through the OCI-like link of the ``oci_like`` section
(the fault proxy adding a 5 ms round trip to every request to the broker), where a write's wait for
the stream weighs as it does on OCI and a batch pays it once.
"""

from __future__ import annotations

import base64
import http.client
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import orjson

from streamcache_local.dev import DevStack

from .common import summarize, timed_loop, value_for
from .context import BenchContext

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
from fault_proxy import start_proxied_broker  # the stand-in front end, as oci_like uses it

BATCH = 100
TARGET_RATIO = 3.0
OCI_ROUND_TRIP_S = 0.005


def measure_batch(ctx: BenchContext) -> dict:
    _, url = ctx.new_topic("batch")
    result: dict = {"loopback": _three_ways(ctx, url, "loopback")}
    if ctx.mode.name == "tiny":  # the smoke test's run: the link adds seconds and checks nothing new
        result["oci_like"] = {"skipped": "not in tiny mode"}
        return result
    broker, proxy = start_proxied_broker()
    proxy.latency_s = OCI_ROUND_TRIP_S / 2
    try:
        topic = f"bench-batch-oci-{uuid.uuid4().hex[:8]}"
        broker.create_topic(topic, ctx.partitions)
        result["oci_like"] = {"round_trip_ms": OCI_ROUND_TRIP_S * 1000,
                              **_three_ways(ctx, broker.log_url(topic), "oci_like")}
    finally:
        proxy.stop()
        broker.stop()
    return result


def _three_ways(ctx: BenchContext, url: str, label: str) -> dict:
    mode = ctx.mode
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
        one_by_one = summarize(timed_loop(sequential, max(1, rounds // 4), mode.path_budget_s, 0, ok=bool))  # long: few, warm already
        conn.close()
    result: dict = {"batch_size": BATCH, "one_put": single, "batch_of_100": batched, "sequential_100": one_by_one}
    if single.get("p50_ms") and batched.get("p50_ms") and one_by_one.get("p50_ms"):
        result["batch_over_one_put_p50"] = round(batched["p50_ms"] / single["p50_ms"], 2)
        result["within_target"] = result["batch_over_one_put_p50"] <= TARGET_RATIO
        result["puts_per_s"] = {"one_put": round(1000 / single["p50_ms"], 1),
                                "batch_of_100": round(BATCH * 1000 / batched["p50_ms"], 1),
                                "sequential_100": round(BATCH * 1000 / one_by_one["p50_ms"], 1)}
        result["batch_over_sequential_throughput"] = round(one_by_one["p50_ms"] / batched["p50_ms"], 1)
    ctx.say(f"batch ({label}): one PUT p50 {single.get('p50_ms')} ms, 100 as a batch {batched.get('p50_ms')} ms, "
            f"100 sequential {one_by_one.get('p50_ms')} ms (batch/one {result.get('batch_over_one_put_p50')})")
    return result


def markdown(section: dict) -> list[str]:
    """The section of ``latest.md``: both links, the three ways side by side."""
    out = ["### Pipelined batches: 100 PUTs as one batch, one by one, and one PUT (through the gateway)", ""]
    if "loopback" not in section:
        return out + [f"Not measured: {section.get('skipped') or section.get('error')}", ""]
    out += ["| link | one PUT p50 / p99 | batch of 100 p50 / p99 | 100 sequential p50 | batch / one PUT | "
            "PUTs/s: batch vs sequential |", "|---|---|---|---|---|---|"]
    for link in ("loopback", "oci_like"):
        row = section.get(link, {})
        if "skipped" in row:
            out.append(f"| {link} | skipped: {row['skipped']} | | | | |")
            continue
        one, many, seq = row.get("one_put", {}), row.get("batch_of_100", {}), row.get("sequential_100", {})
        rates = row.get("puts_per_s", {})
        out.append(f"| {link} | {one.get('p50_ms')} / {one.get('p99_ms')} ms | {many.get('p50_ms')} / "
                   f"{many.get('p99_ms')} ms | {seq.get('p50_ms')} ms | {row.get('batch_over_one_put_p50')}x "
                   f"(target ≤ {TARGET_RATIO:g}x) | {rates.get('batch_of_100')} vs {rates.get('sequential_100')} |")
    return out + [""]
