"""streamcache against Redis on this machine, in one command and bounded time.

    make bench                      # full mode: the numbers the README quotes (a few minutes)
    make bench ARGS=--quick         # a smoke run, well under a minute
    .venv/bin/python bench/run.py --mode tiny --out /tmp/r   # the smallest run (the smoke test's)

It starts what it needs: a local Tansu broker (the OCI Stream), function instances on the real FDK
through Fn's protocol with the local gateway in front, and redis-server on loopback (installed by
``bench/setup_redis.sh`` when missing; without it the Redis half is skipped and says why). Everything
it starts is stopped before it exits. Results: ``<out>/latest.json``, ``latest.md`` and the charts
``latency.png`` and ``scaling.png`` (``<out>`` is ``bench/results`` by default).

Each measurement is one function in :data:`MEASUREMENTS`; one that cannot run here reports why
(``{"skipped": ...}``) and one that fails reports its error, without stopping the others. The exit
status is 1 when any measurement failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # harness/ and bench_snapshot.py

from harness import batch, big_values, charts, durability, latency, metrics_cost, oci_like, report, scaling, snapshots
from harness.common import MODES, machine_info
from harness.context import BenchContext, Skipped
from harness.redis_server import RedisAvailability, find_redis

RESULTS = Path(__file__).resolve().parent / "results"


class Measurement(NamedTuple):
    name: str
    what: str
    run: Callable[[BenchContext], dict]


MEASUREMENTS = [
    Measurement("warm", "warm GET and PUT: in the handler, FDK socket, gateway; Redis", latency.measure_warm),
    Measurement("metrics", "cost of metrics on the request path: GET and PUT p50 with metrics on and off (issue 23)",
                metrics_cost.measure_metrics_cost),
    Measurement("durability", "acknowledged writes: acks=all against Redis AOF everysec/always",
                durability.measure_durability),
    Measurement("scaling", "cold start and memory against key count; Redis from an RDB", scaling.measure_scaling),
    Measurement("snapshot", "snapshot size, write and load throughput", snapshots.measure_snapshot),
    Measurement("compaction", "compaction throughput (issue 3)", snapshots.measure_compaction),
    Measurement("batch", "100 PUTs as one pipelined batch against 100 sequential PUTs and one PUT (issue 22)",
                batch.measure_batch),
    Measurement("oci_like", "OCI-like: 1/4/16 instances frozen when idle, 5 ms to the broker (issue 21)",
                oci_like.measure_oci_like),
    Measurement("big_values", "big values by reference: 5 MiB PUT/GET against 100 B; memory of 1,000 held (issue 22)",
                big_values.measure_big_values),
]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=sorted(MODES), default="full")
    parser.add_argument("--quick", dest="mode", action="store_const", const="quick", help="same as --mode quick")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results folder (default bench/results)")
    parser.add_argument("--only", action="append", choices=[m.name for m in MEASUREMENTS],
                        help="run only these measurements (repeatable)")
    parser.add_argument("--no-redis", action="store_true", help="skip the Redis half")
    parser.add_argument("--no-redis-setup", action="store_true",
                        help="do not install redis-server when it is missing (skip the Redis half instead)")
    parser.add_argument("--no-charts", action="store_true")
    return parser.parse_args(argv)


def _stop_on_sigterm(*_) -> None:
    raise KeyboardInterrupt  # unwinds through every finally: everything started is stopped


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    mode = MODES[args.mode]
    args.out.mkdir(parents=True, exist_ok=True)

    from streamcache import logs
    from streamcache_local.broker import start_broker

    # The in-process handler logs one JSON line per request, as in a function; formatted, then dropped.
    devnull = open(os.devnull, "w")
    logs.configure(devnull)

    started = time.monotonic()
    started_at = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    if args.no_redis:
        redis = RedisAvailability(None, None, "--no-redis was given")
    else:
        redis = find_redis(install=not args.no_redis_setup)
    if not redis.available:
        print(f"bench: the Redis half is skipped: {redis.reason}", file=sys.stderr)
    results: dict = {"schema": 1, "mode": mode.name, "started_at": started_at, "machine": machine_info(),
                     "redis": {"available": redis.available, "version": redis.version, "reason": redis.reason},
                     "measurements": {}, "seconds": {}}
    failed = []
    broker = start_broker()
    try:
        ctx = BenchContext(mode, broker, redis)
        ctx.say(f"bench: {mode.name} mode; broker {broker.bootstrap}; "
                f"Redis {redis.version if redis.available else 'skipped'}")
        for measurement in MEASUREMENTS:
            if args.only and measurement.name not in args.only:
                continue
            ctx.say(f"{measurement.name}: {measurement.what}")
            began = time.monotonic()
            try:
                outcome = measurement.run(ctx)
            except Skipped as exc:
                outcome = {"skipped": str(exc)}
                ctx.say(f"{measurement.name}: skipped: {exc}")
            except Exception as exc:
                traceback.print_exc()
                outcome = {"error": f"{type(exc).__name__}: {exc}"}
                failed.append(measurement.name)
            results["measurements"][measurement.name] = outcome
            results["seconds"][measurement.name] = round(time.monotonic() - began, 1)
    finally:
        broker.stop()
        devnull.close()
    results["duration_s"] = round(time.monotonic() - started, 1)
    if not args.no_charts:
        try:
            results["charts"] = charts.write_charts(results, args.out)
        except ImportError as exc:
            print(f"bench: no charts: {exc} (pip install -e '.[dev]')", file=sys.stderr)
            results["charts"] = []
    report.write_json(results, args.out)
    md = report.write_markdown(results, args.out)
    print(md.read_text())
    print(f"bench: results in {args.out} ({results['duration_s']:.0f} s)", file=sys.stderr)
    if failed:
        print(f"bench: failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # Ctrl-C or SIGTERM: the finally blocks have stopped everything
        print("bench: interrupted; no results written", file=sys.stderr)
        sys.exit(130)
