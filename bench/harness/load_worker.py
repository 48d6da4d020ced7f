"""One client of the concurrent runs, in its own process (so the clients do not share the GIL with
the gateway, which runs inside the bench process as it runs inside ``streamcache dev``).

    python bench/harness/load_worker.py --target http://127.0.0.1:PORT|redis://127.0.0.1:PORT
        --op get|put --keys K --count N --budget S --client C

Connects, prints ``ready`` and waits for a line on stdin (so all clients begin together), then sends at most ``--count`` requests
one after the other on one keep-alive connection, for at most ``--budget`` seconds, and prints one
JSON line: latencies (seconds), wall-clock start and end, errors.
"""

from __future__ import annotations

import argparse
import http.client
import json
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from harness.common import key_name, value_for

CONTENT_TYPE = "application/octet-stream"


def http_action(target: str, op: str, keys: int, client: int):
    parts = urlsplit(target)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)

    def get(i: int) -> bool:
        conn.request("GET", f"/cache/{key_name(i % keys)}")
        response = conn.getresponse()
        response.read()
        return response.status == 200

    def put(i: int) -> bool:
        conn.request("PUT", f"/cache/put:{client}:{i % keys}", body=value_for(i, client),
                     headers={"Content-Type": CONTENT_TYPE})
        response = conn.getresponse()
        response.read()
        return response.status in (200, 201)

    return (get if op == "get" else put), conn.close


def redis_action(target: str, op: str, keys: int, client: int):
    import redis

    parts = urlsplit(target)
    conn = redis.Redis(host=parts.hostname, port=parts.port, socket_timeout=30)

    def get(i: int) -> bool:
        return conn.get(key_name(i % keys)) is not None

    def put(i: int) -> bool:
        return bool(conn.set(f"put:{client}:{i % keys}", value_for(i, client)))

    return (get if op == "get" else put), conn.close


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", required=True)
    parser.add_argument("--op", choices=["get", "put"], required=True)
    parser.add_argument("--keys", type=int, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--budget", type=float, required=True)
    parser.add_argument("--client", type=int, default=0)
    args = parser.parse_args(argv)
    make = redis_action if args.target.startswith("redis:") else http_action
    action, close = make(args.target, args.op, args.keys, args.client)
    action(args.client)  # connect before the start: the run measures requests, not connects
    print("ready", flush=True)
    sys.stdin.readline()  # the parent says "go" to all clients at once (or closes stdin)
    latencies, errors = [], 0
    started = time.time()
    deadline = time.perf_counter() + args.budget
    try:
        for i in range(args.count):
            t0 = time.perf_counter()
            ok = action(i)
            t1 = time.perf_counter()
            latencies.append(t1 - t0)
            errors += not ok
            if t1 > deadline:
                break
    finally:
        ended = time.time()
        close()
    print(json.dumps({"latencies": latencies, "started": started, "ended": ended, "errors": errors}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
