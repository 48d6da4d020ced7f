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

import http.client
import os
import random
import signal
import threading
import time
from collections import Counter

import orjson

from streamcache_local.dev import DevStack
from streamcache_local.kafka_front import start_fronted_broker
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


READERS = 16
READS_PER_READER = 100  # per round: the first round is the fleet learning the budget, the second is measured
WRITE_EVERY_S = 0.2
BUDGET = 5  # read requests per partition per second, as --like-oci sets it (OCI's published limit)
#: The margin on the read rate the fleet offers once it learnt the budget: the front end counts a
#: held request in the second it is forwarded, and a round's edges cut seconds short.
RATE_MARGIN = 1.2


def test_sixteen_busy_default_readers_share_the_read_budget_and_mark_what_they_answer_from_memory():
    """16 instances behind the front end's read budget, 16 clients reading (default consistency) and
    one writer: the instances back off instead of queueing at the broker. Counted by the front end:
    every partition saw at most BUDGET read requests in any second and, once the fleet learnt the
    budget, the fleet offered no more than that; the reads answered from memory past the bound say
    so, with their data's age (a 404 too: every instance had read every key before the readers began)."""
    # Not frozen: each instance's /health is read directly afterwards.
    stack = DevStack(port=0, instances=READERS, max_instances=READERS, partitions=3,
                     front=lambda host: start_fronted_broker(host, read_budget=BUDGET, recycle_s=None,
                                                             idle_close_s=None, tls=False, sasl=None)).start()
    try:
        address = stack.gateway.server_address[:2]
        front = stack.front
        stop = threading.Event()
        statuses: Counter = Counter()
        stale, ages = [], []
        lock = threading.Lock()

        def writer() -> None:
            conn = http.client.HTTPConnection(*address, timeout=60)
            n = 0
            while not stop.wait(WRITE_EVERY_S):  # the write rate, not a synchronisation
                conn.request("PUT", f"/cache/budget/{n % 4}", body=str(n).encode())
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses[("PUT", response.status)] += 1
                n += 1
            conn.close()

        def reader(number: int) -> None:
            conn = http.client.HTTPConnection(*address, timeout=60)
            for i in range(READS_PER_READER):
                conn.request("GET", f"/cache/budget/{(number + i) % 4}")
                response = conn.getresponse()
                response.read()
                with lock:
                    statuses[("GET", response.status)] += 1
                    if response.status == 404 and response.getheader("Streamcache-Stale") != "true":
                        statuses[("GET", "404 not marked stale")] += 1
                    if response.getheader("Streamcache-Stale") == "true":
                        stale.append(response)
                        ages.append(int(response.getheader("Streamcache-Data-Age-Ms")))
            conn.close()

        conn = http.client.HTTPConnection(*address, timeout=60)
        for n in range(4):  # every key exists before the readers start
            conn.request("PUT", f"/cache/budget/{n}", body=b"-1")
            assert conn.getresponse().read() is not None
        conn.close()
        for instance in stack.instances:  # each has seen every key: a 404 later is from older memory
            assert instance.client.http_call("GET", "/cache/budget/3?consistency=strong").status == 200
        write = threading.Thread(target=writer, daemon=True)
        write.start()
        rounds = []
        for _ in range(2):
            front.reset_stats()
            started = time.monotonic()
            readers = [threading.Thread(target=reader, args=(n,), daemon=True) for n in range(READERS)]
            for thread in readers:
                thread.start()
            for thread in readers:
                thread.join(300)
            rounds.append({**front.stats(), "seconds": time.monotonic() - started})
        stop.set()
        write.join(60)
        learning, stats = rounds
        healths = [orjson.loads(instance.client.http_call("GET", "/health").body)["log_reads"]
                   for instance in stack.instances]
    finally:
        stack.stop()
    per_partition_per_s = {p: n / stats["seconds"] for p, n in stats["read_requests"].items()}
    print(f"\nstatuses {dict(statuses)}; learning: {learning['read_requests_by_api']} read requests, "
          f"{learning['throttled']} throttled; measured over {stats['seconds']:.1f} s: {stats['read_requests_by_api']}, "
          f"per partition per s {per_partition_per_s}, peak {stats['reads_per_s_peak']}, throttled {stats['throttled']}; {len(stale)} stale GETs, "
          f"ages up to {max(ages, default=0)} ms; intervals {[h['interval_ms'] for h in healths]}")
    assert set(statuses) <= {("GET", 200), ("GET", 404), ("PUT", 200), ("PUT", 201)}, statuses  # 404s marked
    assert statuses[("GET", 200)] + statuses[("GET", 404)] == 2 * READERS * READS_PER_READER
    assert all(count <= BUDGET for count in stats["reads_per_s_peak"].values()), stats["reads_per_s_peak"]
    assert stats["throttle_ignored"] == 0
    assert all(rate <= BUDGET * RATE_MARGIN for rate in per_partition_per_s.values()), per_partition_per_s
    # The fleet was over the budget at first: instances were throttled, backed off, and said so.
    assert sum(h["throttled_total"] for h in healths) > 0 and max(h["interval_ms"] for h in healths) > 1000
    assert stale and all(age >= 1000 for age in ages)  # past the bound, from memory, and marked with the age
