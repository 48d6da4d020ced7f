"""``streamcache watch`` latency: from an acknowledged write to its line on watch's stdout.

    .venv/bin/python bench/bench_watch.py              # 200 writes, one at a time, to a local Tansu
    .venv/bin/python bench/bench_watch.py --gateway    # writes through a streamcache dev gateway (HTTP PUT)

watch runs as its own process (``python -m streamcache.cli.watch watch --from latest``), as a user runs
it. Each write waits for its line before the next one, so the figures are per-change latencies:
median, 95th percentile and maximum, in milliseconds.
"""

from __future__ import annotations

import argparse
import queue
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core import records
from streamcache_local.broker import start_broker


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--writes", type=int, default=200)
    parser.add_argument("--gateway", action="store_true", help="write through streamcache dev's gateway")
    args = parser.parse_args(argv)
    with start_broker() as broker:
        broker.create_topic("bench-watch", 3)
        if args.gateway:
            from streamcache import Client
            from streamcache_local.dev import DevStack

            with DevStack(port=0, instances=2, log_url=broker.log_url("bench-watch")) as stack:
                client = Client(stack.url)
                try:
                    latencies = measure(broker.log_url("bench-watch"), args.writes,
                                        lambda key: client.put(key, b"v", content_type="text/plain"))
                finally:
                    client.close()
        else:
            log = KafkaLog(broker.bootstrap, "bench-watch")
            try:
                latencies = measure(broker.log_url("bench-watch"), args.writes, lambda key: log.append(
                    key, records.encode(records.Put(key, b"v", "text/plain", uuid.uuid4().hex, int(time.time() * 1000)))))
            finally:
                log.close()
    latencies.sort()
    print(f"watch latency over {len(latencies)} writes ({'gateway PUT' if args.gateway else 'direct append'}): "
          f"median {statistics.median(latencies):.0f} ms, p95 {latencies[int(0.95 * len(latencies)) - 1]:.0f} ms, "
          f"max {latencies[-1]:.0f} ms")
    return 0


def measure(log_url: str, writes: int, write) -> list[float]:
    process = subprocess.Popen([sys.executable, "-m", "streamcache.cli.watch", "watch", "--log-url", log_url],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True).start()
    try:
        # --from latest: write until the first line shows that watch listens.
        while True:
            write("warm-up")
            try:
                lines.get(timeout=0.5)
                break
            except queue.Empty:
                continue
        while not lines.empty():
            lines.get()
        latencies = []
        for i in range(writes):
            key = f"bench/{i}"
            started = time.perf_counter()
            write(key)
            while key not in lines.get(timeout=30):
                pass
            latencies.append((time.perf_counter() - started) * 1000)
        return latencies
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(15)


if __name__ == "__main__":
    sys.exit(main())
