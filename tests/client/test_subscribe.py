"""Subscribing to the change feed on a real broker: from earliest/latest/a position, by prefix, in groups."""

from __future__ import annotations

import time

import pytest

from streamcache.adapters.kafka_log import KafkaLog
from streamcache.core import records
from streamcache.core.errors import InvalidRequest
from streamcache.client.subscribe import Subscription, parse_resume_token


def _split(url: str) -> tuple[str, str]:
    bootstrap, topic = url.removeprefix("kafka://").split("/", 1)
    return bootstrap, topic


def _write(log: KafkaLog, key: str, value: bytes, n: int) -> records.Position:
    mutation = records.Put(key, value, "text/plain", f"req-{key}-{n}", 1_700_000_000_000 + n)
    return log.append(key, records.encode(mutation))


def _collect(sub: Subscription, count: int, deadline_s: float = 20.0) -> list:
    events, deadline = [], time.monotonic() + deadline_s
    while len(events) < count and time.monotonic() < deadline:
        events += sub.poll(timeout_ms=200)
    return events


def test_from_earliest_every_event_with_its_position_in_order_per_key(stream):
    url, log = stream
    written = [(_write(log, f"k{i % 4}", b"v%d" % i, i), f"k{i % 4}", b"v%d" % i) for i in range(20)]
    with Subscription(*_split(url), start="earliest") as sub:
        events = _collect(sub, 20)
    assert sorted((e.position, e.key, e.mutation.value) for e in events) == sorted(written)
    for key in ("k0", "k1", "k2", "k3"):
        values = [e.mutation.value for e in events if e.key == key]
        assert values == [v for _, k, v in written if k == key]
    assert all(e.kind == "put" for e in events)


def test_prefix_filter_and_foreign_records_are_skipped(stream):
    url, log = stream
    _write(log, "user/1", b"a", 1)
    _write(log, "order/1", b"b", 2)
    log.append("user/2", b"not a cloudevent")
    _write(log, "user/3", b"c", 3)
    with Subscription(*_split(url), prefix="user/") as sub:
        events = _collect(sub, 2)
        # drain: the foreign record must have been seen and skipped by now or shortly after
        deadline = time.monotonic() + 5
        while sub.skipped == 0 and time.monotonic() < deadline:
            events += sub.poll(timeout_ms=100)
    assert sorted(e.key for e in events) == ["user/1", "user/3"]
    assert sub.skipped == 1


def test_resume_from_a_token_misses_nothing_and_repeats_nothing(stream):
    url, log = stream
    for i in range(10):
        _write(log, f"k{i}", b"x", i)
    with Subscription(*_split(url)) as first:
        seen = _collect(first, 10)
        token = first.resume_token()
    for i in range(10, 16):
        _write(log, f"k{i}", b"y", i)
    with Subscription(*_split(url), start=parse_resume_token(token)) as second:
        rest = _collect(second, 6)
    assert len(seen) == 10 and sorted(e.key for e in rest) == sorted(f"k{i}" for i in range(10, 16))
    assert not {e.position for e in seen} & {e.position for e in rest}


def test_from_latest_only_new_events(stream):
    url, log = stream
    for i in range(5):
        _write(log, f"old{i}", b"x", i)
    with Subscription(*_split(url), start="latest") as sub:
        _write(log, "new", b"y", 99)
        events = _collect(sub, 1)
    assert [e.key for e in events] == ["new"]


def test_consumer_group_resumes_from_committed_offsets(stream):
    url, log = stream
    for i in range(30):
        _write(log, f"k{i}", b"x", i)
    bootstrap, topic = _split(url)
    # Tansu holds a JoinGroup for session_timeout/2, so a short session keeps the test quick.
    with Subscription(bootstrap, topic, group_id="g1", session_timeout_ms=2000) as a:
        events = _collect(a, 30)
        a.commit()
    assert len(events) == 30
    for i in range(30, 35):
        _write(log, f"k{i}", b"y", i)
    with Subscription(bootstrap, topic, group_id="g1", session_timeout_ms=2000) as b:
        later = _collect(b, 5)
    assert sorted(e.key for e in later) == sorted(f"k{i}" for i in range(30, 35))


