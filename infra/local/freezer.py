"""The freezer: stops idle function instances as the Fn agent pauses idle hot containers.

Fn (fnproject/fn ``api/agent``) pauses a hot container ``FN_FREEZE_IDLE_MSECS`` after its last
answer, 50 ms by default, and unpauses it when the next request is handed to it. While paused,
nothing in the container runs: no thread, no timer, no connection keep-alive. OCI Functions does
not document whether it freezes; ``streamcache dev --freeze-idle-ms`` plays Fn's behaviour so the
functions are designed for it. Here a pause is SIGSTOP and an unpause SIGCONT (the pool does
both, see :meth:`~.pool.Pool.freeze_idle`); this module only keeps time, one daemon thread per pool.
"""

from __future__ import annotations

import threading

from .pool import Pool

DEFAULT_FREEZE_IDLE_S = 0.05  # Fn's FN_FREEZE_IDLE_MSECS default
IDLE_CHECK_S = 1.0  # nothing idle to freeze: look again after this (a release wakes us sooner)


class Freezer:
    """Calls ``pool.freeze_idle()`` when the next idle instance is due, until :meth:`stop`."""

    def __init__(self, pool: Pool, name: str = "freezer") -> None:
        if pool.freeze_after_s is None:
            raise ValueError("the pool has no freeze_after_s: nothing to freeze")
        self.pool = pool
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> "Freezer":
        self._thread.start()
        return self

    def _loop(self) -> None:
        while not self._stop.is_set():
            due_in = self.pool.freeze_idle()
            # A request given back wakes the wait (the pool notifies): its instance is then due in
            # freeze_after_s, which the next pass computes.
            self.pool.wait_changed(IDLE_CHECK_S if due_in is None else due_in)

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop freezing and continue every frozen instance (they are about to be stopped or used)."""
        self._stop.set()
        self.pool.thaw_all()  # also wakes the loop, which then sees _stop
        if self._thread.is_alive():
            self._thread.join(timeout_s)
