"""One contract for every MutationLog adapter: the in-memory log and the Kafka log on a real Tansu broker."""

from __future__ import annotations

import itertools
import threading

import pytest
from kafka import KafkaProducer

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.errors import LogUnavailable
from streamcache.core.records import Position
from streamcache_local.broker import start_broker

_names = itertools.count()


@pytest.fixture(params=["memory", "kafka"])
def make_log(request):
    """A factory of fresh logs (``partitions`` each) for the adapter under test; all closed afterwards."""
    opened = []

    def make(partitions: int = 3):
        if request.param == "memory":
            log = MemoryLog(partitions)
        else:
            url = request.getfixturevalue("kafka_topic")(partitions)
            bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
            log = KafkaLog(bootstrap, topic)
        opened.append(log)
        return log

    make.kind = request.param
    yield make
    for log in opened:
        log.close()


def _same_log_again(log):
    """A second client of the same log (another instance), as the adapter would open it."""
    if isinstance(log, MemoryLog):
        return log
    return KafkaLog(log.bootstrap, log.topic)


def test_append_returns_increasing_positions_per_partition(make_log):
    log = make_log(3)
    positions = [log.append(f"key-{i}", b"v%d" % i) for i in range(30)]
    for partition in range(3):
        offsets = [p.offset for p in positions if p.partition == partition]
        assert offsets == list(range(len(offsets)))
    assert {p.partition for p in positions} == {0, 1, 2}


def test_a_key_always_goes_to_its_partition(make_log):
    log = make_log(3)
    for key in ["a", "user/42", "ключ", "x" * 300]:
        expected = log.partition_for(key)
        assert {log.append(key, b"1").partition for _ in range(3)} == {expected}


def test_memory_and_kafka_partition_keys_alike(make_log):
    log = make_log(5)
    reference = MemoryLog(5)
    keys = [f"k{i}" for i in range(50)]
    assert [log.partition_for(k) for k in keys] == [reference.partition_for(k) for k in keys]


def test_read_returns_records_in_offset_order_with_keys_values_and_timestamps(make_log):
    log = make_log(2)
    written = {log.append(f"k{i}", b"value-%d" % i): (f"k{i}".encode(), b"value-%d" % i) for i in range(20)}
    got = list(log.read({0: 0, 1: 0}))
    assert {r.position: (r.key, r.value) for r in got} == written
    for partition in (0, 1):
        offsets = [r.position.offset for r in got if r.position.partition == partition]
        assert offsets == sorted(offsets)
    assert all(r.timestamp_ms > 1_600_000_000_000 for r in got)


def test_read_honours_start_and_end(make_log):
    log = make_log(1)
    for i in range(10):
        log.append("k", b"%d" % i)
    assert [r.value for r in log.read({0: 3}, {0: 6})] == [b"3", b"4", b"5"]
    assert [r.value for r in log.read({0: 8})] == [b"8", b"9"]
    assert list(log.read({0: 10})) == []


def test_read_of_one_partition_leaves_the_others_alone(make_log):
    log = make_log(3)
    positions = [log.append(f"k{i}", b"x") for i in range(12)]
    target = positions[-1]
    got = list(log.read({target.partition: 0}))
    assert {r.position.partition for r in got} == {target.partition}
    assert got[-1].position == target
    # and a later full read still sees everything
    assert len(list(log.read({0: 0, 1: 0, 2: 0}))) == 12


def test_bounds_cover_every_partition(make_log):
    log = make_log(3)
    assert log.bounds().next == {0: 0, 1: 0, 2: 0}
    positions = [log.append(f"k{i}", b"x") for i in range(9)]
    bounds = log.bounds()
    assert bounds.first == {0: 0, 1: 0, 2: 0}
    for partition in range(3):
        assert bounds.next[partition] == sum(1 for p in positions if p.partition == partition)


def test_another_client_sees_every_acknowledged_append(make_log):
    log = make_log(3)
    other = _same_log_again(log)
    try:
        acked = [log.append(f"k{i}", b"x") for i in range(15)]
        seen = {r.position for r in other.read({0: 0, 1: 0, 2: 0})}
        assert set(acked) <= seen
    finally:
        if other is not log:
            other.close()


