"""The fleet: the local stack run as OCI runs it (issue 21). One instance at start, scale-out up to 16
(one request at a time per instance, a request that finds all busy starts another), every idle
instance frozen 50 ms after its answer, and instances SIGKILLed while 16 clients send strong reads,
writes, conditional writes and deletes through the gateway.

Afterwards a fresh instance reads every key strongly. The history checker must find the whole run
linearizable (so no acknowledged write is lost), every acknowledged write must be on the stream
once, and the only 5xx are the documented ones: 503 with Retry-After (busy, stream_unavailable,
outcome_unknown), and a 502 for a request whose instance was killed under it (at most one per kill,
an instance takes one request at a time). Sized to run in well under two minutes on 2 cores.
"""

from __future__ import annotations

import os
import random
import signal
from collections import Counter

from streamcache_local.dev import DevStack
from support.history import CAS, DELETE, READ, WRITE
from support.waiting import wait_for
from topic_reader import read_topic
from workload import Workload, checked_with_a_fresh_instance

KEYS = [f"fleet/{n}" for n in range(6)]
THINK_S = 0.1  # odd clients pause up to this long between requests: instances go idle, and freeze
CLIENTS = 16
MAX_INSTANCES = 16
KILLS = 3


class ThinkingWorkload(Workload):
    """Half the clients think between requests (a pause of up to THINK_S, cut short by ``stop``), as
    real clients do: without it 16 clients keep 16 instances busy and few are ever idle for 50 ms."""

    def _one(self, client, number, kind, key, value, last_version) -> None:
        super()._one(client, number, kind, key, value, last_version)
        if number % 2:
            self.stop.wait(random.Random(hash(value)).uniform(0, THINK_S))


def test_sixteen_instances_frozen_and_killed_keep_a_linearizable_history_and_every_acknowledged_write(broker, topic):
    stack = DevStack(port=0, instances=1, max_instances=MAX_INSTANCES, partitions=3, log_url=broker.log_url(topic),
                     freeze_idle_s=0.05, busy_wait_s=30.0).start()
    killed = []
    try:
        load = ThinkingWorkload(stack.gateway.server_address[:2], KEYS, clients=CLIENTS, ops_per_client=10_000,
                        mix={READ: 4, WRITE: 3, CAS: 3, DELETE: 1}, seed=21)

        def scale_freeze_kill(workload: Workload) -> None:
            wait_for(lambda: stack.pool.peak >= MAX_INSTANCES // 2, timeout_s=60, what="the pool to scale out")
            for number in range(KILLS):
                acked = len(workload.acknowledged)
                wait_for(lambda: len(workload.acknowledged) >= acked + 30, timeout_s=60, what="writes before a kill")
                live = stack.instances
                victim = live[number * 5 % len(live)]  # busy or frozen, whichever it is now
                os.kill(victim.pid, signal.SIGKILL)
                assert victim.exited_within(5)
                killed.append(victim)
            acked = len(workload.acknowledged)
            wait_for(lambda: len(workload.acknowledged) >= acked + 60, timeout_s=60, what="writes after the kills")
            wait_for(lambda: stack.pool.thaws >= 5, timeout_s=60, what="frozen instances taken back into service")
            wait_for(lambda: workload.done() >= 3000, timeout_s=90, what="enough operations for the checker")
            workload.stop.set()

        load.run(during=scale_freeze_kill)
        peak, freezes, thaws = stack.pool.peak, stack.pool.freezes, stack.pool.thaws
    finally:
        stack.stop()
    print(f"\npeak {peak} instances, {freezes} freezes, {thaws} thaws; "
          f"statuses: {dict(sorted(load.statuses.items(), key=str))}; error codes: {dict(load.codes)}")
    assert not load.unexpected, load.unexpected[:10]
    assert MAX_INSTANCES // 2 <= peak <= MAX_INSTANCES and freezes >= 5 and thaws >= 5  # scaled out, never past the cap
    server_errors = {key: n for key, n in load.codes.items() if key[1] >= 500}
    assert all(status in (502, 503) for _, status, _ in server_errors), server_errors
    assert sum(n for (_, status, _), n in server_errors.items() if status == 502) <= KILLS, server_errors
    assert all(code in ("busy", "stream_unavailable", "outcome_unknown")
               for _, status, code in server_errors if status == 503), server_errors

    verdict = checked_with_a_fresh_instance(load.history, KEYS, broker.log_url(topic))
    assert verdict, str(verdict)
    assert verdict.ops_checked >= 2000

    on_topic = Counter(event.get("data") for event in read_topic(broker.bootstrap, topic, 3))
    acknowledged = {value for _, value in load.acknowledged}
    assert all(on_topic[value] == 1 for value in acknowledged), "an acknowledged write is not on the stream once"
    attempted = {value for _, value in load.attempted}
    assert not {value for value, n in on_topic.items() if value in attempted and n > 1}, "a write landed twice"
