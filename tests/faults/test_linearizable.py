"""Concurrent clients through the gateway of a running stack (three FDK instances, three
partitions, Tansu): their history of strong reads, writes, conditional writes and deletes on a few
keys is linearizable, and a final strong read of every key from every instance is explained by it
(no acknowledged write lost). The checker is tests/support/history.py."""

from __future__ import annotations

from support.history import CAS, DELETE, READ, WRITE, check
from workload import Workload, final_reads

KEYS = ["lin/a", "lin/b", "lin/c"]


def test_concurrent_clients_through_the_gateway_see_a_linearizable_cache(stack_on, topic):
    stack = stack_on(topic, instances=3)
    workload = Workload(stack.gateway.server_address[:2], KEYS, clients=4, ops_per_client=75, seed=7)
    workload.run()
    assert not workload.unexpected, workload.unexpected
    final_reads(workload.history, KEYS, stack.instances)

    verdict = check(workload.history.ops)
    print(f"\n{verdict}\nstatuses: {dict(sorted(workload.statuses.items(), key=str))}")
    assert verdict, str(verdict)
    # The run exercised what it claims to: every kind answered, and conditional writes raced.
    answered = {(kind, status) for (kind, status), n in workload.statuses.items() if n}
    for expected in [(READ, 200), (WRITE, 200), (CAS, 200), (CAS, 412), (DELETE, 204)]:
        assert expected in answered, (expected, workload.statuses)
    assert verdict.ops_checked >= 300