def test_concurrent_appends_all_land_once(make_log):
    log = make_log(3)
    results: list[Position] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        for i in range(25):
            p = log.append(f"w{n}-{i}", b"x")
            with lock:
                results.append(p)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert len(results) == len(set(results)) == 100
    assert len(list(log.read({0: 0, 1: 0, 2: 0}))) == 100


def test_read_to_the_end_includes_every_record_of_a_batched_write(make_log, broker):
    """Tansu's ListOffsets answers the last batch's base offset + 1; the end must still be exact."""
    log = make_log(1)
    if make_log.kind == "memory":
        for i in range(10):
            log.append("k", b"%d" % i)
    else:
        producer = KafkaProducer(bootstrap_servers=log.bootstrap, linger_ms=100, enable_idempotence=False)
        futures = [producer.send(log.topic, key=b"k", value=b"%d" % i, partition=0) for i in range(10)]
        producer.flush()
        assert [f.get(timeout=10).offset for f in futures] == list(range(10))
        producer.close()
    fresh = _same_log_again(log)
    try:
        assert fresh.bounds().next == {0: 10}
        assert [r.value for r in fresh.read({0: 0})] == [b"%d" % i for i in range(10)]
        assert [r.value for r in fresh.read({0: 1})][-1] == b"9"
        # a client that starts past the short ListOffsets answer still finds the tail
        late = _same_log_again(log)
        assert [r.value for r in late.read({0: 1})] == [b"%d" % i for i in range(1, 10)]
        if late is not log:
            late.close()
    finally:
        if fresh is not log:
            fresh.close()


def test_an_unreachable_log_raises_log_unavailable(make_log):
    if make_log.kind == "memory":
        log = make_log(1)
        log.available = False
    else:
        with start_broker() as doomed:
            doomed.create_topic("gone", 1)
            log = KafkaLog(doomed.bootstrap, "gone", timeout_ms=1500)
            log.append("k", b"before")
            log.append_many([("k", b"before")])  # the bulk producer is connected too
        # the broker is stopped now
    with pytest.raises(LogUnavailable):
        log.append("k", b"x")
    with pytest.raises(LogUnavailable):
        log.append_many([("k", b"x"), ("k", b"y")])
    with pytest.raises(LogUnavailable):
        list(log.read({0: 0}))
    log.close()


def test_append_many_returns_positions_in_input_order_and_keeps_the_order_of_a_key(make_log):
    log = make_log(3)
    items = [(f"k{i % 7}", b"v%d" % i) for i in range(500)]
    positions = log.append_many(items)
    assert len(positions) == len(set(positions)) == 500
    assert all(p.partition == log.partition_for(key) for p, (key, _) in zip(positions, items))
    for key in {k for k, _ in items}:
        offsets = [p.offset for p, (k, _) in zip(positions, items) if k == key]
        assert offsets == sorted(offsets)  # a key's records land in the order given
    read_back = {r.position: (r.key.decode(), r.value) for r in log.read({0: 0, 1: 0, 2: 0})}
    assert read_back == dict(zip(positions, items))


def test_append_many_mixes_with_single_appends_and_accepts_nothing(make_log):
    log = make_log(2)
    assert log.append_many([]) == []
    first = log.append("a", b"1")
    batch = log.append_many([("a", b"2"), ("a", b"3")])
    last = log.append("a", b"4")
    assert [first.offset, *(p.offset for p in batch), last.offset] == [0, 1, 2, 3]
    assert [r.value for r in log.read({first.partition: 0})] == [b"1", b"2", b"3", b"4"]


def test_records_at_answers_from_the_log_itself(make_log):
    log = make_log(2)
    positions = [log.append("a", b"%d" % i) for i in range(5)]
    p = positions[0].partition
    other = 1 - p
    found = log.records_at({p: 3, other: 0})
    assert found[p] is not None and found[p].position == Position(p, 3) and found[p].value == b"3"
    assert found[other] is None  # an empty partition holds nothing at 0
    assert log.records_at({p: 5}) == {p: None}  # the log ends there
    assert log.records_at({p: 500}) == {p: None}
    assert log.records_at({7: 0}) == {7: None}  # no such partition
    # a client that read the end before asks again: the answer is the log's, not a cached one
    assert [r.value for r in log.read({p: 0})] == [b"0", b"1", b"2", b"3", b"4"]
    assert log.records_at({p: 4})[p].value == b"4"
    assert log.records_at({p: 0, other: 0})[p].value == b"0"
    # reads go on as before after a fetch at an offset
    log.append("a", b"5")
    assert [r.value for r in log.read({p: 2})] == [b"2", b"3", b"4", b"5"]


