"""Fixtures of the front-end tests: a Tansu broker behind the local OCI-like front end
(streamcache_local.kafka_front), a fresh topic on it."""

from __future__ import annotations

import uuid

import pytest

from streamcache_local.kafka_front import start_fronted_broker

USER, PASSWORD = "streamcache", "local-secret"


@pytest.fixture(scope="module")
def fronted(tmp_path_factory):
    """TLS + SASL/SCRAM-SHA-512 and a 5 ms round trip; no recycling, idle closing or read budget
    (tests that want them start their own front end)."""
    broker, front = start_fronted_broker(recycle_s=None, idle_close_s=None, read_budget=None,
                                         sasl=("SCRAM-SHA-512", USER, PASSWORD),
                                         tls_dir=tmp_path_factory.mktemp("tls"))
    yield broker, front
    front.stop()
    broker.stop()


@pytest.fixture
def front_topic(fronted):
    """A factory: a fresh topic behind the front end; returns its name."""
    broker, _front = fronted

    def make(partitions: int = 3) -> str:
        name = f"front-{uuid.uuid4().hex[:8]}"
        broker.create_topic(name, partitions)
        return name

    return make
