"""Fixtures of the fuzz tests: one running stack (gateway, two FDK instances, a topic on the
session's broker) with canary keys written before any fuzzing, and the check that runs after the
module: every canary still holds its value and version on every instance, and no instance died.

Example counts are small for CI (the whole fuzz suite takes about a minute); ``FUZZ_EXAMPLES=N``
multiplies the hypothesis budget of every fuzz test by ``N / 25`` for a longer local run. The
number of inputs tried per category is printed at the end of the run."""

from __future__ import annotations

import uuid

import pytest

from fuzzing import TRIED, Canaries
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch


@pytest.fixture(scope="module")
def fuzz_stack(broker):
    topic = f"fuzz-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, log_url=broker.log_url(topic)) as stack:
        pids = [instance.pid for instance in stack.instances]
        canaries = Canaries(stack)
        yield stack
        assert [instance.pid for instance in stack.instances] == pids, "an instance was replaced"
        canaries.check()


def pytest_terminal_summary(terminalreporter):
    if TRIED:
        terminalreporter.write_line("fuzz inputs tried per category: " + ", ".join(
            f"{name} {count}" for name, count in sorted(TRIED.items())))
