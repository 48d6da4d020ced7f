"""The linearizability checker (tests/support/history.py) on hand-made histories: it must accept
what a register allows and reject a stale read, a lost write, a double CAS win, wrong statuses, and
an indeterminate write seen before it was sent. A property test feeds it histories of a simulated
concurrent register (always linearizable by construction) and the same histories with one answer
corrupted."""

from __future__ import annotations

import math
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from support.history import CAS, DELETE, INCR, READ, UNKNOWN, WRITE, Op, check, check_key


def op(kind, called, returned, output, value=None, expected=None, key="k", client=0) -> Op:
    return Op(client, kind, key, called, returned, value=value, expected=expected, output=output)


def w(value, called, returned, status, version, **kw):
    return op(WRITE, called, returned, (status, version), value=value, **kw)


def r(called, returned, value=None, version=None, **kw):
    return op(READ, called, returned, None if value is None else (value, version), **kw)


def ok(ops) -> bool:
    return check_key(ops)[0]


# ---- accepted -------------------------------------------------------------------------------------


def test_a_sequential_history_is_linearizable():
    assert ok([w("a", 0, 1, 201, "0-0"), r(2, 3, "a", "0-0"), w("b", 4, 5, 200, "0-1"), r(6, 7, "b", "0-1"),
               op(DELETE, 8, 9, 204), r(10, 11)])


def test_a_read_concurrent_with_a_write_may_see_either_value():
    base = [w("a", 0, 1, 201, "0-0"), w("b", 2, 6, 200, "0-1")]
    assert ok(base + [r(3, 4, "a", "0-0")])
    assert ok(base + [r(3, 4, "b", "0-1")])
    # ...but once one reader saw the new value, a later reader cannot see the old one.
    assert not ok(base + [r(3, 4, "b", "0-1", client=1), r(4.5, 5, "a", "0-0", client=2)])


def test_concurrent_writes_may_land_in_either_order():
    writes = [w("a", 0, 3, 201, "0-0", client=1), w("b", 1, 2, 200, "0-1", client=2)]
    assert ok(writes + [r(4, 5, "b", "0-1")])  # a then b
    swapped = [w("a", 0, 3, 200, "0-1", client=1), w("b", 1, 2, 201, "0-0", client=2)]
    assert ok(swapped + [r(4, 5, "a", "0-1")])  # b then a: a replaced b


def test_an_indeterminate_write_may_or_may_not_have_happened():
    lost = op(WRITE, 1, math.inf, UNKNOWN, value="x")
    assert ok([w("a", 0, 0.5, 201, "0-0"), lost, r(2, 3, "a", "0-0")])
    assert ok([w("a", 0, 0.5, 201, "0-0"), lost, r(2, 3, "x", "0-9")])
    # It may even take effect after a later read saw the old value.
    assert ok([w("a", 0, 0.5, 201, "0-0"), lost, r(2, 3, "a", "0-0"), r(4, 5, "x", "0-9")])


def test_cas_with_one_winner_and_one_412_is_linearizable():
    history = [w("a", 0, 1, 201, "0-0"),
               op(CAS, 2, 4, (200, "0-1"), value="b", expected="0-0", client=1),
               op(CAS, 2, 4, (412, "0-1"), value="c", expected="0-0", client=2),
               r(5, 6, "b", "0-1")]
    assert ok(history)


def test_create_if_absent_and_delete_statuses():
    assert ok([op(CAS, 0, 1, (201, "0-0"), value="a", expected=None), op(CAS, 2, 3, (412, "0-0"), value="b", expected=None),
               op(DELETE, 4, 5, 204), op(DELETE, 6, 7, 404), op(CAS, 8, 9, (201, "0-4"), value="c", expected=None)])


# ---- rejected -------------------------------------------------------------------------------------


def test_a_stale_read_is_rejected():
    verdict = check([w("a", 0, 1, 201, "0-0"), w("b", 2, 3, 200, "0-1"), r(4, 5, "a", "0-0")])
    assert not verdict
    assert "key 'k'" in str(verdict) and "could not place" in str(verdict)


def test_a_lost_acknowledged_write_is_rejected():
    # The final read after every client stopped must be explained: an acknowledged write vanished.
    assert not ok([w("a", 0, 1, 201, "0-0"), w("b", 2, 3, 200, "0-1"), r(10, 11, "a", "0-0")])
    assert not ok([w("a", 0, 1, 201, "0-0"), r(10, 11)])


def test_a_read_of_a_value_never_written_is_rejected():
    assert not ok([w("a", 0, 1, 201, "0-0"), r(2, 3, "zzz", "0-7")])


def test_an_indeterminate_write_cannot_be_seen_before_it_was_sent():
    assert not ok([r(0, 1, "x", "0-0"), op(WRITE, 2, math.inf, UNKNOWN, value="x")])


def test_two_cas_winners_on_one_version_are_rejected():
    history = [w("a", 0, 1, 201, "0-0"),
               op(CAS, 2, 4, (200, "0-1"), value="b", expected="0-0", client=1),
               op(CAS, 2, 4, (200, "0-2"), value="c", expected="0-0", client=2)]
    assert not ok(history)


def test_a_412_that_names_a_version_the_key_never_had_then_is_rejected():
    assert not ok([w("a", 0, 1, 201, "0-0"), op(CAS, 2, 3, (412, "0-0"), value="b", expected="0-0")])


