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
