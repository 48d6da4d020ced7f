"""De-duplication of bulk-imported records: one ``requests`` row per partition and imported object,
not one per record.

Every other record's request id is remembered for :data:`~.table.DEDUP_WINDOW_MS` of log time with
its outcome, so that a retried append changes nothing and its writer hears the first outcome. An
import (``compactor/importer.py``) writes a million records in a minute, and nobody waits for their
outcomes: remembering each one cost a row per key (~45-70 B) for two minutes of log time, which is
what made the table 1.2x Redis's memory right after a bulk load.

What de-duplication of an import needs is only "a line already applied is not applied again". The
importer numbers its records ``import-<object identity>-<line>`` and appends them in line order with
one produce request in flight (a retried batch lands again right after itself); a run that failed is
run again from line 1. So within one partition the first copy of every line arrives before any line
after it, and the object's row keeps the highest line applied: a line at or below it is a copy and
changes nothing (``apply`` answers ``None``, as for a position already applied). Two runs of the
same import at once interleave two such sequences, and the rule still applies each line once.

The row (``requests``: id = the hash of ``import-<object identity>``, ``kind`` created, ``key`` empty,
``version_offset`` = the highest line) ages out of the window like any other, and one older than the
window counts as absent whether or not a sweep deleted it yet, so replicas that swept at different
times agree. Rows of earlier versions (one per imported record) are still honoured until they age out.
"""

from __future__ import annotations

import sqlite3
from typing import Callable

#: The request-id prefix of imported records (the importer's ``import-<identity>-<line>``).
IMPORT_PREFIX = "import-"

_SEEN = "SELECT version_offset FROM requests WHERE partition = ? AND id = ? AND seen_ms >= ?"
# An expired row (not swept yet) is replaced, never merged: a replica that swept it already has none.
_REMEMBER = (
    "INSERT INTO requests (id, partition, seen_ms, kind, key, version_offset) VALUES (?1, ?2, ?3, 0, '', ?4) "
    "ON CONFLICT (partition, id) DO UPDATE SET version_offset = CASE WHEN requests.seen_ms >= ?5 "
    "THEN max(requests.version_offset, ?4) ELSE ?4 END, seen_ms = max(requests.seen_ms, ?3)"
)


def import_line(partition: int, request_id: str, request_hash: Callable[[int, str], int]) -> tuple[int, int] | None:
    """``(row id of the object's row, line number)`` for an imported record's request id, else ``None``."""
    if not request_id.startswith(IMPORT_PREFIX):
        return None
    head, _, line = request_id.rpartition("-")
    if len(head) <= len(IMPORT_PREFIX) or not line.isascii() or not line.isdigit() or len(line) > 18:
        return None
    return request_hash(partition, head), int(line)


def line_seen(db: sqlite3.Connection, partition: int, imported: tuple[int, int], since_ms: int) -> bool:
    """Whether the object's line was applied in ``partition`` within the window (at or below its highest)."""
    row = db.execute(_SEEN, (partition, imported[0], since_ms)).fetchone()
    return row is not None and row[0] is not None and imported[1] <= row[0]


def remember_line(db: sqlite3.Connection, partition: int, imported: tuple[int, int], when_ms: int,
                  since_ms: int) -> None:
    """Record that the object's line was applied in ``partition`` (decided as of ``when_ms``)."""
    db.execute(_REMEMBER, (imported[0], partition, when_ms, imported[1], since_ms))
