"""Restore planning: where replay starts, and the two named problems (truncated tail, snapshot ahead)."""

from __future__ import annotations

import pytest

from streamcache.core.restore import RestoreAction, plan_restore
from streamcache.core.snapshot import SnapshotHeader
from streamcache.ports import LogBounds


def snapshot(next_offsets: dict[int, int]) -> SnapshotHeader:
    return SnapshotHeader("orders", next_offsets, dict.fromkeys(next_offsets, 1_000), 1_000, 10, 0)


def test_without_a_snapshot_an_intact_log_is_replayed_from_the_start():
    plan = plan_restore(None, LogBounds(first={0: 0, 1: 0}, next={0: 5, 1: 7}))
    assert plan.action is RestoreAction.REPLAY and not plan.degraded
    assert (plan.snapshot, plan.start, plan.end) == (None, {0: 0, 1: 0}, {0: 5, 1: 7})
    assert plan.records_to_replay == 12
    assert "restore from no snapshot, replay 12 records" in plan.describe()


def test_a_snapshot_within_the_log_is_loaded_and_the_tail_replayed_from_its_positions():
    header = snapshot({0: 40, 1: 10})
    plan = plan_restore(header, LogBounds(first={0: 30, 1: 0, 2: 0}, next={0: 45, 1: 10, 2: 3}))
    assert plan.action is RestoreAction.REPLAY
    assert plan.snapshot is header
    assert plan.start == {0: 40, 1: 10, 2: 0}  # a partition the snapshot never saw starts at 0
    assert plan.records_to_replay == 5 + 0 + 3
    assert not plan.tail_truncated and not plan.snapshot_ahead_of_log


def test_a_snapshot_exactly_at_the_retention_edge_loses_nothing():
    plan = plan_restore(snapshot({0: 30}), LogBounds(first={0: 30}, next={0: 30}))
    assert plan.action is RestoreAction.REPLAY
    assert plan.records_to_replay == 0


def test_records_dropped_by_retention_beyond_the_snapshot_are_reported_as_lost():
    header = snapshot({0: 25, 1: 10})
    plan = plan_restore(header, LogBounds(first={0: 30, 1: 4}, next={0: 50, 1: 12}))
    assert plan.tail_truncated and plan.degraded
    assert plan.action is RestoreAction.REPLAY_WITH_LOSS
    assert plan.lost == {0: (25, 30)}
    assert plan.records_lost == 5
    assert plan.snapshot is header  # still the best there is: load it, then what the log holds
    assert plan.start == {0: 30, 1: 10}
    text = plan.describe()
    assert text.startswith("DATA LOSS") and "partition 0: offsets 25 to 29" in text and "retention" in text


def test_without_a_snapshot_a_log_that_lost_its_head_is_truncated():
    plan = plan_restore(None, LogBounds(first={0: 100}, next={0: 120}))
    assert plan.lost == {0: (0, 100)}
    assert plan.start == {0: 100}


def test_a_snapshot_beyond_the_log_end_means_another_stream_and_is_not_used():
    header = snapshot({0: 5000, 1: 2})
    plan = plan_restore(header, LogBounds(first={0: 0, 1: 0}, next={0: 12, 1: 9}))
    assert plan.snapshot_ahead_of_log and plan.degraded
    assert plan.action is RestoreAction.STREAM_MISMATCH
    assert plan.snapshot is None and plan.rejected is header
    assert plan.ahead == {0: (5000, 12)}
    assert plan.start == {0: 0, 1: 0} and plan.end == {0: 12, 1: 9}
    text = plan.describe()
    assert "SNAPSHOT OF ANOTHER LOG" in text and "partition 0: snapshot at 5000, log ends at 12" in text


def test_a_snapshot_of_partitions_the_log_does_not_have_is_ahead():
    plan = plan_restore(snapshot({0: 1, 3: 1}), LogBounds(first={0: 0}, next={0: 1}))
    assert plan.ahead == {3: (1, None)}
    assert "the log has no such partition" in plan.describe()


def test_ahead_wins_over_truncated():
    plan = plan_restore(snapshot({0: 5, 1: 99}), LogBounds(first={0: 10, 1: 0}, next={0: 20, 1: 3}))
    assert plan.action is RestoreAction.STREAM_MISMATCH
    assert plan.lost == {}


@pytest.mark.parametrize(
    "end, action",
    [(0, RestoreAction.STREAM_MISMATCH), (6, RestoreAction.STREAM_MISMATCH), (7, RestoreAction.REPLAY)],
)
def test_the_boundary_between_caught_up_and_ahead(end, action):
    plan = plan_restore(snapshot({0: 7}), LogBounds(first={0: 0}, next={0: end}))
    assert plan.action is action
    assert plan.records_to_replay == (0 if action is RestoreAction.REPLAY else end)
