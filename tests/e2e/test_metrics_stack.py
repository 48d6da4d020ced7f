"""Metrics through the real stack: FDK cache and compactor instances post with the oci SDK (signed
with the stack's resource principal) to the local Monitoring ingestion API; what arrives is what the
requests did. A throttled or slow ingestion endpoint never slows or fails a request.

The instances post at most once per STREAMCACHE_METRICS_INTERVAL_S (1 s here): the test sends
/health requests, which carry the posts, until what it expects has arrived (bounded)."""

from __future__ import annotations

import time
import uuid
from collections import defaultdict

import orjson
import pytest

from streamcache_local import lifecycle
from streamcache_local.dev import DevStack
from support.gateway import request
from support.waiting import wait_for


@pytest.fixture(scope="module")
def stack(broker, tmp_path_factory):
    topic = f"metrics-{uuid.uuid4().hex[:8]}"
    broker.create_topic(topic, 3)
    with DevStack(port=0, instances=1, partitions=3, log_url=broker.log_url(topic), metrics=True,
                  data_dir=tmp_path_factory.mktemp("data"), background=False,
                  config={"STREAMCACHE_METRICS_INTERVAL_S": "1"}) as running:
        yield running


def totals(stack, function: str) -> dict:
    """Sum of each metric stream's datapoints (value x count), by name and dimensions without the base."""
    sums: dict = defaultdict(float)
    for p in stack.monitoring.received():
        if p.dimensions.get("function") == function:
            rest = tuple(sorted((k, v) for k, v in p.dimensions.items() if k not in ("function", "deployment")))
            sums[(p.name, rest)] += p.value * (p.count if not p.name.endswith("Max") else 1)
    return sums


def get_ops(sums) -> dict:
    return {dims: v for (name, dims), v in sums.items() if name == "Requests" and ("operation", "get") in dims}


def test_what_the_requests_did_arrives_with_names_dimensions_and_values(stack):
    assert request(stack, "PUT", "/cache/a", b"1")[0] == 201
    assert request(stack, "GET", "/cache/a")[0] == 200
    for _ in range(2):
        assert request(stack, "GET", "/cache/nope")[0] == 404
    assert request(stack, "DELETE", "/cache/a")[0] == 204

    def arrived():
        request(stack, "GET", "/health")  # carries the post once the interval has passed
        sums = totals(stack, "cache")
        return sums if sums.get(("CacheMisses", ()), 0) >= 2 and sums.get(("StreamWriteMs", ()), 0) > 0 \
            and sums.get(("Requests", (("operation", "delete"), ("statusClass", "2xx"))), 0) >= 1 else None

    sums = wait_for(arrived, 20, "the cache instance's metrics")
    assert get_ops(sums) == {(("operation", "get"), ("statusClass", "2xx")): 1.0,
                             (("operation", "get"), ("statusClass", "4xx")): 2.0}
    assert sums[("Requests", (("operation", "put"), ("statusClass", "2xx")))] == 1.0
    assert sums[("CacheHits", ())] == 1.0 and sums[("CacheMisses", ())] == 2.0
    assert sums[("ColdStarts", ())] == 1.0 and sums[("ColdStartMs", ())] > 0
    writes = [p for p in stack.monitoring.received("StreamWriteMs")]
    assert sum(p.count for p in writes) == 2  # the put and the delete, each one append
    assert sum(p.count for p in stack.monitoring.received("ReadStalenessMs")) == 3
    for p in stack.monitoring.received():
        assert p.dimensions["deployment"] == "local" and set(p.dimensions) <= {
            "function", "deployment", "operation", "statusClass", "action", "outcome"}


def test_the_compactor_posts_its_run(stack):
    answer = lifecycle.compact(stack.compactor, lambda line: None)
    assert answer["status"] == 200
    sums = wait_for(lambda: (s := totals(stack, "compactor")).get(("Compactions", (("outcome", "written"),))) and s,
                    10, "the compactor's metrics")
    assert sums[("SnapshotAgeSeconds", ())] == 0.0
    assert sums[("TailRecordsAtStart", ())] == answer["records_folded"] == sums[("RecordsFolded", ())]
    assert sums[("SnapshotBytes", ())] == answer["bytes"]


def test_a_throttled_or_slow_ingestion_endpoint_never_slows_or_fails_a_request(stack):
    stack.monitoring.fail_next(1000, 429, "TooManyRequests")
    stack.monitoring.delay_s = 3.0  # far longer than a request may take
    try:
        before = stack.monitoring.requests
        slowest = 0.0
        deadline = time.monotonic() + 20
        # Until several posts were attempted against the slow, refusing endpoint.
        while stack.monitoring.requests < before + 2 and time.monotonic() < deadline:
            started = time.perf_counter()
            status, _, body = request(stack, "GET", "/cache/nope")
            slowest = max(slowest, time.perf_counter() - started)
            assert status == 404, body
        assert stack.monitoring.requests >= before + 2
        assert slowest < 1.0, f"a request took {slowest:.3f} s while the endpoint was slow"
    finally:
        stack.monitoring.delay_s = 0.0
        stack.monitoring.failures.clear()
    status, _, body = request(stack, "GET", "/health")
    assert status == 200 and orjson.loads(body)["status"] == "serving"


def test_streamcache_metrics_shows_the_last_hour_and_the_alarms(stack):
    import os
    import subprocess
    import sys
    from pathlib import Path

    # Posts ride on requests: keep sending one (as the other tests do) until the hit has arrived.
    wait_for(lambda: request(stack, "GET", "/health") and stack.monitoring.received("CacheHits"), 20, "a posted hit")
    # The snapshot-age alarm looks at the last minute: a compaction now, not the earlier test's.
    ages = len(stack.monitoring.received("SnapshotAgeSeconds"))
    assert lifecycle.compact(stack.compactor, lambda line: None)["status"] == 200
    wait_for(lambda: len(stack.monitoring.received("SnapshotAgeSeconds")) > ages, 10, "the compaction's snapshot age")
    script = Path(sys.executable).parent / "streamcache"
    done = subprocess.run([str(script), "metrics", "--url", stack.url], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "STREAMCACHE_URL": ""})
    assert done.returncode == 0, done.stderr
    rows = {line.split()[0]: line for line in done.stdout.splitlines() if line and not line.startswith(" ")}
    assert "total 1" in rows["CacheHits"] and "operation=get" in done.stdout
    assert "n 2," in rows["StreamWriteMs"]  # the put and the delete: an observation shows n, mean and max
    assert "alarms:" in done.stdout
    states = {line.split()[1]: line.split()[0] for line in done.stdout.split("alarms:")[1].splitlines() if line.strip()}
    assert set(states) == {"snapshot_age", "no_compaction", "stale_reads", "errors_5xx", "degraded", "quota"}
    assert states["degraded"] == "OK" and states["snapshot_age"] == "OK"
    as_json = subprocess.run([str(script), "metrics", "--url", stack.url, "--json"], capture_output=True, text=True,
                             timeout=60)
    assert as_json.returncode == 0 and orjson.loads(as_json.stdout)["datapoints"]


def test_streamcache_metrics_without_a_stack_says_so_and_exits_2():
    import subprocess
    import sys
    from pathlib import Path

    script = Path(sys.executable).parent / "streamcache"
    done = subprocess.run([str(script), "metrics", "--url", "http://127.0.0.1:9"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2 and done.stderr.startswith("streamcache metrics: ")
