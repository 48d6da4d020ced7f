"""Subscribing to the change feed: typed change events, with their positions, as they happen.

Two modes, both on the Kafka protocol (OCI Streaming, Kafka, or the local Tansu broker):

- **Assigned** (default): this subscriber reads every partition itself, from ``"earliest"``,
  ``"latest"`` or a resume token (``"0-12,1-40"``: the next offset per partition; partitions not
  named start at the earliest). ``subscription.resume_token()`` is where to start next time.
- **Group** (``group_id=...``): subscribers with the same group id split the partitions between them
  and the group's committed offsets say where to resume (a scaled-out consuming service). Settings
  suit OCI Streaming's Kafka limits (5 heartbeats/s, 10 offset commits/s): heartbeats every 3 s,
  commits every 5 s.

Events are *intents* in log order: whether a conditional write won is decided by applying it
(see events/README.md). Records that are not streamcache events are skipped and counted.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Iterator, Mapping

from kafka import KafkaConsumer, TopicPartition

from streamcache.adapters.kafka_log import map_kafka_errors
from streamcache.adapters.kafka_partitioner import key_partition
from streamcache.client.models import ChangeKind
from streamcache.core.errors import InvalidRequest, RecordError
from streamcache.core.records import Delete, Increment, Mutation, Position, Put, Touch, decode, parse_version
from streamcache.core.value_refs import REF_CONTENT_TYPE, ValueRef, decode_ref

_KINDS = {Put: ChangeKind.PUT, Delete: ChangeKind.DELETE, Increment: ChangeKind.INCREMENT, Touch: ChangeKind.TOUCH}


@dataclass(frozen=True)
class ChangeEvent:
    """One change record: where it is on the stream and what it asks for."""

    position: Position
    mutation: Mutation

    @property
    def key(self) -> str:
        return self.mutation.key

    @property
    def kind(self) -> ChangeKind:
        return _KINDS[type(self.mutation)]

    @property
    def by(self) -> int | None:
        """An increment's delta (what a mirror adds to the counter); None for a put or a delete."""
        return self.mutation.by if isinstance(self.mutation, Increment) else None

    @property
    def dataref(self) -> ValueRef | None:
        """A big value's reference (the CloudEvents ``dataref``: its object's name in the cache's bucket,
        size, digest and content type; docs/api.md, "Big values"), or None: the value is inline."""
        m = self.mutation
        return decode_ref(m.value) if isinstance(m, Put) and m.content_type == REF_CONTENT_TYPE else None

    def as_json(self) -> dict:
        """A JSON-friendly summary (what ``streamcache watch --json`` prints). An increment carries
        its delta ``by`` and the expiry it gives the counter if it creates it."""
        m = self.mutation
        out: dict = {"position": str(self.position), "kind": self.kind.value, "key": m.key, "time_ms": m.ts_ms,
                     "id": m.request_id}
        ref = self.dataref
        if ref is not None:  # the value is an object: say where, never the reference's own bytes
            out.update(content_type=ref.content_type, size=ref.size, expires_at_ms=m.expires_at_ms, value=None,
                       dataref=ref.name, datadigest=ref.digest)
        elif isinstance(m, Put):
            out.update(content_type=m.content_type, size=len(m.value), expires_at_ms=m.expires_at_ms)
            try:
                out["value"] = m.value.decode("utf-8")
            except UnicodeDecodeError:
                out["value"] = None
        elif isinstance(m, (Increment, Touch)):  # a touch: the new expiry (None: removed)
            out.update(expires_at_ms=m.expires_at_ms, **({"by": m.by} if isinstance(m, Increment) else {}))
        if m.precondition is not None:
            out["precondition"] = m.precondition.kind if m.precondition.version is None else str(m.precondition.version)
        return out


def parse_resume_token(token: str) -> dict[int, int]:
    """``"0-12,1-40"`` -> ``{0: 12, 1: 40}`` (next offset per partition)."""
    try:
        positions = [parse_version(part) for part in token.split(",") if part.strip()]
    except InvalidRequest:
        raise InvalidRequest(f"not a position: {token!r} (expected PARTITION-OFFSET[,PARTITION-OFFSET...])") from None
    if not positions:
        raise InvalidRequest("an empty position")
    return {p.partition: p.offset for p in positions}


