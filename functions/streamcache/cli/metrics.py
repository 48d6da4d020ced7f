"""``streamcache metrics``: the last hour of the functions' metrics and the alarms, from ``streamcache dev``.

    streamcache metrics [--url URL] [--minutes N] [--json]

The local stack serves OCI Monitoring's ingestion API; the functions post to it exactly as they post
to OCI (``STREAMCACHE_METRICS_*``). This command asks the gateway at ``--url`` (default
``$STREAMCACHE_URL`` or http://127.0.0.1:8080) where that server is (``GET /_local/stack``), reads what
it kept and prints one row per metric stream: the metric, its dimensions (``deployment`` left out),
the hour's figure (a count's total; an observation's mean and largest; a level's last value) and a
chart, one character a minute (``·`` no data). Then each alarm of ``infra/terraform/alarms.json.tftpl``
with its state as the local server evaluates it. On OCI, the Console's Metrics Explorer and Alarms
pages show the same (docs/metrics.md).

Exit status: 0 printed; 2 the stack cannot be found or serves no metrics (``--no-metrics``).
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from urllib.error import URLError
from urllib.request import ProxyHandler, build_opener

import orjson

from streamcache.cli.watch import DEFAULT_URL, WatchError, fetch_stack

BARS = "▁▂▃▄▅▆▇█"
#: Metrics whose value is a level (the last one counts), not a number of events.
LEVELS = frozenset({"SnapshotAgeSeconds", "DegradedInstances", "QuotaUsedPercent", "SnapshotBytes", "TailRecordsAtStart"})
EXIT_OK, EXIT_USAGE = 0, 2


def register(subparsers, url_parent: argparse.ArgumentParser) -> None:
    metrics = subparsers.add_parser("metrics", parents=[url_parent], help="the last hour of metrics and the alarms "
                                    "(streamcache dev)")
    metrics.add_argument("--minutes", type=int, default=60, help="how far back (default 60)")
    metrics.add_argument("--json", action="store_true", help="what the local server keeps, as JSON")
    metrics.set_defaults(run=lambda client, args: cmd_metrics(args), needs_url=False)


def cmd_metrics(args, out=None, err=None) -> int:
    import os

    out, err = out or sys.stdout, err or sys.stderr
    url = getattr(args, "url", None) or os.environ.get("STREAMCACHE_URL") or DEFAULT_URL
    try:
        stack = fetch_stack(url)
        where = stack.get("metrics")
        if not where:
            raise WatchError(f"the streamcache dev at {url} serves no metrics (started with --no-metrics)")
        try:
            with build_opener(ProxyHandler({})).open(f"{where}?minutes={int(args.minutes)}", timeout=5) as answer:
                doc = orjson.loads(answer.read())
        except (URLError, OSError) as exc:
            raise WatchError(f"the local metrics at {where} cannot be read: {exc}") from None
    except WatchError as exc:
        print(f"streamcache metrics: {exc}", file=err)
        return EXIT_USAGE
    if args.json:
        out.write(orjson.dumps(doc).decode() + "\n")
    else:
        out.write(render(doc, int(args.minutes)) + "\n")
    return EXIT_OK


def render(doc: dict, minutes: int) -> str:
    """The table with its charts, then the alarms."""
    now = float(doc["now"])
    first_minute = int(now // 60) - minutes + 1
    streams: dict[tuple, dict[int, list]] = defaultdict(lambda: defaultdict(list))
    for p in doc["datapoints"]:
        dims = tuple(sorted((k, v) for k, v in p["dimensions"].items() if k != "deployment"))
        streams[(p["name"], dims)][int(p["timestamp_s"] // 60)].append((p["value"], p["count"]))
    rows = []
    for (name, dims), by_minute in sorted(streams.items()):
        if name.endswith("Max") and (name[:-3], dims) in streams:
            continue  # shown with its observation
        per_minute = {m: _minute_value(name, pts) for m, pts in by_minute.items()}
        rows.append((name, ",".join(f"{k}={v}" for k, v in dims), _figure(name, dims, by_minute, streams),
                     _chart(per_minute, first_minute, minutes)))
    if not rows:
        table = f"no metrics in the last {minutes} minutes (they are posted once a minute per instance)"
    else:
        width = [max(len(r[i]) for r in rows) for i in range(3)]
        header = ("metric".ljust(width[0]), "dimensions".ljust(width[1]), "last hour".ljust(width[2]),
                  f"per minute, oldest first ({minutes} min)")
        table = "\n".join("  ".join(cols) for cols in [header] + [
            (r[0].ljust(width[0]), r[1].ljust(width[1]), r[2].ljust(width[2]), r[3]) for r in rows])
    alarms = ["", "alarms:"] + [f"  {a['state']:<8} {a['name']:<14} {a['severity']:<8} {a['summary']}"
                                for a in doc.get("alarms", [])]
    return table + "\n".join(alarms)


def _minute_value(name: str, points: list) -> float:
    if name in LEVELS or name.endswith("Max"):
        return max(v for v, _ in points)
    return sum(v * c for v, c in points)


def _figure(name: str, dims: tuple, by_minute: dict, streams: dict) -> str:
    points = [pt for m in sorted(by_minute) for pt in by_minute[m]]
    if name in LEVELS:
        return f"last {points[-1][0]:g}"
    largest = streams.get((name + "Max", dims))
    if largest is not None:
        n = sum(c for _, c in points)
        mean = sum(v * c for v, c in points) / n if n else 0.0
        top = max(v for pts in largest.values() for v, _ in pts)
        return f"n {n}, mean {mean:.3g}, max {top:.3g}"
    return f"total {sum(v * c for v, c in points):g}"


def _chart(per_minute: dict[int, float], first: int, minutes: int) -> str:
    top = max(per_minute.values(), default=0.0) or 1.0
    return "".join("·" if (m := first + i) not in per_minute else BARS[min(len(BARS) - 1, int(per_minute[m] / top * (len(BARS) - 1)))]
                   for i in range(minutes))
