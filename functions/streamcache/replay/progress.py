"""Progress of long work (restoring, compacting, reading a big snapshot), for people and for logs.

At a terminal (stderr is a TTY) one line is rewritten in place: ``restore: 420,000 / 1,000,000
records (42 %), 180,000/s``. Anywhere else (a function's stderr goes to OCI Logging) a JSON log
line is written every ``every_records`` records or ``every_s`` seconds, whichever comes first, and one
when the work ends. Callers report absolute counts at coarse steps (a chunk of records, a phase), so
reporting costs nothing in hot loops.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Callable, TextIO

log = logging.getLogger("streamcache.replay.progress")


class Progress:
    """Reports one task. ``update(done)`` with the count so far; ``phase(text)`` names a step;
    ``finish()`` once at the end."""

    def __init__(
        self,
        task: str,
        total: int | None = None,
        *,
        out: TextIO | None = None,
        interactive: bool | None = None,
        every_records: int = 100_000,
        every_s: float = 5.0,
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        self.task = task
        self.total = total
        self.done = 0
        self._out = out if out is not None else sys.stderr
        if interactive is None:
            interactive = bool(getattr(self._out, "isatty", lambda: False)())
        self.interactive = interactive
        self._every_records = every_records
        self._every_s = every_s
        self._monotonic = monotonic or time.monotonic
        self._started = self._monotonic()
        self._last_report = self._started
        self._last_reported_done = 0
        self._phase = ""
        self._line_width = 0

    def phase(self, text: str) -> None:
        """A named step (``downloading snapshot ...``); always shown."""
        self._phase = text
        self._report(force=True)

    def set_total(self, total: int | None) -> None:
        self.total = total

    def update(self, done: int) -> None:
        self.done = done
        now = self._monotonic()
        if self.interactive:
            if now - self._last_report >= 0.1:  # a terminal does not need more than 10 frames a second
                self._report(now=now)
        elif done - self._last_reported_done >= self._every_records or now - self._last_report >= self._every_s:
            self._report(now=now)

    def finish(self, text: str = "done") -> None:
        self._phase = text
        self._report(force=True)
        if self.interactive and self._line_width:
            self._out.write("\n")
            self._out.flush()

    @property
    def elapsed_s(self) -> float:
        return self._monotonic() - self._started

    def rate(self) -> float:
        elapsed = self.elapsed_s
        return self.done / elapsed if elapsed > 0 else 0.0

    def describe(self) -> str:
        text = f"{self.task}: {self.done:,}"
        if self.total:
            text += f" / {self.total:,} records ({min(100.0, 100 * self.done / self.total):.0f} %)"
        else:
            text += " records"
        if self.done:
            text += f", {self.rate():,.0f}/s"
        return f"{text} - {self._phase}" if self._phase else text

    def _report(self, force: bool = False, now: float | None = None) -> None:
        now = self._monotonic() if now is None else now
        self._last_report, self._last_reported_done = now, self.done
        if self.interactive:
            line = self.describe()
            padding = max(0, self._line_width - len(line))
            self._out.write("\r" + line + " " * padding)
            self._out.flush()
            self._line_width = len(line)
            return
        fields = {"task": self.task, "done": self.done, "total": self.total, "phase": self._phase or None,
                  "elapsed_ms": round(self.elapsed_s * 1000, 1), "rate_per_s": round(self.rate())}
        log.info(self.describe(), extra={"fields": {"kind": "progress", **fields}})


class SilentProgress(Progress):
    """Progress that reports nothing (benchmarks, nested work that its caller reports)."""

    def __init__(self, task: str = "", total: int | None = None) -> None:
        super().__init__(task, total, interactive=False)

    def _report(self, force: bool = False, now: float | None = None) -> None:
        pass

    def update(self, done: int) -> None:
        self.done = done

    def finish(self, text: str = "done") -> None:
        pass