class Subscription:
    """An iterator of :class:`ChangeEvent` over one stream. Close it (or use ``with``)."""

    def __init__(self, bootstrap: str, topic: str, *, start: str | Mapping[int, int] = "earliest",
                 prefix: str = "", group_id: str | None = None, security: Mapping[str, object] | None = None,
                 client_id: str = "streamcache-subscriber", session_timeout_ms: int = 10_000) -> None:
        self.topic = topic
        self.prefix = prefix
        self.skipped = 0  # records the instances skip too: not ours, or not in their key's partition
        self._partition_count = 0
        self._next: dict[int, int] = {}
        common = dict(bootstrap_servers=bootstrap.split(","), client_id=client_id, metrics_enabled=False,
                      allow_auto_create_topics=False, **dict(security or {}))
        with map_kafka_errors(f"subscribing to {topic}"):
            if group_id is None:
                self._consumer = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="earliest",
                                               fetch_max_wait_ms=200, **common)
                self._assign(start)
            else:
                self._consumer = KafkaConsumer(
                    group_id=group_id, enable_auto_commit=True, auto_commit_interval_ms=5000,
                    auto_offset_reset="latest" if start == "latest" else "earliest",
                    session_timeout_ms=session_timeout_ms, heartbeat_interval_ms=min(3000, session_timeout_ms // 3),
                    fetch_max_wait_ms=200, **common)
                self._consumer.subscribe([topic])

    def _assign(self, start: str | Mapping[int, int]) -> None:
        consumer = self._consumer
        deadline = time.monotonic() + 10
        ids = consumer.partitions_for_topic(self.topic)
        while not ids and time.monotonic() < deadline:
            consumer.topics()
            ids = consumer.partitions_for_topic(self.topic)
        if not ids:
            raise InvalidRequest(f"no stream (topic) called {self.topic!r}")
        tps = [TopicPartition(self.topic, p) for p in sorted(ids)]
        consumer.assign(tps)
        if start == "latest":
            # Not end_offsets(): on Tansu it can be short of the real end (see kafka_log.py).
            from streamcache.adapters.kafka_log import KafkaLog

            probe = KafkaLog(",".join(consumer.config["bootstrap_servers"]), self.topic)
            try:
                ends = probe.bounds().next
            finally:
                probe.close()
            for tp in tps:
                consumer.seek(tp, ends[tp.partition])
        elif start == "earliest":
            consumer.seek_to_beginning(*tps)
        else:
            first = consumer.beginning_offsets(tps)
            for tp in tps:
                consumer.seek(tp, max(start.get(tp.partition, 0), first[tp]))

    def poll(self, timeout_ms: int = 500) -> list[ChangeEvent]:
        """The change events that arrived within ``timeout_ms`` (possibly none), in log order per partition."""
        with map_kafka_errors(f"reading {self.topic}"):
            batches = self._consumer.poll(timeout_ms=timeout_ms)
        events = []
        for tp, records in batches.items():
            for record in records:
                self._next[tp.partition] = record.offset + 1
                try:
                    mutation = decode(record.value)
                except RecordError:
                    self.skipped += 1
                    continue
                if not self._placed(mutation.key, tp.partition):  # skipped by every instance: not a change
                    self.skipped += 1
                    continue
                if mutation.key.startswith(self.prefix):
                    events.append(ChangeEvent(Position(tp.partition, record.offset), mutation))
        return events

    def _placed(self, key: str, partition: int) -> bool:
        """In its key's partition (Kafka's murmur2 partitioner), as the instances require (replay/fold.py)."""
        if not self._partition_count:
            self._partition_count = len(self._consumer.partitions_for_topic(self.topic) or ()) or 1
        return key_partition(key, self._partition_count) == partition

    def __iter__(self) -> Iterator[ChangeEvent]:
        while True:
            yield from self.poll()

    def partitions(self) -> set[int]:
        """The partitions this subscriber reads now (in group mode: its share, after a rebalance)."""
        return {tp.partition for tp in self._consumer.assignment()}

    def resume_token(self) -> str:
        """Where to start next time to miss nothing and repeat nothing (assigned mode)."""
        positions = dict(self._next)
        for tp in self._consumer.assignment():
            positions.setdefault(tp.partition, self._consumer.position(tp))
        return ",".join(f"{p}-{o}" for p, o in sorted(positions.items()))

    def commit(self) -> None:
        """Commit the group's offsets now (group mode; they are also committed every 5 s)."""
        with map_kafka_errors(f"committing offsets on {self.topic}"):
            self._consumer.commit()

    def close(self) -> None:
        self._consumer.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


__all__ = ["ChangeEvent", "ChangeKind", "Subscription", "parse_resume_token", "Delete", "Increment", "Put", "Touch"]
