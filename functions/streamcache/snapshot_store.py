"""The snapshot-store port: where snapshot objects live (a directory, OCI Object Storage, memory).

Stores hold immutable objects under ``/``-separated names that :mod:`streamcache.core.snapshot`
builds; adapters never invent names. One contract suite (``tests/contracts/test_snapshot_store.py``)
runs against every adapter. Adapters live in :mod:`streamcache.adapters` (``open_snapshot_store``).

Errors (all :class:`SnapshotStoreError`)::

    SnapshotStoreError
    ├── SnapshotExists            put_new: the name is taken by other bytes
    ├── SnapshotNotFound          get: no such object
    ├── InvalidSnapshotName       a name no store accepts (see check_name)
    └── SnapshotStoreUnavailable  the store cannot be reached or refused us; retry later (maps to 503)
"""

from __future__ import annotations

from typing import Iterator, Protocol

from .core.errors import StreamcacheError


class SnapshotStoreError(StreamcacheError):
    """Base class of the snapshot-store errors."""


class SnapshotExists(SnapshotStoreError):
    """An object with that name exists and holds other bytes."""


class SnapshotNotFound(SnapshotStoreError):
    """No object has that name."""


class InvalidSnapshotName(SnapshotStoreError, ValueError):
    """The name is not one every store can hold safely."""


class SnapshotStoreUnavailable(SnapshotStoreError):
    """The store cannot be reached, or refused the request (auth, missing bucket, throttling, 5xx).

    The message says which; transient ones are worth retrying, the others need an operator."""


#: The default chunk size of :meth:`SnapshotStore.open_stream`.
DEFAULT_CHUNK_BYTES = 1 << 20


def check_name(name: str) -> str:
    """Return ``name`` if it is a valid object name, else raise :class:`InvalidSnapshotName`.

    Valid: 1-1024 characters, ``/``-separated non-empty segments, none starting with ``.`` (so no
    ``..`` and no clash with a directory store's temporary files), no backslash and no control
    characters."""
    if not name or len(name) > 1024:
        raise InvalidSnapshotName(f"object name {name!r}: must be 1 to 1024 characters")
    if "\\" in name or any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        raise InvalidSnapshotName(f"object name {name!r}: no backslashes or control characters")
    for segment in name.split("/"):
        if not segment or segment.startswith("."):
            raise InvalidSnapshotName(f"object name {name!r}: empty segment or one starting with '.'")
    return name


class SnapshotStore(Protocol):
    """Immutable named objects: created once, read many times, deleted when pruned.

    Every method raises :class:`InvalidSnapshotName` for a name :func:`check_name` rejects and
    :class:`SnapshotStoreUnavailable` when the store cannot serve the request; nothing else escapes
    an adapter on purpose. Methods are safe to call from several threads and several processes.
    """

    def put_new(self, name: str, data: bytes) -> None:
        """Create ``name`` holding ``data``, atomically: readers see all of it or nothing.

        Never overwrites. If ``name`` exists with other bytes, raises :class:`SnapshotExists` and
        changes nothing; if it exists with these very bytes, returns (so a retried request whose
        first attempt landed succeeds). Of concurrent writers of one name, exactly one succeeds.
        """
        ...

    def get(self, name: str) -> bytes:
        """The bytes of ``name``. Raises :class:`SnapshotNotFound` if there is no such object."""
        ...

    def open_stream(self, name: str, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> Iterator[bytes]:
        """The bytes of ``name`` as an iterator of non-empty chunks of about ``chunk_bytes``, read
        as they are consumed, so that an object of any size is never held whole (bulk imports).

        Raises :class:`SnapshotNotFound` at the call if there is no such object; a failure while
        reading raises :class:`SnapshotStoreUnavailable` from the iteration. The iterator is a
        generator: exhaust it or ``close()`` it to release the file or connection.
        """
        ...

    def list(self, prefix: str = "") -> list[str]:
        """Every name starting with ``prefix`` (a plain string prefix, not a folder), sorted by
        code point (= UTF-8 byte order, Object Storage's order). Complete: adapters page internally.
        Objects being written are not listed until complete."""
        ...

    def delete(self, name: str) -> None:
        """Remove ``name``. Idempotent: deleting a missing object is not an error."""
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
