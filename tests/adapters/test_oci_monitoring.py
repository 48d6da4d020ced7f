"""Metrics through the real oci SDK (MonitoringClient.post_metric_data, signed with the local resource
principal) to the local ingestion server; the background poster never blocks and says a failure once."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from streamcache.adapters.oci_monitoring import BackgroundPoster, MonitoringSink, PostFailed
from streamcache.core.metrics import Aggregator, Point
from streamcache_local.monitoring import start_monitoring
from streamcache_local.resource_principal import write_resource_principal

NOW = time.time()


@pytest.fixture
def server():
    with start_monitoring() as running:
        yield running


@pytest.fixture
def sink(server, tmp_path, monkeypatch):
    # The SDK's resource-principal signer reads os.environ, as inside OCI Functions.
    principal = write_resource_principal(tmp_path)
    for name, value in principal.env.items():
        monkeypatch.setenv(name, value)
    return MonitoringSink("streamcache", "ocid1.compartment.oc1..local", server.endpoint, environ=principal.env)


def test_points_arrive_with_names_dimensions_values_and_counts(server, sink):
    agg = Aggregator({"function": "cache", "deployment": "d1"})
    agg.count("Requests", NOW, operation="get", statusClass="2xx")
    agg.count("Requests", NOW, operation="get", statusClass="2xx")
    agg.observe("RequestMs", 2.0, NOW, operation="get")
    agg.observe("RequestMs", 4.0, NOW, operation="get")
    assert sink.post(agg.take()) == 3
    got = {(p.name, tuple(sorted(p.dimensions.items()))): (p.value, p.count) for p in server.received()}
    base = (("deployment", "d1"), ("function", "cache"))
    assert got == {
        ("Requests", (*base, ("operation", "get"), ("statusClass", "2xx"))): (2.0, 1),
        ("RequestMs", (*base, ("operation", "get"))): (3.0, 2),
        ("RequestMsMax", (*base, ("operation", "get"))): (4.0, 1),
    }
    assert all(p.timestamp_s == int(NOW // 60) * 60 for p in server.received())


def test_more_than_50_streams_go_in_several_calls(server, sink):
    points = [Point(f"M{n}", (("function", "cache"),), int(NOW // 60) * 60_000, 1.0) for n in range(120)]
    assert sink.post(points) == 120
    assert server.requests == 3 and len(server.received()) == 120


def test_a_refusal_is_a_post_failed_that_names_the_status(server, sink):
    server.fail_next(1, 429, "TooManyRequests")
    with pytest.raises(PostFailed, match="429 TooManyRequests"):
        sink.post([Point("Requests", (("function", "cache"),), int(NOW // 60) * 60_000, 1.0)])
    stale = int((NOW - 3 * 3600) // 60) * 60_000  # older than 2 hours: OCI refuses the stream
    with pytest.raises(PostFailed, match="1 of 1 streams refused"):
        sink.post([Point("Requests", (("function", "cache"),), stale, 1.0)])


def test_the_poster_never_blocks_drops_while_busy_and_logs_a_failure_once(caplog):
    release = threading.Event()
    calls = []

    def send(points):
        calls.append(points)
        release.wait(5)
        raise PostFailed(["the endpoint is down"])

    poster = BackgroundPoster(send)
    caplog.set_level(logging.WARNING, logger="streamcache.metrics")
    started = time.perf_counter()
    assert poster.submit([1]) is True
    assert poster.submit([2]) is False  # the first is still in flight: dropped, not queued
    assert time.perf_counter() - started < 0.05
    release.set()
    poster.wait(5)
    for _ in range(3):
        poster.submit([3])
        poster.wait(5)
    assert poster.dropped == 1 and poster.failed == 4 and calls == [[1], [3], [3], [3]]
    assert len([r for r in caplog.records if "metrics post failed" in r.getMessage()]) == 1


def test_while_a_post_is_in_flight_the_next_minutes_are_kept_not_dropped():
    from streamcache.metrics import Metrics

    release, sent = threading.Event(), []

    def send(points):
        release.wait(5)
        sent.extend(points)

    clock = [NOW]
    poster = BackgroundPoster(send)
    metrics = Metrics({"function": "cache"}, poster.submit, 60, lambda: clock[0], ready=poster.ready)
    metrics.count("Requests")
    assert metrics.flush_if_due() is True  # the first batch goes at once
    clock[0] += 61
    metrics.count("Requests")
    assert metrics.flush_if_due() is False and len(metrics.aggregator) == 1  # in flight: kept
    clock[0] += 3 * 3600  # posts stuck for hours: what OCI would refuse is forgotten, nothing else
    metrics.count("Requests")
    assert metrics.flush_if_due() is False and len(metrics.aggregator) == 1
    release.set()
    poster.wait(5)
    assert metrics.flush_if_due() is True
    poster.wait(5)
    assert [p.value for p in sent] == [1.0, 1.0] and poster.dropped == 0
