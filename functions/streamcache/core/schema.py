"""The SQLite schema the table lives in, which is also the snapshot format (a snapshot is the image).

This schema is a contract: a downloaded snapshot is a plain SQLite database
(``sqlite3 snap.db "select key, length(value) from entries limit 5"``), and every reader checks
``PRAGMA application_id`` = :data:`APPLICATION_ID` and ``PRAGMA user_version`` = :data:`SCHEMA_VERSION`
before trusting anything in it. See ``SNAPSHOT_FORMAT.md`` beside this module for the field meanings.

Why this shape:

- ``entries`` is ``WITHOUT ROWID`` keyed by the key: one B-tree holds key and value together, so a
  lookup is one descent and a prefix listing is a range scan in key order (UTF-8 byte order, which
  is code-point order). Content types are small integers into ``content_types`` (one byte per entry
  instead of ~24).
- ``entries_expiry`` is a partial index: only entries with an expiry are in it, so a cache without
  TTLs pays nothing for purging.
- ``requests`` (the de-duplication window) is keyed by (partition, 64-bit hash of the request id):
  one row costs ~40 bytes, and ~1M of them follow a bulk load. The partition is part of the key so
  that a hash collision can only ever involve one partition's requests, which every replica applies
  in the same order (a collision across partitions would depend on the interleaving).
- Positions, log times and accounted bytes per partition live in ``partitions``; ``meta`` holds what
  describes the image as a whole (stream, as-of time, counts). Both are small.
"""

from __future__ import annotations

import sqlite3

# The sqlite3 module binds int, float, str and bytearray parameters directly, but tries to adapt a
# bytes one first: it looks for ``__conform__`` and formats the AttributeError (~0.4 µs per value,
# every write). An identity adapter is found in its table at once (bytes(b) is b). Process-wide, and
# changes nothing but the time.
sqlite3.register_adapter(bytes, bytes)

#: ``PRAGMA application_id`` of a streamcache image: "SCch" (0x53436368).
APPLICATION_ID = 0x53436368
#: ``PRAGMA user_version``: the schema version. 2 (1 was the columnar ``.snap`` format).
SCHEMA_VERSION = 2
#: ``PRAGMA user_version`` of a *delta* (core/snapshot_delta.py): the same tables holding only the rows a
#: compaction changed, plus ``deleted_keys``. Distinct, so that a delta is never taken for a whole table.
DELTA_VERSION = 102
#: SQLite's page cache per connection, in KiB (see :func:`tune`).
CACHE_KIB = 256
#: Page size of new databases. 4 KiB: the fastest lookups measured; larger pages save <2 % space.
PAGE_SIZE = 4096

DDL = """
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value
) WITHOUT ROWID;
CREATE TABLE partitions (
    partition     INTEGER PRIMARY KEY,
    next_offset   INTEGER NOT NULL,
    log_time_ms   INTEGER NOT NULL,
    used_bytes    INTEGER NOT NULL
);
CREATE TABLE content_types (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE entries (
    key            TEXT PRIMARY KEY,
    value          BLOB NOT NULL,
    content_type   INTEGER NOT NULL,
    version_partition INTEGER NOT NULL,
    version_offset INTEGER NOT NULL,
    expires_at_ms  INTEGER
) WITHOUT ROWID;
CREATE INDEX entries_expiry ON entries (version_partition, expires_at_ms) WHERE expires_at_ms IS NOT NULL;
CREATE TABLE requests (
    id             INTEGER NOT NULL,
    partition      INTEGER NOT NULL,
    seen_ms        INTEGER NOT NULL,
    kind           INTEGER NOT NULL,
    key            TEXT NOT NULL,
    version_partition INTEGER,
    version_offset INTEGER,
    expires_at_ms  INTEGER,
    quota_used     INTEGER,
    quota_needed   INTEGER,
    PRIMARY KEY (partition, id)
) WITHOUT ROWID;
CREATE VIEW entries_readable AS
    SELECT e.key, e.value, c.name AS content_type,
           e.version_partition || '-' || e.version_offset AS version, e.expires_at_ms
    FROM entries e JOIN content_types c ON c.id = e.content_type;
"""

