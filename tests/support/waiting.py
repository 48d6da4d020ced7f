"""Waiting for a condition in tests: poll it until a deadline, never sleep a fixed time instead."""

from __future__ import annotations

import time


def wait_for(condition, timeout_s: float = 10.0, what: str = "condition"):
    """Return ``condition()``'s first truthy result; fail the test if none came within ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.01)  # polling a condition, bounded by the deadline
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
