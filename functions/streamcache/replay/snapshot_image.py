"""Opening a downloaded snapshot image: deserialized into memory, or as a memory-mapped file.

Both ways decode nothing per entry (the image is the table's database), they differ in when the
pages are copied and where they live:

- **in memory** (``Connection.deserialize``): the image is copied into SQLite's heap once; resident
  memory afterwards is the image size. Costs a copy of the whole image at load.
- **memory-mapped file**: the image is written under a temporary folder (on OCI Functions ``/tmp``, a
  quarter of the function's memory) and opened with ``PRAGMA mmap_size``: opening is almost free and
  pages load on first touch. The file counts against the function's memory (and ``/tmp`` is small),
  and writes go through the file.

Which is used is decided per image size (:data:`FILE_MIN_BYTES`, see bench/README.md for the
measurements behind it). The file is unlinked as soon as it is open, so nothing is left behind by
a crash; its space is freed when the table's connection closes.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile

from streamcache.core.snapshot import Snapshot, SnapshotCorrupt, decode_snapshot, open_snapshot, verify_image

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


def open_file_image(data: bytes, tmp_dir: str | None = None) -> Snapshot:
    """Write ``data`` (a verified image) to a new file under ``tmp_dir`` and open it memory-mapped."""
    fd, path = tempfile.mkstemp(prefix="streamcache-", suffix=".db", dir=tmp_dir)
    with os.fdopen(fd, "wb") as out:
        out.write(data)
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute(f"PRAGMA mmap_size = {max(len(data) * 2, 1 << 28)}")
        snapshot = open_snapshot(conn)
    except BaseException:
        conn.close()
        os.unlink(path)
        raise
    # Unlinked once open: the connection keeps the file; its space returns when the table closes.
    os.unlink(path)
    return snapshot


__all__ = ["FILE_MIN_BYTES", "SnapshotCorrupt", "load_image", "open_file_image"]