def test_records_at_finds_a_record_in_the_middle_of_a_big_batch(make_log):
    """The record a table applied last is often inside a batch a bulk producer wrote (imports, a
    pipelined batch, a tail of overwrites): a fetch at its offset answers the whole batch, from its
    first record, and the record asked for must be found in it (issue 24: a cold start once waited
    out its deadline on such a check)."""
    log = make_log(1)
    values = [b"%05d-" % i + b"x" * 400 for i in range(3000)]  # ~1.2 MB: several 256 KiB batches
    positions = log.append_many([("k", v) for v in values])
    assert [p.offset for p in positions] == list(range(3000))
    for offset in (1, 700, 1499, 2998, 2999):
        found = log.records_at({0: offset})[0]
        assert found is not None and found.position == Position(0, offset) and found.value == values[offset]
    assert log.records_at({0: 3000}) == {0: None}


def test_bounds_after_reading_to_the_end_are_exact_on_every_partition(make_log):
    """Each partition's last batch holds many records (ListOffsets on Tansu answers its first one
    plus one): after a read to the end, as a cold start leaves the consumer, the bounds are still
    every partition's true end, the last partition's too (issue 24: its fetch waited behind the one
    sent ahead for the partition before it, and the short answer came back)."""
    log = make_log(3)
    positions = log.append_many([(f"key{i}", b"%05d-" % i + b"x" * 300) for i in range(6000)])
    ends = {p: 0 for p in range(3)}
    for position in positions:
        ends[position.partition] = max(ends[position.partition], position.offset + 1)
    for _ in range(3):
        assert len(list(log.read(dict.fromkeys(ends, 0)))) == 6000
        assert log.bounds().next == ends
        assert [r.position.offset for r in log.records_at({p: e - 1 for p, e in ends.items()}).values()] == \
            [e - 1 for e in ends.values()]


def test_records_at_after_the_broker_lost_its_log_sees_the_new_log():
    """A Kafka client that read a longer log (its cached high watermark says 5) is told the truth
    after the local broker restarted empty and took one new record: the record at 3 is gone, the one
    at 0 is the new log's. (The memory log cannot lose its records under a client.)"""
    with start_broker() as first:
        first.create_topic("t", 1)
        log = KafkaLog(first.bootstrap, "t", timeout_ms=2000)
        for i in range(5):
            log.append("k", b"old%d" % i)
        assert len(list(log.read({0: 0}))) == 5
        port = int(first.bootstrap.rsplit(":", 1)[1])
    with start_broker(port=port) as second:
        second.create_topic("t", 1)
        writer = KafkaLog(second.bootstrap, "t")
        writer.append("k", b"new0")
        writer.close()
        try:
            assert log.records_at({0: 3}) == {0: None}
            assert log.records_at({0: 0})[0].value == b"new0"
        finally:
            log.close()


def test_the_partition_count_placement_uses_stays_and_the_current_one_is_asked_for(make_log, broker):
    """Kafka allows adding partitions (Tansu does not implement CreatePartitions: the topic is
    recreated with more, which changes the count as seen by a running client all the same). The
    count keys are placed with stays what the process learnt; ``current_partitions`` asks the log."""
    log = make_log(2)
    keys = [f"k{i}" for i in range(50)]
    placed = [log.partition_for(k) for k in keys]
    assert log.current_partitions() == log.partitions == 2
    if make_log.kind == "memory":
        log.add_partitions(4)
    else:
        from kafka.admin import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=log.bootstrap)
        try:
            admin.delete_topics([log.topic])
        finally:
            admin.close()
        broker.create_topic(log.topic, 4)
    assert log.current_partitions() == 4
    assert log.partitions == 2 and [log.partition_for(k) for k in keys] == placed
