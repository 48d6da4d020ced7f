"""Progress of long work: one rewritten line at a terminal, JSON log lines elsewhere."""

from __future__ import annotations

import io
import logging

from streamcache.adapters.memory_log import MemoryLog
from streamcache.adapters.memory_store import MemoryStore
from streamcache.compactor.compaction import compact
from streamcache.replay.progress import Progress
from support.log_history import fill


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_at_a_terminal_one_line_is_rewritten_in_place():
    out, clock = Terminal(), Clock()
    progress = Progress("restore", 1000, out=out, monotonic=clock)
    assert progress.interactive
    progress.phase("replaying")
    for done in (100, 200, 300):
        clock.now += 0.5
        progress.update(done)
    progress.finish("serving")
    text = out.getvalue()
    assert "\n" not in text[:-1] and text.endswith("\n")  # one line, redrawn with \r, ended once
    frames = text.rstrip("\n").split("\r")[1:]
    assert frames[-1].startswith("restore: 300 / 1,000 records (30 %)") and "serving" in frames[-1]
    assert any("200 / 1,000" in frame for frame in frames)


def test_elsewhere_progress_is_a_json_log_line_every_n_records_or_seconds(caplog):
    clock = Clock()
    progress = Progress("compaction", 10_000, out=io.StringIO(), every_records=1000, every_s=5.0, monotonic=clock)
    assert not progress.interactive
    with caplog.at_level(logging.INFO, logger="streamcache.replay.progress"):
        progress.update(500)  # neither threshold reached
        progress.update(1500)  # 1000 records since the last line
        clock.now += 6
        progress.update(1600)  # 6 s since the last line
        progress.finish()
    lines = [r for r in caplog.records if r.name == "streamcache.replay.progress"]
    assert [r.fields["done"] for r in lines] == [1500, 1600, 1600]
    assert lines[0].fields["kind"] == "progress" and lines[0].fields["total"] == 10_000


def test_a_compaction_reports_its_progress(caplog):
    log = MemoryLog(2)
    fill(log, 500)
    with caplog.at_level(logging.INFO, logger="streamcache.replay.progress"):
        compact(log, MemoryStore(), "s", keep=1, chunk_records=100,
                progress=Progress("compaction", out=io.StringIO(), every_records=200))
    done = [r.fields["done"] for r in caplog.records if r.name == "streamcache.replay.progress"]
    assert done and max(done) == 500 and done == sorted(done)
