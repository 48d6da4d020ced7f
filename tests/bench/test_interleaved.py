"""The bench's interleaving: a path and the floor it is compared with run in turns, so that both see
the same machine."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

from harness.common import interleaved


def test_the_two_sides_take_turns_in_blocks_and_each_runs_count_times():
    calls: list[tuple[str, int]] = []
    ours, theirs = interleaved(lambda i: calls.append(("put", i)), lambda i: calls.append(("append", i)),
                               count=5, budget_s=60, block=2)
    assert calls == [("append", 0), ("append", 1), ("put", 0), ("put", 1),
                     ("append", 2), ("append", 3), ("put", 2), ("put", 3),
                     ("append", 4), ("put", 4)]
    assert len(ours.latencies) == len(theirs.latencies) == 5
    assert not ours.capped_by_time


def test_warmup_calls_are_not_timed_and_failures_are_counted():
    seen: list[int] = []
    ours, theirs = interleaved(lambda i: seen.append(i) or (i % 2 == 0), lambda i: None, count=4, budget_s=60,
                               warmup=2, ok=bool, block=4)
    assert seen[:2] == [-1, -2] and seen[2:] == [0, 1, 2, 3]
    assert len(ours.latencies) == 4 and ours.errors == 2  # 1 and 3 answered False


def test_a_spent_budget_stops_after_the_current_turn():
    ours, theirs = interleaved(lambda i: None, lambda i: None, count=1000, budget_s=0, block=10)
    assert len(ours.latencies) == len(theirs.latencies) == 10
    assert ours.capped_by_time
