"""What a snapshot is, in either format: its header, the loaded pair, and the errors of reading one.

Shared by :mod:`.snapshot` (the SQLite image) and :mod:`.snapshot_legacy` (the format-1 ``.snap``
objects it converts), so that neither imports the other at module level.
"""

from __future__ import annotations

import gc
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Iterator, NamedTuple

from streamcache.core.errors import StreamcacheError
from streamcache.core.identity import Fingerprint
from streamcache.core.snapshot_names import IMAGE_FORMAT
from streamcache.core.table import Table

FORMAT_VERSION = IMAGE_FORMAT


class SnapshotError(StreamcacheError):
    """A snapshot object cannot be used."""


class SnapshotCorrupt(SnapshotError):
    """The object is not a complete, intact snapshot (truncated, damaged, or not a snapshot at all)."""


class UnsupportedSnapshotVersion(SnapshotError):
    """An intact snapshot in a format version this code does not read (written by a newer version)."""


@dataclass(frozen=True)
class SnapshotHeader:
    """What a snapshot covers. ``next_offsets[p]`` is the first offset of partition ``p`` NOT folded
    in (a partition that is absent is covered up to 0); ``log_time_ms[p]`` is that partition's log
    time; ``as_of_ms`` the largest of them (the snapshot's age is measured from it).

    What gives the records their meaning (``None``: an image of an earlier version, which did not
    say): ``fingerprints`` of the last record applied per partition (:mod:`.identity`), the log's
    ``partition_count`` that placed the records, the quota's ``max_bytes`` (0: none) and the
    de-duplication window the fold applied."""

    stream: str
    next_offsets: dict[int, int]
    log_time_ms: dict[int, int]
    as_of_ms: int
    entries: int
    requests: int
    format_version: int = FORMAT_VERSION
    fingerprints: dict[int, Fingerprint] = field(default_factory=dict)
    partition_count: int | None = None
    max_bytes: int | None = None
    dedup_window_ms: int | None = None
    #: A delta's base and parent (the whole names of its chain's full image and of the link it was
    #: folded onto: core/snapshot_chain.py); ``None`` for a full image.
    base: str | None = None
    parent: str | None = None

    def to_json(self) -> dict:
        """The header as shown to people."""
        return {
            "stream": self.stream,
            "next_offsets": {str(p): o for p, o in sorted(self.next_offsets.items())},
            "log_time_ms": {str(p): t for p, t in sorted(self.log_time_ms.items())},
            "as_of_ms": self.as_of_ms,
            "entries": self.entries,
            "requests": self.requests,
            "format_version": self.format_version,
            "partition_count": self.partition_count,
            "max_bytes": self.max_bytes,
            "dedup_window_ms": self.dedup_window_ms,
            "last_records": {str(p): list(f) for p, f in sorted(self.fingerprints.items())},
            **({} if self.parent is None else {"kind": "delta", "base": self.base, "parent": self.parent}),
        }


class Snapshot(NamedTuple):
    header: SnapshotHeader
    table: Table


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector. Building millions of small acyclic objects (decoded
    records) makes the collector scan them again and again; reference counting still frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