# Statements of Table.apply. An upsert, not INSERT OR REPLACE: replacing a value by one of the same
# size then overwrites the B-tree cell in place instead of deleting and re-inserting it.
UPSERT_ENTRY = (
    "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (key) DO UPDATE SET value = ?2, "
    "content_type = ?3, version_partition = ?4, version_offset = ?5, expires_at_ms = ?6"
)
# The same without an expiry: a None bound costs the sqlite3 module a failed adaptation (an
# attribute lookup that formats an exception, ~0.3 µs); a NULL written in the statement costs nothing.
UPSERT_ENTRY_NO_EXPIRY = (
    "INSERT INTO entries VALUES (?1, ?2, ?3, ?4, ?5, NULL) ON CONFLICT (key) DO UPDATE SET value = ?2, "
    "content_type = ?3, version_partition = ?4, version_offset = ?5, expires_at_ms = NULL"
)
# A request remembered (Table.apply), and the row nearly every write leaves (a version in its own
# partition, no expiry, no quota refusal) with its NULLs in the statement, as above.
REMEMBER = "INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
REMEMBER_PLAIN = "INSERT OR REPLACE INTO requests VALUES (?, ?, ?, ?, ?, NULL, ?, NULL, NULL, NULL)"
# One statement finds both the remembered request and the key's entry: each trip through the sqlite3
# module costs about 1 µs of Python before SQLite does anything.
LOOKUP = (
    "SELECT r.kind, r.key, r.version_partition, r.version_offset, r.expires_at_ms, e.version_partition, "
    "e.version_offset, e.expires_at_ms, length(CAST(e.key AS BLOB)) + length(e.value), r.quota_used, r.quota_needed "
    "FROM (SELECT ?1 AS id, ?3 AS key) q LEFT JOIN requests r ON r.partition = ?4 AND r.id = q.id AND r.seen_ms >= ?2 "
    "LEFT JOIN entries e ON e.key = q.key"
)


#: Outcome kinds as stored in ``requests.kind``. Append only: the numbers are the format.
KIND_CODES = ("created", "replaced", "deleted", "not_found", "precondition_failed", "quota_exceeded",
              "not_a_number", "overflow", "touched")  # append only: the codes are stored in images


def tune(conn: sqlite3.Connection) -> None:
    """Settings of every connection to a table: no rollback journal (the table is rebuilt from the
    log, never rolled back), no fsync, one writer. These are per connection, not in the image."""
    conn.execute("PRAGMA journal_mode = OFF")
    conn.execute("PRAGMA synchronous = OFF")
    conn.execute("PRAGMA locking_mode = EXCLUSIVE")
    conn.execute("PRAGMA temp_store = MEMORY")
    # The table is in memory already: SQLite's page cache only copies pages of it (2 MB by default,
    # ~1.5 % of a 1M-key table). 256 KiB measured as fast for a replay's random writes (issue 24).
    conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")


def create(conn: sqlite3.Connection) -> None:
    """Lay out an empty database as a table."""
    conn.execute(f"PRAGMA page_size = {PAGE_SIZE}")
    tune(conn)
    conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    conn.executescript(DDL)


def check(conn: sqlite3.Connection, expected: int = SCHEMA_VERSION) -> str | None:
    """Why ``conn`` is not a table this version reads (``None`` if it is); ``expected``:
    :data:`DELTA_VERSION` to check a delta."""
    try:
        app = conn.execute("PRAGMA application_id").fetchone()[0]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        return f"not an SQLite database ({exc})"
    if app != APPLICATION_ID:
        return f"not a streamcache image (application_id {app:#x}, expected {APPLICATION_ID:#x})"
    if version != expected:
        if version == DELTA_VERSION:
            return f"schema version {version}: a delta, which is only loaded onto the chain it belongs to"
        return f"schema version {version}; this version of streamcache reads {expected}"
    return None
