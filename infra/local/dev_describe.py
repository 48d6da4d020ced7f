"""What ``streamcache dev`` prints at start: what runs where, and what of OCI's world it plays."""

from __future__ import annotations

from . import data_dir as data
from .invoke_endpoint import function_ocid


def describe(stack) -> str:
    """What runs where, for the terminal. ``stack``: a running :class:`~.dev.DevStack` (not imported:
    dev.py imports this module)."""
    lines = ["streamcache dev: a local cache, every write a record on a Kafka-protocol stream", ""]
    lines.append(f"  stream    Tansu broker pid {stack.broker.process.pid} on {stack.broker.bootstrap}, topic "
                 f"{stack.topic!r} with {stack.partitions} partitions" if stack.broker is not None
                 else f"  stream    {stack.log_url} (not started here)")
    if stack.front is not None:
        lines.append(f"            reached through the Kafka front end on {stack.front.bootstrap} (OCI Streaming's "
                     "round trip, recycled connections, read budget, TLS and SASL)")
    lines.append(f"            STREAMCACHE_LOG_URL={stack.log_url}")
    for instance in stack.instances:
        cold = stack.cold_starts_ms.get(instance.name)
        warm = f", warmed up (first call {cold:.0f} ms)" if cold is not None else ""
        lines.append(f"  function  {instance.name} pid {instance.pid}, socket {instance.socket_path}{warm}")
    lines.append(f"  gateway   {stack.url} -> {stack.instance_count} cache instance(s) at start, up to "
                 f"{stack.max_instances} (a request that finds all busy starts one), one request at a time each; "
                 f"idle ones are picked {stack.dispatch.value}")
    if stack.freeze_idle_s is not None:
        lines.append(f"  freezer   an idle instance is stopped (SIGSTOP) {stack.freeze_idle_s * 1000:g} ms after its "
                     "answer and continued (SIGCONT) for its next request, as Fn does (FN_FREEZE_IDLE_MSECS)")
    lines.append(f"  invoke    POST {stack.url}/20181201/functions/cache/actions/invoke "
                 f"(function id {function_ocid('cache')})")
    if stack.data_dir is not None:
        lines += _describe_lifecycle(stack)
    if stack.monitoring is not None:
        lines.append(f"  metrics   OCI Monitoring ingestion on {stack.monitoring.endpoint} (namespace streamcache); "
                     "`streamcache metrics` shows the last hour and the alarms")
    lines += ["", "Try:",
              f"  curl -X PUT {stack.url}/cache/a -d 1", f"  curl -i {stack.url}/cache/a",
              f"  curl '{stack.url}/cache?prefix='",
              f"""  curl -X POST {stack.url}/20181201/functions/cache/actions/invoke -d '{{"operation":"GET","key":"a"}}'""",
              f"  STREAMCACHE_URL={stack.url} streamcache get a", "",
              "Ctrl-C stops everything (after a final compaction)." if stack.data_dir else "Ctrl-C stops everything."]
    return "\n".join(lines)


def _describe_lifecycle(stack) -> list[str]:
    from streamcache.settings import Settings

    pool = stack.compactor_pool
    compactor = pool.live()[0] if pool and pool.live() else None
    lines = [f"  compactor {compactor.name} pid {compactor.pid}, socket {compactor.socket_path}" if compactor
             else "  compactor (not running)",
             f"            invoked {_every(stack.compact_every_s)} (the Resource Scheduler), and once more on Ctrl-C; "
             f"POST {stack.url}/20181201/functions/compactor/actions/invoke",
             "            and by a cache cold start whose tail is longer than STREAMCACHE_COMPACT_AFTER_RECORDS "
             f"({stack.config.get('STREAMCACHE_COMPACT_AFTER_RECORDS') or Settings.compact_after_records}; a detached "
             "invoke)",
             f"  data      {stack.data_dir}: snapshots/ (STREAMCACHE_SNAPSHOT_URL="
             f"{data.snapshot_store_url(stack.data_dir)}), imports/ (drop JSON Lines files here)"]
    if stack.stream_id is not None:
        restored = (f"{stack.restored_keys} keys restored from run {stack.restored.stream}"
                    if stack.restored is not None else "nothing to restore")
        lines.append(f"            this run's stream: STREAMCACHE_STREAM_ID={stack.stream_id}; {restored}")
    lines.append(f"  lifecycle warmer GET /health {_every(stack.warm_every_s)}; an instance idle for "
                 f"{stack.idle_timeout_s:g} s is stopped, the next request cold-starts one"
                 if stack.idle_timeout_s > 0 else f"  lifecycle warmer GET /health {_every(stack.warm_every_s)}; "
                 "idle instances are never stopped")
    return lines


def _every(seconds: float) -> str:
    return f"every {seconds:g} s" if seconds > 0 else "off"
