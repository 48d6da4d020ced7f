"""Downloading and opening a snapshot image: into memory SQLite owns, or as a memory-mapped file.

:func:`fetch_image` is the restore's way (a cold start, a compaction's base, as-of reads): the image
is read with ``SnapshotStore.read_into`` straight into the memory it is opened from, never held as
one Python ``bytes`` object beside SQLite's copy. Its length and CRC-32 are checked over those very
bytes before SQLite reads one (as strong as :func:`~streamcache.core.snapshot.verify_image`).

- **in memory** (the default): a buffer allocated by SQLite (:mod:`.sqlite_buffer`) is filled and
  handed to ``sqlite3_deserialize``: resident memory during and after the load is the image, plus
  the ranges in flight. Where that buffer cannot be had, a ``bytearray`` is filled and
  ``Connection.deserialize`` copies it (twice the image at the peak, as before).
- **memory-mapped file** (images of at least :data:`FILE_MIN_BYTES`): the image is written at its
  offsets into a file under a temporary folder (on OCI Functions ``/tmp``, a quarter of the
  function's memory) and opened with ``PRAGMA mmap_size``. The file's space is reserved first
  (``posix_fallocate``): an image that does not fit fails there, before a byte is downloaded, and is
  loaded in memory instead (logged).

:func:`load_image` opens bytes already downloaded (``streamcache snapshots``, the CLI's history):
``Connection.deserialize`` copies them, or they are written to a file as above.

A memory-mapped file costs almost nothing to open (pages load on first touch), but the file counts
against the function's memory where ``/tmp`` is memory-backed, and ``/tmp`` is small. Which is used is decided per image size (:data:`FILE_MIN_BYTES`, see bench/README.md for the
measurements behind it). The file is unlinked as soon as it is open, so nothing is left behind by
a crash; its space is freed when the table's connection closes.
"""

from __future__ import annotations

import logging
import mmap
import os
import sqlite3
import tempfile
import zlib

from streamcache.core.snapshot import (
    Snapshot,
    SnapshotCorrupt,
    decode_snapshot,
    open_snapshot,
    parse_name,
    verify_image,
)
from streamcache.ports import SnapshotStore
from streamcache.replay.sqlite_buffer import owned_buffer

log = logging.getLogger("streamcache.snapshots")

#: Images at least this big are opened as memory-mapped files (``None``: never). Set from the
#: environment variable ``STREAMCACHE_IMAGE_FILE_MIN_BYTES`` (0 = always a file, -1 = never).
FILE_MIN_BYTES: int | None = None
#: Where image files go (``None``: the system's temporary folder, ``/tmp`` on OCI Functions).
TMP_DIR: str | None = None


def _configured_min_bytes() -> int | None:
    raw = os.environ.get("STREAMCACHE_IMAGE_FILE_MIN_BYTES", "").strip()
    if not raw:
        return FILE_MIN_BYTES
    value = int(raw)
    return None if value < 0 else value


def load_image(data: bytes, name: str | None, *, file_min_bytes: int | None | str = "configured",
               tmp_dir: str | None = None) -> Snapshot:
    """Verify ``data`` against its object ``name`` and open the snapshot it holds, in memory or as a
    memory-mapped file under ``tmp_dir`` by size. Raises the errors of :func:`decode_snapshot`."""
    threshold = _configured_min_bytes() if file_min_bytes == "configured" else file_min_bytes
    if threshold is None or len(data) < threshold or data[:16] != b"SQLite format 3\x00":
        return decode_snapshot(data, name)
    verify_image(data, name)
    return open_file_image(data, tmp_dir or TMP_DIR)


