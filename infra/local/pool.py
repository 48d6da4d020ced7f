"""The instances of one function, as the Fn agent keeps them: who is idle, who is busy, who is new.

The gateway (API Gateway's stand-in) and the local invoke API take an instance from a :class:`Pool`
for each request and give it back after. Which idle instance a request gets is the pool's
:class:`Dispatch`: by default the one released last, as the Fn agent does (its hot-container slot
queue is a LIFO stack, fnproject/fn ``api/agent/slots.go``): a sequential client stays on one warm
container and the others idle until reclaimed. How OCI Functions places calls is not documented;
tests that mean to spread sequential requests over instances ask for ``ROUND_ROBIN``.

Like OCI Functions, a pool with a ``spawn`` callable grows under load and after idle reclaim (a
cold start, up to ``capacity``), and the idle reaper of ``streamcache dev`` (lifecycle.py) takes out
instances that had no request for a while. That is Fn's scale-out: one request at a time per
instance, and a request that finds every instance busy starts another (``streamcache dev
--max-instances``). The request that started an instance waits for it (Fn's agent may hand it a
slot freed meanwhile instead; here the cold start is always paid by the request that caused it).

With ``freeze_after_s`` the pool also freezes, as Fn does (``FN_FREEZE_IDLE_MSECS``, 50 ms by
default): :meth:`freeze_idle` stops (SIGSTOP, ``instance.freeze()``) each instance idle for that
long, and :meth:`acquire` continues (SIGCONT, ``instance.thaw()``) a frozen one before handing it
out. A :class:`~.freezer.Freezer` thread calls :meth:`freeze_idle` on time.
"""

from __future__ import annotations

import enum
import itertools
import threading
import time
from typing import Callable, Sequence

from .fn_protocol import FnUnavailable


class Dispatch(enum.Enum):
    """Which idle instance takes the next request."""

    MOST_RECENT = "most recently used first"  # the one released last (Fn's LIFO slot queue): warm stays warm
    ROUND_ROBIN = "round-robin"  # each in turn: sequential requests spread over every instance


