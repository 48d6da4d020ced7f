"""The mutation log on the Kafka protocol: OCI Streaming, Apache Kafka, or the local Tansu broker.

Producer: acks=all, no idempotence (OCI Streaming does not implement it; records carry request ids
instead), a few retries (OCI recycles connections), explicit partition = murmur2(key) so the memory
adapter and every writer agree on where a key lives. ``append`` blocks until the broker acknowledged.

Bulk producer (``append_many``: imports, pipelined batches): a second producer, created on first use,
that batches (``linger_ms``, 256 KiB batches) with the same acks=all and retries, one request in
flight per connection (without idempotence, a retried batch could land after the next one and
reorder a key's records), flushed once all records are in; a failure stops it (OutcomeUnknown).

Consumer: manual assignment of every partition, no consumer group (each instance needs the whole
stream; groups would split it), positions kept across calls so a catch-up only fetches the tail.

Connections (OCI closes them to rebalance its front ends, and when idle; a frozen instance cannot
see it happen): clients close a connection idle for ``CONNECTIONS_MAX_IDLE_MS`` themselves, below the
30 s after which the far end may drop it, so a thawed instance reconnects instead of writing into a
dead one; reconnects back off from 20 ms up to 1 s. A secured link is checked once before the first client (see
:mod:`.kafka_link`), so a refused certificate or password fails at once, naming the setting.

A failed ``append`` stops its producer and tells "not sent" (LogUnavailable, safe to retry) from
"sent, answer lost" (OutcomeUnknown): see :mod:`.kafka_outcome`.

The log end. On Kafka and OCI Streaming, ListOffsets(latest) is exact. On Tansu it answers the base
offset of the last *batch* plus one, which is short when that batch holds several records. A fetch
response's high watermark is right on both, so a read to "the end" goes to
``max(ListOffsets, high watermark seen)``, and on a consumer that has not fetched yet it first
fetches the record just before the ListOffsets answer to learn the high watermark (once).
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, suppress
from typing import Iterator, Mapping, Sequence

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka import errors as kafka_errors

from streamcache.adapters.kafka_partitioner import key_partition, murmur2
from streamcache.adapters.kafka_link import check_link, close_producer, throttled_reads
from streamcache.adapters.kafka_outcome import abandon, find_batch, may_have_landed
from streamcache.core.errors import LogTruncated, LogUnavailable, OutcomeUnknown
from streamcache.core.records import Position
from streamcache.ports import LogBounds, LogRecord


#: What a fetch of one record (records_at) may bring back: at most a batch, and a record is at most
#: 1 MiB on OCI Streaming. Without it Tansu answered 16 MB for three records (issue 24: resident).
PROBE_FETCH_BYTES = 1 << 20
#: The longest a read waits for offsets the log end promised before answering "unavailable".
READ_DEADLINE_S = 10.0
#: Every record is a CloudEvent in the Kafka binding's structured mode, and says so (CloudEvents
#: Kafka protocol binding, 3.2): readers that pick the mode from the headers take it as structured.
#: Our own readers decode the value alone, so records from other writers, with or without it, read alike.
STRUCTURED = [("content-type", b"application/cloudevents+json")]
#: The bulk producer's batching: wait up to 5 ms for a batch to fill, batches up to 256 KiB (a produce
#: request carries at most 1 MiB, OCI Streaming's limit).
BULK_LINGER_MS = 5
BULK_BATCH_BYTES = 256 * 1024
#: Below the 30 s after which OCI's front ends (and NATs) may drop an idle connection.
CONNECTIONS_MAX_IDLE_MS = 20_000


@contextmanager
def map_kafka_errors(what: str):
    """Translate kafka-python's errors at the seam: out of range = truncated, anything else = unavailable."""
    try:
        yield
    except kafka_errors.OffsetOutOfRangeError as exc:
        raise LogTruncated(f"{what}: offsets no longer held by the stream ({exc})") from exc
    except (kafka_errors.KafkaError, OSError) as exc:
        raise LogUnavailable(f"{what}: {type(exc).__name__}: {exc}") from exc


