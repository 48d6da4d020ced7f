"""Deltas: what one compaction changed in the table, as a small SQLite image of the same tables.

A delta is written by a compaction that folded the log onto a snapshot (its *parent*, the previous
link of a chain whose first link, the *base*, is a full image: :mod:`.snapshot_chain`). It holds

- ``entries``: every entry row written since the parent, whole (``SELECT *``-alike over the table's
  own columns, so whatever an entry holds travels with it), and ``deleted_keys``: every key the fold
  deleted, dropped as expired, or purged;
- ``requests``: the de-duplication rows written since the parent that are still in the window (rows
  that left the window are swept by whoever loads the delta, with the delta's log times);
- ``partitions``, ``content_types`` and ``meta`` whole (they are small): the partition state at the
  delta's end (next offsets, log times and clocks, accounted bytes, counts, the fingerprints of the
  last records), so a delta's header is what its chain adds up to; plus ``kind`` = ``delta``,
  ``base`` and ``parent`` (whole object names).

It is an SQLite database like a full image (same ``application_id``), so a plain ``sqlite3`` shell
reads it (``select key from deleted_keys``), but its ``user_version`` is
:data:`~.schema.DELTA_VERSION`: no reader takes it for a whole table.

How the compactor knows what changed: :func:`track_changes` puts TEMP triggers on the table's
connection before the fold, which note each key written or deleted and each request row written in
TEMP tables (never in the image). That is exact (purges and sweeps included, whatever statement
made the change), costs one small insert per change, and needs nothing of the table's hot path; a
diff against the base would read both whole tables, O(table) where a delta is meant to be O(changes).

Loading: :func:`apply_delta` attaches the delta to the table's connection and applies it in one
transaction (delete, upsert, replace the partition state), then re-opens the table from its
database and sweeps the request rows that left the window. Base + deltas in order gives the table
the full fold of the same log gives (``tests/core/test_snapshot_delta.py`` checks it by property).
"""

from __future__ import annotations

import sqlite3

from streamcache.core import schema
from streamcache.core.snapshot import SQLITE_MAGIC, read_header, verify_image, write_meta
from streamcache.core.snapshot_types import SnapshotCorrupt, SnapshotHeader, UnsupportedSnapshotVersion
from streamcache.core.table import Table

_EXTRA_DDL = "CREATE TABLE deleted_keys (key TEXT PRIMARY KEY) WITHOUT ROWID;"
_LINK_ROWS = ("kind", "base", "parent")
# Not INSERT OR IGNORE: the conflict policy of the statement that fires a trigger overrides its body's.
_TRACKING = """
CREATE TEMP TABLE IF NOT EXISTS changed_keys (key TEXT PRIMARY KEY) WITHOUT ROWID;
CREATE TEMP TABLE IF NOT EXISTS changed_requests (partition INTEGER, id INTEGER, PRIMARY KEY (partition, id)) WITHOUT ROWID;
CREATE TEMP TRIGGER IF NOT EXISTS changed_entry_inserted AFTER INSERT ON main.entries
    BEGIN INSERT INTO changed_keys SELECT new.key WHERE NOT EXISTS (SELECT 1 FROM changed_keys WHERE key = new.key); END;
CREATE TEMP TRIGGER IF NOT EXISTS changed_entry_updated AFTER UPDATE ON main.entries
    BEGIN INSERT INTO changed_keys SELECT new.key WHERE NOT EXISTS (SELECT 1 FROM changed_keys WHERE key = new.key); INSERT INTO changed_keys SELECT old.key WHERE NOT EXISTS (SELECT 1 FROM changed_keys WHERE key = old.key); END;
CREATE TEMP TRIGGER IF NOT EXISTS changed_entry_deleted AFTER DELETE ON main.entries
    BEGIN INSERT INTO changed_keys SELECT old.key WHERE NOT EXISTS (SELECT 1 FROM changed_keys WHERE key = old.key); END;
CREATE TEMP TRIGGER IF NOT EXISTS changed_request_inserted AFTER INSERT ON main.requests
    BEGIN INSERT INTO changed_requests SELECT new.partition, new.id WHERE NOT EXISTS (SELECT 1 FROM changed_requests WHERE partition = new.partition AND id = new.id); END;
CREATE TEMP TRIGGER IF NOT EXISTS changed_request_updated AFTER UPDATE ON main.requests
    BEGIN INSERT INTO changed_requests SELECT new.partition, new.id WHERE NOT EXISTS (SELECT 1 FROM changed_requests WHERE partition = new.partition AND id = new.id); END;
"""


def track_changes(table: Table) -> None:
    """From now on, note what changes in ``table`` (for :func:`encode_delta`)."""
    table.db.executescript(_TRACKING)


def changes(table: Table) -> int:
    """How many keys and request rows changed since :func:`track_changes` (0 if not tracking)."""
    try:
        return table.db.execute(
            "SELECT (SELECT count(*) FROM temp.changed_keys) + (SELECT count(*) FROM temp.changed_requests)").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


def _columns(db: sqlite3.Connection, table: str, alias: str) -> tuple[str, str]:
    """The column list of ``main.table``, bare and prefixed with ``alias``: copies carry every column."""
    names = [row[1] for row in db.execute(f"PRAGMA main.table_info({table})")]
    return ", ".join(names), ", ".join(f"{alias}.{n}" for n in names)


