"""The OCI-like section (issue 21): the local stack run as OCI runs it, measured beside the plain one.

Each run is a :class:`~streamcache_local.dev.DevStack` with ``N`` instances (1, 4, 16), Fn's
freezer (an idle instance stopped 50 ms after its answer) and the broker behind the Kafka front end
as ``streamcache dev --like-oci`` runs it (infra/local/kafka_front.py): a 5 ms round trip, TLS and
SASL, and the read budget ON (5 Fetch/ListOffsets requests per partition per second, the excess
held and answered with ``throttle_time_ms``). Connection recycling is off: it is measured by the
thaw figure and the fleet tests, and here it would only add noise. Measured per ``N``:

- GET (default consistency) and PUT p50/p99 with ``N`` clients through the gateway;
- read requests per partition per second: the Fetch and ListOffsets requests the front end counted
  per partition (its own counters; a Fetch naming 3 partitions counts once for each) during the GET
  load, the busiest second of any partition, and the answers it throttled;
- the stale-answer share: GETs answered ``Streamcache-Stale: true`` (from memory, older than the
  staleness bound, because the instance's log reads were backing off);
- delivered staleness: one writer PUTs a sequence number every ``WRITE_EVERY_S``, ``N`` readers GET
  it (default reads); a read that returned ``k`` while ``k+1`` was already acknowledged when it was
  sent missed writes, and its staleness is how long ``k+1`` had been acknowledged then; p50/p99
  over all reads (a read that missed nothing counts 0).

And once, with one instance: thaw-to-answer, the first GET after the instance was frozen for
``mode.thaw_after_s`` (60 s in full mode, shorter in the smaller modes).
"""

from __future__ import annotations

import http.client
import threading
import time

from streamcache_local.dev import DevStack
from streamcache_local.kafka_front import start_fronted_broker

from .common import Samples, percentile, summarize
from .context import BenchContext

ROUND_TRIP_S = 0.005
FREEZE_IDLE_S = 0.05
WRITE_EVERY_S = 0.02


def measure_oci_like(ctx: BenchContext) -> dict:
    # The read budget, TLS and SASL as --like-oci sets them (OCI's published 5 reads/partition/s);
    # off in tiny mode, a smoke run.
    budget = ctx.mode.oci_read_budget or None
    secure = {} if ctx.mode.oci_secure else {"tls": False, "sasl": None}
    broker, front = start_fronted_broker(latency_s=ROUND_TRIP_S, recycle_s=None, idle_close_s=30,
                                         read_budget=budget, **secure)
    try:
        out: dict = {"round_trip_ms": ROUND_TRIP_S * 1000, "freeze_idle_ms": FREEZE_IDLE_S * 1000,
                     "partitions": ctx.partitions, "read_budget": budget,
                     "read_counter": "the Kafka front end (per partition)", "instances": {}}
        for count in ctx.mode.oci_instances:
            ctx.say(f"oci_like: {count} instance(s)")
            out["instances"][str(count)] = _one_fleet(ctx, broker, front, count)
        ctx.say(f"oci_like: thaw-to-answer after {ctx.mode.thaw_after_s:g} s frozen")
        out["thaw"] = _thaw_to_answer(ctx, broker, front)
        return out
    finally:
        front.stop()
        broker.stop()


def _stack(ctx: BenchContext, broker, front, count: int, purpose: str) -> DevStack:
    name = f"bench-oci-{purpose}-{count}-{time.monotonic_ns()}"
    broker.create_topic(name, ctx.partitions)
    return DevStack(port=0, instances=count, max_instances=count, partitions=ctx.partitions,
                    log_url=broker.log_url(name), freeze_idle_s=FREEZE_IDLE_S,
                    config=front.security_settings()).start()


