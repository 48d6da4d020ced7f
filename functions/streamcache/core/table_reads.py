"""The reading side of :class:`~.table.Table`: lookups, listings and counts at a reader's ``now_ms``.

An entry past its expiry reads as absent for that reader at once, whether or not log time has purged
it yet (purging only frees its memory). A mixin, so that reads cost no extra call: the table's own
module holds what applying records takes.
"""

from __future__ import annotations

import sqlite3
from functools import partial
from typing import Iterator

from streamcache.core.outcome import Entry
from streamcache.core.records import Position

#: Rows fetched per step of a listing (listings are consumed lazily, often only 100 rows).
SCAN_BATCH = 128

_new_entry = partial(tuple.__new__, Entry)
_new_position = partial(tuple.__new__, Position)


class TableReads:
    """Reads of the table's database; :class:`~.table.Table` sets the attributes."""

    db: sqlite3.Connection
    _type_names: dict[int, str]
    _count: int | None

    def get(self, key: str, now_ms: int) -> Entry | None:
        """The live entry for ``key`` at ``now_ms``, or ``None``."""
        row = self.db.execute(
            "SELECT value, content_type, version_partition, version_offset, expires_at_ms FROM entries WHERE key = ?",
            (key,)).fetchone()
        if row is None or (row[4] is not None and now_ms >= row[4]):
            return None
        return _new_entry((row[0], self._type_names[row[1]], _new_position((row[2], row[3])), row[4]))

    def scan(self, prefix: str, start_after: str | None, now_ms: int) -> Iterator[tuple[str, Entry]]:
        """Live entries whose key starts with ``prefix``, in key order, after ``start_after``."""
        lower = prefix if start_after is None or start_after < prefix else start_after
        op = ">" if lower == start_after else ">="
        names = self._type_names
        while True:
            rows = self.db.execute(
                "SELECT key, value, content_type, version_partition, version_offset, expires_at_ms FROM entries "
                f"WHERE key {op} ? ORDER BY key LIMIT {SCAN_BATCH}", (lower,)).fetchall()
            for key, value, type_id, vpart, voff, expires in rows:
                if not key.startswith(prefix):
                    return
                if expires is None or now_ms < expires:
                    yield key, _new_entry((value, names[type_id], _new_position((vpart, voff)), expires))
            if len(rows) < SCAN_BATCH:
                return
            lower, op = rows[-1][0], ">"

    def __len__(self) -> int:
        """Entries held, including expired ones not yet purged."""
        if self._count is None:  # 15 ms at 1M entries: once, not at every /health
            self._count = self.db.execute("SELECT count(*) FROM entries").fetchone()[0]
        return self._count

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Every entry held, in key order (for snapshots and tests)."""
        names = self._type_names
        rows = self.db.execute(
            "SELECT key, value, content_type, version_partition, version_offset, expires_at_ms FROM entries ORDER BY key")
        for key, value, type_id, vpart, voff, expires in rows:
            yield key, _new_entry((value, names[type_id], _new_position((vpart, voff)), expires))

