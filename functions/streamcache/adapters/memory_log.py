"""An in-process mutation log: the fast stand-in for the stream in core and service tests.

Logs are shared by name inside one process (``memory://NAME``), so several replicas in one test
see one log. It partitions keys with Kafka's murmur2 exactly as the Kafka adapter does.
"""

from __future__ import annotations

import threading
import time
from typing import ClassVar, Iterator, Mapping, Sequence

from streamcache.adapters.kafka_partitioner import key_partition
from streamcache.core.errors import LogTruncated, LogUnavailable
from streamcache.core.records import Position
from streamcache.ports import LogBounds, LogRecord


class MemoryLog:
    """A thread-safe in-memory partitioned log. Set ``available = False`` to simulate an outage."""

    _registry: ClassVar[dict[str, "MemoryLog"]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, partitions: int = 1, clock=time.time) -> None:
        if partitions < 1:
            raise ValueError("a log needs at least one partition")
        self._records: list[list[LogRecord]] = [[] for _ in range(partitions)]
        self._placed = partitions  # what partition_for uses: fixed, as a Kafka process's count is
        self._first = [0] * partitions
        self._lock = threading.Lock()
        self._clock = clock
        self.available = True

    @classmethod
    def named(cls, name: str, partitions: int = 1) -> "MemoryLog":
        """The process-wide log called ``name``, created on first use."""
        with cls._registry_lock:
            log = cls._registry.get(name)
            if log is None:
                log = cls._registry[name] = cls(partitions)
            return log

    @classmethod
    def forget(cls, name: str) -> None:
        with cls._registry_lock:
            cls._registry.pop(name, None)

    @property
    def partitions(self) -> int:
        return self._placed

    def current_partitions(self) -> int:
        self._check()
        return len(self._records)

    def partition_for(self, key: str) -> int:
        return key_partition(key, self._placed)

    def _check(self) -> None:
        if not self.available:
            raise LogUnavailable("the in-memory log is marked unavailable")

    def append(self, key: str, value: bytes) -> Position:
        self._check()
        partition = self.partition_for(key)
        with self._lock:
            records = self._records[partition]
            position = Position(partition, self._first[partition] + len(records))
            records.append(LogRecord(position, key.encode("utf-8"), value, int(self._clock() * 1000)))
        return position

    def append_many(self, items: Sequence[tuple[str, bytes]]) -> list[Position]:
        self._check()
        return [self.append(key, value) for key, value in items]

    def bounds(self) -> LogBounds:
        self._check()
        with self._lock:
            first = dict(enumerate(self._first))
            nxt = {p: self._first[p] + len(r) for p, r in enumerate(self._records)}
        return LogBounds(first, nxt)

    def read(self, start: Mapping[int, int], end: Mapping[int, int] | None = None) -> Iterator[LogRecord]:
        self._check()
        with self._lock:
            chunks = []
            for partition, offset in start.items():
                records = self._records[partition]
                base = self._first[partition]
                stop = base + len(records) if end is None or partition not in end else end[partition]
                if offset < base and stop > offset:  # as Kafka answers OffsetOutOfRange
                    raise LogTruncated(f"partition {partition}: offsets below {base} are no longer held")
                chunks.append(records[max(offset, base) - base : max(stop, base) - base])
        return iter([record for chunk in chunks for record in chunk])

    def records_at(self, offsets: Mapping[int, int]) -> dict[int, LogRecord | None]:
        self._check()
        with self._lock:
            out: dict[int, LogRecord | None] = {}
            for partition, offset in offsets.items():
                if not 0 <= partition < len(self._records):
                    out[partition] = None
                    continue
                index = offset - self._first[partition]
                records = self._records[partition]
                out[partition] = records[index] if 0 <= index < len(records) else None
            return out

    def truncate_before(self, partition: int, offset: int) -> None:
        """Drop records below ``offset`` (what stream retention does); for tests."""
        with self._lock:
            drop = max(0, offset - self._first[partition])
            del self._records[partition][:drop]
            self._first[partition] += drop

    def lose_everything(self) -> None:
        """Drop every record and start offsets at 0 again, as a broker that keeps its log in memory does
        when it restarts (or a stream recreated under the same name); for tests."""
        with self._lock:
            self._records = [[] for _ in self._records]
            self._first = [0] * len(self._records)

    def add_partitions(self, count: int) -> None:
        """Grow the log to ``count`` partitions (Kafka's CreatePartitions); for tests. As with Kafka,
        a process that learnt the count before keeps placing keys with it (:attr:`partitions`);
        :meth:`current_partitions` and :meth:`bounds` show the new count."""
        with self._lock:
            while len(self._records) < count:
                self._records.append([])
                self._first.append(0)

    def close(self) -> None:
        pass