def test_wrong_created_replaced_and_delete_statuses_are_rejected():
    assert not ok([w("a", 0, 1, 201, "0-0"), w("b", 2, 3, 201, "0-1")])  # b replaced a: 200
    assert not ok([w("a", 0, 1, 200, "0-0")])  # nothing to replace: 201
    assert not ok([op(DELETE, 0, 1, 204)])  # nothing to delete: 404
    assert not ok([w("a", 0, 1, 201, "0-0"), op(DELETE, 2, 3, 404)])


def test_one_version_naming_two_values_is_rejected():
    verdict = check([w("a", 0, 1, 201, "0-0"), r(2, 3, "b", "0-0")])
    assert not verdict and "names two values" in str(verdict)


def test_keys_are_checked_independently():
    history = [w("a", 0, 1, 201, "0-0", key="x"), w("a2", 0, 1, 201, "1-0", key="y"),
               r(2, 3, "a", "0-0", key="x"), r(2, 3, key="y")]  # y lost its write
    verdict = check(history)
    assert not verdict and len(verdict.problems) == 1 and "key 'y'" in verdict.problems[0]


# ---- generated histories ------------------------------------------------------------------------


def simulate(seed: int, clients: int = 4, ops_per_client: int = 12, kinds=(READ, READ, WRITE, CAS, DELETE),
             lose: float = 0.1) -> list[Op]:
    """A concurrent register, simulated: each operation takes effect at one instant (its
    linearization point) inside its own [called, returned] interval, so the history it leaves is
    linearizable by construction. Some writes lose their answer (indeterminate)."""
    rng = random.Random(seed)
    points = []
    for client in range(clients):
        t = rng.random()
        for _ in range(ops_per_client):
            called = t + rng.random()
            point = called + rng.random()
            returned = point + rng.random()
            points.append((point, called, returned, client))
            t = returned
    points.sort()
    state, version_of, offset, ops = None, {}, 0, []
    for number, (_point, called, returned, client) in enumerate(points):
        kind = rng.choice(kinds)
        value = f"v{number}"
        if kind == READ:
            ops.append(op(READ, called, returned, None if state is None else (state, version_of[state]), client=client))
            continue
        if kind == DELETE:
            ops.append(op(DELETE, called, returned, 204 if state is not None else 404, client=client))
            state = None
            continue
        status = 201 if state is None else 200
        if kind == CAS:
            expected = rng.choice([None, version_of.get(state), f"0-{rng.randrange(offset + 1)}"])
            holds = (state is None) if expected is None else (state is not None and version_of[state] == expected)
            if not holds:
                ops.append(op(CAS, called, returned, (412, None if state is None else version_of[state]),
                              value=value, expected=expected, client=client))
                offset += 1  # a failed CAS is still a record on the log
                continue
        version_of[value] = f"0-{offset}"
        offset += 1
        state = value
        lost = rng.random() < lose
        output = UNKNOWN if lost else (status, version_of[value])
        ops.append(op(kind, called, math.inf if lost else returned, output, value=value,
                      expected=expected if kind == CAS else None, client=client))
    final = points[-1][0] + 10
    ops.append(op(READ, final, final + 1, None if state is None else (state, version_of[state]), client=99))
    return ops


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_every_simulated_concurrent_history_is_accepted(seed):
    verdict = check(simulate(seed))
    assert verdict, str(verdict)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32))
def test_a_final_read_that_lost_every_write_is_rejected(seed):
    # Without deletes, a key that was written can never read as absent again.
    ops = simulate(seed, kinds=(READ, WRITE, CAS))
    if all(o.kind == READ or (o.kind == CAS and o.output[0] == 412) for o in ops):
        return  # nothing was written
    ops[-1].output = None
    assert not check(ops)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**32), st.data())
def test_a_read_turned_stale_is_rejected(seed, data):
    # Reads of a write that was followed by an acknowledged overwrite completed before the read began.
    ops = simulate(seed, kinds=(READ, WRITE), lose=0.0)
    writes = sorted((o for o in ops if o.kind == WRITE), key=lambda o: o.called)
    candidates = [(old, read) for read in ops if read.kind == READ
                  for old, newer in zip(writes, writes[1:]) if newer.returned < read.called and old.returned < newer.called]
    if not candidates:
        return
    old, read = data.draw(st.sampled_from(candidates))
    read.output = (old.value, old.output[1])
    assert not check(ops)


# ---- counters ---------------------------------------------------------------------------------------


def inc(called, returned, output, by=1, client=0) -> Op:
    return Op(client, INCR, "k", called, returned, output=output, by=by)


def test_concurrent_increments_that_each_saw_their_own_sum_are_linearizable():
    assert ok([inc(0, 3, (201, "0-0", 1), client=0), inc(1, 4, (200, "0-1", 2), client=1),
               r(5, 6, "2", "0-1")])


def test_a_lost_increment_is_caught():
    # Two increments both answered 1: one of them was applied over an absent key it no longer was.
    assert not ok([inc(0, 3, (201, "0-0", 1), client=0), inc(1, 4, (201, "0-1", 1), client=1)])
    # Acknowledged twice, yet a later strong read sees 1: an increment vanished.
    assert not ok([inc(0, 1, (201, "0-0", 1)), inc(2, 3, (200, "0-1", 2)), r(4, 5, "1", "0-0")])


def test_an_increment_of_text_changes_nothing_and_an_unknown_one_may_have_counted():
    assert ok([w("text", 0, 1, 201, "0-0"), inc(2, 3, (409, None, None)), r(4, 5, "text", "0-0")])
    assert ok([inc(0, 1, (201, "0-0", 1)), inc(2, math.inf, UNKNOWN), r(3, 4, "2", "0-1")])
    assert ok([inc(0, 1, (201, "0-0", 1)), inc(2, math.inf, UNKNOWN), r(3, 4, "1", "0-0")])
