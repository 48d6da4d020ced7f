"""The OCI-like section (issue 21): the local stack run as OCI runs it, measured beside the plain one.

Each run is a :class:`~streamcache_local.dev.DevStack` with ``N`` instances (1, 4, 16), Fn's
freezer (an idle instance stopped 50 ms after its answer) and the broker behind a proxy that adds a
round trip (5 ms: 2.5 ms each way). Measured per ``N``:

- GET (default consistency) and PUT p50/p99 with ``N`` clients through the gateway;
- read requests per partition per second: the Fetch and ListOffsets requests the proxy saw during
  that load. Until the Kafka front end of issue 21 part 1 lands, the proxy is the tests' fault
  proxy (tests/support/fault_proxy.py), which counts requests, not partitions: with one broker a
  Fetch names every partition being read, so the request rate is the per-partition rate (an upper
  bound when an instance reads only some partitions);
- delivered staleness: one writer PUTs a sequence number every ``WRITE_EVERY_S``, ``N`` readers GET
  it (default reads); a read that returned ``k`` while ``k+1`` was already acknowledged when it was
  sent missed writes, and its staleness is how long ``k+1`` had been acknowledged then; p50/p99
  over all reads (a read that missed nothing counts 0).

And once, with one instance: thaw-to-answer, the first GET after the instance was frozen for
``mode.thaw_after_s`` (60 s in full mode, shorter in the smaller modes).
"""

from __future__ import annotations

import http.client
import sys
import threading
import time
from pathlib import Path

from streamcache_local.dev import DevStack

from .common import Samples, percentile, summarize
from .context import BenchContext

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests" / "support"))
from fault_proxy import FETCH, LIST_OFFSETS, start_proxied_broker  # the stand-in front end (part 1 replaces it)

ROUND_TRIP_S = 0.005
FREEZE_IDLE_S = 0.05
WRITE_EVERY_S = 0.02


def measure_oci_like(ctx: BenchContext) -> dict:
    broker, proxy = start_proxied_broker()
    proxy.latency_s = ROUND_TRIP_S / 2
    try:
        out: dict = {"round_trip_ms": ROUND_TRIP_S * 1000, "freeze_idle_ms": FREEZE_IDLE_S * 1000,
                     "partitions": ctx.partitions, "read_counter": "fault proxy (requests; see bench/README.md)",
                     "instances": {}}
        for count in ctx.mode.oci_instances:
            ctx.say(f"oci_like: {count} instance(s)")
            out["instances"][str(count)] = _one_fleet(ctx, broker, proxy, count)
        ctx.say(f"oci_like: thaw-to-answer after {ctx.mode.thaw_after_s:g} s frozen")
        out["thaw"] = _thaw_to_answer(ctx, broker)
        return out
    finally:
        proxy.stop()
        broker.stop()


def _stack(ctx: BenchContext, broker, count: int, purpose: str) -> DevStack:
    name = f"bench-oci-{purpose}-{count}-{time.monotonic_ns()}"
    broker.create_topic(name, ctx.partitions)
    return DevStack(port=0, instances=count, max_instances=count, partitions=ctx.partitions,
                    log_url=broker.log_url(name), freeze_idle_s=FREEZE_IDLE_S).start()


def _one_fleet(ctx: BenchContext, broker, proxy, count: int) -> dict:
    stack = _stack(ctx, broker, count, "fleet")
    try:
        address = stack.gateway.server_address[:2]
        requests = ctx.mode.oci_requests
        puts = _clients(address, count, requests, lambda c, i: ("PUT", f"/cache/oci/{c}-{i % 50}", b"x" * 100))
        before = dict(proxy.requests)
        started = time.monotonic()
        gets = _clients(address, count, requests, lambda c, i: ("GET", f"/cache/oci/{c}-{i % 50}", None))
        elapsed = time.monotonic() - started
        reads = sum(proxy.requests.get(key, 0) - before.get(key, 0) for key in (FETCH, LIST_OFFSETS))
        staleness = _staleness(address, count, ctx.mode.staleness_s)
        return {"get": summarize(gets), "put": summarize(puts),
                "read_requests_per_partition_per_s": round(reads / elapsed, 1) if elapsed > 0 else None,
                "staleness": staleness, "freezes": stack.pool.freezes, "thaws": stack.pool.thaws}
    finally:
        stack.stop()


def _clients(address, count: int, requests: int, request) -> Samples:
    """``count`` client threads, ``requests`` sequential requests each; every latency, one Samples."""
    samples = Samples()
    lock = threading.Lock()

    def client(number: int) -> None:
        conn = http.client.HTTPConnection(*address, timeout=60)
        mine, errors = [], 0
        for i in range(requests):
            method, path, body = request(number, i)
            t0 = time.perf_counter()
            conn.request(method, path, body=body)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
            errors += response.status >= 300 and not (method == "GET" and response.status == 404)
        conn.close()
        with lock:
            samples.latencies += mine
            samples.errors += errors

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    samples.wall_s = time.perf_counter() - started
    return samples


