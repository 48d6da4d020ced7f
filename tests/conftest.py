"""Shared fixtures: a real Kafka-protocol broker (Tansu) per test session, a fresh topic per test,
and an environment free of the developer's STREAMCACHE_* variables."""

from __future__ import annotations

import itertools
import logging
import os

import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache_local.broker import LocalBroker, start_broker

_topic_numbers = itertools.count()


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for name in list(os.environ):
        if name.startswith("STREAMCACHE_"):
            monkeypatch.delenv(name)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))  # the CLI's session file: per test


@pytest.fixture(scope="session")
def broker():
    """One Tansu broker for the whole test session (starting one takes ~20 ms, but topics are cheap)."""
    with start_broker() as running:
        yield running
        # Clients that outlive their test (daemon threads) reconnect to the stopped broker at exit and
        # kafka-python logs each attempt: keep that noise out of the end of the test report.
        logging.getLogger("kafka").setLevel(logging.CRITICAL)


@pytest.fixture
def kafka_topic(broker: LocalBroker, request):
    """A factory: ``kafka_topic(partitions=3)`` creates a fresh topic and returns its log URL."""

    def make(partitions: int = 3) -> str:
        name = f"t{next(_topic_numbers)}-{request.node.name[:40]}".replace("[", "-").replace("]", "")
        name = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
        broker.create_topic(name, partitions)
        return broker.log_url(name)

    return make


@pytest.fixture
def stream(kafka_topic):
    """A fresh 3-partition topic: ``(log URL, KafkaLog on it)``; the log is closed afterwards."""
    url = kafka_topic(3)
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    log = KafkaLog(bootstrap, topic)
    yield url, log
    log.close()
