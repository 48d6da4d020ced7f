"""The local alarm evaluator on hand-made datapoints: which minutes a threshold alarm looks at, and
when an absence alarm fires. Each datapoint is a minute's aggregate stamped with its minute's start,
as the functions post them; ``now`` is an argument, so nothing waits."""

from __future__ import annotations

from streamcache_local.alarms import AlarmState, Datapoint, evaluate

AGE = 'SnapshotAgeSeconds[1m]{deployment = "d"}.grouping().max() > 3600'
ERRORS = 'Requests[5m]{deployment = "d", statusClass = "5xx"}.grouping().sum() > 0'
ABSENT = 'Compactions[1m]{deployment = "d"}.groupBy(deployment).absent(10m)'
NOON = 1_790_002_800.0  # a minute's start (12:00:00)


def point(name: str, minute: int, value: float, **dims: str) -> Datapoint:
    return Datapoint(name, {"deployment": "d", **dims}, NOON + 60 * minute, value)


def test_a_minute_posted_at_its_end_is_still_the_newest_just_after_it():
    points = [point("SnapshotAgeSeconds", 0, 5.0)]  # posted at 12:00:59, stamped 12:00:00
    assert evaluate(AGE, points, NOON + 60.5) is AlarmState.OK
    assert evaluate(AGE, points, NOON + 119.0) is AlarmState.OK
    assert evaluate(AGE, points, NOON + 120.5) is AlarmState.NO_DATA  # a whole minute with nothing after it


def test_once_the_current_minute_has_arrived_only_it_counts():
    points = [point("SnapshotAgeSeconds", 0, 4000.0), point("SnapshotAgeSeconds", 1, 0.0)]
    assert evaluate(AGE, points[:1], NOON + 61.0) is AlarmState.FIRING
    assert evaluate(AGE, points, NOON + 61.0) is AlarmState.OK  # a compaction ran again: the age is 0


def test_a_five_minute_window_adds_up_its_minutes_and_no_others():
    errors = [point("Requests", m, 1.0, statusClass="5xx") for m in (0, 6)]
    other = [point("Requests", 7, 9.0, statusClass="2xx"), point("Requests", 7, 9.0, statusClass="5xx", deployment="e")]
    assert evaluate(ERRORS, errors + other, NOON + 4 * 60 + 30) is AlarmState.FIRING
    assert evaluate(ERRORS, errors[:1] + other, NOON + 6 * 60 + 30) is AlarmState.NO_DATA  # minutes 1 to 5
    assert evaluate(ERRORS, errors + other, NOON + 7 * 60 + 30) is AlarmState.FIRING  # minute 6, the newest
    assert evaluate(ERRORS, [point("Requests", 0, 0.0, statusClass="5xx")], NOON + 30) is AlarmState.OK


def test_absence_fires_once_no_minute_overlaps_the_detection_period():
    points = [point("Compactions", 0, 1.0, outcome="written")]
    assert evaluate(ABSENT, points, NOON + 10 * 60 + 59) is AlarmState.OK  # minute 0 ends at 12:01
    assert evaluate(ABSENT, points, NOON + 11 * 60) is AlarmState.FIRING
    assert evaluate(ABSENT, [], NOON) is AlarmState.FIRING
    assert evaluate(ABSENT, [point("Compactions", 12, 1.0)], NOON + 11 * 60) is AlarmState.FIRING  # not yet posted