def _one_fleet(ctx: BenchContext, broker, front, count: int) -> dict:
    stack = _stack(ctx, broker, front, count, "fleet")
    try:
        address = stack.gateway.server_address[:2]
        requests = ctx.mode.oci_requests
        puts = _clients(address, count, requests, lambda c, i: ("PUT", f"/cache/oci/{c}-{i % 50}", b"x" * 100))
        front.reset_stats()
        started = time.monotonic()
        gets = _clients(address, count, requests, lambda c, i: ("GET", f"/cache/oci/{c}-{i % 50}", None))
        elapsed = time.monotonic() - started
        stats = front.stats()
        reads = stats["read_requests"]
        per_partition = sum(reads.values()) / max(1, len(reads)) / elapsed if elapsed > 0 else None
        front.reset_stats()
        staleness = _staleness(address, count, ctx.mode.staleness_s)
        return {"get": summarize(gets), "put": summarize(puts),
                "read_requests_per_partition_per_s": None if per_partition is None else round(per_partition, 1),
                "reads_per_s_peak": max(stats["reads_per_s_peak"].values(), default=0),
                "throttled": stats["throttled"], "throttle_ms_max": stats["throttle_ms_max"],
                "stale_gets": gets.stale, "staleness": staleness, "freezes": stack.pool.freezes,
                "thaws": stack.pool.thaws}
    finally:
        stack.stop()


def _clients(address, count: int, requests: int, request) -> Samples:
    """``count`` client threads, ``requests`` sequential requests each; every latency, one Samples."""
    samples = Samples()
    lock = threading.Lock()

    def client(number: int) -> None:
        conn = http.client.HTTPConnection(*address, timeout=60)
        mine, errors, stale = [], 0, 0
        for i in range(requests):
            method, path, body = request(number, i)
            t0 = time.perf_counter()
            conn.request(method, path, body=body)
            response = conn.getresponse()
            response.read()
            mine.append(time.perf_counter() - t0)
            errors += response.status >= 300 and not (method == "GET" and response.status == 404)
            stale += response.getheader("Streamcache-Stale") == "true"
        conn.close()
        with lock:
            samples.latencies += mine
            samples.errors += errors
            samples.stale += stale

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
    marked: list[bool] = []  # per read: answered Streamcache-Stale
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
                marked.append(response.getheader("Streamcache-Stale") == "true")
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
            "marked_stale": sum(marked),
            "p50_ms": round(percentile(ages, 50) * 1000, 1) if ages else None,
            "p99_ms": round(percentile(ages, 99) * 1000, 1) if ages else None,
            "max_ms": round(ages[-1] * 1000, 1) if ages else None}


def _thaw_to_answer(ctx: BenchContext, broker, front) -> dict:
    stack = _stack(ctx, broker, front, 1, "thaw")
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
    out = ["### OCI-like: frozen instances, 5 ms to the broker, a read budget (issue 21)", ""]
    problem = section.get("skipped") or (f"error: {section['error']}" if "error" in section else None)
    if problem:
        return out + [problem, ""]
    out += [f"Each instance frozen {section['freeze_idle_ms']:g} ms after its answer, {section['round_trip_ms']:g} ms "
            f"added per broker round trip, {section['partitions']} partitions, N clients for N instances, "
            f"{_budget(section.get('read_budget'))}. Read requests counted by "
            f"{section['read_counter']} during the GETs; stale answers: GETs marked Streamcache-Stale.", "",
            "| instances | GET p50 | GET p99 | PUT p50 | PUT p99 | reads / partition / s (peak) | throttled | "
            "stale answers | staleness p50 | staleness p99 | reads that missed a write | thaws |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for count, row in section["instances"].items():
        stale = row["staleness"]
        gets = row["get"].get("n") or 0
        out.append(f"| {count} | {_ms(row['get'].get('p50_ms'))} | {_ms(row['get'].get('p99_ms'))} | "
                   f"{_ms(row['put'].get('p50_ms'))} | {_ms(row['put'].get('p99_ms'))} | "
                   f"{row['read_requests_per_partition_per_s']} ({row.get('reads_per_s_peak', '-')}) | "
                   f"{row.get('throttled', '-')} | {row.get('stale_gets', '-')} of {gets} | "
                   f"{_ms(stale['p50_ms'])} | {_ms(stale['p99_ms'])} | "
                   f"{stale['stale_reads']} of {stale['reads']} | {row['thaws']} |")
    thaw = section["thaw"]
    out += ["", f"Thaw-to-answer: the first GET after {thaw['frozen_s']:g} s frozen answered {thaw['status']} in "
            f"{_ms(thaw['answer_ms'])}.", ""]
    return out


def _budget(budget: int | None) -> str:
    return f"a read budget of {budget} per partition per second" if budget else "no read budget"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"
