"""The table state machine: applies mutation records in log order and answers reads.

Everything here is a function of the records applied and of the ``now_ms`` a reader passes in, so
two tables fed the same records per partition reach the same entries and report the same outcomes,
whatever the interleaving of partitions (all state that outcomes depend on is kept per partition).

- A key's version is the :class:`~.records.Position` of the record that last wrote it.
- Preconditions are checked when the record is applied, against the partition's *log time* (the
  largest writer timestamp applied in that partition so far), never against a wall clock.
- Expired entries read as absent for a reader's ``now_ms`` and are purged once log time passes them.
- A request id seen again within :data:`DEDUP_WINDOW_MS` of log time in the same partition is a
  retried append: nothing changes and the first outcome is reported again.
"""

from __future__ import annotations

import heapq
from collections import deque
from enum import Enum
from functools import partial
from typing import Iterator, NamedTuple

from sortedcontainers import SortedList

from streamcache.core.records import Delete, Mutation, Position, Put

#: How long (in log time) a request id is remembered for de-duplication. Producer retries give up
#: after their delivery timeout (30 s in the Kafka adapter); two minutes covers them with margin.
#: Part of the log's semantics: every replica and the compactor must use the same value.
DEDUP_WINDOW_MS = 120_000


class Entry(NamedTuple):
    """A live value in the table."""

    value: bytes
    content_type: str
    version: Position
    expires_at_ms: int | None

    def live_at(self, now_ms: int) -> bool:
        return self.expires_at_ms is None or now_ms < self.expires_at_ms


class OutcomeKind(str, Enum):
    CREATED = "created"
    REPLACED = "replaced"
    DELETED = "deleted"
    NOT_FOUND = "not_found"
    PRECONDITION_FAILED = "precondition_failed"


class Outcome(NamedTuple):
    """What applying one record did. ``version`` is the key's version after the record (the record's
    own position when it wrote, the current version when a precondition failed, ``None`` if absent)."""

    kind: OutcomeKind
    key: str
    version: Position | None
    expires_at_ms: int | None = None


_new_entry = partial(tuple.__new__, Entry)
_new_outcome = partial(tuple.__new__, Outcome)


class PartitionState:
    """The per-partition part of the state: where apply stands, log time, recent request ids."""

    __slots__ = ("next_offset", "clock_ms", "recent", "recent_order", "expiries")

    def __init__(self) -> None:
        self.next_offset = 0
        self.clock_ms = 0
        self.recent: dict[str, Outcome] = {}
        self.recent_order: deque[tuple[int, str]] = deque()
        self.expiries: list[tuple[int, str, Position]] = []


