"""The network between the functions and the stream misbehaves, under load: concurrent clients send
strong reads, writes, conditional writes and deletes through the gateway while a fault proxy
(tests/support/fault_proxy.py) sits between every instance and a real Tansu broker and adds
latency, cuts connections after a request was forwarded and before its answer, black-holes all
traffic for a while, or cuts the compactor's connection in the middle of a fold.

Under each, the history is linearizable and a final strong read of every key from every instance
(and, for the compactor, from a fresh instance restored from its snapshot) is explained by it: no
acknowledged write is lost. The workload holds the function to its answers: a 503
``stream_unavailable`` means the write did not happen, a 503 ``outcome_unknown`` that it may have;
anything else unexpected fails the test. Each test is bounded (seconds) and stops what it starts.
"""

from __future__ import annotations

import shutil
import socket
import tempfile
import uuid

import orjson
import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core.records import Put, encode
from streamcache_local import lifecycle
from streamcache_local.dev import DevStack
from streamcache_local.pool import Dispatch
from streamcache_local.fn_runner import start_instance
from support.fault_proxy import FETCH, LIST_OFFSETS, PRODUCE, start_proxied_broker
from support.history import CAS, DELETE, READ, WRITE, check
from support.waiting import wait_for
from workload import Workload, final_reads

# Fail fast while the network is away: a write answers within ~1 s plus one look on the stream.
CONFIG = {"STREAMCACHE_APPEND_TIMEOUT_MS": "1000"}
DEFINITE_OR_HONEST = {200, 201, 204, 404, 412, 503}


@pytest.fixture
def proxied():
    broker, proxy = start_proxied_broker()
    started: list = []
    topic = f"net-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)

    def stack(instances: int = 3, **options) -> DevStack:
        running = DevStack(port=0, instances=instances, dispatch=Dispatch.ROUND_ROBIN, partitions=3,
                           log_url=broker.log_url(topic),
                           config=CONFIG, **options)
        started.append(running)
        return running.start()

    try:
        yield stack, proxy, broker
    finally:
        proxy.clear()
        for running in started:
            running.stop()
        proxy.stop()
        broker.stop()


def _topic(stack: DevStack) -> str:
    return str(stack.log_url).rsplit("/", 1)[1]


def _until_stopped(stack: DevStack, prefix: str, seed: int) -> tuple[list[str], Workload]:
    """Three keys and four clients mixing every kind of operation, running until the fault stops them."""
    keys = [f"{prefix}/{name}" for name in "abc"]
    return keys, Workload(stack.gateway.server_address[:2], keys, clients=4, ops_per_client=10_000, seed=seed,
                          mix={READ: 3, WRITE: 3, CAS: 3, DELETE: 1})


def _verdict(load: Workload, keys: list[str], readers) -> None:
    print(f"\nstatuses: {dict(sorted(load.statuses.items(), key=str))}\nerrors: {dict(load.codes)}")
    assert not load.unexpected, load.unexpected[:10]
    assert {status for _, status in load.statuses if status != "no answer"} <= DEFINITE_OR_HONEST, load.statuses
    assert all(code in ("stream_unavailable", "outcome_unknown", "busy") for (_, status, code) in load.codes
               if status == 503), load.codes
    assert not any(code == "outcome_unknown" for (kind, _, code) in load.codes if kind == READ), load.codes
    final_reads(load.history, keys, readers)
    verdict = check(load.history.ops)
    print(verdict)
    assert verdict, str(verdict)


def test_latency_between_the_functions_and_the_stream(proxied):
    start, proxy, _ = proxied
    stack = start()
    proxy.latency_s = 0.005  # each way, every request and answer: 10 ms more per round trip
    keys = ["lat/a", "lat/b", "lat/c"]
    load = Workload(stack.gateway.server_address[:2], keys, clients=4, ops_per_client=40, seed=21)
    load.run(timeout_s=60)
    proxy.clear()
    assert proxy.requests.get(PRODUCE, 0) >= 40
    assert not any(status in (503, 504) for _, status in load.statuses), load.statuses  # slow, not failing
    _verdict(load, keys, stack.instances)


def test_connections_cut_after_the_request_before_the_answer(proxied):
    start, proxy, _ = proxied
    stack = start()
    keys, load = _until_stopped(stack, "cut", seed=22)

    def cut_answers(workload: Workload) -> None:
        for round_ in range(12):
            # A produce whose record landed and whose answer is lost (the producer retries: the record
            # lands again, and request ids keep the first); a read's answer lost too.
            proxy.drop_answers(PRODUCE, count=2)
            proxy.drop_answers(FETCH if round_ % 2 else LIST_OFFSETS, count=1)
            wait_for(lambda: proxy.rules_left() == 0, timeout_s=30, what="the cuts to happen")
        acked = len(workload.acknowledged)
        wait_for(lambda: len(workload.acknowledged) >= acked + 10, timeout_s=30, what="writes after the cuts")
        workload.stop.set()

    load.run(during=cut_answers, timeout_s=60)
    assert proxy.cuts >= 30
    _verdict(load, keys, stack.instances)


