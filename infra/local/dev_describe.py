"""What ``streamcache dev`` prints when it is up: what runs where, and what to try."""

from __future__ import annotations

from typing import Any

from . import data_dir as data
from .invoke_endpoint import function_ocid

DevStack = Any  # dev.DevStack: not imported, dev.py imports this module


def describe(self: DevStack) -> str:
    """What runs where, for the terminal."""
    lines = ["streamcache dev: a local cache, every write a record on a Kafka-protocol stream", ""]
    lines.append(f"  stream    Tansu broker pid {self.broker.process.pid} on {self.broker.bootstrap}, topic "
                 f"{self.topic!r} with {self.partitions} partitions" if self.broker is not None
                 else f"  stream    {self.log_url} (not started here)")
    lines.append(f"            STREAMCACHE_LOG_URL={self.log_url}")
    for instance in self.instances:
        cold = self.cold_starts_ms.get(instance.name)
        warm = f", warmed up (first call {cold:.0f} ms)" if cold is not None else ""
        lines.append(f"  function  {instance.name} pid {instance.pid}, socket {instance.socket_path}{warm}")
    lines.append(f"  gateway   {self.url} -> up to {self.instance_count} cache instance(s), one request at a "
                 f"time each; idle ones are picked {self.dispatch.value}")
    lines.append(f"  invoke    POST {self.url}/20181201/functions/cache/actions/invoke "
                 f"(function id {function_ocid('cache')})")
    if self.data_dir is not None:
        lines += _describe_lifecycle(self)
    if self.monitoring is not None:
        lines.append(f"  metrics   OCI Monitoring ingestion on {self.monitoring.endpoint} (namespace streamcache); "
                     "`streamcache metrics` shows the last hour and the alarms")
    lines += ["", "Try:",
              f"  curl -X PUT {self.url}/cache/a -d 1", f"  curl -i {self.url}/cache/a",
              f"  curl '{self.url}/cache?prefix='",
              f"""  curl -X POST {self.url}/20181201/functions/cache/actions/invoke -d '{{"operation":"GET","key":"a"}}'""",
              f"  STREAMCACHE_URL={self.url} streamcache get a", "",
              "Ctrl-C stops everything (after a final compaction)." if self.data_dir else "Ctrl-C stops everything."]
    return "\n".join(lines)

def _describe_lifecycle(self: DevStack) -> list[str]:
    from streamcache.settings import Settings

    compactor = self.compactor_pool.live()[0] if self.compactor_pool and self.compactor_pool.live() else None
    lines = [f"  compactor {compactor.name} pid {compactor.pid}, socket {compactor.socket_path}" if compactor
             else "  compactor (not running)",
             f"            invoked {_every(self.compact_every_s)} (the Resource Scheduler), and once more on Ctrl-C; "
             f"POST {self.url}/20181201/functions/compactor/actions/invoke",
             "            and by a cache cold start whose tail is longer than STREAMCACHE_COMPACT_AFTER_RECORDS "
             f"({self.config.get('STREAMCACHE_COMPACT_AFTER_RECORDS') or Settings.compact_after_records}; a detached invoke)",
             f"  data      {self.data_dir}: snapshots/ (STREAMCACHE_SNAPSHOT_URL="
             f"{data.snapshot_store_url(self.data_dir)}), imports/ (drop JSON Lines files here)"]
    if self.stream_id is not None:
        restored = (f"{self.restored_keys} keys restored from run {self.restored.stream}"
                    if self.restored is not None else "nothing to restore")
        lines.append(f"            this run's stream: STREAMCACHE_STREAM_ID={self.stream_id}; {restored}")
    lines.append(f"  lifecycle warmer GET /health {_every(self.warm_every_s)}; an instance idle for "
                 f"{self.idle_timeout_s:g} s is stopped, the next request cold-starts one"
                 if self.idle_timeout_s > 0 else f"  lifecycle warmer GET /health {_every(self.warm_every_s)}; "
                 "idle instances are never stopped")
    return lines


def _every(seconds: float) -> str:
    return f"every {seconds:g} s" if seconds > 0 else "off"
