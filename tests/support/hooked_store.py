"""A snapshot store wrapper that runs a hook before chosen methods: raise in it to simulate a process
killed at that step, or block on an Event in it to make a step slow, deterministically."""

from __future__ import annotations

from typing import Callable


class HookedStore:
    """Delegates everything to ``inner``; ``hooks[method](*args)`` runs first when set."""

    def __init__(self, inner, **hooks: Callable[..., None]) -> None:
        self.inner = inner
        self.hooks: dict[str, Callable[..., None]] = dict(hooks)
        self.calls: list[tuple[str, tuple]] = []

    def __getattr__(self, name: str):
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def call(*args, **kwargs):
            self.calls.append((name, args))
            hook = self.hooks.get(name)
            if hook is not None:
                hook(*args, **kwargs)
            return attr(*args, **kwargs)

        return call


class Killed(Exception):
    """Stands for the process dying at this step (nothing after it runs)."""


def killed_at(store, step: str) -> HookedStore:
    """``store`` wrapped so that the compactor dies (:class:`Killed`) at ``step``: ``write`` (the
    snapshot's upload), ``prune-list`` (the listing that precedes pruning; the first listing, which
    loads, goes through) or any other step name: the first delete."""

    def kill(*_):
        raise Killed(step)

    if step == "write":
        return HookedStore(store, put_new=kill)
    if step == "prune-list":
        lists = iter([None, kill])
        return HookedStore(store, list=lambda *a: (next(lists) or (lambda *_: None))(*a))
    return HookedStore(store, delete=kill)
