"""The results: ``latest.json`` (everything measured) and ``latest.md`` (the short table the README
quotes), written next to the charts."""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import batch, big_values, oci_like, write_floor

LATENCY_PATHS = (
    ("handler", "in the handler (`CacheApp.handle`, in-process)"),
    ("fdk_socket", "FDK unix socket (Fn protocol, `FnClient`)"),
    ("gateway", "local gateway, HTTP keep-alive"),
)


def write_json(results: dict, folder: Path) -> Path:
    path = folder / "latest.json"
    _atomic_write(path, json.dumps(results, indent=1, sort_keys=False) + "\n")
    return path


def write_markdown(results: dict, folder: Path) -> Path:
    path = folder / "latest.md"
    _atomic_write(path, markdown(results))
    return path


def _atomic_write(path: Path, text: str) -> None:
    temporary = path.with_suffix(path.suffix + ".tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def markdown(results: dict) -> str:
    m = results["machine"]
    redis = results["redis"]
    lines = [f"Run: `{results['mode']}` mode, {results['started_at']}, {results['duration_s']:.0f} s.  ",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}, "
             f"load average {m.get('load_average_at_start')} at the start; "
             + (f"Redis {redis['version']} (Debian package), redis-py {m['packages'].get('redis')}."
                if redis["available"] else f"Redis: skipped ({redis['reason']})."), ""]
    measurements = results["measurements"]
    if "warm" in measurements:
        lines += _warm(measurements["warm"])
        lines += write_floor.markdown(measurements["warm"].get("streamcache", {}))
    if "metrics" in measurements:
        lines += _metrics(measurements["metrics"])
    if "durability" in measurements:
        lines += _durability(measurements["durability"])
    if "scaling" in measurements:
        lines += _scaling(measurements["scaling"])
    if "snapshot" in measurements or "compaction" in measurements:
        lines += _snapshots(measurements.get("snapshot", {"skipped": "not run"}), measurements.get("scaling", {}),
                            measurements.get("compaction", {"skipped": "not run"}))
    if "batch" in measurements:
        lines += batch.markdown(measurements["batch"])
    if "oci_like" in measurements:
        lines += oci_like.markdown(measurements["oci_like"])
    if "big_values" in measurements:
        lines += big_values.markdown(measurements["big_values"])
    if results.get("charts"):
        lines += ["Charts: " + ", ".join(f"[{name}]({name})" for name in results["charts"]), ""]
    return "\n".join(lines)


def ms(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.3f} ms" if value < 1 else f"{value:.2f} ms" if value < 10 else f"{value:.1f} ms"