def test_a_partition_black_holes_the_stream_for_a_while(proxied):
    start, proxy, _ = proxied
    stack = start()
    keys, load = _until_stopped(stack, "hole", seed=23)

    def partition(workload: Workload) -> None:
        wait_for(lambda: workload.done() >= 30, timeout_s=30, what="requests before the partition")
        proxy.blackhole(True)
        during = workload.done()
        failed = lambda: sum(n for (_, s), n in workload.statuses.items() if s == 503)
        wait_for(lambda: workload.done() >= during + 4 and failed() >= 4, timeout_s=30,
                 what="answers while the stream is black-holed")
        proxy.blackhole(False)
        acked = len(workload.acknowledged)
        wait_for(lambda: len(workload.acknowledged) >= acked + 20, timeout_s=30, what="writes after the partition")
        workload.stop.set()

    load.run(during=partition, timeout_s=90)
    assert any(s == 503 for (_, s) in load.statuses), load.statuses
    _verdict(load, keys, stack.instances)


def test_the_compactor_connection_cut_mid_fold(proxied, tmp_path):
    start, proxy, broker = proxied
    stack = start(instances=2, data_dir=tmp_path / "data", background=False, compact_every_s=0,
                  warm_every_s=0, idle_timeout_s=0)
    keys = [f"fold/{n}" for n in range(4)]
    load = Workload(stack.gateway.server_address[:2], keys, clients=3, ops_per_client=10_000, seed=24)
    compactor = stack.compactor_pool.live()[0]
    me = f"streamcache-{socket.gethostname()}-{compactor.pid}"
    answers: list[dict] = []

    def compact() -> dict:
        answers.append(lifecycle.compact(stack.compactor, lambda line: None, "test"))
        return answers[-1]

    def cut_mid_fold(workload: Workload) -> None:
        wait_for(lambda: len(workload.acknowledged) >= 60, timeout_s=30, what="writes to fold")
        assert compact()["outcome"] == "written"
        wait_for(lambda: len(workload.acknowledged) >= 120, timeout_s=30, what="more writes to fold")
        bulk = KafkaLog(broker.bootstrap, _topic(stack))
        try:  # enough records that the fold reads them in several large fetches
            bulk.append_many([(f"bulk/{n}", encode(Put(f"bulk/{n}", b"x" * 100, "text/plain", f"bulk-{n}", 1)))
                              for n in range(3000)])
        finally:
            bulk.close()
        # Cut when a fetch carrying the records it folds is on its way back (not the small fetches
        # that learn the log's end): the fold is under way, its connection breaks.
        cuts = proxy.cuts
        proxy.drop_answers(FETCH, client=me, min_bytes=4096)
        first = compact()
        assert proxy.cuts == cuts + 1, ("the compactor's fold was not cut", me, {k: v for k, v in proxy.by_client.items() if k[1] == FETCH}, first.get("records_folded"))
        proxy.clear()
        wait_for(lambda: len(workload.acknowledged) >= 180, timeout_s=30, what="writes after the cut")
        workload.stop.set()
        last = compact()
        print(f"\ncompactions: {[(a['status'], a.get('outcome', a.get('error'))) for a in answers]}")
        # The cut fold either recovered (the consumer reconnects within the read deadline) and wrote
        # a snapshot of everything to the end it captured, or failed cleanly; the next one writes.
        if first["status"] == 200:
            assert first["outcome"] == "written" and first["records_folded"] >= 3000, first
        else:
            assert (first["status"], first["error"]) == (503, "stream_unavailable"), first
        assert (last["status"], last["outcome"]) == (200, "written"), last

    load.run(during=cut_mid_fold, timeout_s=90)
    # A cold start from the newest snapshot (written after the cut) plus the tail: what it answers
    # must be explained by the history too.
    socket_dir = tempfile.mkdtemp(prefix="sc-n-", dir="/tmp")
    fresh = start_instance("fresh", socket_dir, stack.function_config())
    try:
        # /health does not wait for the cold start: wait for it to serve, then see what it loaded.
        health = wait_for(lambda: (h := orjson.loads(fresh.client.http_call("GET", "/health").body))["status"]
                          == "serving" and h, timeout_s=30, what="the fresh instance to restore")
        newest = answers[-1]["object"].rsplit("/", 1)[-1]
        assert newest in orjson.dumps(health).decode(), health  # restored from the snapshot written last
        _verdict(load, keys, [fresh, *stack.instances])
    finally:
        fresh.stop()
        shutil.rmtree(socket_dir, ignore_errors=True)
