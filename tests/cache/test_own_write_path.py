"""The write path at the stream's floor: an instance applies its own record directly when nothing
lies between what it applied and that record, and reads the log back only when someone else's
records do (or the record is not what it appended). Against the in-memory log and the real Kafka
protocol log (Tansu); reads are counted by wrapping the log, not mocked."""

from __future__ import annotations

import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.adapters.memory_log import MemoryLog
from streamcache.core.errors import RecordError
from streamcache.core.records import IF_ABSENT, Position, if_match
from streamcache.core.table import OutcomeKind
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService


class CountingLog:
    """A real log whose reads are counted (the read-back is what the fast path saves)."""

    def __init__(self, inner) -> None:
        self.inner = inner
        self.reads = 0

    def read(self, start, end=None):
        self.reads += 1
        return self.inner.read(start, end)

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture(params=["memory", "kafka"])
def new_log(request):
    """A factory of logs (one per instance) on one shared stream, memory or Kafka (Tansu)."""
    opened = []
    if request.param == "memory":
        shared = MemoryLog(partitions=3)

        def make():
            return CountingLog(shared)
    else:
        url = request.getfixturevalue("kafka_topic")(3)
        bootstrap, topic = url.removeprefix("kafka://").split("/", 1)

        def make():
            log = KafkaLog(bootstrap, topic)
            opened.append(log)
            return CountingLog(log)
    yield make
    for log in opened:
        log.close()


def _instance(log) -> CacheService:
    return CacheService(Replica(log))


def test_an_own_write_on_a_caught_up_partition_is_applied_without_reading(new_log):
    log = new_log()
    service = _instance(log)
    service.replica.catch_up()  # the cold start: everything before is applied
    reads = log.reads

    created = service.put("k", b"1", "text/plain")
    replaced = service.put("k", b"2", "text/plain", precondition=if_match(created.version))
    refused = service.put("k", b"3", "text/plain", precondition=IF_ABSENT)
    deleted = service.delete("k")

    assert [o.kind for o in (created, replaced, refused, deleted)] == [
        OutcomeKind.CREATED, OutcomeKind.REPLACED, OutcomeKind.PRECONDITION_FAILED, OutcomeKind.DELETED]
    assert refused.version == replaced.version and replaced.version.offset == created.version.offset + 1
    assert log.reads == reads, "the fast path read the log"
    assert (service.replica.own_direct, service.replica.own_read_back) == (4, 0)
    # What it applied is what any replica reading the stream computes.
    fresh = Replica(new_log())
    fresh.catch_up()
    assert dict(fresh.table.items()) == dict(service.replica.table.items())
    assert fresh.table.outcome_for(created.version.partition, _request_of(fresh, created.version)) == created


def _request_of(replica: Replica, position: Position) -> str:
    [record] = list(replica.log.read({position.partition: position.offset}, {position.partition: position.offset + 1}))
    from streamcache.core.records import decode

    return decode(record.value).request_id


def test_foreign_writes_in_between_force_the_read_back_and_decide_the_outcome(new_log):
    mine, theirs = _instance(new_log()), _instance(new_log())
    mine.replica.catch_up()
    first = mine.put("k", b"mine", "text/plain")
    assert mine.replica.own_direct == 1

    other = theirs.put("k", b"theirs", "text/plain")  # lands between my write and my next one
    assert other.version.offset == first.version.offset + 1
    reads = mine.replica.log.reads
    # Conditioned on my own last version, which is no longer current: the foreign record decides.
    outcome = mine.put("k", b"mine again", "text/plain", precondition=if_match(first.version))

    assert outcome.kind is OutcomeKind.PRECONDITION_FAILED and outcome.version == other.version
    assert mine.replica.log.reads == reads + 1 and mine.replica.own_read_back == 1
    assert mine.replica.table.get("k", 0).value == b"theirs"
    # Caught up again by the read-back: the next write goes the fast way.
    assert mine.put("k", b"last", "text/plain", precondition=if_match(other.version)).kind is OutcomeKind.REPLACED
    assert mine.replica.own_direct == 2


def test_a_write_another_partition_received_meanwhile_does_not_force_a_read_back(new_log):
    mine, theirs = _instance(new_log()), _instance(new_log())
    mine.replica.catch_up()
    log = mine.replica.log
    here = "a"
    elsewhere = next(k for k in (f"b{i}" for i in range(100)) if log.partition_for(k) != log.partition_for(here))
    theirs.put(elsewhere, b"x", "text/plain")
    reads = log.reads
    assert mine.put(here, b"1", "text/plain").kind is OutcomeKind.CREATED
    assert log.reads == reads and mine.replica.own_direct == 1


def test_a_record_applied_already_by_a_catch_up_answers_its_outcome_without_reading(new_log):
    log = new_log()
    service = _instance(log)
    replica = service.replica
    from streamcache.core.records import Put, encode

    record = encode(Put("k", b"v", "text/plain", "req-1", 1))
    position = log.append("k", record)
    replica.catch_up()  # another request on this instance caught up past it first
    reads = log.reads
    outcome = replica.apply_own(position, record, "req-1")
    assert outcome.kind is OutcomeKind.CREATED and outcome.version == position and log.reads == reads


def test_a_record_that_does_not_decode_takes_the_read_back_and_is_reported(new_log):
    log = new_log()
    replica = _instance(log).replica
    replica.catch_up()
    position = log.append("k", b"not ours")
    with pytest.raises(RecordError):
        replica.apply_own(position, b"not ours", "req-1")
    assert replica.own_read_back == 1 and replica.positions()[position.partition] == position.offset + 1
