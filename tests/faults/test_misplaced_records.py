"""A record another producer put in another partition than its key's (kcat's default partitioner, a
Kafka key other than the CloudEvents subject) must not split the replicas: every instance, a fresh
one, and the compactor skip it alike, count it and say so in /health."""

from __future__ import annotations

import uuid

import orjson
from kafka import KafkaProducer

from streamcache.adapters.directory_store import DirectoryStore
from streamcache.cache.app import CacheApp
from streamcache.cache.changes import changes
from streamcache.cache.http_api import HttpRequest
from streamcache.client.subscribe import Subscription
from streamcache.compactor.compaction import compact
from streamcache.core import records
from streamcache.core.records import Put
from streamcache.settings import Settings


def get(app: CacheApp, key: str) -> bytes:
    answer = app.handle(HttpRequest("GET", f"/cache/{key}?consistency=strong", {}, b""), 10)
    assert answer.status == 200, answer
    return answer.body


def health(app: CacheApp) -> dict:
    return orjson.loads(app.handle(HttpRequest("GET", "/health", {}, b""), 10).body)


def test_a_record_in_another_partition_than_its_keys_is_skipped_alike_everywhere(kafka_topic, tmp_path):
    url = kafka_topic(3)
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    settings = dict(log_url=url, snapshot_url=str(tmp_path / "snapshots"), stream_id=topic)
    a, b = CacheApp(Settings(**settings, instance_id="a")), CacheApp(Settings(**settings, instance_id="b"))
    put = lambda app, value: app.handle(HttpRequest("PUT", "/cache/victim", {}, value), 10).status
    assert put(a, b"v1") == 201
    own = a.replica.log.partition_for("victim")
    elsewhere = (own + 1) % 3

    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    try:
        for partition, key in ((elsewhere, b"victim"), (own, b"another-kafka-key")):
            mutation = Put("victim", b"from " + key, "text/plain", uuid.uuid4().hex, 1_800_000_000_000)
            producer.send(topic, key=key, value=records.encode(mutation), partition=partition).get(timeout=10)
    finally:
        producer.close()
    # The record in the key's own partition counts (the subject is the key, whatever the Kafka key);
    # the one in another partition never does, whoever reads it and in whatever order.
    assert get(a, "victim") == get(b, "victim") == b"from another-kafka-key"
    assert put(b, b"v2") == 200
    assert get(a, "victim") == get(b, "victim") == b"v2"

    assert compact(b.replica.log, DirectoryStore(tmp_path / "snapshots"), topic, 3).outcome.value == "written"
    from_snapshot = CacheApp(Settings(**settings, instance_id="from-snapshot"))
    replaying = CacheApp(Settings(log_url=url, stream_id=topic, instance_id="replaying"))
    assert get(from_snapshot, "victim") == get(replaying, "victim") == b"v2"
    for app in (a, b, replaying):
        status = health(app)
        assert status["records_misplaced"] == 1 and status["records_skipped"] == 1, status

    # The change feeds show what the instances applied: neither the Kafka subscriber nor /changes
    # lists the misplaced record.
    with Subscription(bootstrap, topic, start="earliest") as sub:
        seen: list = []
        for _ in range(40):  # v1, the two foreign-produced records, v2: 4 records in all
            if len(seen) + sub.skipped >= 4:
                break
            seen += sub.poll(timeout_ms=500)
    assert [e.mutation.value for e in seen] == [b"v1", b"from another-kafka-key", b"v2"] and sub.skipped == 1
    feed = changes(a.replica.log, "earliest")["changes"]
    assert [c["event"]["data"] for c in feed] == ["v1", "from another-kafka-key", "v2"]
