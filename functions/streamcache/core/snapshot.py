"""Snapshots of the table: the table's SQLite database image, checksummed by its object name.

A snapshot holds everything that decides future reads and outcomes (entries, per-partition next
offsets and log times, the remembered request ids), so that loading it and replaying the log from its
next offsets gives exactly the table that replaying the whole log gives. Since format 2 it is simply
the database the table lives in (``Connection.serialize()``): writing one copies pages, loading one
(``Connection.deserialize()``, or opening the file with memory-mapped I/O) decodes nothing per entry.
The schema is :mod:`.schema`; the ``meta`` table describes the image (see ``SNAPSHOT_FORMAT.md``).

Integrity: the object's name carries its length and CRC-32 (:mod:`.snapshot_names`);
:func:`verify_image` checks them before SQLite reads a byte, then ``application_id`` and
``user_version`` say whether this version reads the schema. Objects of the earlier format 1
(``.snap``) are recognised by their magic bytes and converted by :mod:`.snapshot_legacy`.
"""

from __future__ import annotations

import sqlite3
import zlib

from streamcache.core import schema
from streamcache.core.identity import decode_fingerprints, encode_fingerprints
from streamcache.core.log_time import CLOCK_ROW, MAX_CLOCK_STEP_MS, encode_clocks
from streamcache.core.snapshot_names import (
    IMAGE_FORMAT,
    LEGACY_FORMAT,
    Checksum,
    SnapshotName,
    format_name,
    newest_first,
    parse_name,
    stream_prefix,
)
from streamcache.core.table import DEDUP_WINDOW_MS, Table
from streamcache.core.snapshot_types import (
    FORMAT_VERSION,
    Snapshot,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotHeader,
    UnsupportedSnapshotVersion,
    gc_paused,
)

__all__ = [
    "gc_paused",
    "FORMAT_VERSION",
    "HEADER_PROBE_BYTES",
    "Checksum",
    "Snapshot",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotHeader",
    "SnapshotName",
    "UnsupportedSnapshotVersion",
    "checksum",
    "decode_header",
    "decode_snapshot",
    "encode_snapshot",
    "format_name",
    "newest_first",
    "open_snapshot",
    "parse_name",
    "stream_prefix",
    "verify_image",
    "write_meta",
]

SQLITE_MAGIC = b"SQLite format 3\x00"
LEGACY_MAGIC = b"\x89SCSNAP\n"
#: A prefix of an image that holds its first pages (``meta`` and ``partitions`` are created first,
#: so they sit there while small): enough to read the header without downloading the whole image.
HEADER_PROBE_BYTES = 64 * 1024


# ---- writing --------------------------------------------------------------------------------


def encode_snapshot(table: Table, stream: str, partitions: int | None = None) -> bytes:
    """The image of ``table`` for the stream called ``stream`` (``partitions``: the log's partition
    count, which placed its records; the quota's when not given). Writes the ``meta`` rows and the
    per-partition numbers into the table's database first (they are part of its state)."""
    write_meta(table, stream, partitions)
    return table.db.serialize()


def write_meta(table: Table, stream: str, partitions: int | None = None) -> None:
    """Write the per-partition numbers and the ``meta`` rows of an image of ``table`` into its
    database (a full image serializes it; a delta copies them: core/snapshot_delta.py)."""
    table.flush()
    db = table.db
    positions = table.next_offsets()
    as_of = max((table.clock_ms(p) for p in positions), default=0)
    quota = table.quota
    meta = {
        "stream": stream,
        "as_of_ms": as_of,
        "entries": len(table),
        "requests": db.execute("SELECT count(*) FROM requests").fetchone()[0],
        "used_bytes": table.used_bytes(),
        # What gives the records their meaning, stored with the data (a process that disagrees says so).
        "dedup_window_ms": DEDUP_WINDOW_MS,
        "partition_count": partitions if partitions is not None else (quota.partitions if quota else None),
        "max_bytes": quota.max_bytes if quota else 0,
        "last_records": encode_fingerprints(table.fingerprints()),
        "max_clock_step_ms": MAX_CLOCK_STEP_MS,
        CLOCK_ROW: encode_clocks({p: table.log_clock(p) for p in positions}),
    }
    meta = {name: value for name, value in meta.items() if value is not None}
    current = dict(db.execute("SELECT name, value FROM meta"))
    if current != meta:  # unchanged state, unchanged bytes
        db.execute("DELETE FROM meta")
        db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(meta.items()))


def checksum(data: bytes) -> Checksum:
    """What a snapshot's name says about its bytes (length and CRC-32)."""
    return Checksum(len(data), zlib.crc32(data))


# ---- reading --------------------------------------------------------------------------------


def verify_image(data: bytes | memoryview, name: str | None) -> None:
    """Check ``data`` against the length and CRC-32 its object ``name`` carries. Raises
    :class:`SnapshotCorrupt`. A legacy name (or none) carries nothing to check here."""
    if name is None:
        return
    try:
        parsed = parse_name(name)
    except ValueError as exc:
        raise SnapshotCorrupt(f"snapshot: {exc}") from exc
    if parsed.checksum is None:
        return
    if len(data) != parsed.checksum.size_bytes:
        raise SnapshotCorrupt(f"snapshot: {len(data)} bytes where its name says {parsed.checksum.size_bytes} (truncated?)")
    if zlib.crc32(data) != parsed.checksum.crc32:
        raise SnapshotCorrupt("snapshot: checksum mismatch (the object is damaged)")