class KafkaLog:
    """A :class:`~streamcache.ports.MutationLog` over one Kafka topic (an OCI stream)."""

    def __init__(self, bootstrap: str, topic: str, *, timeout_ms: int = 5000, client_id: str = "streamcache",
                 security: Mapping[str, object] | None = None, idle_ms: int = CONNECTIONS_MAX_IDLE_MS) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self._timeout_ms = timeout_ms
        self._client_id = client_id
        self._security = dict(security or {})
        self._idle_ms = max(idle_ms, timeout_ms + 1)  # kafka-python refuses an idle limit below the request timeout
        self._producer: KafkaProducer | None = None
        self._bulk_producer: KafkaProducer | None = None
        self._consumer: KafkaConsumer | None = None
        self._partitions: list[TopicPartition] | None = None
        self._lock = threading.RLock()  # the consumer is not thread-safe
        self._link_checked = False

    # ---- clients, created on first use and re-created after a failure to construct ----------

    def _common(self) -> dict:
        if not self._link_checked:  # raises, naming the setting, when TLS or SASL is refused
            check_link(self.bootstrap, self._security, min(3.0, self._timeout_ms / 1000))
            self._link_checked = True
        return dict(bootstrap_servers=self.bootstrap.split(","), client_id=self._client_id,
                    request_timeout_ms=self._timeout_ms, bootstrap_timeout_ms=self._timeout_ms,
                    connections_max_idle_ms=self._idle_ms, reconnect_backoff_ms=20,
                    reconnect_backoff_max_ms=1000, metrics_enabled=False, **self._security)

    def _get_producer(self) -> KafkaProducer:
        if self._producer is None:
            with map_kafka_errors("connecting the producer"):
                self._producer = KafkaProducer(
                    acks="all", enable_idempotence=False, retries=5, linger_ms=0,
                    max_block_ms=self._timeout_ms, delivery_timeout_ms=max(30_000, 2 * self._timeout_ms),
                    max_request_size=1_048_576, allow_auto_create_topics=False, **self._common())
        return self._producer

    def _get_bulk_producer(self) -> KafkaProducer:
        if self._bulk_producer is None:
            with map_kafka_errors("connecting the bulk producer"):
                self._bulk_producer = KafkaProducer(
                    acks="all", enable_idempotence=False, retries=5, max_in_flight_requests_per_connection=1,
                    linger_ms=BULK_LINGER_MS, batch_size=BULK_BATCH_BYTES, max_block_ms=self._timeout_ms,
                    delivery_timeout_ms=max(30_000, 2 * self._timeout_ms), max_request_size=1_048_576,
                    allow_auto_create_topics=False, **self._common())
        return self._bulk_producer

    def _get_consumer(self) -> KafkaConsumer:
        if self._consumer is None:
            with map_kafka_errors("connecting the consumer"):
                # 2,000 records per poll: the parsed records of one poll sit beside ours (3 MB less
                # resident after a 10,000-record tail than at 10,000; the read is as fast).
                consumer = KafkaConsumer(
                    group_id=None, enable_auto_commit=False, auto_offset_reset="none",
                    fetch_max_wait_ms=50, max_partition_fetch_bytes=8 * 1024 * 1024,
                    max_poll_records=2_000, allow_auto_create_topics=False, **self._common())
                tps = self._topic_partitions(consumer)
                consumer.assign(tps)
                for tp in tps:  # every assigned partition needs a position, or poll() refuses
                    consumer.seek(tp, 0)
            self._consumer = consumer
        return self._consumer

    def _topic_partitions(self, consumer: KafkaConsumer | None = None) -> list[TopicPartition]:
        if self._partitions is None:
            consumer = consumer or self._get_consumer()
            deadline = time.monotonic() + self._timeout_ms / 1000
            ids = consumer.partitions_for_topic(self.topic)
            while not ids and time.monotonic() < deadline:
                consumer.topics()  # forces a metadata refresh; bounded by the deadline
                ids = consumer.partitions_for_topic(self.topic)
            if not ids:
                raise LogUnavailable(f"topic {self.topic!r} not found at {self.bootstrap}")
            self._partitions = [TopicPartition(self.topic, p) for p in sorted(ids)]
        return self._partitions

    # ---- the port -----------------------------------------------------------------------------

    @property
    def partitions(self) -> int:
        with self._lock:
            return len(self._topic_partitions())

    def current_partitions(self) -> int:
        """From a metadata request made now (``topics()`` asks the broker for every topic's), never
        from the count cached for placement: that one stays what this process started with."""
        with self._lock, map_kafka_errors(f"reading the metadata of {self.topic}"):
            consumer = self._get_consumer()
            consumer.topics()
            ids = consumer.partitions_for_topic(self.topic)
            if not ids:
                raise LogUnavailable(f"topic {self.topic!r} not found at {self.bootstrap}")
            return len(ids)

    def partition_for(self, key: str) -> int:
        return key_partition(key, self.partitions)

    @property
    def throttled_responses(self) -> int:
        """Read answers the broker throttled so far (see kafka_link): the replica paces its reads by it."""
        return throttled_reads()

    def append(self, key: str, value: bytes) -> Position:
        partition = self.partition_for(key)
        producer = self._get_producer()
        with map_kafka_errors(f"appending to {self.topic}"):  # send() itself failing: nothing left
            future = producer.send(self.topic, key=key.encode("utf-8"), value=value, partition=partition,
                                   headers=STRUCTURED)
        batch = find_batch(producer, future)
        try:
            metadata = future.get(timeout=self._timeout_ms / 1000)
        except (kafka_errors.KafkaError, OSError) as exc:
            raise self._append_failed(producer, batch, exc) from exc
        return Position(metadata.partition, metadata.offset)

    def _append_failed(self, producer: KafkaProducer, batch, exc: BaseException) -> LogUnavailable:
        """Stop the producer (its retries must not land the record after the caller was answered),
        then say whether the record may have landed: OutcomeUnknown if its produce request left,
        LogUnavailable if it never did. See kafka_outcome."""
        if self._producer is producer:
            self._producer = None  # the next append connects a fresh one
        stopped = abandon(producer)
        what = f"appending to {self.topic}: {type(exc).__name__}: {exc}"
        if stopped and not may_have_landed(batch):
            return LogUnavailable(f"{what} (the record was not sent)")
        return OutcomeUnknown(f"{what}; the record was sent and may or may not have landed")

    def append_many(self, items: Sequence[tuple[str, bytes]]) -> list[Position]:
        if not items:
            return []
        count, producer, futures = self.partitions, self._get_bulk_producer(), []
        try:
            for key, value in items:
                raw_key = key.encode("utf-8")
                partition = (murmur2(raw_key) & 0x7FFFFFFF) % count  # key_partition, encoded once
                futures.append(producer.send(self.topic, key=raw_key, value=value, partition=partition,
                                             headers=STRUCTURED))
            # Flushed: no batch waits for its linger. Each wait is bounded by the timeout: a bulk progresses.
            with suppress(kafka_errors.KafkaTimeoutError):
                producer.flush(timeout=self._timeout_ms / 1000)
            return [Position(m.partition, m.offset) for m in (f.get(timeout=self._timeout_ms / 1000) for f in futures)]
        except (kafka_errors.KafkaError, OSError) as exc:
            what = f"appending {len(items)} records to {self.topic}: {type(exc).__name__}: {exc}"
            if not futures:  # the first send was refused: nothing was handed to the producer
                raise LogUnavailable(what) from exc
            self._bulk_producer = None if self._bulk_producer is producer else self._bulk_producer
            abandon(producer)  # stopped: its retries must not land records after the caller was answered
            raise OutcomeUnknown(f"{what}; records were sent and may or may not have landed") from exc

    def bounds(self) -> LogBounds:
        with self._lock, map_kafka_errors(f"reading the bounds of {self.topic}"):
            consumer = self._get_consumer()
            tps = self._topic_partitions()
            first = consumer.beginning_offsets(tps, timeout_ms=self._timeout_ms)
            listed = consumer.end_offsets(tps, timeout_ms=self._timeout_ms)
            # Exact, from the broker as it is now: a high watermark cached from an earlier fetch may
            # belong to a log that is gone (a broker that lost its log, a recreated stream).
            learnt = self._learn_highwaters(consumer, {tp: listed[tp] - 1 for tp in tps if listed[tp] > 0})
            nxt = {tp.partition: 0 if listed[tp] == 0 else max(listed[tp], learnt.get(tp) or 0) for tp in tps}
            return LogBounds({tp.partition: first[tp] for tp in tps}, nxt)

    def read(self, start: Mapping[int, int], end: Mapping[int, int] | None = None) -> Iterator[LogRecord]:
        # Collected under the lock, then yielded: a caller that stops early cannot leave the
        # consumer half-way inside a poll loop.
        with self._lock, map_kafka_errors(f"reading {self.topic}"):
            records = self._read(dict(start), None if end is None else dict(end))
        records.reverse()  # handed out by pop(): a replay holds a record read only until it is decoded
        return (records.pop() for _ in range(len(records)))

    def _read(self, start: dict[int, int], end: dict[int, int] | None) -> list[LogRecord]:
        consumer = self._get_consumer()
        tps = {tp.partition: tp for tp in self._topic_partitions()}
        wanted = [tps[p] for p in start]
        # The high watermarks known before this read: one that has not changed since came from no
        # response of this read, and says nothing about where the log ends now (a black-holed broker).
        known_before = {p: consumer.highwater(tps[p]) for p in start}
        to_end = end is None
        if end is None:
            end = self._current_end(consumer, wanted, start)
        consumer.pause(*[tp for p, tp in tps.items() if p not in start])
        consumer.resume(*wanted)
        targets = {p: end[p] for p in start if start[p] < end[p]}
        for p in targets:
            consumer.seek(tps[p], start[p])  # cheap when unchanged: buffered data at that offset is kept
        out: list[LogRecord] = []
        # Well inside the function's own timeout (30 s by default), so that the client gets a 503.
        deadline = time.monotonic() + min(READ_DEADLINE_S, max(5.0, 2 * self._timeout_ms / 1000))
        while targets:
            if time.monotonic() > deadline:
                # A consumer that cannot fetch (metadata of a topic that was recreated, a broker that
                # restarted) may not recover by itself: start the next read with a fresh one.
                self._drop_consumer()
                raise LogUnavailable(f"reading {self.topic}: the stream did not deliver offsets {targets}")
            batches = consumer.poll(timeout_ms=min(500, self._timeout_ms))
            for p in list(targets):
                tp = tps[p]
                highwater = consumer.highwater(tp)  # None: no response for it yet (a poll may serve others)
                if to_end and highwater is not None:  # exact where ListOffsets was short
                    if highwater < targets[p] and consumer.position(tp) >= highwater and highwater != known_before[p]:
                        # Below the target, and fresh: the target was a high watermark cached from a log
                        # that is gone (a broker that lost it). The log ends here now; waiting cannot help.
                        end[p] = targets[p] = highwater
                    else:
                        end[p] = targets[p] = max(targets[p], highwater)
                for r in batches.get(tp, ()):
                    if start[p] <= r.offset < end[p]:
                        out.append(LogRecord(Position(p, r.offset), r.key, r.value, r.timestamp))
                if consumer.position(tp) >= targets[p]:
                    del targets[p]
        return out

    def records_at(self, offsets: Mapping[int, int]) -> dict[int, LogRecord | None]:
        with self._lock, map_kafka_errors(f"fetching records of {self.topic}"):
            tps = {tp.partition: tp for tp in self._topic_partitions()}
            out: dict[int, LogRecord | None] = {p: None for p in offsets if p not in tps}
            wanted = {p: o for p, o in offsets.items() if p in tps}
            if not wanted:
                return out
            # A consumer of its own, closed after: it knows no high watermark from before (one cached
            # from a log that is gone proves nothing), and seeking the reads' consumer to other offsets
            # left its fetch state behind (a later read of the tail waited for records it never asked for).
            # A fetch of one batch (at most 1 MiB, OCI's record limit): Tansu ignores the partition limit.
            probe = KafkaConsumer(group_id=None, enable_auto_commit=False, auto_offset_reset="none",
                                  fetch_max_wait_ms=50, max_partition_fetch_bytes=PROBE_FETCH_BYTES,
                                  fetch_max_bytes=PROBE_FETCH_BYTES, max_poll_records=1,
                                  allow_auto_create_topics=False, **self._common())
            try:
                probe.assign([tps[p] for p in wanted])
                for p, offset in wanted.items():  # every assigned partition needs a position, or poll() refuses
                    probe.seek(tps[p], offset)
                for p, offset in wanted.items():
                    out[p] = self._fetch_at(probe, tps[p], offset)
            finally:
                probe.close()
            return out

    def _fetch_at(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> LogRecord | None:
        """The record at ``offset``, from fetch responses only: ``None`` once a response says there is
        none (an out-of-range answer, a first record past it, or a high watermark at or below it; the
        consumer is fresh, so every high watermark it knows came from a response to it)."""
        others = [t for t in consumer.assignment() if t != tp]
        consumer.pause(*others)
        consumer.resume(tp)
        consumer.seek(tp, offset)
        deadline = time.monotonic() + min(READ_DEADLINE_S, max(1.0, self._timeout_ms / 1000))
        while time.monotonic() < deadline:
            try:
                batch = consumer.poll(timeout_ms=100).get(tp)
            except kafka_errors.OffsetOutOfRangeError:
                return None  # below the first offset held, or beyond the end
            for r in batch or ():
                if r.offset == offset:
                    return LogRecord(Position(tp.partition, r.offset), r.key, r.value, r.timestamp)
                if r.offset > offset:
                    return None  # a gap: nothing was ever written there
            highwater = consumer.highwater(tp)
            if highwater is not None and highwater <= offset:
                return None  # a response of this fetch: the log ends at or below the offset
        raise LogUnavailable(f"fetching {self.topic} partition {tp.partition} at offset {offset}: no answer")

    def _current_end(self, consumer: KafkaConsumer, wanted: list[TopicPartition],
                     positions: Mapping[int, int]) -> dict[int, int]:
        """The log end of each partition as of now. ListOffsets may be short (Tansu): then the end is
        learnt from a fetch, either the one the read is about to make or a one-record fetch here."""
        listed = consumer.end_offsets(wanted, timeout_ms=self._timeout_ms)
        end = {}
        for tp in wanted:
            listed_end, highwater = listed[tp], consumer.highwater(tp)
            if highwater is not None and highwater >= listed_end:
                end[tp.partition] = highwater  # no batch started after the one that ended at highwater
            elif listed_end > 0 and positions.get(tp.partition, listed_end) >= listed_end:
                end[tp.partition] = max(listed_end, self._learn_highwater(consumer, tp, listed_end - 1) or 0)
            else:
                end[tp.partition] = listed_end  # the read fetches the last batch and extends to its end
        return end

    def _learn_highwater(self, consumer: KafkaConsumer, tp: TopicPartition, offset: int) -> int | None:
        """Fetch the record at ``offset`` (the last one ListOffsets admits to) to read the high
        watermark of the response (or of any response newer than the one cached before)."""
        before = consumer.highwater(tp)
        consumer.pause(*[t for t in consumer.assignment() if t != tp])
        consumer.resume(tp)
        consumer.seek(tp, offset)
        deadline = time.monotonic() + self._timeout_ms / 1000
        while time.monotonic() < deadline:
            if consumer.poll(timeout_ms=100).get(tp):
                return consumer.highwater(tp)
            if (consumer.highwater(tp) or 0) > (before or 0):
                break
        return consumer.highwater(tp)

    def _learn_highwaters(self, consumer: KafkaConsumer, offsets: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Each partition's high watermark from a response to this fetch of the record at its offset,
        all partitions in the same fetches (one after the other, a partition's fetch could wait behind
        the one kafka-python sends ahead for the partition before, at the log's end where nothing
        arrives, until the deadline: issue 24). Partitions with no answer are left out."""
        consumer.pause(*[t for t in consumer.assignment() if t not in offsets])
        consumer.resume(*offsets)
        for tp, offset in offsets.items():
            consumer.seek(tp, offset)
        learnt: dict[TopicPartition, int | None] = {}
        deadline = time.monotonic() + self._timeout_ms / 1000
        while len(learnt) < len(offsets) and time.monotonic() < deadline:
            batches = consumer.poll(timeout_ms=100)
            learnt.update({tp: consumer.highwater(tp) for tp in offsets if tp not in learnt and batches.get(tp)})
        return {tp: highwater for tp, highwater in learnt.items() if highwater is not None}

    def _drop_consumer(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            try:
                consumer.close()
            except kafka_errors.KafkaError:  # best effort: the broker may be gone
                pass

    def close(self) -> None:
        with self._lock:
            for producer in (self._producer, self._bulk_producer):
                if producer is not None:
                    close_producer(producer)
            self._drop_consumer()
            self._producer = self._bulk_producer = None