def test_bad_resume_tokens_are_refused():
    with pytest.raises(InvalidRequest):
        parse_resume_token("zero")
    with pytest.raises(InvalidRequest):
        parse_resume_token("")
    assert parse_resume_token("0-12,2-7") == {0: 12, 2: 7}


def test_two_group_members_split_the_partitions(stream):
    url, log = stream
    bootstrap, topic = _split(url)
    a = Subscription(bootstrap, topic, group_id="g2", session_timeout_ms=2000)
    b = Subscription(bootstrap, topic, group_id="g2", session_timeout_ms=2000)
    try:
        # Both members must hold an assignment before the writes, so that neither takes all.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (a.partitions() and b.partitions()
                                                   and len(a.partitions() | b.partitions()) == 3):
            a.poll(timeout_ms=100)
            b.poll(timeout_ms=100)
        assert not a.partitions() & b.partitions()
        for i in range(30):
            _write(log, f"k{i}", b"x", i)
        got_a, got_b, deadline = [], [], time.monotonic() + 20
        while len(got_a) + len(got_b) < 30 and time.monotonic() < deadline:
            got_a += a.poll(timeout_ms=100)
            got_b += b.poll(timeout_ms=100)
    finally:
        a.close()
        b.close()
    assert got_a and got_b
    assert sorted(e.key for e in got_a + got_b) == sorted(f"k{i}" for i in range(30))
    assert not {e.position.partition for e in got_a} & {e.position.partition for e in got_b}


def test_an_increment_reads_as_an_increment_with_its_delta_and_a_mirror_can_apply_it(stream):
    """A subscriber mirroring the cache by ``kind`` ends with the cache's counters (not deleting them)."""
    url, log = stream
    ts = 1_700_000_000_000
    log.append("n", records.encode(records.Put("n", b"10", "text/plain", "r-put-n", ts)))
    log.append("n", records.encode(records.Increment("n", 5, "r-incr-n", ts + 1)))
    log.append("m", records.encode(records.Increment("m", -3, "r-incr-m", ts + 2, ts + 60_000)))
    log.append("gone", records.encode(records.Put("gone", b"1", "text/plain", "r-put-gone", ts + 3)))
    log.append("gone", records.encode(records.Delete("gone", "r-del-gone", ts + 4)))
    with Subscription(*_split(url), start="earliest") as sub:
        events = _collect(sub, 5)
    mirror: dict[str, int] = {}
    for event in events:  # a key's records arrive in log order: all a mirror needs
        if event.kind == "put":
            mirror[event.key] = int(event.mutation.value)
        elif event.kind == "increment":
            mirror[event.key] = mirror.get(event.key, 0) + event.mutation.by
        else:
            mirror.pop(event.key, None)
    assert mirror == {"n": 15, "m": -3}
    increment = next(e for e in events if e.key == "m")
    assert (increment.kind, increment.by) == ("increment", -3)
    assert {k: increment.as_json()[k] for k in ("kind", "key", "by", "expires_at_ms")} == \
        {"kind": "increment", "key": "m", "by": -3, "expires_at_ms": ts + 60_000}
    assert [e.by for e in events if e.kind != "increment"] == [None, None, None]


def test_change_kinds_name_the_record_types():
    from streamcache import ChangeKind  # the client's own copy of the record types: the same strings

    assert {ChangeKind.of_type(t) for t in (records.PUT_TYPE, records.DELETE_TYPE, records.INCREMENT_TYPE,
                                                    records.TOUCH_TYPE)} \
        == set(ChangeKind)
    with pytest.raises(ValueError, match="io.streamcache.put.v2"):
        ChangeKind.of_type("io.streamcache.put.v2")
