"""Which idle instance the local pool hands a request to (the gateway's and the invoke API's choice)."""

from __future__ import annotations

import pytest

from streamcache_local.pool import Dispatch, Pool


def _serve(pool: Pool, requests: int) -> list[str]:
    """Sequential requests: acquire, answer, release. Which instance served each."""
    served = []
    for _ in range(requests):
        instance = pool.acquire(0)
        served.append(instance)
        pool.release(instance)
    return served


def test_by_default_a_sequential_client_stays_on_the_instance_released_last():
    # Fn's agent keeps hot containers in a LIFO slot queue: the warm one serves, the others idle.
    pool = Pool(["fn1", "fn2", "fn3"])
    served = _serve(pool, 6)
    assert len(set(served)) == 1


def test_the_instance_released_last_is_taken_when_several_are_idle():
    pool = Pool(["fn1", "fn2", "fn3"])
    first, second = pool.acquire(0), pool.acquire(0)
    pool.release(second)
    pool.release(first)  # released last: the next request goes here
    assert pool.acquire(0) == first
    assert pool.acquire(0) == second  # then the one released before it


def test_a_busy_instance_sends_the_next_request_to_an_idle_one():
    pool = Pool(["fn1", "fn2"])
    held = pool.acquire(0)
    other = pool.acquire(0)
    assert other != held
    assert pool.acquire(0) is None  # both busy, no spawn: nothing within the wait


def test_round_robin_spreads_sequential_requests_over_every_instance():
    pool = Pool(["fn1", "fn2", "fn3"], dispatch=Dispatch.ROUND_ROBIN)
    assert _serve(pool, 6) == ["fn1", "fn2", "fn3", "fn1", "fn2", "fn3"]


def test_an_idle_instance_that_was_not_chosen_is_reaped_after_its_idle_time():
    now = [0.0]
    pool = Pool(["fn1", "fn2"], clock=lambda: now[0])
    now[0] = 10.0
    served = set(_serve(pool, 5))
    assert pool.retire_idle(5.0) == [m for m in ["fn1", "fn2"] if m not in served]
    assert pool.live() == sorted(served)


class _Frozen:
    """An instance that records the freezer's signals instead of sending them."""

    def __init__(self, name: str) -> None:
        self.name, self.frozen, self.signals = name, False, []

    def freeze(self) -> None:
        self.frozen = True
        self.signals.append("STOP")

    def thaw(self) -> None:
        self.frozen = False
        self.signals.append("CONT")


def test_an_idle_instance_is_frozen_once_its_freeze_time_passed_and_thawed_for_its_next_request():
    now = [0.0]
    fn1 = _Frozen("fn1")
    pool = Pool([fn1], clock=lambda: now[0], freeze_after_s=0.05)
    pool.release(pool.acquire(0))
    now[0] = 0.049
    assert pool.freeze_idle() == pytest.approx(0.001)
    assert fn1.signals == []  # not yet: 49 ms after its answer
    now[0] = 0.05
    assert pool.freeze_idle() is None  # frozen; nothing else waits to be
    assert fn1.signals == ["STOP"]
    assert pool.freeze_idle() is None and fn1.signals == ["STOP"]  # once
    assert pool.acquire(0) is fn1 and fn1.signals == ["STOP", "CONT"]  # continued before it is handed out
    assert (pool.freezes, pool.thaws) == (1, 1)


def test_a_busy_instance_is_never_frozen():
    now = [0.0]
    fn1 = _Frozen("fn1")
    pool = Pool([fn1], clock=lambda: now[0], freeze_after_s=0.05)
    held = pool.acquire(0)
    now[0] = 10.0
    assert pool.freeze_idle() is None
    assert fn1.signals == []
    pool.release(held)
    assert pool.freeze_idle() == pytest.approx(0.05)  # due 50 ms after the answer, not after the request began


def test_thaw_all_continues_the_frozen_and_freezes_no_more():
    now = [1.0]
    instances = [_Frozen("fn1"), _Frozen("fn2")]
    pool = Pool(instances, clock=lambda: now[0], freeze_after_s=0.05)
    now[0] = 2.0
    pool.freeze_idle()
    assert all(i.frozen for i in instances)
    pool.thaw_all()
    now[0] = 3.0
    assert pool.freeze_idle() is None
    assert not any(i.frozen for i in instances)


def test_a_pool_with_spawn_grows_to_its_capacity_under_concurrent_requests_and_no_further():
    # Fn's scale-out: each instance takes one request; a request that finds all busy starts one.
    names = iter(f"fn{n}" for n in range(2, 100))
    pool = Pool(["fn1"], spawn=lambda: next(names), capacity=4)
    held = [pool.acquire(0) for _ in range(4)]
    assert held == ["fn1", "fn2", "fn3", "fn4"]
    assert pool.acquire(0) is None  # at capacity, all busy
    assert pool.peak == 4
