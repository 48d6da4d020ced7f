"""The table state machine: applies mutation records in log order and answers reads (:mod:`.table_reads`).

Everything here is a function of the records applied and of the ``now_ms`` a reader passes in, so
two tables fed the same records per partition reach the same entries and report the same outcomes,
whatever the interleaving of partitions (all state that outcomes depend on is kept per partition).

- A key's version is the :class:`~.records.Position` of the record that last wrote it.
- Preconditions are checked when the record is applied, never against a wall clock: the record
  decides the key it writes as of its writer's time or the partition's *log time*, whichever is later
  (log time follows the writers' clocks, a bounded step at a time: :mod:`.log_time`).
- Expired entries read as absent for a reader's ``now_ms`` and are purged once log time passes them.
- A request id seen again within :data:`DEDUP_WINDOW_MS` of log time in the same partition is a
  retried append: nothing changes and the first outcome is reported again.
- With a quota (:class:`Quota`), a put that would take its partition's accounted bytes past the
  partition's share is refused (``QUOTA_EXCEEDED``) and changes nothing; see :mod:`.quota`.

The state lives in an SQLite database (in memory, or a file the caller opened: an in-memory
connection is pure state, like a dict). Its schema (:mod:`.schema`) is also the snapshot format.
The few per-partition numbers every record touches (next offset, log time, accounted bytes, the
earliest expiry) are kept in Python and written to the ``partitions`` table by :meth:`Table.flush`:
an UPDATE per record would cost more than the rest of ``apply``.
"""

from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from functools import partial
from typing import Iterator

from streamcache.core import schema
from streamcache.core.outcome import Entry, Outcome, OutcomeKind
from streamcache.core.table_reads import TableReads, _new_position
from streamcache.core.quota import ENTRY_OVERHEAD_BYTES, Quota, QuotaState
from streamcache.core.counters import count_up
from streamcache.core.identity import Fingerprint, decode_fingerprints
from streamcache.core.import_dedup import import_line, line_seen, remember_line
from streamcache.core.log_time import CLOCK_ROW, MAX_CLOCK_STEP_MS, LogClock, decode_clocks
from streamcache.core.log_time import next_log_time as next_log_time  # the rule, where callers look for it
from streamcache.core.table_export import PartitionExport, export_state
from streamcache.core.records import Delete, Increment, Mutation, Position, PreconditionKind, Put, Touch
from streamcache.core.table_touch import decide_touch
from streamcache.core.partition_state import PartitionState, request_hash

#: How long (in log time) a request id is remembered for de-duplication. Producer retries give up
#: after their delivery timeout (30 s in the Kafka adapter); two minutes covers them with margin.
#: Part of the log's semantics: every replica and the compactor must use the same value.
DEDUP_WINDOW_MS = 120_000
#: Rows of ``requests`` older than the window are deleted in sweeps (they are ignored before that,
#: so sweeping only saves memory). A sweep scans the whole window, so it runs after at least this
#: many inserts and at least as many as the rows the last sweep kept: amortised O(1) per record.
SWEEP_MIN_INSERTS = 50_000


_new_outcome = partial(tuple.__new__, Outcome)
_KINDS = [OutcomeKind(k) for k in schema.KIND_CODES]
_CODES = {kind: code for code, kind in enumerate(_KINDS)}
_CREATED, _REPLACED = _CODES[OutcomeKind.CREATED], _CODES[OutcomeKind.REPLACED]


