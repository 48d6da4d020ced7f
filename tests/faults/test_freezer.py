"""Frozen instances, as Fn pauses idle hot containers (infra/local/freezer.py): the stack's freezer
stops an idle instance 50 ms after its answer and continues it for its next request, and a cache
instance that was frozen behaves: its staleness is measured with CLOCK_MONOTONIC, which runs on
while the process is stopped, so a thawed instance sees the gap and catches up before a default read.
"""

from __future__ import annotations

import shutil
import tempfile
import time

from streamcache_local.dev import DevStack
from streamcache_local.fn_runner import start_instance
from support.waiting import wait_for
from workload import GatewayClient

STALENESS_MS = 200


def process_state(pid: int) -> str:
    """The kernel's state letter for ``pid``: ``T`` when stopped by a signal."""
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[1].split()[0]


def test_the_stack_freezes_an_idle_instance_after_its_answer_and_thaws_it_for_the_next_request(broker, topic):
    stack = DevStack(port=0, instances=1, partitions=3, log_url=broker.log_url(topic), freeze_idle_s=0.05).start()
    try:
        client = GatewayClient(stack.gateway.server_address[:2])
        status, _, _ = client.request("PUT", "/cache/freeze/a", b"1")
        assert status in (200, 201)
        (instance,) = stack.instances
        wait_for(lambda: process_state(instance.pid) == "T", timeout_s=10, what="the idle instance to be stopped")
        assert instance.frozen and stack.pool.freezes >= 1
        status, _, body = client.request("GET", "/cache/freeze/a?consistency=strong")
        assert (status, body) == (200, b"1")  # continued for the request, answered at once
        assert stack.pool.thaws >= 1
        client.close()
    finally:
        stack.stop()
    assert not instance.alive()  # a frozen instance still stops (SIGCONT before SIGTERM), without a SIGKILL
    assert instance.process.returncode != -9


def test_a_thawed_instance_sees_the_time_it_was_frozen_and_catches_up_for_a_default_read(broker, topic):
    config = {"STREAMCACHE_LOG_URL": broker.log_url(topic), "STREAMCACHE_STALENESS_MS": str(STALENESS_MS)}
    socket_dir = tempfile.mkdtemp(prefix="sc-fz-", dir="/tmp")
    frozen = start_instance("frozen", socket_dir, config, wait=False)
    writer = start_instance("writer", socket_dir, config, wait=False)
    try:
        frozen.wait_ready()
        writer.wait_ready()
        assert frozen.client.http_call("GET", "/cache/thaw/a").status == 404  # restored, caught up just now
        frozen.freeze()
        stopped_at = time.monotonic()
        wait_for(lambda: process_state(frozen.pid) == "T", what="the stop to be delivered")  # a signal is async
        answer = writer.client.http_call("PUT", "/cache/thaw/a", b"written while frozen")
        assert answer.status in (200, 201)
        # The subject of the test is time passing while the process is stopped: longer than the bound.
        wait_for(lambda: time.monotonic() - stopped_at > 2 * STALENESS_MS / 1000, what="the staleness bound to pass")
        assert process_state(frozen.pid) == "T"
        frozen.thaw()
        answer = frozen.client.http_call("GET", "/cache/thaw/a")  # a default read, not a strong one
        assert (answer.status, answer.body) == (200, b"written while frozen")
    finally:
        frozen.stop()
        writer.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
