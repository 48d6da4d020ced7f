"""Loading the same data into both systems fast: records on a Tansu topic, keys in Redis.

The stream gets exactly what the cache function would write (one CloudEvents put record per write,
record key = cache key, the partition the :class:`~streamcache.adapters.kafka_log.KafkaLog` picks),
but through one batching producer: appending 1M records one acknowledged request at a time would
take the bench half an hour and measure nothing the warm PUT numbers do not already show.
"""

from __future__ import annotations

import time
import uuid
from typing import Iterable

from kafka import KafkaProducer
from kafka.partitioner.default import murmur2

from streamcache.core import records
from streamcache.core.records import Put

BASE_TS_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z: fixed, so every run writes the same records
WRITES_PER_SECOND = 1000  # writer timestamps are spread like a steady 1k writes/s
CONTENT_TYPE = "application/octet-stream"


def partition_for(key: str, partitions: int) -> int:
    """The partition KafkaLog.partition_for picks (murmur2 of the UTF-8 key, Kafka's default)."""
    return (murmur2(key.encode("utf-8")) & 0x7FFFFFFF) % partitions


def load_topic(bootstrap: str, topic: str, partitions: int, items: Iterable[tuple[str, bytes]],
               timeout_s: float = 600.0, first_write: int = 0) -> int:
    """Append every (key, value) as a put record, acks=all, batched. Returns the record count.
    ``first_write`` numbers the first record (writer timestamps go on from the earlier writes)."""
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=False, linger_ms=20,
                             batch_size=512 * 1024, max_request_size=1_048_576,
                             metrics_enabled=False, client_id="streamcache-bench-loader")
    deadline = time.monotonic() + timeout_s
    count = 0
    run = uuid.uuid4().hex[:8]
    try:
        for count, (key, value) in enumerate(items, start=1):
            ts = BASE_TS_MS + (first_write + count) * 1000 // WRITES_PER_SECOND
            put = Put(key, value, CONTENT_TYPE, f"bench-{run}-{count}", ts)
            producer.send(topic, key=key.encode("utf-8"), value=records.encode(put),
                          partition=partition_for(key, partitions))
            if count % 50_000 == 0 and time.monotonic() > deadline:
                raise RuntimeError(f"loading {topic} took longer than {timeout_s} s")
        producer.flush(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        producer.close(timeout=5)
    return count


def load_redis(client, items: Iterable[tuple[str, bytes]], batch: int = 2000) -> int:
    """SET every (key, value) through a pipeline (same data as the stream). Returns the count."""
    pipe = client.pipeline(transaction=False)
    count = 0
    for count, (key, value) in enumerate(items, start=1):
        pipe.set(key, value)
        if count % batch == 0:
            pipe.execute()
    pipe.execute()
    return count