class Table(TableReads):
    """The cache table. Single-threaded: callers serialise access."""

    def __init__(self, quota: Quota | None = None, *, connection: sqlite3.Connection | None = None) -> None:
        """An empty table, or (``connection``) the table held by a database already laid out by
        :mod:`.schema` and checked (a loaded snapshot). The table owns the connection."""
        if connection is None:
            connection = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
            schema.create(connection)
        self.db = connection
        self.quota = quota
        self._partitions: dict[int, PartitionState] = {}
        self._types: dict[str, int] = {}
        self._type_names: dict[int, str] = {}
        self._inserts_since_sweep = 0
        self._sweep_after = SWEEP_MIN_INSERTS
        self._count: int | None = None  # entries held; counted on first use (a scan), then kept
        self._load_state()

    def _load_state(self) -> None:
        db = self.db
        for p, next_offset, clock_ms, used in db.execute("SELECT partition, next_offset, log_time_ms, used_bytes FROM partitions"):
            self._partitions[p] = PartitionState(next_offset, clock_ms, used)
        row = db.execute("SELECT value FROM meta WHERE name = ?", (CLOCK_ROW,)).fetchone()
        for p, (vouched, previous) in decode_clocks(None if row is None else row[0]).items():
            state = self._partitions.setdefault(p, PartitionState())
            state.vouched_ms, state.previous_ts = vouched, previous
        for p, earliest in db.execute(
            "SELECT version_partition, min(expires_at_ms) FROM entries WHERE expires_at_ms IS NOT NULL GROUP BY 1"
        ):
            self._partitions.setdefault(p, PartitionState()).min_expiry = earliest
        for type_id, name in db.execute("SELECT id, name FROM content_types"):
            self._types[name], self._type_names[type_id] = type_id, name
        row = db.execute("SELECT value FROM meta WHERE name = 'last_records'").fetchone()
        for p, fingerprint in decode_fingerprints(None if row is None else row[0]).items():
            if p in self._partitions:
                self._partitions[p].last_request, self._partitions[p].last_ts = fingerprint

    # ---- applying records -------------------------------------------------------------------

    def next_offsets(self) -> dict[int, int]:
        """The next offset to apply, per partition seen so far."""
        return {p: s.next_offset for p, s in self._partitions.items()}

    def next_offset(self, partition: int) -> int:
        """The next offset to apply in ``partition`` (0 before its first record)."""
        state = self._partitions.get(partition)
        return 0 if state is None else state.next_offset

    def clock_ms(self, partition: int) -> int:
        state = self._partitions.get(partition)
        return 0 if state is None else state.clock_ms

    def log_clock(self, partition: int) -> LogClock:
        """Where ``partition``'s clock stands: what :func:`next_log_time` takes."""
        state = self._partitions.get(partition)
        return LogClock() if state is None else LogClock(state.clock_ms, state.vouched_ms, state.previous_ts)

    def fingerprint(self, partition: int) -> Fingerprint | None:
        """The fingerprint of the record this table applied last in ``partition`` (at its next offset
        minus one), ``None`` when it is not known (nothing applied, or a record skipped there)."""
        state = self._partitions.get(partition)
        if state is None or state.last_request is None:
            return None
        return Fingerprint(state.last_request, state.last_ts)

    def fingerprints(self) -> dict[int, Fingerprint | None]:
        return {p: self.fingerprint(p) for p in self._partitions}

    def apply(self, position: Position, mutation: Mutation) -> Outcome | None:
        """Apply the record at ``position``. Returns ``None`` if that position was already applied."""
        partition = position.partition
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = PartitionState()
        if position.offset < state.next_offset:
            return None
        state.next_offset = position.offset + 1
        ts, previous = mutation.ts_ms, state.previous_ts  # next_log_time, inlined:
        if ts != previous:
            vouched = ts if ts < previous else previous
            if vouched > state.vouched_ms:
                state.vouched_ms = vouched
            state.previous_ts = ts
        clock = state.clock_ms
        if ts > clock:
            bound = state.vouched_ms + MAX_CLOCK_STEP_MS
            if ts <= bound or clock == 0:
                state.clock_ms = ts
            elif bound > clock:
                state.clock_ms = bound
        if state.min_expiry is not None and state.min_expiry <= state.clock_ms:
            self._purge(partition, state)

        rid = request_hash(partition, mutation.request_id)
        state.last_request, state.last_ts = rid, mutation.ts_ms  # this record's fingerprint
        imported = import_line(partition, mutation.request_id, request_hash)  # bulk imports: import_dedup.py
        if imported is not None and line_seen(self.db, partition, imported, state.clock_ms - DEDUP_WINDOW_MS):
            return None
        # One statement finds both the remembered request and the key's entry (schema.LOOKUP).
        row = self.db.execute(schema.LOOKUP, (rid, state.clock_ms - DEDUP_WINDOW_MS, mutation.key, partition)).fetchone()
        if row[0] is not None:
            return self._stored_outcome(partition, row[:5] + row[9:])
        # The record is decided and remembered as of its writer's time when that is later than log
        # time, which purges everyone's entries and may lag it (core/log_time.py): a key expired by
        # then is absent to it, and its request id is not forgotten as soon as log time catches up.
        when = ts if ts > state.clock_ms else state.clock_ms
        current = None if row[5] is None else row[5:9]
        if current is not None and current[2] is not None and current[2] <= when:
            self._drop(mutation.key, current)
            current = None
        outcome = self._decide(position, mutation, state, current)
        version = outcome[2]
        if imported is not None:  # no row per imported record: the object's row keeps its highest line
            remember_line(self.db, partition, imported, when, state.clock_ms - DEDUP_WINDOW_MS)
            return outcome
        if version is not None and version[0] == partition and outcome[3] is None and outcome[4] is None:
            self.db.execute(schema.REMEMBER_PLAIN, (rid, partition, when, _CODES[outcome[0]], outcome[1], version[1]))
        else:
            self.db.execute(schema.REMEMBER, (
                rid, partition, when, _CODES[outcome[0]], outcome[1],
                None if version is None or version[0] == partition else version[0],
                None if version is None else version[1], outcome[3],
                *((None, None) if outcome[4] is None else (outcome[4].used_bytes, outcome[4].needed_bytes))))
        self._inserts_since_sweep += 1
        if self._inserts_since_sweep >= self._sweep_after:
            self.sweep_requests()
        return outcome

    def outcome_for(self, partition: int, request_id: str) -> Outcome | None:
        """The outcome of a request applied recently in ``partition`` (within the dedup window)."""
        state = self._partitions.get(partition)
        if state is None:
            return None
        row = self.db.execute(
            "SELECT kind, key, version_partition, version_offset, expires_at_ms, quota_used, quota_needed "
            "FROM requests WHERE partition = ? AND id = ? AND seen_ms >= ?",
            (partition, request_hash(partition, request_id), state.clock_ms - DEDUP_WINDOW_MS)).fetchone()
        return None if row is None else self._stored_outcome(partition, row)

    def _stored_outcome(self, partition: int, row: tuple) -> Outcome:
        code, key, vpart, voff, expires, used, needed = row
        version = None if voff is None else _new_position((partition if vpart is None else vpart, voff))
        kind = _KINDS[code]
        quota = None
        if kind is OutcomeKind.QUOTA_EXCEEDED:  # as full as it was when refused; the limit is a setting
            quota = QuotaState(used, None if self.quota is None else self.quota.partition_limit(partition), needed)
        return _new_outcome((kind, key, version, expires, quota))

    def skip(self, position: Position) -> None:
        """Advance past a record that is not ours (undecodable); it changes nothing else."""
        state = self._partitions.setdefault(position.partition, PartitionState())
        if position.offset >= state.next_offset:
            state.next_offset = position.offset + 1
            state.last_request = None  # not a record of ours: nothing to recognise it by

    def _decide(self, position: Position, mutation: Mutation, state: PartitionState, current: tuple | None) -> Outcome:
        """Decide a new request; ``current`` is the key's (version partition, offset, expiry, key +
        value bytes), or ``None``."""
        key = mutation.key
        db = self.db
        pre = mutation.precondition
        if pre is not None:
            ok = (
                (pre.kind is PreconditionKind.ABSENT and current is None)
                or (pre.kind is PreconditionKind.EXISTS and current is not None)
                or (pre.kind is PreconditionKind.MATCH and current is not None and (current[0], current[1]) == pre.version)
            )
            if not ok:
                return self._refusal(OutcomeKind.PRECONDITION_FAILED, key, current, None)
        if isinstance(mutation, Touch):  # the expiry alone (core/table_touch.py)
            return decide_touch(self, mutation, current)
        if isinstance(mutation, Increment):
            stored = None
            if current is not None:
                value, type_id = db.execute("SELECT value, content_type FROM entries WHERE key = ?", (key,)).fetchone()
                stored = (value, self._type_names[type_id], current[2])
            counted = count_up(mutation, stored)
            if isinstance(counted, OutcomeKind):
                return self._refusal(counted, key, current, None)
            mutation = counted
        if isinstance(mutation, Put):
            value, expires = mutation.value, mutation.expires_at_ms
            size = len(key.encode("utf-8", "surrogatepass")) + len(value) + ENTRY_OVERHEAD_BYTES
            partition = position.partition
            if self.quota is not None:
                # The old bytes leave the partition that accounted them: this one only if it wrote them.
                freed = current[3] + ENTRY_OVERHEAD_BYTES if current is not None and current[0] == partition else 0
                growth = size - freed
                limit = self.quota.partition_limit(partition)
                if growth > 0 and state.used_bytes + growth > limit:
                    return self._refusal(OutcomeKind.QUOTA_EXCEEDED, key, current,
                                         QuotaState(state.used_bytes, limit, growth))
            type_id = self._types.get(mutation.content_type)
            if type_id is None:
                type_id = self._add_type(mutation.content_type)
            if expires is None:
                db.execute(schema.UPSERT_ENTRY_NO_EXPIRY, (key, value, type_id, partition, position.offset))
            else:
                db.execute(schema.UPSERT_ENTRY, (key, value, type_id, partition, position.offset, expires))
            if current is not None:
                self._account(current[0], -(current[3] + ENTRY_OVERHEAD_BYTES))
            state.used_bytes += size
            if expires is not None:
                if state.min_expiry is None or expires < state.min_expiry:
                    state.min_expiry = expires
                if expires <= state.clock_ms:
                    self._purge(partition, state)
            if current is None and self._count is not None:
                self._count += 1
            kind = OutcomeKind.CREATED if current is None else OutcomeKind.REPLACED
            return _new_outcome((kind, key, position, expires, None))
        assert isinstance(mutation, Delete)
        if current is None:
            return _new_outcome((OutcomeKind.NOT_FOUND, key, None, None, None))
        db.execute("DELETE FROM entries WHERE key = ?", (key,))
        if self._count is not None:
            self._count -= 1
        self._account(current[0], -(current[3] + ENTRY_OVERHEAD_BYTES))
        return _new_outcome((OutcomeKind.DELETED, key, None, None, None))

    @staticmethod
    def _refusal(kind: OutcomeKind, key: str, current: tuple | None, quota: QuotaState | None) -> Outcome:
        if current is None:
            return _new_outcome((kind, key, None, None, quota))
        return _new_outcome((kind, key, _new_position((current[0], current[1])), current[2], quota))

    def _account(self, partition: int, delta: int) -> None:
        state = self._partitions.get(partition)
        if state is None:
            state = self._partitions[partition] = PartitionState()
        state.used_bytes += delta

    def _add_type(self, name: str) -> int:
        type_id = len(self._types)
        self.db.execute("INSERT INTO content_types VALUES (?, ?)", (type_id, name))
        self._types[name], self._type_names[type_id] = type_id, name
        return type_id

    def _drop(self, key: str, current: tuple) -> None:
        """Delete ``key``'s entry (``current``: as :meth:`_decide` takes it), expired."""
        self.db.execute("DELETE FROM entries WHERE key = ?", (key,))
        self._account(current[0], -(current[3] + ENTRY_OVERHEAD_BYTES))
        if self._count is not None:
            self._count -= 1

    def _purge(self, partition: int, state: PartitionState) -> None:
        """Delete the partition's entries whose expiry log time has reached (only entries whose
        current version was written in this partition: a key rewritten elsewhere is not touched)."""
        db = self.db
        freed = db.execute(
            "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0), count(*) FROM entries "
            "WHERE version_partition = ? AND expires_at_ms IS NOT NULL AND expires_at_ms <= ?",
            (partition, state.clock_ms)).fetchone()
        if freed[1]:
            db.execute("DELETE FROM entries WHERE version_partition = ? AND expires_at_ms IS NOT NULL "
                       "AND expires_at_ms <= ?", (partition, state.clock_ms))
            state.used_bytes -= freed[0] + freed[1] * ENTRY_OVERHEAD_BYTES
            if self._count is not None:
                self._count -= freed[1]
        state.min_expiry = db.execute(
            "SELECT min(expires_at_ms) FROM entries WHERE version_partition = ? AND expires_at_ms IS NOT NULL",
            (partition,)).fetchone()[0]

    def sweep_requests(self) -> None:
        """Delete request rows older than their partition's window (ignored already: saves memory)."""
        db = self.db
        for p, state in self._partitions.items():
            db.execute("DELETE FROM requests WHERE partition = ? AND seen_ms < ?", (p, state.clock_ms - DEDUP_WINDOW_MS))
        kept = db.execute("SELECT count(*) FROM requests").fetchone()[0]
        self._inserts_since_sweep = 0
        self._sweep_after = max(SWEEP_MIN_INSERTS, kept)

    # ---- quota ------------------------------------------------------------------------------

    def quota_state(self, partition: int) -> QuotaState:
        """How full ``partition`` is against its share of the quota (``limit`` None: no quota)."""
        state = self._partitions.get(partition)
        used = 0 if state is None else state.used_bytes
        return QuotaState(used, None if self.quota is None else self.quota.partition_limit(partition), 0)

    def used_bytes(self) -> int:
        """Accounted bytes of every entry held (key + value + overhead each), all partitions."""
        return sum(s.used_bytes for s in self._partitions.values())

    # ---- state as a whole -------------------------------------------------------------------

    def flush(self) -> None:
        """Write the per-partition numbers kept in Python into the ``partitions`` table and drop
        request rows past the window, so the database alone holds the whole state."""
        self.sweep_requests()
        rows = [(p, s.next_offset, s.clock_ms, s.used_bytes) for p, s in sorted(self._partitions.items())]
        if self.db.execute("SELECT * FROM partitions ORDER BY partition").fetchall() != rows:
            # Only when changed: an unchanged table keeps its bytes (and its image's checksum).
            self.db.execute("DELETE FROM partitions")
            self.db.executemany("INSERT INTO partitions VALUES (?, ?, ?, ?)", rows)

    def export_state(self) -> tuple[dict[str, Entry], dict[int, PartitionExport]]:
        """Everything that decides future reads and outcomes, as plain values (see table_export)."""
        return export_state(self, DEDUP_WINDOW_MS)

    @contextmanager
    def batch(self) -> Iterator[None]:
        """Apply many records in one SQLite transaction (an eighth faster in memory, and a file-backed
        table writes its pages once per batch instead of once per record). There is no rollback:
        the table has no journal, and whatever was applied stays applied."""
        if self.db.in_transaction:
            yield
            return
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def close(self) -> None:
        self.db.close()

