"""SIGKILL function instances while clients write through the gateway: a container killed in the
middle of a request, as OCI does when it recycles one.

Afterwards a freshly started instance (a cold start that replays the stream) reads every key
strongly: the history of the run including those reads must be linearizable, so every
acknowledged write is there (or was overwritten by a later one). On the stream itself, counted
with a plain consumer: every acknowledged write is one record, and no value, acknowledged or
not, is there twice.
"""

from __future__ import annotations

import os
import signal
from collections import Counter

from support.history import CAS, READ, WRITE
from support.waiting import wait_for
from topic_reader import read_topic
from workload import Workload, checked_with_a_fresh_instance

KEYS = [f"kill/{n}" for n in range(4)]


def test_instances_killed_mid_request_lose_no_acknowledged_write(stack_on, topic, broker):
    stack = stack_on(topic, instances=3)
    victims = list(stack.instances[:2])
    load = Workload(stack.gateway.server_address[:2], KEYS, clients=4, ops_per_client=10_000,
                    mix={WRITE: 4, CAS: 2, READ: 1}, seed=5)

    def kill_two(workload: Workload) -> None:
        for victim in victims:
            acked = len(workload.acknowledged)
            wait_for(lambda: len(workload.acknowledged) >= acked + 40, timeout_s=60, what="writes before a kill")
            os.kill(victim.pid, signal.SIGKILL)
            assert victim.exited_within(5)
        acked = len(workload.acknowledged)
        wait_for(lambda: len(workload.acknowledged) >= acked + 40, timeout_s=60, what="writes after the kills")
        workload.stop.set()

    load.run(during=kill_two)
    print(f"\nstatuses: {dict(sorted(load.statuses.items(), key=str))}")
    assert not load.unexpected, load.unexpected[:10]
    assert not any(v.alive() for v in victims)

    verdict = checked_with_a_fresh_instance(load.history, KEYS, broker.log_url(topic))
    assert verdict, str(verdict)

    on_topic = Counter(event.get("data") for event in read_topic(broker.bootstrap, topic, 3))
    attempted = {value for _, value in load.attempted}
    acknowledged = {value for _, value in load.acknowledged}
    assert all(on_topic[value] == 1 for value in acknowledged), "an acknowledged write is not on the stream once"
    twice = {value: n for value, n in on_topic.items() if value in attempted and n > 1}
    assert not twice, f"written twice: {twice}"
    unknown = {value for _, value in load.indeterminate}
    print(f"{len(acknowledged)} acknowledged writes; {len(unknown)} cut off by a kill, "
          f"{sum(1 for v in unknown if on_topic[v])} of which landed (once)")
