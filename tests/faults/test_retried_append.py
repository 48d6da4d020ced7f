"""An append that timed out and was retried lands twice: the producer's first attempt did reach
the broker, the retry too. Records carry request ids, so the second copy must change nothing,
in every replica, even when another write to the key landed in between; and the writer's answer
is the outcome of the first copy.

The fault is injected at the adapter, with the real codec and a real broker: the writer's log
appends the same encoded bytes twice (what a producer retry does) and answers the second
position (the retry's acknowledgement). The readers are the FDK instances of a running stack
and a freshly started one.
"""

from __future__ import annotations

import shutil
import tempfile

import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core.records import IF_ABSENT
from streamcache.core.table import OutcomeKind
from streamcache.cache.replica import Replica
from streamcache.cache.service import CacheService
from streamcache.settings import Settings
from streamcache_local.fn_runner import start_instance
from topic_reader import read_topic


class RetryingLog:
    """A real log whose appends land twice, as a retried produce does; ``between`` runs after the
    first copy landed (another writer getting in before the retry)."""

    def __init__(self, inner: KafkaLog) -> None:
        self.inner = inner
        self.between = lambda: None
        self.landed: list = []

    def append(self, key: str, value: bytes):
        first = self.inner.append(key, value)
        self.between()
        second = self.inner.append(key, value)
        self.landed.append((first, second))
        return second  # the retry's acknowledgement is the one the writer sees

    def __getattr__(self, name):
        return getattr(self.inner, name)


@pytest.fixture
def writer(broker, topic):
    settings = Settings(log_url=broker.log_url(topic), instance_id="retrying-writer")
    log = RetryingLog(settings.open_log())
    yield CacheService(Replica(log)), log
    log.inner.close()


def _everyone_reads(stack, broker, topic, key: str) -> set[tuple[int, bytes, str | None]]:
    """What every instance of the stack, and a freshly started one, answers to a strong read."""
    socket_dir = tempfile.mkdtemp(prefix="sc-r-", dir="/tmp")
    fresh = start_instance("fresh", socket_dir, {"STREAMCACHE_LOG_URL": broker.log_url(topic)})
    try:
        answers = [i.client.http_call("GET", f"/cache/{key}?consistency=strong") for i in [*stack.instances, fresh]]
    finally:
        fresh.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
    return {(a.status, a.body, a.header("etag")) for a in answers}


def test_a_retried_put_lands_once_even_after_another_write_got_in_between(writer, stack_on, broker, topic):
    service, log = writer
    stack = stack_on(topic, instances=2)
    other = stack.instances[0]
    log.between = lambda: other.client.http_call("PUT", "/cache/dup", b"second", {"Content-Type": "text/plain"})

    outcome = service.put("dup", b"first", "text/plain")
    (first, second), = log.landed
    assert first.partition == second.partition and second.offset >= first.offset + 2
    assert (outcome.kind, outcome.version) == (OutcomeKind.CREATED, first)  # the first copy's outcome

    second_write = f'"{first.partition}-{first.offset + 1}"'
    assert _everyone_reads(stack, broker, topic, "dup") == {(200, b"second", second_write)}
    copies = [e for e in read_topic(broker.bootstrap, topic, 3) if e["subject"] == "dup" and e.get("data") == "first"]
    assert len(copies) == 2 and copies[0]["id"] == copies[1]["id"]  # the fault really was on the stream


def test_a_retried_create_if_absent_answers_created_not_412(writer, stack_on, broker, topic):
    service, log = writer
    stack = stack_on(topic, instances=2)
    outcome = service.put("once", b"v", "text/plain", precondition=IF_ABSENT)
    (first, _), = log.landed
    # Applied again, the copy would fail its precondition: the answer is the first outcome.
    assert (outcome.kind, outcome.version) == (OutcomeKind.CREATED, first)
    assert _everyone_reads(stack, broker, topic, "once") == {(200, b"v", f'"{first}"')}


def test_a_retried_delete_does_not_remove_a_value_written_after_it(writer, stack_on, broker, topic):
    service, log = writer
    stack = stack_on(topic, instances=2)
    other = stack.instances[1]
    assert other.client.http_call("PUT", "/cache/gone", b"v1").status == 201
    log.between = lambda: other.client.http_call("PUT", "/cache/gone", b"v2", {"Content-Type": "text/plain"})
    outcome = service.delete("gone")
    assert outcome.kind is OutcomeKind.DELETED
    (first, _), = log.landed
    assert _everyone_reads(stack, broker, topic, "gone") == {(200, b"v2", f'"{first.partition}-{first.offset + 1}"')}
