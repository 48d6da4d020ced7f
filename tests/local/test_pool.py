"""Which idle instance the local pool hands a request to (the gateway's and the invoke API's choice)."""

from __future__ import annotations

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