def fetch_image(store: SnapshotStore, name: str, *, file_min_bytes: int | None | str = "configured",
                tmp_dir: str | None = None) -> tuple[Snapshot, int]:
    """Download snapshot ``name`` from ``store`` and open it (see the module docstring); returns the
    snapshot and the object's size. Raises :class:`SnapshotCorrupt` (truncated, longer, damaged),
    ``UnsupportedSnapshotVersion``, and the store's ``SnapshotNotFound`` / ``SnapshotStoreUnavailable``."""
    try:
        expected = parse_name(name).checksum
    except ValueError as exc:
        raise SnapshotCorrupt(f"snapshot: {exc}") from exc
    if expected is None or not hasattr(store, "read_into"):  # format 1: its size is not in its name
        data = store.get(name)
        return load_image(data, name, file_min_bytes=file_min_bytes, tmp_dir=tmp_dir), len(data)
    size = expected.size_bytes
    threshold = _configured_min_bytes() if file_min_bytes == "configured" else file_min_bytes
    if threshold is not None and size >= threshold:
        try:
            return _fetch_to_file(store, name, size, expected.crc32, tmp_dir or TMP_DIR), size
        except _NoRoom as exc:
            log.warning("snapshot %s (%d bytes) does not fit in %s (%s); loading it in memory", name, size,
                        tmp_dir or TMP_DIR or tempfile.gettempdir(), exc.__cause__,
                        extra={"fields": {"kind": "snapshot_file_no_room", "bytes": size}})
    owned = owned_buffer(size)
    if owned is None:  # deserialize copies: twice the image at the peak, but correct anywhere
        data = bytearray(size)
        _fill(store, name, memoryview(data), size, expected.crc32)
        return decode_snapshot(data, None), size  # type: ignore[arg-type]  # verified by _fill
    try:
        _fill(store, name, owned.view, size, expected.crc32)
    except BaseException:
        owned.free()
        raise
    conn = owned.open()
    try:
        return open_snapshot(conn), size
    except BaseException:
        conn.close()
        raise


def _fill(store: SnapshotStore, name: str, view: memoryview, size: int, crc32: int) -> None:
    """Read the object into ``view`` and check it against its name's length and CRC-32."""
    whole = store.read_into(name, view)
    if whole != size:
        raise SnapshotCorrupt(f"snapshot: {whole} bytes where its name says {size} (truncated?)")
    if zlib.crc32(view) != crc32:
        raise SnapshotCorrupt("snapshot: checksum mismatch (the object is damaged)")
    if bytes(view[:16]) != b"SQLite format 3\x00":
        raise SnapshotCorrupt("snapshot: not a snapshot (neither an SQLite image nor the earlier format)")


class _NoRoom(Exception):
    """The temporary folder cannot hold the image."""


def _fetch_to_file(store: SnapshotStore, name: str, size: int, crc32: int, tmp_dir: str | None) -> Snapshot:
    fd, path = tempfile.mkstemp(prefix="streamcache-", suffix=".db", dir=tmp_dir)
    try:
        try:
            # Reserve the space first: a write into a memory map of a full tmpfs is a SIGBUS, not an error.
            os.posix_fallocate(fd, 0, max(size, 1))
        except OSError as exc:
            raise _NoRoom() from exc
        with mmap.mmap(fd, max(size, 1)) as mapped:
            view = memoryview(mapped)[:size]
            try:
                _fill(store, name, view, size, crc32)
            finally:
                view.release()
        os.ftruncate(fd, size)
        return _open_file(path, size)
    finally:
        os.close(fd)
        os.unlink(path)  # the connection keeps the file open; its space returns when the table closes


def open_file_image(data: bytes, tmp_dir: str | None = None) -> Snapshot:
    """Write ``data`` (a verified image) to a new file under ``tmp_dir`` and open it memory-mapped."""
    fd, path = tempfile.mkstemp(prefix="streamcache-", suffix=".db", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        return _open_file(path, len(data))
    finally:
        # Unlinked once open: the connection keeps the file; its space returns when the table closes.
        os.unlink(path)


def _open_file(path: str, size: int) -> Snapshot:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA mmap_size = {max(size * 2, 1 << 28)}")
        return open_snapshot(conn)
    except BaseException:
        conn.close()
        raise


__all__ = ["FILE_MIN_BYTES", "SnapshotCorrupt", "fetch_image", "load_image", "open_file_image"]
