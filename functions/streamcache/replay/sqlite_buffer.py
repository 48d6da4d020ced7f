"""A database image written straight into memory SQLite then owns: a restore without a second copy.

``Connection.deserialize(data)`` copies ``data`` into a buffer it allocates with ``sqlite3_malloc``:
while it runs, the downloaded image and the table's copy of it are both resident, so a cold start's
peak was twice the table (391 MB at 1M keys for a 156 MB image). Here the buffer is allocated first,
with ``sqlite3_malloc64``, the download is written into it (``SnapshotStore.read_into``: ranged
GETs at their offsets), checked (length and CRC-32, over the very bytes SQLite will read), and
handed to ``sqlite3_deserialize`` with ``SQLITE_DESERIALIZE_FREEONCLOSE``: SQLite takes it over, no
byte is copied, and the peak is the table plus what is in flight on the network.

Python's ``sqlite3`` does not expose a connection's ``sqlite3*`` handle, so it is read from the
connection object: its first field after the object header in CPython's ``pysqlite_Connection``
(3.11 to 3.13). Trusting that blindly would be reckless, so the handle is proven before use: the
connection is opened on a unique in-memory database name, and ``sqlite3_db_filename`` of the handle
must return that name. Anything unexpected (a Python built another way, SQLite linked statically
without its symbols exported, a filename that does not match) makes :func:`owned_buffer` return
``None`` and the caller falls back to ``deserialize`` (correct, at twice the memory).
"""

from __future__ import annotations

import ctypes
import itertools
import os
import sqlite3
import sys
import threading

_SQLITE_OK = 0
_DESERIALIZE_FREEONCLOSE = 1  # SQLite frees the buffer (sqlite3_free) when the connection closes
_DESERIALIZE_RESIZEABLE = 2  # and may grow it (sqlite3_realloc64) as the table grows
_FCNTL_SIZE_LIMIT = 36
#: How far a deserialized table may grow. SQLite's default for memory databases is 1 GiB
#: (SQLITE_MEMDB_DEFAULT_MAXSIZE): a table of some 6M keys would then answer "database or disk is
#: full"; the function's memory limit is the real bound.
MAX_TABLE_BYTES = 1 << 40

_names = itertools.count()
_lock = threading.Lock()
_lib: ctypes.CDLL | None = None
_unusable: str | None = None


def _library() -> ctypes.CDLL | None:
    """The SQLite library Python's ``sqlite3`` runs on (resolved through ``_sqlite3``'s own handle,
    so it is the same instance, with the same allocator), or ``None`` (and why, in :func:`why_not`)."""
    global _lib, _unusable
    with _lock:
        if _lib is not None or _unusable is not None:
            return _lib
        if sys.implementation.name != "cpython" or not (3, 11) <= sys.version_info[:2] <= (3, 13):
            # Where the layout of a connection object has been read (the handle is its first field).
            _unusable = f"the layout of sqlite3.Connection is not known for {sys.implementation.name} {sys.version}"
            return None
        try:
            import _sqlite3

            lib = ctypes.CDLL(_sqlite3.__file__)
            lib.sqlite3_malloc64.restype = ctypes.c_void_p
            lib.sqlite3_malloc64.argtypes = [ctypes.c_uint64]
            lib.sqlite3_free.argtypes = [ctypes.c_void_p]
            lib.sqlite3_db_filename.restype = ctypes.c_char_p
            lib.sqlite3_db_filename.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.sqlite3_deserialize.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_void_p, ctypes.c_int64,
                                                ctypes.c_int64, ctypes.c_uint]
            lib.sqlite3_file_control.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_void_p]
        except (ImportError, OSError, AttributeError) as exc:
            _unusable = f"SQLite's C API is not reachable from Python: {exc}"
            return None
        _lib = lib
        return lib


def why_not() -> str | None:
    """Why owned buffers are not used here, or ``None`` when they are."""
    _library()
    return _unusable


class OwnedBuffer:
    """``size`` bytes allocated by SQLite for a connection proven first, to be filled through
    :attr:`view` and then given to that connection with :meth:`open` (or released with :meth:`free`)."""

    def __init__(self, lib: ctypes.CDLL, conn: sqlite3.Connection, handle: int, size: int) -> None:
        self._lib, self._conn, self._handle, self.size = lib, conn, handle, size
        self._address = lib.sqlite3_malloc64(max(size, 1))
        if not self._address:
            conn.close()
            raise MemoryError(f"sqlite3_malloc64({size}) failed")
        self.view = memoryview((ctypes.c_char * max(size, 1)).from_address(self._address)).cast("B")[:size]

    def open(self) -> sqlite3.Connection:
        """The connection, its main database now this buffer (SQLite owns the buffer from here)."""
        self.view.release()
        address, self._address = self._address, 0
        flags = _DESERIALIZE_FREEONCLOSE | _DESERIALIZE_RESIZEABLE
        # On failure sqlite3_deserialize frees the buffer itself (FREEONCLOSE): not ours either way.
        if self._lib.sqlite3_deserialize(self._handle, b"main", address, self.size, self.size, flags) != _SQLITE_OK:
            self._conn.close()
            raise sqlite3.DatabaseError("sqlite3_deserialize refused the image")
        limit = ctypes.c_int64(MAX_TABLE_BYTES)
        self._lib.sqlite3_file_control(self._handle, b"main", _FCNTL_SIZE_LIMIT, ctypes.byref(limit))
        return self._conn

    def free(self) -> None:
        """Release the buffer and the connection (a download that failed or did not verify)."""
        self.view.release()
        if self._address:
            self._lib.sqlite3_free(self._address)
            self._address = 0
            self._conn.close()


def owned_buffer(size: int) -> OwnedBuffer | None:
    """A buffer of ``size`` bytes SQLite will take over, or ``None`` where that is not possible here
    (the caller fills a ``bytearray`` and deserializes it instead)."""
    global _unusable
    lib = _library()
    if lib is None or _unusable is not None:
        return None
    # The handle is proven before anything is downloaded: a unique name, read back through it.
    name = f"/streamcache-restore-{os.getpid()}-{next(_names)}"
    conn = sqlite3.connect(f"file:{name}?vfs=memdb", uri=True, isolation_level=None, check_same_thread=False)
    handle = ctypes.c_void_p.from_address(id(conn) + object.__basicsize__).value
    filename = lib.sqlite3_db_filename(handle, b"main") if handle else None
    if filename is None or filename.decode(errors="replace") != name:
        conn.close()
        _unusable = f"the sqlite3 handle of a connection could not be proven ({filename!r} is not {name!r})"
        return None
    return OwnedBuffer(lib, conn, handle, size)


__all__ = ["MAX_TABLE_BYTES", "OwnedBuffer", "owned_buffer", "why_not"]
