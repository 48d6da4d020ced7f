"""The records on the stream as the official CloudEvents SDK's Kafka binding reads them (structured
content mode, told by the ``content-type`` header), and records of other writers, with or without
that header, read alike by every replica."""

from __future__ import annotations

import uuid

from cloudevents.core.bindings.kafka import KafkaMessage, from_kafka_event, from_structured_event
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streamcache.core import records
from streamcache.core.records import Put
from streamcache.core.table import Table
from streamcache.replay.fold import apply_records
from streamcache.core.value_refs import REF_CONTENT_TYPE, ref_for

STRUCTURED = "application/cloudevents+json"


def raw_records(bootstrap: str, topic: str, partitions: int) -> list:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, consumer_timeout_ms=3000)
    try:
        consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
        consumer.seek_to_beginning()
        return list(consumer)
    finally:
        consumer.close()


def test_every_record_says_it_is_a_structured_cloudevent_and_the_sdk_reads_it(stream):
    url, log = stream
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    one = Put("user/1", b'{"name":"Ada"}', "application/json", uuid.uuid4().hex, 1_700_000_000_000)
    many = [Put(f"bulk/{n}", f"v{n}".encode(), "text/plain", uuid.uuid4().hex, 1_700_000_000_001) for n in range(5)]
    log.append(one.key, records.encode(one))
    log.append_many([(put.key, records.encode(put)) for put in many])

    seen = raw_records(bootstrap, topic, log.partitions)
    assert len(seen) == 6
    for record in seen:
        headers = {name: value for name, value in record.headers}
        assert headers.get("content-type") == STRUCTURED.encode()  # the binding's structured-mode marker
        message = KafkaMessage(headers=headers, key=record.key, value=record.value)
        event = from_kafka_event(message)  # detects the mode from the headers, as the SDK's readers do
        assert event.get_type() == "io.streamcache.put.v1" and event.get_specversion() == "1.0"
        assert event.get_attributes()["partitionkey"] == record.key.decode() == event.get_subject()
        ours = records.decode(record.value)
        assert (event.get_id(), event.get_subject()) == (ours.request_id, ours.key)
        assert event.get_datacontenttype() == ours.content_type
        assert from_structured_event(message).get_id() == ours.request_id


def test_records_of_other_writers_read_alike_with_or_without_the_header(stream):
    url, log = stream
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for n, headers in enumerate(([], [("content-type", STRUCTURED.encode())])):
            put = Put("same-key", f"v{n}".encode(), "text/plain", uuid.uuid4().hex, 1_700_000_000_000 + n)
            partition = log.partition_for(put.key)  # where this key lives, as our writers put it
            producer.send(topic, key=b"same-key", value=records.encode(put), partition=partition,
                          headers=headers).get(timeout=10)
    finally:
        producer.close()
    table = Table()
    bounds = log.bounds()
    stats = apply_records(table, log.read(dict(bounds.first), dict(bounds.next)), log.partition_for)
    assert (stats.applied, stats.skipped) == (2, 0)
    assert table.get("same-key", 1_700_000_000_010).value == b"v1"


def test_the_sdk_reads_a_big_values_dataref_as_extension_attributes(stream):
    """A big value's record (core/value_refs.py) has no data: the SDK sees the dataref extension, with
    datasize and datadigest, and the value's own content type."""
    url, log = stream
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    ref = ref_for(topic, b"\x89PNG" * 100_000, "image/png")
    put = Put("pictures/cat", ref.encode(), REF_CONTENT_TYPE, uuid.uuid4().hex, 1_700_000_000_000)
    log.append(put.key, records.encode(put))
    [record] = raw_records(bootstrap, topic, log.partitions)
    event = from_kafka_event(KafkaMessage(headers=dict(record.headers), key=record.key, value=record.value))
    attributes = event.get_attributes()
    assert (attributes["dataref"], attributes["datasize"], attributes["datadigest"]) == (ref.name, 400_000, ref.digest)
    assert event.get_datacontenttype() == "image/png" and event.get_data() is None