def times(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def rate(value: float | None) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _skipped(section: dict) -> str | None:
    return section.get("skipped") or (f"error: {section['error']}" if "error" in section else None)


def _warm(warm: dict) -> list[str]:
    out = ["### Warm GET and PUT (sequential, one client, 100-byte values)", ""]
    if _skipped(warm):
        return out + [f"Not measured: {_skipped(warm)}", ""]
    ours, theirs, ratios = warm["streamcache"], warm.get("redis", {}), warm.get("ratios", {})
    out += ["| path | GET p50 | GET p99 | GET req/s | PUT p50 | PUT p99 | PUT req/s | p50 vs Redis (GET / PUT) |",
            "|---|---|---|---|---|---|---|---|"]
    for key, label in LATENCY_PATHS:
        g, p = ours[key]["get"], ours[key]["put"]
        rg, rp = ratios.get(f"{key}.get", {}), ratios.get(f"{key}.put", {})
        out.append(f"| {label} | {ms(g.get('p50_ms'))} | {ms(g.get('p99_ms'))} | {rate(g.get('rps'))} | "
                   f"{ms(p.get('p50_ms'))} | {ms(p.get('p99_ms'))} | {rate(p.get('rps'))} | "
                   f"{times(rg.get('p50_x'))} / {times(rp.get('p50_x'))} |")
    listing = ours.get("handler", {}).get("list")
    if listing:
        out.append(f"| in the handler: list by prefix, a page of {listing['keys_per_page']} keys | "
                   f"{ms(listing.get('p50_ms'))} | {ms(listing.get('p99_ms'))} | {rate(listing.get('rps'))} |||||")
    conc = ours.get("gateway_concurrent")
    if conc:
        g, p = conc["get"], conc["put"]
        rg, rp = ratios.get("gateway_concurrent.get", {}), ratios.get("gateway_concurrent.put", {})
        out.append(f"| gateway, {conc['clients']} concurrent clients, 2 instances | {ms(g.get('p50_ms'))} | "
                   f"{ms(g.get('p99_ms'))} | {rate(g.get('rps'))} | {ms(p.get('p50_ms'))} | {ms(p.get('p99_ms'))} | "
                   f"{rate(p.get('rps'))} | {times(rg.get('p50_x'))} / {times(rp.get('p50_x'))} |")
    if "get" in theirs:
        g, p = theirs["get"], theirs["set"]
        out.append(f"| **Redis** GET/SET, redis-py, loopback, no persistence | {ms(g.get('p50_ms'))} | "
                   f"{ms(g.get('p99_ms'))} | {rate(g.get('rps'))} | {ms(p.get('p50_ms'))} | {ms(p.get('p99_ms'))} | "
                   f"{rate(p.get('rps'))} | 1x |")
        conc = theirs["concurrent"]
        g, p = conc["get"], conc["put"]
        out.append(f"| **Redis**, {conc['clients']} concurrent clients | {ms(g.get('p50_ms'))} | {ms(g.get('p99_ms'))} | "
                   f"{rate(g.get('rps'))} | {ms(p.get('p50_ms'))} | {ms(p.get('p99_ms'))} | {rate(p.get('rps'))} | 1x |")
    else:
        out.append(f"| Redis | {theirs.get('skipped', 'not measured')} |||||||")
    return out + [""]


def _metrics(cost: dict) -> list[str]:
    out = ["### The cost of metrics on the request path (in the handler, in turns; posting every second)", ""]
    if _skipped(cost):
        return out + [f"Not measured: {_skipped(cost)}", ""]
    out += ["| request | p50 metrics off | p50 metrics on | difference | allowed (2 % or 0.01 ms) |", "|---|---|---|---|---|"]
    for op in ("get", "put"):
        row = cost[op]
        verdict = "within" if row["within_target"] else "**over**"
        out.append(f"| {op.upper()} | {ms(row['metrics_off'].get('p50_ms'))} | {ms(row['metrics_on'].get('p50_ms'))} | "
                   f"{row['p50_delta_ms']:+.4f} ms | {row['allowed_ms']:.4f} ms: {verdict} |")
    return out + [f"{cost['posts_during_run']} posts to the local ingestion server during the run.", ""]


def _durability(durability: dict) -> list[str]:
    out = ["### What an acknowledged write costs (sequential SET/PUT, 100-byte values)", ""]
    if _skipped(durability):
        return out + [f"Not measured: {_skipped(durability)}", ""]
    ours, theirs, ratios = durability["streamcache"], durability.get("redis", {}), durability.get("ratios", {})
    out += ["| write | p50 | p99 | req/s | streamcache PUT p50 vs this |", "|---|---|---|---|---|"]
    rows = [("streamcache: stream append alone, acks=all (local Tansu keeps its log in memory)", ours["append_acks_all"], None),
            ("streamcache: PUT in the handler (append acks=all, then apply)", ours["put_in_handler"], None)]
    labels = {"no_persistence": "Redis SET, no persistence", "aof_everysec": "Redis SET, AOF `appendfsync everysec`",
              "aof_always": "Redis SET, AOF `appendfsync always` (fsync per write)"}
    rows += [(labels[name], theirs[name], ratios.get(name, {}).get("p50_x")) for name in labels if name in theirs]
    for label, s, x in rows:
        out.append(f"| {label} | {ms(s.get('p50_ms'))} | {ms(s.get('p99_ms'))} | {rate(s.get('rps'))} | "
                   f"{times(x) if x is not None else ''} |")
    if "skipped" in theirs:
        out.append(f"| Redis | {theirs['skipped']} ||||")
    return out + [""]


def _scaling(scaling: dict) -> list[str]:
    out = ["### Cold start and memory against key count (100-byte values; snapshot, then a 1 % or 10 % tail of overwrites)", ""]
    if _skipped(scaling):
        return out + [f"Not measured: {_skipped(scaling)}", ""]
    theirs = scaling.get("redis", {})
    ours = scaling.get("streamcache", {})
    replay, snap, snap10 = (ours.get(name, {}) for name in ("stream_replay", "snapshot_and_tail", "snapshot_and_tail_10pct"))
    runs = max((len(run.get("first_read_samples_s") or [1]) for run in snap.values()), default=1)
    median = f" The 1 % tail's and Redis's: the median of {runs} runs (each run's below)." if runs > 1 else ""
    out += ["Cold start = from the process spawn to the first served read (a GET through Fn's protocol; "
            f"Redis: a GET that returns the value).{median} Memory = resident growth of the instance holding the keys "
            "(RSS, plus any image file it keeps under /tmp) against Redis's `used_memory`.", "",
            "| keys | streamcache, replaying the stream | snapshot + 1 % tail | snapshot + 10 % tail | Redis, from its RDB | "
            "vs Redis (1 % / 10 %) | streamcache B/key (1 % / replay) | Redis B/key | memory vs Redis | "
            "peak B/key during the restore (1 %) | peak / held | keys a 3 GB function holds (peak, 10 % headroom) |",
            "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for keys in sorted(set(replay) | set(snap), key=int):
        a, b, c, peer = replay.get(keys, {}), snap.get(keys, {}), snap10.get(keys, {}), theirs.get(keys, {})
        redis_s, redis_b = peer.get("first_read_s"), peer.get("used_memory_per_key_bytes")
        memory = b.get("rss_per_key_bytes") or a.get("rss_per_key_bytes")
        out.append(f"| {int(keys):,} | {_seconds(a.get('first_read_s'))} | {_seconds(b.get('first_read_s'))} | "
                   f"{_seconds(c.get('first_read_s'))} | {_seconds(redis_s)} | "
                   f"{times(ratio_of(b.get('first_read_s'), redis_s))} / {times(ratio_of(c.get('first_read_s'), redis_s))} | "
                   f"{_num(b.get('rss_per_key_bytes'))} / {_num(a.get('rss_per_key_bytes'))} | {_num(redis_b)} | "
                   f"{times(ratio_of(memory, redis_b))} | {_num(b.get('peak_per_key_bytes'))} | "
                   f"{b.get('peak_vs_held', '-')} | {_millions(b.get('keys_in_3gb'))} |")
    for keys, reason in scaling.get("skipped_sizes", {}).items():
        out.append(f"| {int(keys):,} | {reason} ||||||||||")
    if runs > 1:
        out.append("")
        out += [f"- {int(keys):,} keys: streamcache {', '.join(f'{s:.3f}' for s in run['first_read_samples_s'])} s; "
                f"Redis {', '.join(f'{s:.3f}' for s in theirs.get(keys, {}).get('first_read_samples_s', []))} s"
                for keys, run in sorted(snap.items(), key=lambda item: int(item[0])) if run.get("first_read_samples_s")]
    if "skipped" in theirs:
        out.append(f"\nRedis: {theirs['skipped']}")
    if isinstance(scaling.get("snapshot_and_tail"), str):
        out.append(f"\nSnapshot + tail: {scaling['snapshot_and_tail']}")
    empty = scaling.get("streamcache_empty_instance", {}).get("stream_replay")
    if empty:
        out.append(f"\nAn instance on an empty stream: first read {empty['first_read_s']:.2f} s after the spawn "
                   f"(socket ready after {empty['socket_ready_s']:.2f} s), {empty['rss_bytes'] / 2**20:.0f} MiB resident.")
    return out + [""]


def ratio_of(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs <= 0:
        return None
    return ours / theirs


def _snapshots(snapshot: dict, scaling: dict, compaction: dict) -> list[str]:
    out = ["### Snapshots and compaction (the compactor's own code, in-process, local directory store)", ""]
    if _skipped(snapshot):
        out.append(f"Snapshots not measured: {_skipped(snapshot)}")
    else:
        redis_sizes = scaling.get("redis", {}) if isinstance(scaling.get("redis"), dict) else {}
        out += ["| keys | raw (keys + values) | snapshot (image) | snapshot / raw | Redis RDB | write | "
                "read + verify + open: in memory / mmap file | B/key held: in memory / mmap file (RSS + file) | "
                "peak B/key during the restore: in memory / before (download, then deserialize) | "
                "download capped per connection: 1 / 4 connections | random GET while pages load: memory / file |",
                "|---|---|---|---|---|---|---|---|---|---|---|"]
        for keys, s in snapshot.items():
            rdb = redis_sizes.get(keys, {}).get("rdb_bytes")
            ways = s.get("load_ways") or {}
            mem, fil = ways.get("memory", {}), ways.get("file", {})
            out.append(f"| {int(keys):,} | {s['raw_bytes'] / 1e6:.1f} MB | {s['snapshot_bytes'] / 1e6:.1f} MB | "
                       f"{s['size_vs_raw']:.2f} | {'-' if rdb is None else f'{rdb / 1e6:.1f} MB'} | "
                       f"{s['write_mb_s']} MB/s | {_seconds(mem.get('verify_and_open_s'))} / "
                       f"{_seconds(fil.get('verify_and_open_s'))} | {_num(mem.get('held_per_key_bytes'))} / "
                       f"{_num(fil.get('held_per_key_bytes'))} | {_num(mem.get('peak_per_key_bytes'))} / "
                       f"{_num(ways.get('copy', {}).get('peak_per_key_bytes'))} | {_download(s.get('download_capped'))} | "
                       f"{mem.get('random_get_us', '-')} / "
                       f"{fil.get('random_get_us', '-')} µs |")
    out.append("")
    if _skipped(compaction):
        return out + [f"Compaction: {_skipped(compaction)}", ""]
    out += ["| compaction | records folded | time (load / fold / write image) | records/s | snapshot written |",
            "|---|---|---|---|---|"]
    for keys, c in sorted(compaction.items(), key=lambda item: int(item[0])):
        runs = [(f"{int(keys):,} keys from scratch", c)]
        runs += [(f"{t.get('tail_records', 0):,} changes onto {int(keys):,} keys ({t.get('kind') or 'full'})", t)
                 for t in (c.get("incremental") or {}).values()]
        pair = c.get("delta_vs_full") or {}
        runs += [(f"{pair['changes']:,} changes onto {int(keys):,} keys as {what}"
                  + (f" ({pair['upload_vs_full']:.1%} of the full image)" if what == "a delta" and pair.get(
                      "upload_vs_full") is not None else ""), pair[key])
                 for what, key in (("a delta", "delta"), ("a full image", "full")) if key in pair]
        for label, run in runs:
            size, phases = run.get("snapshot_bytes") or 0, run.get("phases_ms") or {}
            parts = " / ".join(f"{phases.get(p, 0) / 1000:.2f}" for p in ("load", "fold", "encode"))
            out.append(f"| {label} | {run['records_folded']:,} | {_seconds(run['wall_s'])} ({parts}) | "
                       f"{rate(run.get('records_per_s'))} | {size / 1e6:.1f} MB |")
    return out + [""]


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f} s" if value < 1 else f"{value:.2f} s"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _download(d: dict | None) -> str:
    if not d:
        return "-"
    return f"{d['1']['seconds']:.2f} s / {d['4']['seconds']:.2f} s at {d['cap_mb_s']:.0f} MB/s ({d['speedup']}x)"


def _millions(keys: int | None) -> str:
    return "-" if not keys else f"{keys / 1e6:.1f} million"
