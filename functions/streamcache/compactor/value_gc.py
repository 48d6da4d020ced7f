"""Collecting the objects of big values (:mod:`streamcache.core.value_refs`) that nothing refers to.

A value object must stay while a retained snapshot or a record within reach refers to it: the newest
snapshot serves cold starts, older ones are the fallback and the as-of reads' bases, and the records
between them are what as-of reads replay. So each compaction that writes a snapshot first writes the
snapshot's **refs** object, ``values/<stream>/refs/<snapshot file name>.json``: the digests its table
refers to plus those of every record it folded (records overwritten before the snapshot included).
The union of the refs objects of the snapshots still retained covers every record from the oldest
retained snapshot's base to the newest one's end.

What no refs object names is an orphan: a PUT whose append failed, or a value whose last record and
snapshot aged out. But a PUT writes its object before its record lands, and that record may lie
after the end this compaction read. So an orphan is deleted only once it has been one for the grace
period (:data:`GRACE_MS`, far longer than any request may take: OCI Functions time out after 300 s),
as seen by consecutive compactions: each writes the orphans it saw and since when in an **orphans**
object (``values/<stream>/orphans/<%016x ms>-<writer>.json``), and the next one, which has folded the
records landed meanwhile, deletes those still orphaned past the grace.

The one race left: a PUT of the very bytes of an object orphaned for longer than the grace, whose
object write finds it present and whose record lands after this compaction's end, in the moments
between that end and the deletion; its reads then answer 502 ``value_unavailable`` until the key is
written again. Content addressing trades that for idempotent writes.
"""

from __future__ import annotations

from typing import Iterable, Iterator, Mapping

import orjson

from streamcache.core.table import Table
from streamcache.core.value_refs import REF_CONTENT_TYPE, decode_ref, digest_of_name, values_prefix
from streamcache.ports import LogRecord, MutationLog, SnapshotNotFound, SnapshotStore

#: How long an object stays an orphan before it is deleted.
GRACE_MS = 15 * 60_000
_MARKER = b'"dataref"'


class RefTap:
    """A :class:`MutationLog` that notes the digests the records read through it refer to."""

    def __init__(self, log: MutationLog) -> None:
        self._log = log
        self.refs: set[str] = set()

    def __getattr__(self, name: str):
        return getattr(self._log, name)

    def read(self, start: Mapping[int, int], end: Mapping[int, int] | None = None) -> Iterator[LogRecord]:
        for record in self._log.read(start, end):
            if _MARKER in record.value:  # cheap: only a record that may carry a reference is decoded
                self.refs.update(_refs_in_event(record.value))
            yield record


def _refs_in_event(raw: bytes) -> Iterable[str]:
    try:
        digest = digest_of_name(orjson.loads(raw).get("dataref", ""))
    except (orjson.JSONDecodeError, AttributeError, TypeError):
        return ()
    return () if digest is None else (digest,)


def table_refs(table: Table) -> set[str]:
    """The digests of the big values ``table`` holds. A table that never held one has no row for the
    reserved type: then no scan of the entries (O(table)) on a compaction that is otherwise O(changes)."""
    type_id = table.db.execute("SELECT id FROM content_types WHERE name = ?", (REF_CONTENT_TYPE,)).fetchone()
    if type_id is None:
        return set()
    rows = table.db.execute("SELECT value FROM entries WHERE content_type = ?", type_id)
    return {decode_ref(value).hex for (value,) in rows}


def refs_name(stream: str, snapshot_name: str) -> str:
    return f"{values_prefix(stream)}refs/{snapshot_name.rsplit('/', 1)[-1]}.json"


def write_refs(store: SnapshotStore, stream: str, snapshot_name: str, refs: set[str]) -> None:
    """Before the snapshot itself: a snapshot whose refs were never written would protect nothing.
    None for a snapshot that refers to nothing (a store without big values stays as it was)."""
    if refs:
        store.put_new(refs_name(stream, snapshot_name), orjson.dumps(sorted(refs)))


def collect(store: SnapshotStore, stream: str, snapshots: Iterable[str], now_ms: int, writer: str,
            grace_ms: int = GRACE_MS) -> list[str]:
    """Delete the value objects no retained snapshot's refs name and that were orphans already at least
    ``grace_ms`` ago; note the others; drop the refs of pruned snapshots. Returns what was deleted."""
    prefix = values_prefix(stream)
    names = store.list(prefix)
    if not names:
        return []  # no big value was ever written (or all are gone): nothing to note
    retained = {refs_name(stream, s) for s in snapshots}
    referenced: set[str] = set()
    for name in names:
        if name.startswith(f"{prefix}refs/") and name in retained:
            try:
                referenced.update(orjson.loads(store.get(name)))
            except SnapshotNotFound:
                pass
    marks = sorted(n for n in names if n.startswith(f"{prefix}orphans/"))
    since: dict[str, int] = orjson.loads(store.get(marks[-1])) if marks else {}
    orphans = {d: since.get(d, now_ms) for n in names if (d := digest_of_name(n)) is not None and d not in referenced}
    deleted = []
    for digest, first_seen in sorted(orphans.items()):
        if now_ms - first_seen >= grace_ms:
            store.delete(f"{prefix}{digest}")
            deleted.append(f"{prefix}{digest}")
    waiting = {d: t for d, t in orphans.items() if f"{prefix}{d}" not in deleted}
    if waiting:
        store.put_new(f"{prefix}orphans/{now_ms:016x}-{writer}.json", orjson.dumps(waiting))
    # Older orphan notes go, and the refs of pruned snapshots: those that sort below the newest one
    # kept, so that a concurrent compactor's refs, written just before its snapshot, are not taken.
    newest = max(retained, default="")
    for name in [*marks, *(n for n in names if n.startswith(f"{prefix}refs/") and n not in retained and n < newest)]:
        store.delete(name)
    return deleted