def _empty_delta() -> bytes:
    conn = sqlite3.connect(":memory:")
    try:
        schema.create(conn)
        conn.execute(f"PRAGMA user_version = {schema.DELTA_VERSION}")
        conn.executescript(_EXTRA_DDL)
        return conn.serialize()
    finally:
        conn.close()


def encode_delta(table: Table, stream: str, partitions: int | None, base: str, parent: str) -> bytes:
    """The delta of ``table`` since :func:`track_changes` was called on it, folded onto ``parent``
    (whose chain starts at ``base``). Writes the table's ``meta`` rows first, as a full image would."""
    write_meta(table, stream, partitions)
    db = table.db
    db.execute("ATTACH ':memory:' AS delta")
    try:
        db.deserialize(_empty_delta(), name="delta")
        entry_cols, entry_sel = _columns(db, "entries", "e")
        request_cols, request_sel = _columns(db, "requests", "r")
        db.execute("BEGIN")
        db.execute(f"INSERT INTO delta.entries ({entry_cols}) SELECT {entry_sel} "
                   "FROM temp.changed_keys c JOIN main.entries e ON e.key = c.key")
        db.execute("INSERT INTO delta.deleted_keys SELECT c.key FROM temp.changed_keys c "
                   "WHERE NOT EXISTS (SELECT 1 FROM main.entries e WHERE e.key = c.key)")
        db.execute(f"INSERT INTO delta.requests ({request_cols}) SELECT {request_sel} "
                   "FROM temp.changed_requests c JOIN main.requests r ON r.partition = c.partition AND r.id = c.id")
        for small in ("content_types", "partitions", "meta"):
            db.execute(f"INSERT INTO delta.{small} SELECT * FROM main.{small}")
        db.executemany("INSERT INTO delta.meta VALUES (?, ?)", zip(_LINK_ROWS, ("delta", base, parent)))
        db.execute("COMMIT")
        return db.serialize(name="delta")
    finally:
        if db.in_transaction:
            db.execute("ROLLBACK")
        db.execute("DETACH delta")


def delta_header(data: bytes, name: str | None) -> SnapshotHeader:
    """Verify the delta ``data`` against its object ``name`` and read its header (with ``base`` and
    ``parent``). Raises :class:`SnapshotCorrupt` / :class:`UnsupportedSnapshotVersion`."""
    verify_image(data, name)
    if data[:16] != SQLITE_MAGIC:
        raise SnapshotCorrupt("delta: not an SQLite image")
    conn = sqlite3.connect(":memory:")
    try:
        conn.deserialize(data)
        problem = schema.check(conn, schema.DELTA_VERSION)
        if problem is not None:
            # A full image under a delta's name is not what the name says; another version is newer.
            version_only = problem.startswith("schema version") and not problem.startswith(f"schema version {schema.SCHEMA_VERSION};")
            raise (UnsupportedSnapshotVersion if version_only else SnapshotCorrupt)(f"delta: {problem}")
        header = read_header(conn)
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"delta: unreadable image: {exc}") from exc
    finally:
        conn.close()
    if not header.base or not header.parent:
        raise SnapshotCorrupt("delta: its meta table names no base or parent")
    return header


def apply_delta(table: Table, data: bytes) -> Table:
    """``table`` with the delta ``data`` (checked by :func:`delta_header`) applied: the table
    re-opened from its database (the old object must not be used again). Raises
    :class:`SnapshotCorrupt` if SQLite cannot read it (the table is then half-applied: discard it)."""
    db = table.db
    try:
        db.execute("ATTACH ':memory:' AS delta")
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"delta: cannot attach: {exc}") from exc
    try:
        db.deserialize(data, name="delta")
        entry_cols, _ = _columns(db, "entries", "e")
        request_cols, _ = _columns(db, "requests", "r")
        db.execute("BEGIN")
        db.execute("DELETE FROM main.entries WHERE key IN (SELECT key FROM delta.deleted_keys)")
        db.execute(f"INSERT OR REPLACE INTO main.entries ({entry_cols}) SELECT {entry_cols} FROM delta.entries")
        db.execute("INSERT OR IGNORE INTO main.content_types SELECT * FROM delta.content_types")
        db.execute(f"INSERT OR REPLACE INTO main.requests ({request_cols}) SELECT {request_cols} FROM delta.requests")
        db.execute("DELETE FROM main.partitions")
        db.execute("INSERT INTO main.partitions SELECT * FROM delta.partitions")
        db.execute("DELETE FROM main.meta")
        db.execute(f"INSERT INTO main.meta SELECT * FROM delta.meta WHERE name NOT IN {_LINK_ROWS}")
        db.execute("COMMIT")
    except sqlite3.DatabaseError as exc:
        raise SnapshotCorrupt(f"delta: cannot be applied: {exc}") from exc
    finally:
        if db.in_transaction:
            db.execute("COMMIT")  # no journal to roll back with: the caller discards the table
        db.execute("DETACH delta")
    restored = Table(table.quota, connection=db)
    restored.sweep_requests()  # rows that left the window by the delta's log times (see the docstring)
    return restored
