"""Read pacing against the real broker behind the front end's read budget (issue 21).

In process (a KafkaLog through the front end, the service's monotonic clock injected): a throttled
instance backs off, answers default reads inside its interval from memory marked stale with their
age, and sends the front end no read for them; a strong read under throttling is right; the episode
is logged once. Through a real FDK instance: ``/health`` shows the episode and the HTTP answer
carries Streamcache-Stale, Streamcache-Data-Age-Ms and Age. Nothing sleeps: the budget's second is
real time, spent waiting for the front end's held answers.
"""

from __future__ import annotations

import logging
import shutil
import tempfile

import orjson
import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService, Limits
from streamcache_local.fn_runner import start_instance
from streamcache_local.kafka_front import start_fronted_broker
from support.clock import Clock

WALL_START = 1_790_000_000.0
BUDGET = 2  # read requests per partition per second: a few catch-ups and the instance is throttled


@pytest.fixture
def budgeted(tmp_path):
    broker, front = start_fronted_broker(read_budget=BUDGET, recycle_s=None, idle_close_s=None, latency_s=0,
                                         tls=False, sasl=None)
    broker.create_topic("t", 3)
    yield broker, front
    front.stop()
    broker.stop()


@pytest.fixture
def instance(budgeted):
    """A service over a KafkaLog through the front end; its monotonic clock is the test's."""
    _broker, front = budgeted
    log = KafkaLog(front.bootstrap, "t", timeout_ms=5000, security=front.client_options())
    mono = Clock(100.0)
    service = CacheService(Replica(log, monotonic=mono), Limits(staleness_ms=1000), clock=Clock(WALL_START))
    yield service, mono, log
    log.close()


def _throttle(service: CacheService, mono: Clock) -> None:
    """Strong reads (a catch-up each) until the front end throttles one; the clock moves with them."""
    for _ in range(30):
        mono.now += 0.01
        service.get("k", strong=True)
        if service.replica.pacer.throttled:
            return
    raise AssertionError("30 catch-ups at a budget of 2 a second, and none was throttled")


def test_a_throttled_instance_backs_off_and_answers_default_reads_stale_with_their_age(budgeted, instance, caplog):
    _broker, front = budgeted
    service, mono, _log = instance
    caplog.set_level(logging.INFO, logger="streamcache.cache.read_pacing")
    service.put("k", b"v1")
    _throttle(service, mono)
    pacer = service.replica.pacer
    assert pacer.interval_s >= 2.0 and pacer.throttled_total >= 1
    reads = sum(front.stats()["read_requests"].values())
    mono.now += 1.5  # beyond the 1 s bound, inside the interval
    result = service.get("k")
    assert result.stale and result.entry.value == b"v1" and 1500 <= result.age_ms < 1600
    assert sum(front.stats()["read_requests"].values()) == reads  # from memory: nothing asked of the broker
    mono.now += pacer.interval_s  # past the interval: it reads the log again
    service.get("k")
    assert sum(front.stats()["read_requests"].values()) > reads
    warnings = [r for r in caplog.records if r.name == "streamcache.cache.read_pacing"]
    assert [r.levelname for r in warnings] == ["WARNING"], [r.getMessage() for r in warnings]  # once, not per read


def test_a_strong_read_under_throttling_sees_every_acknowledged_write(budgeted, instance):
    _broker, front = budgeted
    service, mono, _log = instance
    other_log = KafkaLog(front.bootstrap, "t", timeout_ms=5000, security=front.client_options(), client_id="other")
    try:
        other = CacheService(Replica(other_log), clock=Clock(WALL_START))
        other.put("k", b"old")
        _throttle(service, mono)
        for n in range(3):
            other.put("k", f"new-{n}".encode())
            mono.now += 1.5  # default reads would be stale now; a strong one reads the log
            assert service.get("k", strong=True).entry.value == f"new-{n}".encode()
        assert front.stats()["throttle_ignored"] == 0
    finally:
        other_log.close()


@pytest.fixture
def sockets():
    path = tempfile.mkdtemp(prefix="sc-rb-", dir="/tmp")
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_an_fdk_instance_shows_the_episode_in_health_and_marks_its_answers(budgeted, sockets):
    _broker, front = budgeted
    # A bound of 0: every default read catches up, unless the instance is backing off: then the
    # answer comes from memory at once, without waiting for a second of real time to pass.
    config = {"STREAMCACHE_LOG_URL": f"kafka://{front.bootstrap}/t", **front.security_settings(),
              "STREAMCACHE_STALENESS_MS": "0"}
    instance = start_instance("fn1", sockets, config)
    try:
        call = instance.client.http_call
        assert call("PUT", "/cache/k", b"v1").status == 201
        health = {}
        for _ in range(30):  # strong reads until one is throttled, then a few more (the interval doubles)
            assert call("GET", "/cache/k?consistency=strong").status == 200
            health = orjson.loads(call("GET", "/health").body)["log_reads"]
            if health["throttled"] and health["interval_ms"] >= 3200:  # room for a slow machine below
                break
        assert health["throttled"] and health["since"] and health["throttled_total"] >= 1, health
        assert health["bound_ms"] == 0 and health["episodes"] == 1
        # A default read inside the back-off interval is answered from memory, marked. On a slow
        # machine a read may land past the interval (it then catches up, throttled, and the interval
        # grows): the next ones are inside it. Bounded by the count, not by time.
        for _ in range(20):
            answer = call("GET", "/cache/k")
            headers = {name.lower(): value for name, value in answer.headers}
            assert answer.status == 200 and answer.body == b"v1"
            if headers.get("streamcache-stale") == "true":
                break
        assert headers.get("streamcache-stale") == "true", headers
        interval_ms = orjson.loads(call("GET", "/health").body)["log_reads"]["interval_ms"]
        age_ms = int(headers["streamcache-data-age-ms"])
        assert 0 <= age_ms < max(interval_ms, health["interval_ms"]) and headers["age"] == str(age_ms // 1000)
        for _ in range(20):
            invoked = orjson.loads(instance.client.invoke(orjson.dumps({"operation": "get", "key": "k"})).body)
            if invoked.get("stale"):
                break
        assert invoked["stale"] is True and invoked["data_age_ms"] >= 0, invoked
    finally:
        instance.stop()
