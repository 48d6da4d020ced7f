"""Which snapshots to keep: a retention policy in the manner of Litestream's, decided from names alone.

A snapshot is the whole table as of its log time, so keeping snapshots is what lets an operator go
back in time further than the stream's retention. The policy:

1. the newest :attr:`RetentionPolicy.keep_newest` intact snapshots, always (the fallbacks when the
   newest turns out damaged), however old;
2. every snapshot whose as-of time lies within :attr:`RetentionPolicy.keep_all_for_ms` of now;
3. before that window, the newest snapshot of each UTC day, for :attr:`RetentionPolicy.daily_for_days`
   days.

Everything else is pruned. A snapshot found damaged counts for nothing: it is kept only while it is
newer than the fallbacks of rule 1 (so that a listing shows what happened) and never by rules 2-3.
A snapshot whose as-of time lies after now (a writer's clock was ahead, see ``core/log_time.py``)
counts for rule 1 only: rule 2 would otherwise keep it, and every snapshot after it, until the wall
clock caught up, however many there were.
Chains (:mod:`.snapshot_chain`): a delta is a snapshot like any other for these rules, and every
older link a kept delta needs (back to its base) is kept with it, whatever its age. A delta whose
chain lacks a link cannot be loaded, so it counts as damaged.
Pure: the caller passes the names (newest first, with their as-of times) and the wall clock's now.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Sequence

from streamcache.core.snapshot_chain import broken, needed_by

DAY_MS = 86_400_000


@dataclass(frozen=True)
class RetentionPolicy:
    keep_newest: int = 3
    keep_all_for_ms: int = DAY_MS
    daily_for_days: int = 7

    def __post_init__(self) -> None:
        if self.keep_newest < 1 or self.keep_all_for_ms < 0 or self.daily_for_days < 0:
            raise ValueError("keep at least one snapshot; windows cannot be negative")

    @property
    def reach_ms(self) -> int:
        """How far back (before now) snapshots are kept, at one a day past the window."""
        return self.keep_all_for_ms + self.daily_for_days * DAY_MS

    def keep(self, snapshots: Sequence[tuple[str, int]], now_ms: int, damaged: Iterable[str] = ()) -> set[str]:
        """The names to keep among ``snapshots``: ``(name, as-of ms)`` pairs, newest first."""
        damaged = set(damaged) | broken(name for name, _ in snapshots)
        kept: set[str] = set()
        intact = [(name, as_of) for name, as_of in snapshots if name not in damaged]
        fallbacks = intact[: self.keep_newest]
        kept.update(name for name, _ in fallbacks)
        oldest_fallback = fallbacks[-1][0] if fallbacks else None
        for name, _ in snapshots:  # damaged ones newer than the last fallback stay visible
            if name == oldest_fallback:
                break
            if name in damaged:
                kept.add(name)
        window_start = now_ms - self.keep_all_for_ms
        daily_start = window_start - self.daily_for_days * DAY_MS
        days_taken: set[int] = set()
        for name, as_of in intact:  # newest first: the first seen of a day is its newest
            if as_of > now_ms:
                continue  # from the future: only rule 1 keeps it
            if as_of >= window_start:
                kept.add(name)
            elif as_of >= daily_start and as_of // DAY_MS not in days_taken:
                days_taken.add(as_of // DAY_MS)
                kept.add(name)
        return kept | needed_by(kept, [name for name, _ in snapshots])
