"""The snapshot retention policy (core/retention.py): every snapshot for a window, then one a day."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streamcache.core.retention import DAY_MS, RetentionPolicy

NOW = 20_000 * DAY_MS + 15 * 3_600_000  # 15:00 UTC on some day
HOUR = 3_600_000


def names(*ages_h: float) -> list[tuple[str, int]]:
    """Snapshots ``age`` hours old, newest first, named by their age."""
    return sorted(((f"s{age:g}h", NOW - int(age * HOUR)) for age in ages_h), key=lambda s: -s[1])


def test_everything_within_the_window_is_kept_then_the_newest_of_each_day():
    snapshots = names(0, 1, 12, 23.9, 24.5, 30, 40, 50, 8 * 24 + 10, 30 * 24)
    kept = RetentionPolicy(keep_newest=1, keep_all_for_ms=DAY_MS, daily_for_days=7).keep(snapshots, NOW)
    # Within 24 h: all four. Before the window, one a day: 24.5 h ago is the newest of yesterday
    # (30 h ago is yesterday too), 40 h ago the newest of the day before (50 h ago shares its day).
    # 8 days and 10 hours ago is past the window plus 7 days, and so is a month ago.
    assert kept == {"s0h", "s1h", "s12h", "s23.9h", "s24.5h", "s40h"}


def test_the_newest_intact_snapshots_are_kept_however_old():
    snapshots = names(100 * 24, 200 * 24, 300 * 24)
    assert RetentionPolicy(keep_newest=2).keep(snapshots, NOW) == {"s2400h", "s4800h"}


def test_a_damaged_snapshot_is_no_fallback_and_only_stays_while_newer_than_the_fallbacks():
    snapshots = names(100 * 24, 200 * 24, 300 * 24)
    policy = RetentionPolicy(keep_newest=1, keep_all_for_ms=0, daily_for_days=0)
    assert policy.keep(snapshots, NOW, damaged={"s2400h"}) == {"s2400h", "s4800h"}
    assert policy.keep(snapshots, NOW, damaged={"s4800h"}) == {"s2400h"}


def test_a_snapshot_dated_after_now_is_kept_only_as_one_of_the_newest():
    """A writer's clock a day ahead gave the last five snapshots an as-of time after now: the window
    of rule 2 does not keep them all; the newest ones are the fallbacks, as always."""
    future = [(f"f{i}", NOW + DAY_MS + (5 - i) * HOUR) for i in range(5)]  # newest first
    snapshots = future + names(1, 2)
    kept = RetentionPolicy(keep_newest=2, keep_all_for_ms=DAY_MS, daily_for_days=7).keep(snapshots, NOW)
    assert kept == {"f0", "f1", "s1h", "s2h"}


def test_a_policy_keeps_at_least_one_snapshot():
    with pytest.raises(ValueError):
        RetentionPolicy(keep_newest=0)


@given(st.lists(st.integers(0, 40 * DAY_MS), min_size=1, max_size=40, unique=True),
       st.integers(1, 4), st.integers(0, 3 * DAY_MS), st.integers(0, 10))
def test_properties_of_any_policy(ages, keep_newest, window, days):
    snapshots = sorted(((f"s{age}", NOW - age) for age in ages), key=lambda s: -s[1])
    policy = RetentionPolicy(keep_newest, window, days)
    kept = policy.keep(snapshots, NOW)
    assert {name for name, _ in snapshots[:keep_newest]} <= kept  # the fallbacks
    assert {name for name, as_of in snapshots if NOW - as_of <= window} <= kept  # the window
    for name, as_of in snapshots:  # nothing older than the reach but the fallbacks
        if NOW - as_of > policy.reach_ms + DAY_MS:
            assert name not in kept or name in {n for n, _ in snapshots[:keep_newest]}
    older = [(n, a) for n, a in snapshots if NOW - a > window and n in kept and n not in dict(snapshots[:keep_newest])]
    assert len({a // DAY_MS for _, a in older}) == len(older)  # at most one a day before the window
