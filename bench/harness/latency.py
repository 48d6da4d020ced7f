"""Warm GET and PUT, sequential (one client, as the Fn contract sends one request at a time to a
container) on every path a request can take, and a short concurrent run through the gateway:

- ``handler``: :meth:`CacheApp.handle` called in this process, over a ``kafka://`` log on Tansu
  (the issue's aim: a warm GET under 0.1 ms here). Logging is on, to /dev/null, as JSON lines,
  with the functions' default ``STREAMCACHE_ACCESS_LOG=problems``: the answers measured here get
  no line (errors and slow answers would).
- ``fdk_socket``: Fn's protocol on one instance's unix socket (:class:`FnClient`, keep-alive).
- ``gateway``: plain HTTP with keep-alive to the local API Gateway stand-in, 2 instances behind it
  (an idle instance is picked as Fn's agent picks one: the one released last).
- Redis: GET/SET through redis-py on loopback, persistence off (the cache-only configuration).

A PUT is acknowledged by the broker with acks=all and applied by the instance before it answers.
"""

from __future__ import annotations

import http.client
import json
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from streamcache.cache.app import SWITCH_INTERVAL_S, CacheApp
from streamcache.cache.http_api import HttpRequest
from streamcache.settings import Settings
from streamcache_local.dev import DevStack
from streamcache_local.fn_runner import start_instance
from streamcache_local.gateway import GatewayServer, Pool
from streamcache_local.pool import Dispatch

from .common import Samples, interleaved, key_name, ratio, summarize, timed_loop, value_for
from .context import BenchContext, Skipped
from .datasets import CONTENT_TYPE, load_redis, load_topic
from .redis_server import RedisServer
from .write_floor import AppendAlone, targets

WORKER = Path(__file__).resolve().parent / "load_worker.py"
APPEND_FUNCTION = Path(__file__).resolve().parent / "append_function" / "func.py"
HANDLER_GET_FACTOR = 10  # the in-handler GET is ~100x cheaper than a round trip: more samples, same time
WARMUP = 20
REDIS_FACTOR = 5
READY_TIMEOUT_S = 30.0


def measure_warm(ctx: BenchContext) -> dict:
    mode = ctx.mode
    topic, url = ctx.new_topic("warm")
    load_topic(ctx.broker.bootstrap, topic, ctx.partitions, ((key_name(i), value_for(i)) for i in range(mode.warm_keys)))
    floor_topic, _ = ctx.new_topic("floor")
    floor = {}  # the append alone, in turns with each path's PUTs (issue 13's targets)

    def beside() -> AppendAlone:
        return AppendAlone(ctx.broker.bootstrap, floor_topic)

    with beside() as appends:
        ours = {"handler": in_handler(ctx, url, appends), "append_alone": floor}
        floor["handler"] = appends.summary()
    ctx.say(f"warm: in the handler GET p50 {ours['handler']['get'].get('p50_ms')} ms, PUT p50 "
            f"{ours['handler']['put'].get('p50_ms')} ms, append alone {floor['handler'].get('p50_ms')} ms, list of "
            f"{ours['handler']['list']['keys_per_page']} keys p50 {ours['handler']['list'].get('p50_ms')} ms")
    stack = DevStack(port=0, instances=2, log_url=url)
    try:
        stack.start()
        with beside() as appends:
            ours["fdk_socket"] = through_socket(ctx, stack.instances[0].client, appends)
            floor["fdk_socket"] = appends.summary()
        with beside() as socket_appends, beside() as gateway_appends:
            ours["fdk_append_function"], ours["gateway_append_function"] = append_function(
                ctx, floor_topic, socket_appends, gateway_appends)
            floor["fdk_append_function"] = socket_appends.summary()
            floor["gateway_append_function"] = gateway_appends.summary()
        ctx.say(f"warm: FDK socket GET p50 {ours['fdk_socket']['get'].get('p50_ms')} ms, PUT p50 "
                f"{ours['fdk_socket']['put'].get('p50_ms')} ms, append alone {floor['fdk_socket'].get('p50_ms')} ms")
        with beside() as appends:
            ours["gateway"] = through_gateway(ctx, stack.url, appends)
            floor["gateway"] = appends.summary()
        ctx.say(f"warm: gateway GET p50 {ours['gateway']['get'].get('p50_ms')} ms, PUT p50 "
                f"{ours['gateway']['put'].get('p50_ms')} ms, append alone {floor['gateway'].get('p50_ms')} ms")
        ours["gateway_concurrent"] = concurrent(ctx, stack.url)
        ctx.say(f"warm: gateway, {mode.concurrent_clients} clients, GET "
                f"{ours['gateway_concurrent']['get'].get('rps')} req/s")
        ours["cold_start_ms_of_dev_instances"] = {name: round(ms, 1) for name, ms in stack.cold_starts_ms.items()}
    finally:
        stack.stop()
    # The worst case for writes: sequential requests sent to two instances in turn, so that nearly every
    # write finds the other's record before its own and reads it back (the pool above, like Fn's
    # agent, keeps a sequential client on the instance released last).
    with DevStack(port=0, instances=2, log_url=url, dispatch=Dispatch.ROUND_ROBIN) as turns:
        with beside() as appends:
            ours["gateway_taking_turns"] = through_gateway(ctx, turns.url, appends)
            floor["gateway_taking_turns"] = appends.summary()
    ours["targets"] = targets(ours)
    result = {"streamcache": ours, "settings": {"instances": 2, "partitions": ctx.partitions, "value_bytes": 100,
                                                "keys": mode.warm_keys, "staleness_ms": Settings.staleness_ms}}
    try:
        redis_result = redis_warm(ctx)
    except Skipped as exc:
        result["redis"] = {"skipped": str(exc)}
        return result
    result["redis"] = redis_result
    ctx.say(f"warm: Redis GET p50 {redis_result['get'].get('p50_ms')} ms")
    result["ratios"] = ratios(ours, redis_result)
    return result