def _staleness(address, readers: int, duration_s: float) -> dict:
    acked: list[float] = []  # acked[k]: when the write of k was acknowledged (monotonic)
    ages: list[float] = []
    stop = threading.Event()
    lock = threading.Lock()

    def writer() -> None:
        conn = http.client.HTTPConnection(*address, timeout=60)
        k = 0
        while not stop.wait(WRITE_EVERY_S):
            conn.request("PUT", "/cache/oci-staleness", body=str(k).encode())
            response = conn.getresponse()
            response.read()
            if response.status in (200, 201):
                with lock:
                    acked.append(time.monotonic())
                k += 1
        conn.close()

    def reader() -> None:
        conn = http.client.HTTPConnection(*address, timeout=60)
        while not stop.is_set():
            sent = time.monotonic()
            conn.request("GET", "/cache/oci-staleness")
            response = conn.getresponse()
            body = response.read()
            seen = int(body) if response.status == 200 else -1
            with lock:
                missed = seen + 1 < len(acked) and acked[seen + 1] <= sent
                ages.append(sent - acked[seen + 1] if missed else 0.0)
        conn.close()

    threads = [threading.Thread(target=writer, daemon=True)] + [
        threading.Thread(target=reader, daemon=True) for _ in range(readers)]
    for thread in threads:
        thread.start()
    time.sleep(duration_s)  # the measurement's duration, not a synchronisation
    stop.set()
    for thread in threads:
        thread.join(60)
    ages.sort()
    return {"reads": len(ages), "writes": len(acked), "stale_reads": sum(1 for a in ages if a > 0),
            "p50_ms": round(percentile(ages, 50) * 1000, 1) if ages else None,
            "p99_ms": round(percentile(ages, 99) * 1000, 1) if ages else None,
            "max_ms": round(ages[-1] * 1000, 1) if ages else None}


def _thaw_to_answer(ctx: BenchContext, broker) -> dict:
    stack = _stack(ctx, broker, 1, "thaw")
    try:
        conn = http.client.HTTPConnection(*stack.gateway.server_address[:2], timeout=120)
        for i in range(20):  # a few writes, so the catch-up after the thaw has something to read
            conn.request("PUT", f"/cache/thaw/{i}", body=b"v")
            conn.getresponse().read()
        (instance,) = stack.instances
        deadline = time.monotonic() + 10
        while not instance.frozen and time.monotonic() < deadline:
            time.sleep(0.01)  # polling for the freezer, bounded
        frozen_at = time.monotonic()
        time.sleep(ctx.mode.thaw_after_s)  # the instance stays frozen this long: the measured situation
        t0 = time.perf_counter()
        conn.request("GET", "/cache/thaw/0")
        response = conn.getresponse()
        response.read()
        answer_ms = (time.perf_counter() - t0) * 1000
        conn.close()
        return {"frozen_s": round(time.monotonic() - frozen_at, 1), "status": response.status,
                "answer_ms": round(answer_ms, 2), "was_frozen": stack.pool.thaws >= 1}
    finally:
        stack.stop()


def markdown(section: dict) -> list[str]:
    """The OCI-like table for latest.md."""
    out = ["### OCI-like: frozen instances, 5 ms to the broker (issue 21)", ""]
    problem = section.get("skipped") or (f"error: {section['error']}" if "error" in section else None)
    if problem:
        return out + [problem, ""]
    out += [f"Each instance frozen {section['freeze_idle_ms']:g} ms after its answer, {section['round_trip_ms']:g} ms "
            f"added per broker round trip, {section['partitions']} partitions, N clients for N instances. Read requests "
            f"counted by the {section['read_counter']}.", "",
            "| instances | GET p50 | GET p99 | PUT p50 | PUT p99 | read requests / partition / s | staleness p50 | "
            "staleness p99 | stale reads | thaws |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for count, row in section["instances"].items():
        stale = row["staleness"]
        out.append(f"| {count} | {_ms(row['get'].get('p50_ms'))} | {_ms(row['get'].get('p99_ms'))} | "
                   f"{_ms(row['put'].get('p50_ms'))} | {_ms(row['put'].get('p99_ms'))} | "
                   f"{row['read_requests_per_partition_per_s']} | {_ms(stale['p50_ms'])} | {_ms(stale['p99_ms'])} | "
                   f"{stale['stale_reads']} of {stale['reads']} | {row['thaws']} |")
    thaw = section["thaw"]
    out += ["", f"Thaw-to-answer: the first GET after {thaw['frozen_s']:g} s frozen answered {thaw['status']} in "
            f"{_ms(thaw['answer_ms'])}.", ""]
    return out


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
