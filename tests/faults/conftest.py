"""Fixtures of the fault tests: a fresh topic on the session's broker, and a DevStack on it."""

from __future__ import annotations

import uuid

import pytest

from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch

PARTITIONS = 3


@pytest.fixture
def topic(broker) -> str:
    name = f"faults-{uuid.uuid4().hex[:8]}"
    broker.create_topic(name, PARTITIONS)
    return name


@pytest.fixture
def stack_on(broker):
    """A factory: ``stack_on(topic, instances=3, config=...)`` starts a DevStack (gateway + FDK
    instances) on the session broker's ``topic``; every stack started is stopped at teardown."""
    started: list[DevStack] = []

    def start(topic: str, instances: int = 3, config: dict | None = None) -> DevStack:
        # Round-robin: sequential requests spread over every instance, so each test crosses them.
        stack = DevStack(port=0, instances=instances, partitions=PARTITIONS, log_url=broker.log_url(topic),
                         config=config, dispatch=Dispatch.ROUND_ROBIN)
        started.append(stack)
        return stack.start()

    yield start
    for stack in started:
        stack.stop()