def decode_snapshot(data: bytes, name: str | None = None) -> Snapshot:
    """Verify ``data`` (against ``name``: always pass it when reading a stored object) and open the
    table it holds, in memory. A format-1 object is converted. Raises :class:`SnapshotCorrupt`, or
    :class:`UnsupportedSnapshotVersion` for a schema this version does not read."""
    if data[:8] == LEGACY_MAGIC:
        from streamcache.core.snapshot_legacy import decode_legacy

        return decode_legacy(data)
    verify_image(data, name)
    if data[:16] != SQLITE_MAGIC:
        raise SnapshotCorrupt("snapshot: not a snapshot (neither an SQLite image nor the earlier format)")
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.deserialize(data)
        return open_snapshot(conn)
    except BaseException:
        conn.close()
        raise


def open_snapshot(conn: sqlite3.Connection) -> Snapshot:
    """The snapshot held by ``conn`` (an image deserialized, or a file opened); the table takes the
    connection over."""
    try:
        problem = schema.check(conn)
        if problem is not None:
            version_only = problem.startswith("schema version")
            raise (UnsupportedSnapshotVersion if version_only else SnapshotCorrupt)(f"snapshot: {problem}")
        schema.tune(conn)
        header = read_header(conn)
        return Snapshot(header, Table(connection=conn))
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"snapshot: unreadable image: {exc}") from exc


def read_header(conn: sqlite3.Connection) -> SnapshotHeader:
    """The header of the image ``conn`` holds, from its ``meta`` and ``partitions`` tables."""
    meta = dict(conn.execute("SELECT name, value FROM meta"))
    rows = conn.execute("SELECT partition, next_offset, log_time_ms FROM partitions ORDER BY partition").fetchall()
    try:
        stream = meta["stream"]
        if not isinstance(stream, str) or not stream:
            raise TypeError("stream must be a non-empty string")
        return SnapshotHeader(
            stream=stream,
            next_offsets={p: o for p, o, _ in rows},
            log_time_ms={p: t for p, _, t in rows},
            as_of_ms=int(meta["as_of_ms"]),
            entries=int(meta["entries"]),
            requests=int(meta["requests"]),
            fingerprints=decode_fingerprints(meta.get("last_records")),
            partition_count=None if meta.get("partition_count") is None else int(meta["partition_count"]),
            max_bytes=None if meta.get("max_bytes") is None else int(meta["max_bytes"]),
            dedup_window_ms=None if meta.get("dedup_window_ms") is None else int(meta["dedup_window_ms"]),
            base=meta.get("base"),
            parent=meta.get("parent"),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise SnapshotCorrupt(f"snapshot: unreadable meta table: {exc}") from exc


def decode_header(data: bytes) -> SnapshotHeader:
    """The header of a snapshot, from the whole object or a prefix holding its first pages (the
    integrity of the rest is not checked: use :func:`decode_snapshot` before trusting the data)."""
    if data[:8] == LEGACY_MAGIC:
        from streamcache.core.snapshot_legacy import decode_legacy_header

        return decode_legacy_header(data)
    if data[:16] != SQLITE_MAGIC:
        raise SnapshotCorrupt("snapshot: not a snapshot (neither an SQLite image nor the earlier format)")
    conn = sqlite3.connect(":memory:")
    try:
        # A prefix is not a whole database: deserialize it read-only and read only the first pages.
        conn.deserialize(_as_whole(data))
        problem = schema.check(conn)
        if problem is not None and schema.check(conn, schema.DELTA_VERSION) is None:
            problem = None  # a delta's header: the state at its end (core/snapshot_delta.py)
        if problem is not None:
            version_only = problem.startswith("schema version")
            raise (UnsupportedSnapshotVersion if version_only else SnapshotCorrupt)(f"snapshot: {problem}")
        return read_header(conn)
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"snapshot: unreadable image header: {exc}") from exc
    finally:
        conn.close()


def _as_whole(data: bytes) -> bytes:
    """``data``, or a prefix of an image made to look whole: cut to whole pages, with the page count
    in its header (offset 28, valid while offsets 24 and 92 agree) saying so. Reading a table whose
    pages lie beyond the prefix then fails cleanly (the caller downloads the whole object)."""
    page_size = int.from_bytes(data[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    if page_size < 512 or len(data) < page_size:
        raise SnapshotCorrupt(f"snapshot: {len(data)} bytes is too short for an image")
    pages = len(data) // page_size
    if pages >= int.from_bytes(data[28:32], "big"):
        return bytes(data)
    return bytes(data[:28]) + pages.to_bytes(4, "big") + bytes(data[32 : pages * page_size])


def format_of(name: str) -> int:
    """:data:`IMAGE_FORMAT` or :data:`LEGACY_FORMAT`, from a snapshot's object name."""
    return parse_name(name).format


assert LEGACY_FORMAT < IMAGE_FORMAT
