"""Per-minute metric aggregation (core/metrics.py): what each kind posts, dimensions, batching."""

from __future__ import annotations

from hypothesis import given, strategies as st

from streamcache.core.metrics import MAX_STREAMS_PER_POST, Aggregator, Point, minute_ms, status_class, streams

T0 = 1_790_000_020.0  # 40 s into a minute


def test_counts_sum_per_minute_and_stream_and_carry_the_base_dimensions():
    agg = Aggregator({"function": "cache", "deployment": "d"})
    agg.count("Requests", T0, operation="get", statusClass="2xx")
    agg.count("Requests", T0 + 10, operation="get", statusClass="2xx")
    agg.count("Requests", T0 + 10, operation="put", statusClass="5xx")
    agg.count("Requests", T0 + 30, operation="get", statusClass="2xx")  # the next minute
    base = (("deployment", "d"), ("function", "cache"))
    assert agg.take() == [
        Point("Requests", (*base, ("operation", "get"), ("statusClass", "2xx")), minute_ms(T0), 2.0),
        Point("Requests", (*base, ("operation", "get"), ("statusClass", "2xx")), minute_ms(T0) + 60_000, 1.0),
        Point("Requests", (*base, ("operation", "put"), ("statusClass", "5xx")), minute_ms(T0), 1.0),
    ]
    assert agg.take() == [] and len(agg) == 0


def test_an_observation_posts_its_mean_with_the_count_and_its_maximum():
    agg = Aggregator()
    for value in (1.0, 2.0, 6.0):
        agg.observe("RequestMs", value, T0)
    assert agg.take() == [Point("RequestMs", (), minute_ms(T0), 3.0, 3), Point("RequestMsMax", (), minute_ms(T0), 6.0)]


def test_a_gauge_posts_the_last_value_and_empty_dimensions_are_left_out():
    agg = Aggregator({"function": "compactor", "deployment": ""})
    agg.gauge("SnapshotAgeSeconds", 50, T0)
    agg.gauge("SnapshotAgeSeconds", 0, T0 + 1)
    assert agg.take() == [Point("SnapshotAgeSeconds", (("function", "compactor"),), minute_ms(T0), 0.0)]


def test_status_classes():
    assert [status_class(s) for s in (200, 304, 404, 507, 99, 600)] == ["2xx", "3xx", "4xx", "5xx", "other", "other"]


@given(st.lists(st.tuples(st.integers(0, 120), st.integers(0, 3)), max_size=400))
def test_batches_hold_at_most_50_streams_and_lose_no_point(items):
    points = [Point(f"M{n}", (("k", str(d)),), 0, 1.0) for n, d in items]
    batches = streams(points)
    assert all(1 <= len(batch) <= MAX_STREAMS_PER_POST for batch in batches)
    assert sorted((p.name, p.dimensions) for batch in batches for _, _, pts in batch for p in pts) == \
        sorted((p.name, p.dimensions) for p in points)
    names = [(name, dims) for batch in batches for name, dims, _ in batch]
    assert len(names) == len(set(names))  # one stream is in one batch only


def test_a_tally_of_observations_counts_as_the_observations_themselves():
    one_by_one, tallied = Aggregator(), Aggregator()
    for value in (1.0, 5.0, 3.0):
        one_by_one.observe("StreamWriteMs", value, T0)
    tallied.observe_many("StreamWriteMs", 2, 6.0, 5.0, T0)
    tallied.observe("StreamWriteMs", 3.0, T0)
    tallied.observe_many("StreamWriteMs", 0, 0.0, 0.0, T0)  # nothing: no cell
    assert one_by_one.take() == tallied.take()


def test_minutes_older_than_asked_are_dropped():
    agg = Aggregator()
    agg.count("Requests", T0 - 3 * 3600)
    agg.count("Requests", T0)
    assert agg.drop_before(minute_ms(T0 - 7200)) == 1
    assert [p.minute_ms for p in agg.take()] == [minute_ms(T0)]
