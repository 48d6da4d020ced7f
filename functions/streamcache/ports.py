"""The two ports every instance and the compactor stand on, side by side, with their errors.

- :class:`MutationLog`: the append-only, partitioned log of records (the OCI Stream). Offsets follow
  Kafka's convention everywhere: ``next`` offsets and half-open ranges ``[start, end)``. Errors:
  :class:`~streamcache.core.errors.LogUnavailable` (retry later) and
  :class:`~streamcache.core.errors.LogTruncated` (retention dropped what was asked for).
- :class:`SnapshotStore`: immutable named objects (OCI Object Storage, a directory, memory) under
  ``/``-separated names that :mod:`streamcache.core.snapshot_names` builds; adapters never invent names.
  Errors (all :class:`SnapshotStoreError`)::

    SnapshotStoreError
    ├── SnapshotExists            put_new: the name is taken by other bytes
    ├── SnapshotNotFound          get: no such object
    ├── InvalidSnapshotName       a name no store accepts (see check_name)
    └── SnapshotStoreUnavailable  the store cannot be reached or refused us; retry later (maps to 503)

Adapters live in :mod:`streamcache.adapters`, one file each, opened from a URL by
:mod:`streamcache.adapters.urls`; one contract suite per port (``tests/contracts/``) runs against
every adapter.
"""

from __future__ import annotations

from typing import Iterator, Mapping, NamedTuple, Protocol, Sequence

from streamcache.core.errors import StreamcacheError
from streamcache.core.records import Position


class LogRecord(NamedTuple):
    """One record as read back from the log."""

    position: Position
    key: bytes | None
    value: bytes
    timestamp_ms: int


class LogBounds(NamedTuple):
    """Per partition: the first offset still held (retention may have dropped older ones) and the
    next offset to be written (the log end)."""

    first: dict[int, int]
    next: dict[int, int]


class MutationLog(Protocol):
    """An append-only, partitioned log of records.

    Errors: every method raises :class:`~streamcache.core.errors.LogUnavailable` when the log
    cannot be reached; callers may retry. Nothing else escapes an adapter on purpose.
    """

    @property
    def partitions(self) -> int:
        """The number of partitions this process places keys over (:meth:`partition_for`), learnt once
        and fixed for the life of the process, so that keys never silently move."""
        ...

    def current_partitions(self) -> int:
        """The number of partitions the log has now, from fresh metadata (Kafka allows adding
        partitions; OCI Streaming does not). Differs from :attr:`partitions` only when the log
        changed under this process: then keys hash elsewhere and no answer is right."""
        ...

    def partition_for(self, key: str) -> int:
        """The partition that records with this key go to (Kafka's murmur2 partitioner)."""
        ...

    def append(self, key: str, value: bytes) -> Position:
        """Append one record and return its position once the broker acknowledged it (acks=all).

        A retried append may land twice; records carry request ids so that applying is idempotent.
        """
        ...

    def append_many(self, items: Sequence[tuple[str, bytes]]) -> list[Position]:
        """Append ``(key, value)`` records in bulk; return their positions, in the order of ``items``,
        once the broker acknowledged every one of them (acks=all).

        Records of one key land in the order given. Faster than ``append`` in a loop (records are
        batched, and all are sent before any acknowledgement is awaited). If it raises
        :class:`~streamcache.core.errors.OutcomeUnknown`, any of the records may have landed (of one
        key, a prefix); a plain ``LogUnavailable`` says none was sent. Retrying is safe either way:
        records carry request ids.
        """
        ...

    def bounds(self) -> LogBounds:
        """First and next offset of every partition, as of this call."""
        ...

    def read(self, start: Mapping[int, int], end: Mapping[int, int] | None = None) -> Iterator[LogRecord]:
        """Records of the partitions in ``start``, from ``start[p]`` up to ``end[p]`` (exclusive).

        With ``end=None`` the read goes to the log end as it was when the read began (records
        appended later may or may not be included). Within a partition records come in offset
        order; partitions may interleave. Offsets may have gaps.
        """
        ...

    def records_at(self, offsets: Mapping[int, int]) -> dict[int, LogRecord | None]:
        """For each ``partition -> offset``, the record the log holds at that offset now, or ``None``
        when it holds none there (retention dropped it, the log ends at or below it, the offset is a
        gap, or the log has no such partition).

        The answer comes from the log itself (a fetch at that offset), never from offsets listed or
        cached earlier: it is the proof that decisions which throw state away need (a log that went
        backwards, a snapshot of another log). When no such answer can be had, raises
        :class:`~streamcache.core.errors.LogUnavailable`, never ``None``.
        """
        ...

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...


# ---- the snapshot store ---------------------------------------------------------------------------


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

    def read_into(self, name: str, buffer: memoryview, offset: int = 0) -> int:
        """Copy the bytes of ``name`` from ``offset`` into ``buffer`` (as many as fit, fewer when the
        object ends first) and return the object's whole size, so a caller that knows how big the
        object must be sees a truncated or a longer one. The bytes go straight into memory the caller
        owns (a snapshot's restore fills SQLite's buffer with it: no second copy of a big image);
        adapters over a network may fetch ranges of it concurrently.

        Raises :class:`SnapshotNotFound` if there is no such object.
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
