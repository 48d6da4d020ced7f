"""A failed append tells "not sent" (LogUnavailable: nothing landed, safe to retry) from "sent, answer
lost" (OutcomeUnknown), against the real broker behind the fault proxy; and the service turns an
unknown outcome into the record's real outcome when it finds the record on the stream, or into
OutcomeUnknown when it cannot. Also pins the kafka-python internals kafka_outcome reads."""

from __future__ import annotations

import pytest
from kafka import KafkaProducer

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.adapters.kafka_outcome import find_batch
from streamcache.core.errors import LogUnavailable, OutcomeUnknown
from streamcache.core.records import IF_ABSENT, decode
from streamcache.core.table import OutcomeKind
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService
from streamcache_local.broker import start_broker
from support.fault_proxy import FETCH, LIST_OFFSETS, PRODUCE, start_proxied_broker

TIMEOUT_MS = 1000


@pytest.fixture
def proxied():
    broker, proxy = start_proxied_broker()
    try:
        broker.create_topic("t", 3)
        yield broker, proxy
    finally:
        proxy.stop()
        broker.stop()


@pytest.fixture
def log(proxied):
    broker, _ = proxied
    log = KafkaLog(broker.bootstrap, "t", timeout_ms=TIMEOUT_MS)
    yield log
    log.close()


def _on_stream(log: KafkaLog, key: str) -> list[bytes]:
    partition = log.partition_for(key)
    return [r.value for r in log.read({partition: 0}) if r.key == key.encode()]


def test_the_internals_kafka_outcome_reads_are_there(proxied):
    broker, _ = proxied
    producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all", linger_ms=0)
    try:
        future = producer.send("t", b"v", key=b"k", partition=0)
        batch = find_batch(producer, future)
        assert batch is not None, "kafka-python no longer keeps batches where kafka_outcome looks"
        future.get(timeout=5)
        assert batch.drained is not None and batch.attempts == 0
    finally:
        producer.close()


def test_a_lost_answer_that_the_producer_retries_lands_twice_and_answers(log, proxied):
    _, proxy = proxied
    proxy.drop_answers(PRODUCE, count=1)
    position = log.append("k", b"once")
    assert proxy.cuts == 1
    assert _on_stream(log, "k") == [b"once", b"once"]  # the retry: records carry request ids for this
    assert position.offset == 1


def test_answers_lost_every_time_are_an_unknown_outcome_and_the_record_did_land(log, proxied):
    _, proxy = proxied
    log.append("warm", b"up")
    proxy.drop_answers(PRODUCE, count=100)
    with pytest.raises(OutcomeUnknown):
        log.append("k", b"lost answers")
    proxy.clear()
    assert b"lost answers" in _on_stream(log, "k")  # "unknown" was honest: here it landed


def test_a_record_that_never_left_is_unavailable_not_unknown():
    # No proxy here: a proxy would accept the connection and take the request (then it was sent).
    broker = start_broker()
    log = KafkaLog(broker.bootstrap, "t", timeout_ms=TIMEOUT_MS)
    try:
        broker.create_topic("t", 3)
        log.append("warm", b"up")
        broker.stop()  # the connection breaks and cannot be made again: the record stays in the producer
        with pytest.raises(LogUnavailable) as raised:
            log.append("k", b"never sent")
        assert not isinstance(raised.value, OutcomeUnknown), raised.value
        assert "not sent" in str(raised.value)
    finally:
        log.close()
        broker.stop()


def _service(log: KafkaLog) -> CacheService:
    return CacheService(Replica(log))


def test_the_service_finds_a_record_whose_answer_was_lost_and_answers_its_outcome(log, proxied):
    _, proxy = proxied
    service = _service(log)
    service.replica.catch_up()
    proxy.drop_answers(PRODUCE, count=100)
    outcome = service.put("k", b"v", "text/plain", precondition=IF_ABSENT)
    # Landed several times (each retry); the first copy decided, in log order, for every replica.
    assert outcome.kind is OutcomeKind.CREATED
    copies = [decode(v) for v in _on_stream(log, "k")]
    assert len(copies) >= 2 and len({c.request_id for c in copies}) == 1
    assert outcome.version.offset == 0


def test_the_service_answers_outcome_unknown_when_the_stream_cannot_tell(log, proxied):
    _, proxy = proxied
    service = _service(log)
    service.replica.catch_up()
    proxy.drop_answers(PRODUCE, count=100)
    proxy.drop_answers(FETCH, count=100)  # and the look for it fails too
    proxy.drop_answers(LIST_OFFSETS, count=100)
    with pytest.raises(OutcomeUnknown):
        service.put("k", b"v", "text/plain", precondition=IF_ABSENT)
