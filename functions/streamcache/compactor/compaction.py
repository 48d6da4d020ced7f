"""One compaction: fold the log's tail into a new snapshot, then prune old snapshots.

Steps, and why each is safe to interrupt or to run twice at once:

1. Load the newest snapshot that verifies (corrupt ones are skipped and reported, older ones are the
   fallback) and only then capture the log's bounds: a snapshot a concurrent compactor wrote a moment
   ago is then never "ahead" of the end we captured.
2. Check the snapshot against the log (the record it applied last in each partition must be the one
   the log holds there: :mod:`streamcache.core.identity`) and plan as a cold start would
   (:func:`~streamcache.core.restore.plan_restore`). A snapshot of another log (the stream was
   recreated, a broker lost its records) or a log whose partition count changed makes the compactor
   *refuse*: folding this log onto that snapshot would mix two logs in every later snapshot, a
   snapshot of the new log would sort below the old ones and be pruned, and pruning would delete
   evidence an operator needs.
3. Read from the snapshot's positions to the captured end and fold with the core table (expired
   entries are purged by log time, deletes drop keys). The result is deterministic: two compactors
   folding the same range write the same bytes (under different names).
4. Nothing new folded: write nothing. Otherwise write the snapshot create-only, under a name that
   sorts by coverage and carries a random writer id, so concurrent writers never collide. The
   snapshot is a *delta* (only what the fold changed, :mod:`streamcache.core.snapshot_delta`) onto
   the chain it loaded, unless the chain policy (:class:`~streamcache.core.snapshot_chain.ChainPolicy`)
   wants a full image: after so many deltas, once the deltas add up to a fraction of the base, with
   no chain to extend (the first snapshot, a format-1 base), or after anything went wrong (a snapshot
   skipped as damaged, data loss): a fresh full image is the simplest thing to fall back on. A delta
   is only ever written after its parent exists (create-only, in order), so a compactor killed
   between the two leaves a chain one link shorter, never a link without its parent.
5. Prune what the retention policy (core/retention.py) does not keep, never the one just written. Names sort by coverage, so
   whatever a concurrent compactor wrote is either among the newest (kept) or covered by a newer one.
   A compactor killed anywhere leaves the older snapshots intact; the next run loads the newest one
   and prunes what was left.

Data loss (retention dropped records no snapshot covers): the compactor does NOT refuse, because
every run it skips lets retention drop more acknowledged writes that only the stream still holds.
It writes a data-loss record first (:mod:`streamcache.core.data_loss`), then the snapshot, which
covers the lost offsets so the gap is not tripped over again. The record keeps the loss visible to
every later cold start (phase ``degraded``) until an operator acknowledges it; the summary and the
log say so loudly on this and on every later run.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Callable

from streamcache.core.data_loss import DataLossRecord, encode_loss, loss_name
from streamcache.core.records import Position
from streamcache.core.restore import plan_restore
from streamcache.core.quota import Quota
from streamcache.core.retention import RetentionPolicy
from streamcache.core.snapshot import (LEGACY_FORMAT, checksum, encode_snapshot, format_name, format_of, newest_first,
                                       parse_name, stream_prefix)
from streamcache.core.snapshot_chain import ChainPolicy
from streamcache.core.snapshot_delta import encode_delta, track_changes
from streamcache.core.snapshot import read_header as snapshot_header_of
from streamcache.core.table import Table
from streamcache.ports import MutationLog, SnapshotStore, SnapshotStoreUnavailable
from streamcache.replay.catalog import Skipped, SkipReason, load_newest_valid
from streamcache.replay.identity import check_header
from streamcache.replay.fold import CHUNK_RECORDS, FoldStats, gc_paused, replay
from streamcache.replay.progress import Progress, SilentProgress
from streamcache.compactor.value_gc import RefTap, collect, table_refs, write_refs

log = logging.getLogger("streamcache.compactor")

class CompactionOutcome(StrEnum):
    WRITTEN = "written"  # a new snapshot was written
    UNCHANGED = "unchanged"  # nothing new to fold: nothing written
    REFUSED = "refused"  # the snapshot is ahead of the log (a recreated stream); see ``problem``


WRITTEN, UNCHANGED, REFUSED = CompactionOutcome.WRITTEN, CompactionOutcome.UNCHANGED, CompactionOutcome.REFUSED


@dataclass
class CompactionSummary:
    """What one compaction did. ``outcome``: ``written``, ``unchanged`` (nothing new to fold: nothing
    written) or ``refused`` (the snapshot is ahead of the log; see ``problem``)."""

    outcome: CompactionOutcome
    stream: str
    base_snapshot: str | None = None
    object: str | None = None
    bytes: int = 0
    entries: int = 0
    records_folded: int = 0
    records_applied: int = 0
    records_skipped: int = 0
    positions_before: dict[int, int] = field(default_factory=dict)
    positions_after: dict[int, int] = field(default_factory=dict)
    log_first: dict[int, int] = field(default_factory=dict)
    log_end: dict[int, int] = field(default_factory=dict)
    skipped_snapshots: list[Skipped] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    values_deleted: list[str] = field(default_factory=list)  # big values' objects collected (value_gc)
    prune_error: str | None = None
    data_loss: DataLossRecord | None = None
    data_loss_record: str | None = None
    #: Data-loss records in the store that no operator has acknowledged yet (including this run's).
    unacknowledged_losses: list[str] = field(default_factory=list)
    problem: str | None = None
    #: The base snapshot was folded with another quota than this compactor's (said, not refused).
    settings_changed: str | None = None
    duration_ms: float = 0.0
    phases_ms: dict[str, float] = field(default_factory=dict)
    #: ``full`` or ``delta`` (what ``object`` is), and why a full image was written.
    kind: str | None = None
    full_image_reason: str | None = None
    #: The links ``object`` needs to load, base first (itself only, for a full image).
    chain: list[str] = field(default_factory=list)

    def to_json(self) -> dict:
        fold_s = self.phases_ms.get("fold", 0.0) / 1000
        return {
            "outcome": self.outcome.value,
            "stream": self.stream,
            "object": self.object,
            "bytes": self.bytes,
            "snapshot_kind": self.kind,  # not "kind": log lines use that name for their own kind
            "full_image_reason": self.full_image_reason,
            "chain_length": len(self.chain),
            "entries": self.entries,
            "records_folded": self.records_folded,
            "records_applied": self.records_applied,
            "records_skipped": self.records_skipped,
            "fold_records_per_s": round(self.records_folded / fold_s) if fold_s > 0 else None,
            "base_snapshot": self.base_snapshot,
            "positions_before": _json_positions(self.positions_before),
            "positions_after": _json_positions(self.positions_after),
            "log_first": _json_positions(self.log_first),
            "log_end": _json_positions(self.log_end),
            "skipped_snapshots": [s.to_json() for s in self.skipped_snapshots],
            "pruned": self.pruned,
            "values_deleted": self.values_deleted,
            "prune_error": self.prune_error,
            "data_loss": None if self.data_loss is None else self.data_loss.to_json(),
            "data_loss_record": self.data_loss_record,
            "unacknowledged_losses": self.unacknowledged_losses,
            "problem": self.problem,
            "settings_changed": self.settings_changed,
            "duration_ms": round(self.duration_ms, 1),
            "phases_ms": {k: round(v, 1) for k, v in self.phases_ms.items()},
        }


def new_writer_id() -> str:
    return secrets.token_hex(8)


def compact(
    mutation_log: MutationLog,
    store: SnapshotStore,
    stream_id: str,
    keep: int | RetentionPolicy,
    *,
    clock: Callable[[], float] | None = None,
    monotonic: Callable[[], float] | None = None,
    writer_id: Callable[[], str] = new_writer_id,
    progress: Progress | None = None,
    chunk_records: int = CHUNK_RECORDS,
    max_bytes: int = 0,
    chain: ChainPolicy = ChainPolicy(),
) -> CompactionSummary:
    """Run one compaction of ``stream_id``'s snapshots in ``store`` against ``mutation_log``.

    Raises LogUnavailable / SnapshotStoreUnavailable when the stream or the store cannot be used
    (nothing is written then, or only a complete snapshot). ``max_bytes`` is the deployment's memory
    quota (``STREAMCACHE_MAX_BYTES``), which the fold must apply exactly as every instance does.
    ``chain``: when to write a delta rather than a full image (the default: always a full image; the
    deployment's comes from its settings)."""
    # A plain number keeps the newest ``keep`` snapshots and nothing older (tools, tests).
    policy = keep if isinstance(keep, RetentionPolicy) else RetentionPolicy(keep, keep_all_for_ms=0, daily_for_days=0)
    # Nothing a compaction allocates forms cycles, and the collector would scan the growing table
    # again and again (a third of the time at 1M keys); reference counting frees it all at the end.
    progress = progress or SilentProgress()
    outcome = "failed"
    try:
        with gc_paused():
            summary = _compact(mutation_log, store, stream_id, policy, clock, monotonic, writer_id, progress, chunk_records,
                               max_bytes, chain)
        outcome = summary.outcome.value
        return summary
    finally:
        progress.finish(outcome)


def _compact(mutation_log: MutationLog, store: SnapshotStore, stream_id: str, policy: RetentionPolicy,
             clock: Callable[[], float] | None, monotonic: Callable[[], float] | None,
             writer_id: Callable[[], str], progress: Progress, chunk_records: int, max_bytes: int,
             chain: ChainPolicy) -> CompactionSummary:
    wall = clock or (lambda: time.time())  # looked up per call: freezegun controls it in tests
    mono = monotonic or (lambda: time.perf_counter())
    started = phase_started = mono()
    phases: dict[str, float] = {}

    def lap(name: str) -> None:
        nonlocal phase_started
        now = mono()
        phases[name] = (now - phase_started) * 1000
        phase_started = now

    loaded = load_newest_valid(store, stream_id, progress)
    base = loaded.snapshot
    bounds = mutation_log.bounds()  # after the load: see the module docstring, step 1
    identity = None if base is None else check_header(mutation_log, base.header, bounds)
    lap("load")
    plan = plan_restore(base.header if base else None, bounds, identity)
    summary = CompactionSummary(
        UNCHANGED, stream_id, base_snapshot=base.name if base else None,
        positions_before=dict(base.header.next_offsets) if base else {},
        log_first=dict(bounds.first), log_end=dict(bounds.next), skipped_snapshots=loaded.skipped,
        unacknowledged_losses=list(loaded.catalog.losses), phases_ms=phases,
    )
    if plan.snapshot_ahead_of_log or plan.refused:
        summary.outcome, summary.problem = REFUSED, "COMPACTION REFUSED: " + plan.describe()
        log.error(summary.problem, extra={"fields": {"kind": "compaction_refused", "stream": stream_id}})
        return _finish(summary, started, mono)

    table = base.table if base else Table()
    table.quota = Quota(max_bytes, mutation_log.partitions) if max_bytes > 0 else None  # as every replica
    if base is not None and base.header.max_bytes is not None and base.header.max_bytes != max_bytes:
        summary.settings_changed = (f"the snapshot was folded with STREAMCACHE_MAX_BYTES={base.header.max_bytes}, "
                                    f"this compactor applies {max_bytes}: every instance and the compactor must "
                                    "apply the same quota, or they decide puts differently")
        log.warning(summary.settings_changed, extra={"fields": {"kind": "settings_changed", "stream": stream_id}})
    links = base.chain if base is not None else []
    full_reason = chain.full_image_due(links)
    if full_reason is None and (loaded.skipped or plan.tail_truncated):
        full_reason = "a snapshot was skipped or records were lost: a fresh full image to fall back on"
    if full_reason is None:
        track_changes(table)  # before the fold: what it changes is the delta
    if base is not None:
        base.table = Table()  # the summary must not keep the (big) table alive
    before = table.next_offsets()
    for partition, (_, first) in plan.lost.items():
        table.skip(Position(partition, first - 1))  # the gap is recorded below, not folded over silently
    progress.set_total(plan.records_to_replay)
    progress.phase("reading and folding the log")
    tap = RefTap(mutation_log)  # the big values the folded records refer to (value_gc)
    stats: FoldStats = replay(table, tap, plan.start, plan.end, progress, chunk_records)  # type: ignore[arg-type]
    lap("fold")
    summary.records_folded, summary.records_applied, summary.records_skipped = stats.read, stats.applied, stats.skipped
    summary.positions_after = table.next_offsets()
    # A format-1 base is converted: its image is written even when nothing new was folded.
    legacy_base = base is not None and format_of(base.name) == LEGACY_FORMAT
    if summary.positions_after == before and not legacy_base:
        summary.entries = len(table)
        summary.pruned, summary.prune_error = _prune(store, stream_id, policy, int(wall() * 1000), summary.base_snapshot, loaded.skipped)
        lap("prune")
        return _finish(summary, started, mono)

    progress.phase("writing the image")
    parent = None
    if full_reason is None:
        data = encode_delta(table, stream_id, mutation_log.partitions, links[0], links[-1])
        full_reason = chain.too_big(links, len(data))
        parent = None if full_reason is not None else parse_name(links[-1]).writer
    if parent is None:
        # Pages rebuilt in key order: ~99 % full instead of the 70-85 % that writes in random order leave,
        # and every instance that loads the image holds it (bench/README.md, memory per key). A delta
        # holds only the changed rows, and is applied onto such a base. Request rows past the window
        # are swept first (flush): swept after, they left the requests pages 40 % empty.
        table.flush()
        table.db.execute("VACUUM")
        data = encode_snapshot(table, stream_id, mutation_log.partitions)
    header = snapshot_header_of(table.db)  # the meta rows encode_snapshot / encode_delta just wrote
    name = format_name(header, writer_id(), checksum(data), parent)
    summary.entries, summary.bytes = header.entries, len(data)
    refs = tap.refs | table_refs(table)
    summary.kind, summary.full_image_reason = ("full", full_reason) if parent is None else ("delta", None)
    summary.chain = [name] if parent is None else [*links, name]
    table.close()
    del table
    lap("encode")
    if plan.tail_truncated:
        loss = DataLossRecord(stream_id, dict(plan.lost), int(wall() * 1000), summary.base_snapshot, name)
        record_name = loss_name(stream_id, bounds.first, writer_id())
        store.put_new(record_name, encode_loss(loss))  # before the snapshot that covers the gap
        summary.data_loss, summary.data_loss_record = loss, record_name
        summary.unacknowledged_losses.append(record_name)
        log.error(loss.describe(), extra={"fields": {"kind": "data_loss", **loss.to_json(), "record": record_name}})
    progress.phase(f"writing {name} ({len(data):,} bytes)")
    write_refs(store, stream_id, name, refs)
    store.put_new(name, data)
    summary.outcome, summary.object = WRITTEN, name
    lap("write")
    summary.pruned, summary.prune_error = _prune(store, stream_id, policy, int(wall() * 1000), name, loaded.skipped)
    lap("prune")
    if summary.prune_error is None:  # the snapshots kept are known: their refs decide
        kept = [n for n in store.list(stream_prefix(stream_id)) if n.endswith((".db", ".snap"))]
        try:
            summary.values_deleted = collect(store, stream_id, kept, int(wall() * 1000), writer_id())
        except SnapshotStoreUnavailable as exc:  # the snapshot is written; the next run collects
            summary.prune_error = f"collecting value objects: {exc}"
        lap("values")
    return _finish(summary, started, mono)


def _prune(store: SnapshotStore, stream: str, policy: RetentionPolicy, now_ms: int, protect: str | None,
           skipped: list[Skipped]) -> tuple[list[str], str | None]:
    """Delete the snapshots the retention policy does not keep (:mod:`streamcache.core.retention`),
    never ``protect`` (the one just written)."""
    damaged = {s.name for s in skipped if s.reason in (SkipReason.CORRUPT, SkipReason.MISSING_LINK)}
    pruned: list[str] = []
    try:
        names = newest_first(store.list(stream_prefix(stream)), stream)
        kept = policy.keep([(name, parse_name(name).as_of_ms) for name in names], now_ms, damaged)
        for name in names:
            if name != protect and name not in kept:
                store.delete(name)
                pruned.append(name)
    except SnapshotStoreUnavailable as exc:
        # The new snapshot is written; leftovers are pruned by the next run.
        log.warning("pruning snapshots failed: %s", exc)
        return pruned, str(exc)
    return pruned, None


def _finish(summary: CompactionSummary, started: float, mono: Callable[[], float]) -> CompactionSummary:
    summary.duration_ms = (mono() - started) * 1000
    if summary.unacknowledged_losses and summary.data_loss is None:
        log.error(
            "stream %r has %d unacknowledged data-loss record(s): %s. Acknowledge with "
            "`streamcache snapshots --acknowledge-data-loss` once understood.",
            summary.stream, len(summary.unacknowledged_losses), ", ".join(summary.unacknowledged_losses),
            extra={"fields": {"kind": "data_loss_unacknowledged"}},
        )
    return summary


def _json_positions(positions: dict[int, int]) -> dict[str, int]:
    return {str(p): o for p, o in sorted(positions.items())}