def in_handler(ctx: BenchContext, url: str, floor: AppendAlone | None = None) -> dict:
    mode = ctx.mode
    app = CacheApp(Settings.from_env({"STREAMCACHE_LOG_URL": url, "STREAMCACHE_INSTANCE_ID": "bench-handler"}))
    # The interpreter as a cache instance runs it (func.py sets this at import); the append alone
    # beside the PUTs runs under the same setting.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        app.ensure_started(300)  # the cold start: replay the topic (/health would not wait for it)
        get = _loop_get(lambda path: app.handle(HttpRequest("GET", path, {}, b"")).status, mode.warm_keys,
                        mode.get_requests * HANDLER_GET_FACTOR, mode.path_budget_s)
        # A page of up to 100 keys by prefix (user:0000000 matches user:000000000 .. user:000000099).
        listing = summarize(timed_loop(
            lambda _: app.handle(HttpRequest("GET", "/cache?prefix=user:0000000&limit=100", {}, b"")).status,
            mode.get_requests, mode.path_budget_s, WARMUP, ok=lambda s: s == 200))
        listing["keys_per_page"] = min(100, mode.warm_keys)
        headers = {"content-type": CONTENT_TYPE}
        put = _loop_put(lambda path, body: app.handle(HttpRequest("PUT", path, headers, body)).status,
                        mode.warm_keys, mode.put_requests, mode.path_budget_s, floor)
    finally:
        sys.setswitchinterval(switch_interval)
        app.replica.log.close()
    return {"get": get, "put": put, "list": listing}


def through_socket(ctx: BenchContext, client, floor: AppendAlone | None = None, get: bool = True) -> dict:
    """Through one instance's FDK socket (``client``: its :class:`FnClient`)."""
    mode = ctx.mode
    out = {"get": _loop_get(lambda path: client.http_call("GET", path).status, mode.warm_keys, mode.get_requests,
                            mode.path_budget_s)} if get else {}
    headers = {"Content-Type": CONTENT_TYPE}
    out["put"] = _loop_put(lambda path, body: client.http_call("PUT", path, body, headers).status, mode.warm_keys,
                           mode.put_requests, mode.path_budget_s, floor)
    return out


def append_function(ctx: BenchContext, topic: str, socket_floor: AppendAlone,
                    gateway_floor: AppendAlone) -> tuple[dict, dict]:
    """The control: PUTs to a function that only appends (append_function/), through its FDK socket
    and through the local gateway (one instance behind it)."""
    socket_dir = tempfile.mkdtemp(prefix="sc-bench-", dir="/tmp")  # unix socket paths are short
    config = {"BENCH_BOOTSTRAP": ctx.broker.bootstrap, "BENCH_TOPIC": topic}
    instance = start_instance("append", socket_dir, config, function_path=APPEND_FUNCTION)
    gateway = GatewayServer(Pool([instance]), port=0).start()
    try:
        return (through_socket(ctx, instance.client, socket_floor, get=False),
                through_gateway(ctx, gateway.url, gateway_floor, get=False))
    finally:
        gateway.stop()
        instance.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)


def through_gateway(ctx: BenchContext, base_url: str, floor: AppendAlone | None = None, get: bool = True) -> dict:
    mode = ctx.mode
    host, port = base_url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=30)

    def call(method: str, path: str, body: bytes = b"", headers: dict | None = None) -> int:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status

    try:
        out = {"get": _loop_get(lambda path: call("GET", path), mode.warm_keys, mode.get_requests,
                                mode.path_budget_s)} if get else {}
        headers = {"Content-Type": CONTENT_TYPE}
        out["put"] = _loop_put(lambda path, body: call("PUT", path, body, headers), mode.warm_keys,
                               mode.put_requests, mode.path_budget_s, floor)
    finally:
        conn.close()
    return out


