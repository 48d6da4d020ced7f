"""Client histories and a linearizability checker for them (Wing & Gong's search with Lowe's
memoisation, as Porcupine and Knossos do), written for the cache's register-per-key model.

A history is what concurrent clients saw: for each operation, when it was invoked and when its
answer came back (monotonic seconds), what it asked and what it got. The checker decides whether
some order of the operations, each placed at one instant between its invocation and its answer,
explains every answer with one register per key. Keys are independent (every operation touches
one key), so each key's sub-history is checked on its own (P-compositionality: small searches).

The model of one key: absent, or holding the value of one write. Values are unique per write, so a
read names the write it saw, and a version (``"p-o"``, the position of the record) names a write:

- ``read``: the value and version held, or absent;
- ``write`` (unconditional): 201 if the key was absent, else 200;
- ``cas``: ``If-Match: <version>`` (or ``If-None-Match: *`` when ``expected`` is ``None``); applies
  iff the key holds the write with that version (is absent); 412 reports the version held;
- ``delete``: 204 if the key was present (and removes it), else 404;
- ``incr``: adds ``by`` to the decimal integer the key holds (absent: 0): ``(201|200, version, new
  value)``, or ``(409, None, None)`` when the key holds something that is not a number (unchanged).
  Counters keep values unique per write as long as a key only ever goes up (the tests' increments
  are positive), so a read still names the write it saw.

Operations whose outcome is unknown (the connection broke, 502/504, a 503 after an append may have
landed) are *indeterminate*: they may have taken effect at any instant after their invocation, or
never; the checker gives them an answer time of infinity and does not check their output. A read
without an answer constrains nothing and is left out.

"No acknowledged write is lost" is part of the same check: record a final strong read of every
key after the clients stopped; if an acknowledged write vanished, no order explains that read.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

ABSENT = None
READ, WRITE, CAS, DELETE, INCR = "read", "write", "cas", "delete", "incr"
UNKNOWN = "unknown"  # the output of an indeterminate operation


@dataclass
class Op:
    """One operation of one client. ``output`` is ``UNKNOWN`` for an indeterminate operation.

    Outputs: read ``(value, version)`` or ``None`` (absent); write ``(status, version)``;
    cas ``(200|201, version)`` or ``(412, current version or None)``; delete ``204`` or ``404``."""

    client: int
    kind: str
    key: str
    called: float
    returned: float = math.inf
    value: str | None = None  # the value written (write, cas)
    expected: str | None = None  # cas: the version it must match (None: the key must be absent)
    output: object = UNKNOWN
    by: int = 0  # incr: the delta

    @property
    def indeterminate(self) -> bool:
        return self.output is UNKNOWN

    def describe(self) -> str:
        arg = {READ: "", WRITE: f" {self.value!r}", DELETE: "", INCR: f" by {self.by}",
               CAS: f" {self.value!r} if {'absent' if self.expected is None else self.expected}"}[self.kind]
        end = "..." if self.returned == math.inf else f"{self.returned:.6f}"
        return f"client {self.client}: {self.kind}{arg} [{self.called:.6f}, {end}] -> {self.output!r}"


class History:
    """A thread-safe recorder: ``op = history.invoke(...)`` before the request, then
    ``history.ok(op, output)``, ``history.unknown(op)`` or ``history.drop(op)`` after it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.ops: list[Op] = []
        self._clock = clock
        self._lock = threading.Lock()

    def invoke(self, client: int, kind: str, key: str, value: str | None = None, expected: str | None = None,
               by: int = 0) -> Op:
        op = Op(client, kind, key, self._clock(), value=value, expected=expected, by=by)
        with self._lock:
            self.ops.append(op)
        return op

    def ok(self, op: Op, output: object) -> None:
        op.returned, op.output = self._clock(), output

    def unknown(self, op: Op) -> None:
        """The operation may or may not have taken effect (its answer never came)."""
        op.returned, op.output = math.inf, UNKNOWN

    def drop(self, op: Op) -> None:
        """The operation certainly had no effect (refused before it ran), or was a read that
        returned nothing: it constrains nothing."""
        with self._lock:
            self.ops.remove(op)

    def keys(self) -> set[str]:
        return {op.key for op in self.ops}


