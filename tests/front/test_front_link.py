"""The broker link as OCI's front end runs it, through the real broker: the read budget throttles
the excess the Kafka way (a delayed answer with throttle_time_ms) and kafka-python honours it;
recycled, idle-closed and silently dropped connections cost a thawed client no request timeout."""

from __future__ import annotations

import logging
import time

import pytest

from streamcache.adapters.kafka_log import CONNECTIONS_MAX_IDLE_MS, KafkaLog
from streamcache_local.kafka_front import start_fronted_broker
from support.waiting import wait_for

TIMEOUT_MS = 3000  # the clients' request timeout in these tests: every bound below is well under it


@pytest.fixture
def front_with(tmp_path):
    """A factory: a fresh broker behind a front end with the given options, a 3-partition topic
    ``t`` on it, and a KafkaLog connected through it."""
    started = []

    def make(**options):
        broker, front = start_fronted_broker(tls_dir=tmp_path / f"tls{len(started)}", **options)
        started.append((broker, front))
        broker.create_topic("t", 3)
        log = KafkaLog(front.bootstrap, "t", timeout_ms=TIMEOUT_MS, security=front.client_options(),
                       idle_ms=TIMEOUT_MS + 500)
        started.append(log)
        return front, log

    yield make
    for item in reversed(started):
        if isinstance(item, KafkaLog):
            item.close()
        else:
            item[1].stop()
            item[0].stop()


def _timed(call) -> float:
    started = time.monotonic()
    call()
    return time.monotonic() - started


def test_the_read_budget_throttles_the_excess_and_kafka_python_honours_it(front_with, caplog):
    front, log = front_with(read_budget=5, recycle_s=None, idle_close_s=None, latency_s=0)
    log.append("k", b"v")
    front.reset_stats()
    caplog.set_level(logging.WARNING, logger="kafka")
    throttled_before = log.throttled_responses
    started = time.monotonic()
    for _ in range(8):  # each read: a ListOffsets and a Fetch of every partition
        assert [r.value for r in log.read({0: 0, 1: 0, 2: 0})] == [b"v"]
    took = time.monotonic() - started
    stats = front.stats()
    assert stats["throttled"] > 0 and stats["throttle_ms_max"] > 0
    assert all(count <= 5 for count in stats["reads_per_s_peak"].values()), stats["reads_per_s_peak"]
    assert all(count >= 16 for count in stats["read_requests"].values())  # at least 2 a read, every partition
    assert took > 2.0  # 16+ read requests a partition at 5 a second
    assert stats["throttle_ignored"] == 0  # no request came while the client was told to wait
    # kafka-python's line per throttled answer is counted (the replica paces its reads by the count)
    # and dropped: the replica logs an episode once, where a fleet would write a line per request.
    assert log.throttled_responses - throttled_before == stats["throttled"]
    assert not any("throttled by broker" in record.getMessage() for record in caplog.records)


def test_without_a_budget_nothing_is_throttled_and_reads_are_counted(front_with):
    front, log = front_with(read_budget=None, recycle_s=None, idle_close_s=None, latency_s=0)
    log.append("k", b"v")
    for _ in range(12):
        list(log.read({0: 0, 1: 0, 2: 0}))
    stats = front.stats()
    assert stats["throttled"] == 0 and max(stats["reads_per_s_peak"].values()) > 5


def test_a_thawed_client_does_not_wait_for_connections_that_died_silently(front_with):
    """A NAT or front end that forgot the connections while the instance was frozen tells nobody.
    The client closes connections idle longer than its limit itself, before using them: the first
    append and read cost a reconnect, not the request timeout (with kafka-python's 9 minutes they
    waited the full timeout and the append ended OutcomeUnknown)."""
    front, log = front_with(read_budget=None, recycle_s=None, idle_close_s=None)
    log.append("k", b"v")
    list(log.read({0: 0, 1: 0, 2: 0}))
    assert front.silence_all() >= 2  # the producer's and the consumer's connections
    time.sleep((TIMEOUT_MS + 800) / 1000)  # the time frozen: longer than the clients' idle limit
    assert _timed(lambda: log.append("k", b"w")) < 0.75
    assert _timed(lambda: list(log.read({0: 0, 1: 0, 2: 0}))) < 0.75
    assert 25_000 > CONNECTIONS_MAX_IDLE_MS > TIMEOUT_MS  # the product's limit: under OCI's 30 s


def test_a_client_reconnects_at_once_after_the_front_end_closed_everything(front_with):
    front, log = front_with(read_budget=None, recycle_s=None, idle_close_s=None)
    log.append("k", b"v")
    list(log.read({0: 0, 1: 0, 2: 0}))
    for _ in range(3):
        assert front.close_all() >= 1
        assert _timed(lambda: log.append("k", b"w")) < 1.0
        front.close_all()
        assert _timed(lambda: list(log.read({0: 0, 1: 0, 2: 0}))) < 1.0
        front.close_all()
        assert _timed(log.bounds) < 1.0


def test_recycled_and_idle_closed_connections_cost_no_timeout(front_with):
    front, log = front_with(read_budget=None, recycle_s=(0.2, 0.4), idle_close_s=0.3)
    worst = 0.0
    deadline = time.monotonic() + 1.5
    while time.monotonic() < deadline:  # busy: connections are recycled under the client
        worst = max(worst, _timed(lambda: log.append("k", b"v")), _timed(lambda: list(log.read({0: 0}))))
    wait_for(lambda: front.stats()["idle_closed"] > 0, timeout_s=5, what="an idle connection closed")
    worst = max(worst, _timed(lambda: log.append("k", b"w")), _timed(lambda: list(log.read({0: 0, 1: 0, 2: 0}))))
    stats = front.stats()
    assert stats["recycled"] > 0 and stats["idle_closed"] > 0
    assert worst < 0.75, worst