def redis_warm(ctx: BenchContext) -> dict:
    binary = ctx.require_redis()
    mode = ctx.mode
    with RedisServer(binary) as server:
        client = server.client()
        try:
            load_redis(client, ((key_name(i), value_for(i)) for i in range(mode.warm_keys)))
            # More samples than a round trip of ours: a Redis request is ~10x cheaper, so this costs
            # about the same time and steadies the percentiles.
            get = summarize(timed_loop(lambda i: client.get(key_name(i % mode.warm_keys)),
                                       mode.get_requests * REDIS_FACTOR, mode.path_budget_s, WARMUP,
                                       ok=lambda v: v is not None))
            put = summarize(timed_loop(lambda i: client.set(f"put:{i % mode.warm_keys}", value_for(i, 2)),
                                       mode.put_requests * REDIS_FACTOR, mode.path_budget_s, WARMUP, ok=bool))
            both = concurrent(ctx, f"redis://127.0.0.1:{server.port}")
        finally:
            client.close()
    return {"get": get, "set": put, "concurrent": both}


def concurrent(ctx: BenchContext, target: str) -> dict:
    """``concurrent_clients`` client processes, each sequential on its own connection."""
    mode = ctx.mode
    out = {"clients": mode.concurrent_clients}
    for op in ("get", "put"):
        requests = mode.concurrent_requests if op == "get" else max(1, mode.concurrent_requests // 2)
        out[op] = _run_workers(target, op, mode.warm_keys, requests, mode.path_budget_s, mode.concurrent_clients)
    return out


def _run_workers(target: str, op: str, keys: int, count: int, budget_s: float, clients: int) -> dict:
    processes = []
    try:
        for c in range(clients):
            processes.append(subprocess.Popen(
                [sys.executable, str(WORKER), "--target", target, "--op", op, "--keys", str(keys), "--count",
                 str(count), "--budget", str(budget_s), "--client", str(c)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE))
        deadline = time.monotonic() + READY_TIMEOUT_S
        for process in processes:  # each prints "ready" once connected (an empty line: it died)
            ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
            if not ready or process.stdout.readline().strip() != b"ready":
                raise RuntimeError(f"a load client failed to start: {process.stderr.read().decode(errors='replace')[-800:]}")
        for process in processes:
            process.stdin.write(b"go\n")
            process.stdin.close()
            process.stdin = None  # communicate() below must not touch it again
        reports = []
        for process in processes:
            stdout, stderr = process.communicate(timeout=budget_s + 60)
            if process.returncode != 0:
                raise RuntimeError(f"a load client failed: {stderr.decode(errors='replace')[-800:]}")
            reports.append(json.loads(stdout))
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()
    samples = Samples([lat for r in reports for lat in r["latencies"]], errors=sum(r["errors"] for r in reports))
    wall = max(r["ended"] for r in reports) - min(r["started"] for r in reports)
    return summarize(samples, wall_s=wall)


def _loop_get(call, keys: int, count: int, budget_s: float) -> dict:
    paths = [f"/cache/{key_name(i)}" for i in range(keys)]
    return summarize(timed_loop(lambda i: call(paths[i % keys]), count, budget_s, WARMUP, ok=lambda s: s == 200))


def _loop_put(call, keys: int, count: int, budget_s: float, floor: AppendAlone | None = None) -> dict:
    """Sequential PUTs; with ``floor``, in turns with the append alone (its samples go to ``floor``)."""
    paths = [f"/cache/put:{i}" for i in range(keys)]
    values = [value_for(i, 3) for i in range(64)]

    def put(i: int) -> object:
        return call(paths[i % keys], values[i % 64])

    def ok(status: object) -> bool:
        return status in (200, 201)

    if floor is None:
        return summarize(timed_loop(put, count, budget_s, WARMUP // 4, ok=ok))
    ours, floor.samples = interleaved(put, floor, count, budget_s, WARMUP // 4, ok=ok)
    return summarize(ours)


def ratios(ours: dict, redis_result: dict) -> dict:
    """For each path and operation: how many times Redis's p50, p99 and time per request ours are."""
    out = {}
    pairs = [(path, op, "get" if op == "get" else "set") for path in ("handler", "fdk_socket", "gateway")
             for op in ("get", "put")]
    for path, op, peer_op in pairs:
        a, b = ours[path][op], redis_result[peer_op]
        out[f"{path}.{op}"] = _ratio_set(a, b)
    for op, peer_op in (("get", "get"), ("put", "put")):
        out[f"gateway_concurrent.{op}"] = _ratio_set(ours["gateway_concurrent"][op], redis_result["concurrent"][peer_op])
    return out


def _ratio_set(a: dict, b: dict) -> dict:
    return {"p50_x": ratio(a.get("p50_ms"), b.get("p50_ms")), "p99_x": ratio(a.get("p99_ms"), b.get("p99_ms")),
            "rps_x": ratio(b.get("rps"), a.get("rps"))}
