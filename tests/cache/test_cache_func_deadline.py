"""The cache function's wait budget for the cold start: the call's Fn-Deadline less a margin, so that
a ``503 restoring`` leaves before the platform gives up on the call."""

from __future__ import annotations

import importlib.util
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from freezegun import freeze_time

FUNC = Path(__file__).resolve().parents[2] / "functions" / "cache" / "func.py"


@pytest.fixture(scope="module")
def func():
    spec = importlib.util.spec_from_file_location("cache_func_under_test", FUNC)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # so that freezegun finds (and patches) its datetime
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


class Ctx:
    def __init__(self, deadline) -> None:
        self.deadline = deadline

    def Deadline(self):
        return self.deadline


@freeze_time("2030-01-01T00:00:00Z")
@pytest.mark.parametrize(
    ("deadline", "budget"),
    [
        ("2030-01-01T00:00:30.000000Z", 29.0),  # what the agent sends: RFC 3339, UTC
        ("2030-01-01T01:00:10+01:00", 9.0),  # another offset, same instant rules
        ("2030-01-01T00:00:00.500Z", 0.0),  # less than the margin left: do not wait at all
        ("2029-12-31T23:59:00Z", 0.0),  # already past
        ("not a time", None),
        ("2030-01-01T00:00:30", None),  # no zone: cannot be trusted
        (None, None),
    ],
)
def test_the_budget_is_the_deadline_less_a_margin(func, deadline, budget):
    assert func._wait_budget(Ctx(deadline)) == budget


def test_the_fdk_default_deadline_gives_about_thirty_seconds(func):
    default = (datetime.now(timezone.utc) + timedelta(seconds=30)).astimezone().isoformat()
    assert 28.0 < func._wait_budget(Ctx(default)) <= 29.0