@dataclass
class Verdict:
    ok: bool
    problems: list[str] = field(default_factory=list)
    keys_checked: int = 0
    ops_checked: int = 0
    states_explored: int = 0

    def __bool__(self) -> bool:
        return self.ok

    def __str__(self) -> str:
        head = (f"{'linearizable' if self.ok else 'NOT linearizable'}: {self.ops_checked} operations on "
                f"{self.keys_checked} keys, {self.states_explored} search states")
        return "\n".join([head, *self.problems])


def check(ops: Iterable[Op]) -> Verdict:
    """Check a whole history, key by key."""
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        if op.kind == READ and op.indeterminate:
            continue  # a read that returned nothing constrains nothing
        by_key.setdefault(op.key, []).append(op)
    verdict = Verdict(True, keys_checked=len(by_key), ops_checked=sum(map(len, by_key.values())))
    for key in sorted(by_key):
        ok, explored, problem = check_key(by_key[key])
        verdict.states_explored += explored
        if not ok:
            verdict.ok = False
            verdict.problems.append(f"key {key!r}: {problem}")
    return verdict


# ---- one key --------------------------------------------------------------------------------------


def _writer_of_versions(ops: list[Op]) -> tuple[dict[str, str], str | None]:
    """Which write (value) each version names, from every answer that pairs them; a version seen
    with two values is a violation on its own."""
    writer: dict[str, str] = {}
    for op in ops:
        if op.indeterminate:
            continue
        pair = None
        if op.kind == READ and op.output is not None:
            pair = (op.output[1], op.output[0])
        elif op.kind in (WRITE, CAS) and op.output[0] in (200, 201):
            pair = (op.output[1], op.value)
        elif op.kind == INCR and op.output[0] in (200, 201):
            pair = (op.output[1], str(op.output[2]))
        if pair is not None:
            version, value = pair
            if writer.setdefault(version, value) != value:
                return writer, f"version {version} names two values: {writer[version]!r} and {value!r}"
    return writer, None


State = frozenset  # of (value or None, version or None): every state the key may be in


class _Model:
    """The register's step function. The version of a write nobody saw an answer for is unknown
    until an answer reveals it, so one point of the search may stand for several states (as
    Porcupine does for nondeterministic models): a state is the set of ``(value, version)`` pairs
    the key may hold, ``(None, None)`` for absent, version ``None`` for not known yet."""

    def __init__(self, writer_of: dict[str, str]) -> None:
        self.writer_of = writer_of
        self.version_of = {value: version for version, value in writer_of.items()}

    def _may_be(self, value: str, version: str | None, claimed: str) -> str | None:
        """The version a held write has if it is ``claimed`` (None if it cannot be)."""
        if version is not None:
            return version if version == claimed else None
        return claimed if self.writer_of.get(claimed, value) == value else None

    def step(self, state: State, op: Op) -> State:
        """Every state the key may be in after ``op``, given its answer; empty: no way to explain it."""
        return frozenset(after for value, version in state for after in self._after(value, version, op))

    def _after(self, value: str | None, version: str | None, op: Op) -> list[tuple[str | None, str | None]]:
        out, unknown = op.output, op.indeterminate
        written = (op.value, self.version_of.get(op.value))
        if op.kind == READ:
            if out is None:
                return [(None, None)] if value is None else []
            if value != out[0]:
                return []
            bound = self._may_be(value, version, out[1])
            return [] if bound is None else [(value, bound)]
        if op.kind == WRITE:
            if unknown:
                return [written]
            return [(op.value, out[1])] if out[0] == (201 if value is None else 200) else []
        if op.kind == CAS:
            return self._after_cas(value, version, op, written)
        if op.kind == DELETE:
            if unknown:
                return [(None, None)]
            return [(None, None)] if out == (204 if value is not None else 404) else []
        if op.kind == INCR:
            return self._after_incr(value, version, op)
        raise ValueError(f"unknown operation kind {op.kind!r}")

    def _after_incr(self, value, version, op: Op) -> list[tuple[str | None, str | None]]:
        if value is not None and not value.lstrip("-").isdigit():  # not a counter: nothing changes
            return [(value, version)] if op.indeterminate or op.output[0] == 409 else []
        new = (0 if value is None else int(value)) + op.by
        if op.indeterminate:
            return [(str(new), self.version_of.get(str(new)))]
        status, new_version, counted = op.output
        return [(str(new), new_version)] if status == (201 if value is None else 200) and counted == new else []

    def _after_cas(self, value, version, op: Op, written) -> list[tuple[str | None, str | None]]:
        out = op.output
        # (does the precondition hold, the held write's version as that decision implies)
        if op.expected is None or value is None:
            cases = [((value is None) == (op.expected is None), version)]
        elif version is not None:
            cases = [(version == op.expected, version)]
        else:  # unknown version: it may be the expected one, or not
            cases = [(False, None)]
            if self._may_be(value, None, op.expected) is not None:
                cases.append((True, op.expected))
        results = []
        for holds, held_version in cases:
            if op.indeterminate:
                results.append(written if holds else (value, held_version))
            elif out[0] == 412:
                if holds:
                    continue
                if value is None:
                    if out[1] is None:
                        results.append((None, None))
                elif out[1] is not None:
                    bound = self._may_be(value, held_version, out[1])
                    if bound is not None:
                        results.append((value, bound))
            elif holds and out[0] == (201 if value is None else 200):
                results.append((op.value, out[1]))
        return results


