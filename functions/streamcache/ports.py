"""The mutation-log port: the one thing every cache instance and the compactor read and write.

Offsets follow Kafka's convention everywhere: ``next`` offsets and half-open ranges
``[start, end)``. Adapters live in :mod:`streamcache.adapters`, one file each; one contract suite
(``tests/contracts/test_mutation_log.py``) runs against every one of them.
"""

from __future__ import annotations

from typing import Iterator, Mapping, NamedTuple, Protocol, Sequence

from .core.records import Position


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
        """The number of partitions (fixed for the life of the stream)."""
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
        batched); if it raises, any prefix of the records may have landed (retrying is safe: records
        carry request ids).
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

    def close(self) -> None:
        """Release connections. Idempotent."""
        ...
