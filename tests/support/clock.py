"""A clock a test sets by hand: pass it where code takes a ``clock`` / ``monotonic`` callable."""

from __future__ import annotations


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