class Pool:
    """The instances of one function behind the gateway, as the Fn agent keeps them.

    An idle instance is picked by ``dispatch`` (see :class:`Dispatch`); each takes one request at a
    time; callers wait (bounded) when all are busy. With ``spawn`` (a callable that starts one ready
    instance) the pool also does what OCI does under load and after idle reclaim: when no instance
    is idle and fewer than ``capacity`` are running, the caller gets a freshly started one (a cold
    start). Dead instances leave the pool; :meth:`retire_idle` takes out the ones without a request
    for a while, for the idle reaper to stop. ``clock`` (seconds, monotonic) only dates requests, so tests can drive idle
    time by hand; waiting for a busy instance always uses the real clock. ``freeze_after_s``: see
    :meth:`freeze_idle` (None: instances are never frozen).
    """

    def __init__(self, instances: Sequence = (), spawn: Callable[[], object] | None = None,
                 capacity: int | None = None, clock: Callable[[], float] = time.monotonic,
                 dispatch: Dispatch = Dispatch.MOST_RECENT, freeze_after_s: float | None = None) -> None:
        self._clock = clock
        self.freeze_after_s = freeze_after_s
        self.freezes = self.thaws = 0  # counted for tests and the bench
        self.peak = len(instances)  # the most instances (running or starting) at once
        self.dispatch = dispatch
        self._turns = itertools.count(1)  # when each member was last released (or added): a total order
        self._members: list[_Member] = [_Member(instance, clock(), next(self._turns)) for instance in instances]
        self._spawn = spawn
        self.capacity = capacity if capacity is not None else max(1, len(self._members))
        self._starting = 0  # spawns in progress: they count against capacity
        self._closed = False
        self._next = 0
        self._changed = threading.Condition()

    @property
    def instances(self) -> list:
        """The instances in the pool now (busy or idle)."""
        return self.live()

    def add(self, instance) -> None:
        with self._changed:
            self._members.append(_Member(instance, self._clock(), next(self._turns)))
            self.peak = max(self.peak, len(self._members) + self._starting)
            self._changed.notify_all()

    def acquire(self, timeout_s: float):
        """An idle instance (started now if the pool may grow), or ``None`` if none became idle in
        time. Raises :class:`FnUnavailable` when no instance is running and none can be started,
        or the pool is closed."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while True:
                if self._closed:
                    raise FnUnavailable("the gateway is stopping")
                # An instance whose process exited is never handed out (it would only answer 502).
                self._members = [m for m in self._members if m.busy or getattr(m.instance, "alive", lambda: True)()]
                member = self._pick()
                if member is not None:
                    member.busy = True
                    if member.frozen:
                        # Under the lock: the freezer cannot stop it again before the request is sent.
                        member.instance.thaw()
                        member.frozen = False
                        self.thaws += 1
                    return member.instance
                count = len(self._members)
                if self._spawn is not None and count + self._starting < self.capacity:
                    self._starting += 1
                    self.peak = max(self.peak, count + self._starting)
                    break  # start one outside the lock: it takes a while
                if count == 0 and self._starting == 0:
                    raise FnUnavailable("no function instance is running")
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return None
                self._changed.wait(remaining)
        return self._start_one()

    def _pick(self) -> "_Member | None":
        """The idle member that takes the next request, or None (call with the lock held)."""
        count = len(self._members)
        if self.dispatch is Dispatch.ROUND_ROBIN:
            for step in range(count):
                member = self._members[(self._next + step) % count]
                if not member.busy:
                    self._next = (self._next + step + 1) % count
                    return member
            return None
        idle = [m for m in self._members if not m.busy]
        return max(idle, key=lambda m: m.turn) if idle else None

    def _start_one(self):
        try:
            instance = self._spawn()  # type: ignore[misc]
        except Exception as exc:
            with self._changed:
                self._starting -= 1
                self._changed.notify_all()
            raise FnUnavailable(f"could not start a function instance: {exc}") from exc
        with self._changed:
            self._starting -= 1
            member = _Member(instance, self._clock(), next(self._turns))
            member.busy = True
            self._members.append(member)
            self._changed.notify_all()
        return instance

    def release(self, instance, dead: bool = False) -> None:
        """Give ``instance`` back after a request; ``dead`` takes it out of the pool."""
        with self._changed:
            member = self._find(instance)
            if member is not None:
                member.busy = False
                member.last_request = self._clock()
                member.turn = next(self._turns)
                if dead:
                    self._members.remove(member)
            self._changed.notify_all()

    def mark_dead(self, instance) -> None:
        """Take an instance that exited out of the pool (a request holding it still releases it)."""
        with self._changed:
            member = self._find(instance)
            if member is not None:
                self._members.remove(member)
            self._changed.notify_all()

    def retire_idle(self, idle_s: float) -> list:
        """Take out and return every idle instance whose last request (or start) is ``idle_s`` or
        more ago; the caller stops them. A request arriving meanwhile gets another instance."""
        now = self._clock()
        with self._changed:
            retired = [m for m in self._members if not m.busy and now - m.last_request >= idle_s]
            for member in retired:
                self._members.remove(member)
            self._changed.notify_all()
        return [member.instance for member in retired]

    def freeze_idle(self) -> float | None:
        """Freeze every idle instance whose last request (or start) is ``freeze_after_s`` or more ago;
        return the seconds until the next idle one is due, or ``None`` when none is waiting to be."""
        if self.freeze_after_s is None:
            return None
        now = self._clock()
        next_due: float | None = None
        with self._changed:
            for member in self._members:
                if member.busy or member.frozen:
                    continue
                due_in = member.last_request + self.freeze_after_s - now
                if due_in <= 0:
                    member.instance.freeze()
                    member.frozen = True
                    self.freezes += 1
                else:
                    next_due = due_in if next_due is None else min(next_due, due_in)
        return next_due

    def thaw_all(self) -> None:
        """Continue every frozen instance and freeze no more (tests that talk to instances directly)."""
        with self._changed:
            self.freeze_after_s = None
            for member in self._members:
                if member.frozen:
                    member.instance.thaw()
                    member.frozen = False
                    self.thaws += 1
            self._changed.notify_all()  # wakes a freezer's wait: it is stopping

    def wait_changed(self, timeout_s: float) -> None:
        """Block until an instance is taken, given back, added or removed, or ``timeout_s`` passed."""
        with self._changed:
            self._changed.wait(timeout_s)

    def live(self) -> list:
        with self._changed:
            return [member.instance for member in self._members]

    def close(self) -> None:
        """Refuse new requests from now on (requests in flight finish)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no request is in flight and no instance is starting; False on timeout."""
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while any(m.busy for m in self._members) or self._starting:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._changed.wait(remaining)
            return True

    def _find(self, instance) -> "_Member | None":
        return next((m for m in self._members if m.instance is instance), None)


class _Member:
    __slots__ = ("instance", "busy", "frozen", "last_request", "turn")

    def __init__(self, instance, now: float, turn: int) -> None:
        self.instance = instance
        self.busy = False
        self.frozen = False
        self.last_request = now  # a fresh instance counts as just used: it is not reaped at once
        self.turn = turn  # larger: released (or added) later
