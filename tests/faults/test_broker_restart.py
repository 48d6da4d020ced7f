"""The stream goes away under load and comes back: a local Tansu broker is stopped while clients
write and read through the gateway, and a new one is started on the same port.

While it is away, clients get 503 with Retry-After (no other 5xx), and the instances stay up.
When it is back they recover without a restart. Tansu keeps its log in memory, so the new broker
holds an empty stream: every instance must notice that the log went backwards (its end is below
what the instance applied), say so loudly (/health and an ERROR line) and answer what the stream
now holds, as a freshly started instance does, rather than the records that are gone.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid

import orjson

from streamcache_local.broker import start_broker
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from streamcache_local.fn_runner import start_instance
from support.history import CAS, READ, WRITE
from support.waiting import wait_for
from workload import Workload

FAST_TIMEOUTS = {"STREAMCACHE_APPEND_TIMEOUT_MS": "1000"}  # a 503 in 1 s rather than 5 s while it is away
ALLOWED = {200, 201, 204, 404, 412, 503}


def _health(instance) -> dict:
    answer = instance.client.http_call("GET", "/health")
    assert answer.status == 200, answer
    return orjson.loads(answer.body)


def _strong(instance, key: str) -> tuple[int, bytes]:
    answer = instance.client.http_call("GET", f"/cache/{key}?consistency=strong")
    return answer.status, answer.body if answer.status == 200 else b""


def test_the_broker_restarts_empty_under_load():
    stack = DevStack(port=0, instances=2, dispatch=Dispatch.ROUND_ROBIN, partitions=3, config=FAST_TIMEOUTS).start()
    fresh = None
    fresh_dir = tempfile.mkdtemp(prefix="sc-f-", dir="/tmp")
    try:
        address = stack.gateway.server_address[:2]
        pids = [instance.pid for instance in stack.instances]
        before = [f"before-{n}" for n in range(6)]
        for key in before:
            assert stack.instances[0].client.http_call("PUT", f"/cache/{key}", b"old").status == 201
        for instance in stack.instances:  # every instance has applied the old stream
            assert [_strong(instance, key)[0] for key in before] == [200] * len(before)

        port = stack.broker.port
        load = Workload(address, [f"load-{n}" for n in range(3)], clients=3, ops_per_client=10_000,
                        mix={READ: 2, WRITE: 2, CAS: 1}, seed=11)

        def outage(workload: Workload) -> None:
            stack.broker.stop()
            down_from = workload.done()
            wait_for(lambda: workload.done() >= down_from + 6, timeout_s=60, what="requests while the broker is away")
            stack.broker = start_broker(stack.host, port=port)  # the stack stops it at the end
            stack.broker.create_topic(stack.topic, stack.partitions)
            acked = len(workload.acknowledged)
            wait_for(lambda: len(workload.acknowledged) >= acked + 10, timeout_s=60, what="writes after the restart")
            workload.stop.set()

        load.run(during=outage)
        print(f"\nstatuses: {dict(sorted(load.statuses.items(), key=str))}")
        assert not load.unexpected, load.unexpected[:10]
        assert {status for _, status in load.statuses} <= ALLOWED, load.statuses
        assert any(status == 503 for _, status in load.statuses), "the outage was not seen"
        assert [instance.pid for instance in stack.instances] == pids and all(i.alive() for i in stack.instances)

        # Recovered without a restart: each instance writes again (straight to its socket).
        after = {}
        for instance in stack.instances:
            key = f"after-{instance.name}-{uuid.uuid4().hex[:6]}"
            wait_for(lambda: instance.client.http_call("PUT", f"/cache/{key}", b"new").status in (200, 201),
                     timeout_s=30, what=f"{instance.name} to write again")
            after[key] = b"new"

        # The loss is reported, by every instance, loudly.
        for instance in stack.instances:
            health = wait_for(lambda: (h := _health(instance))["log_regressions"] >= 1 and h, timeout_s=10,
                              what=f"{instance.name} to report the lost stream")
            assert health["status"] == "degraded", health
            assert "went backwards" in health["log_regression"]["message"]
            assert any("went backwards" in line and '"error"' in line for line in instance.stderr_lines())

        # Every instance answers what the stream now holds, exactly as a fresh instance does.
        fresh = start_instance("fresh", fresh_dir, {"STREAMCACHE_LOG_URL": stack.log_url})
        keys = before + list(after) + load.keys
        truth = {key: _strong(fresh, key) for key in keys}
        assert all(truth[key][0] == 404 for key in before)  # the old stream is gone
        assert all(truth[key] == (200, b"new") for key in after)
        for instance in stack.instances:
            assert {key: _strong(instance, key) for key in keys} == truth, instance.name
    finally:
        if fresh is not None:
            fresh.stop()
        shutil.rmtree(fresh_dir, ignore_errors=True)
        stack.stop()