class Table:
    """The cache table. Single-threaded: callers serialise access."""

    def __init__(self) -> None:
        self._entries: dict[str, Entry] = {}
        self._partitions: dict[int, PartitionState] = {}
        self._sorted: SortedList | None = None  # built on the first listing, then kept up to date

    # ---- applying records -------------------------------------------------------------------

    def next_offsets(self) -> dict[int, int]:
        """The next offset to apply, per partition seen so far."""
        return {p: s.next_offset for p, s in self._partitions.items()}

    def clock_ms(self, partition: int) -> int:
        state = self._partitions.get(partition)
        return 0 if state is None else state.clock_ms

    def apply(self, position: Position, mutation: Mutation) -> Outcome | None:
        """Apply the record at ``position``. Returns ``None`` if that position was already applied."""
        state = self._partitions.get(position.partition)
        if state is None:
            state = self._partitions[position.partition] = PartitionState()
        if position.offset < state.next_offset:
            return None
        state.next_offset = position.offset + 1
        if mutation.ts_ms > state.clock_ms:
            state.clock_ms = mutation.ts_ms
        # The checks are inlined (this runs for every record of every replay); the work is not.
        if state.expiries and state.expiries[0][0] <= state.clock_ms:
            self._purge(state)
        if state.recent_order and state.recent_order[0][0] < state.clock_ms - DEDUP_WINDOW_MS:
            self._forget_old_requests(state)

        seen = state.recent.get(mutation.request_id)
        if seen is not None:
            return seen
        outcome = self._decide(position, mutation, state)
        state.recent[mutation.request_id] = outcome
        state.recent_order.append((state.clock_ms, mutation.request_id))
        return outcome

    def outcome_for(self, partition: int, request_id: str) -> Outcome | None:
        """The outcome of a request applied recently in ``partition`` (within the dedup window)."""
        state = self._partitions.get(partition)
        return None if state is None else state.recent.get(request_id)

    def skip(self, position: Position) -> None:
        """Advance past a record that is not ours (undecodable); it changes nothing else."""
        state = self._partitions.setdefault(position.partition, PartitionState())
        state.next_offset = max(state.next_offset, position.offset + 1)

    def _decide(self, position: Position, mutation: Mutation, state: PartitionState) -> Outcome:
        key = mutation.key
        current = self._entries.get(key)
        pre = mutation.precondition
        if pre is not None:
            ok = (
                (pre.kind == "absent" and current is None)
                or (pre.kind == "exists" and current is not None)
                or (pre.kind == "match" and current is not None and current.version == pre.version)
            )
            if not ok:
                return Outcome(
                    OutcomeKind.PRECONDITION_FAILED,
                    key,
                    None if current is None else current.version,
                    None if current is None else current.expires_at_ms,
                )
        if isinstance(mutation, Put):
            expires = mutation.expires_at_ms
            # tuple.__new__ skips the NamedTuples' Python-level __new__ (a fifth of the apply time).
            self._store(key, _new_entry((mutation.value, mutation.content_type, position, expires)))
            if expires is not None:
                heapq.heappush(state.expiries, (expires, key, position))
                self._purge(state)
            kind = OutcomeKind.CREATED if current is None else OutcomeKind.REPLACED
            return _new_outcome((kind, key, position, expires))
        assert isinstance(mutation, Delete)
        if current is None:
            return Outcome(OutcomeKind.NOT_FOUND, key, None)
        self._remove(key)
        return Outcome(OutcomeKind.DELETED, key, None)

    def _store(self, key: str, entry: Entry) -> None:
        if self._sorted is not None and key not in self._entries:
            self._sorted.add(key)
        self._entries[key] = entry

    def _remove(self, key: str) -> None:
        del self._entries[key]
        if self._sorted is not None:
            self._sorted.remove(key)

    def _purge(self, state: PartitionState) -> None:
        heap = state.expiries
        while heap and heap[0][0] <= state.clock_ms:
            _, key, version = heapq.heappop(heap)
            entry = self._entries.get(key)
            # Only purge if the entry is still the write that set this expiry.
            if entry is not None and entry.version == version:
                self._remove(key)

    def _forget_old_requests(self, state: PartitionState) -> None:
        horizon = state.clock_ms - DEDUP_WINDOW_MS
        order = state.recent_order
        while order and order[0][0] < horizon:
            _, request_id = order.popleft()
            state.recent.pop(request_id, None)

    # ---- reading ----------------------------------------------------------------------------

    def get(self, key: str, now_ms: int) -> Entry | None:
        """The live entry for ``key`` at ``now_ms``, or ``None``."""
        entry = self._entries.get(key)
        if entry is None or (entry.expires_at_ms is not None and now_ms >= entry.expires_at_ms):
            return None
        return entry

    def scan(self, prefix: str, start_after: str | None, now_ms: int) -> Iterator[tuple[str, Entry]]:
        """Live entries whose key starts with ``prefix``, in key order, after ``start_after``."""
        if self._sorted is None:
            self._sorted = SortedList(self._entries)
        keys = self._sorted
        lower = prefix if start_after is None or start_after < prefix else start_after
        index = keys.bisect_right(lower) if lower == start_after else keys.bisect_left(lower)
        for key in keys.islice(index):
            if not key.startswith(prefix):
                return
            entry = self._entries[key]
            if entry.live_at(now_ms):
                yield key, entry

    def __len__(self) -> int:
        """Entries held, including expired ones not yet purged."""
        return len(self._entries)

    def items(self) -> Iterator[tuple[str, Entry]]:
        """Every entry held, in no particular order (for snapshots and tests)."""
        return iter(self._entries.items())

    # ---- snapshots --------------------------------------------------------------------------

    def export_state(self) -> tuple[dict[str, Entry], dict[int, PartitionExport]]:
        """Everything that decides future reads and outcomes, as plain values: the entries held (the
        table's own dict: do not change it) and, per partition, the next offset, the log time and
        the remembered requests as ``(log time when applied, request id, outcome)``, oldest first.
        The expiry heaps are left out: :meth:`from_state` rebuilds them from the entries."""
        partitions = {
            p: PartitionExport(s.next_offset, s.clock_ms, [(t, r, s.recent[r]) for t, r in s.recent_order])
            for p, s in self._partitions.items()
        }
        return self._entries, partitions

    @classmethod
    def from_state(cls, entries: dict[str, Entry], partitions: dict[int, PartitionExport]) -> "Table":
        """The table :meth:`export_state` described; takes ownership of ``entries``. Every entry's
        version partition must be among ``partitions`` (it is in any exported state)."""
        table = cls()
        table._entries = entries
        for p, (next_offset, clock_ms, requests) in partitions.items():
            state = table._partitions[p] = PartitionState()
            state.next_offset, state.clock_ms = next_offset, clock_ms
            state.recent = {request_id: outcome for _, request_id, outcome in requests}
            state.recent_order = deque([(seen_ms, request_id) for seen_ms, request_id, _ in requests])
        # Only live writes matter for purging: a heap item whose entry was overwritten purges nothing.
        for key, entry in entries.items():
            if entry.expires_at_ms is not None:
                heap = table._partitions[entry.version.partition].expiries
                heap.append((entry.expires_at_ms, key, entry.version))
        for state in table._partitions.values():
            heapq.heapify(state.expiries)
        return table


class PartitionExport(NamedTuple):
    """One partition's part of :meth:`Table.export_state`."""

    next_offset: int
    clock_ms: int
    requests: list[tuple[int, str, Outcome]]