class _Entry:
    """A node of the doubly linked list of call and return events (WGL)."""

    __slots__ = ("op", "index", "is_call", "match", "prev", "next")

    def __init__(self, op: Op | None, index: int, is_call: bool) -> None:
        self.op, self.index, self.is_call = op, index, is_call
        self.match: _Entry | None = None
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def _event_list(ops: list[Op]) -> _Entry:
    events = []
    for index, op in enumerate(ops):
        call, ret = _Entry(op, index, True), _Entry(op, index, False)
        call.match = ret
        events.append((op.called, 0, call))
        events.append((op.returned, 1, ret))
    # Equal times: calls first, so that operations touching at an instant count as concurrent.
    events.sort(key=lambda e: (e[0], e[1]))
    head = _Entry(None, -1, False)
    last = head
    for _, _, entry in events:
        last.next, entry.prev = entry, last
        last = entry
    return head


def _lift(entry: _Entry) -> None:
    """Take a call and its return out of the list (the operation is linearized)."""
    entry.prev.next = entry.next
    if entry.next is not None:
        entry.next.prev = entry.prev
    ret = entry.match
    ret.prev.next = ret.next
    if ret.next is not None:
        ret.next.prev = ret.prev


def _unlift(entry: _Entry) -> None:
    ret = entry.match
    ret.prev.next = ret
    if ret.next is not None:
        ret.next.prev = ret
    entry.prev.next = entry
    if entry.next is not None:
        entry.next.prev = entry


def check_key(ops: list[Op], initial: str | None = ABSENT) -> tuple[bool, int, str]:
    """Search for a linearization of one key's operations. Returns (ok, states explored, problem)."""
    writer_of, problem = _writer_of_versions(ops)
    if problem:
        return False, 0, problem
    model = _Model(writer_of)
    head = _event_list(ops)
    state: State = frozenset([(initial, None if initial is None else model.version_of.get(initial))])
    linearized = 0
    seen: set[tuple[int, State]] = set()
    stack: list[tuple[_Entry, State]] = []
    best, best_stuck = 0, None  # the deepest search, to explain a failure
    entry = head.next
    while head.next is not None:
        if entry.is_call:
            new_state = model.step(state, entry.op)
            if new_state:
                key = (linearized | (1 << entry.index), new_state)
                if key not in seen:
                    seen.add(key)
                    stack.append((entry, state))
                    state, linearized = new_state, key[0]
                    _lift(entry)
                    entry = head.next
                    continue
            entry = entry.next
        else:
            # An operation returned before any order could place it: go back one step.
            if len(stack) >= best:
                best, best_stuck = len(stack), (entry.op, state)
            if not stack:
                return False, len(seen), _explain(ops, best, best_stuck)
            entry, state = stack.pop()
            linearized &= ~(1 << entry.index)
            _unlift(entry)
            entry = entry.next
    return True, len(seen), ""


def _explain(ops: list[Op], depth: int, stuck: tuple[Op, State] | None) -> str:
    lines = [f"no order explains the {len(ops)} operations (at best {depth} could be placed)"]
    if stuck is not None:
        op, state = stuck
        held = " or ".join(sorted(repr(v) for v, _ in state))
        lines.append(f"  could not place: {op.describe()} (the key then held {held})")
    lines += ["  history:"] + [f"    {op.describe()}" for op in sorted(ops, key=lambda o: o.called)[:60]]
    return "\n".join(lines)
